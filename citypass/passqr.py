"""The pass QR (`CP2:`): one QR code with a signed voucher for every budget a resident
holds credit in. The phone shows it, the till scans it and types the amount.

Text = "CP2:" + base45(payload) (RFC 9285; every character is QR alphanumeric, so the
code is encoded in alphanumeric mode at error correction M). Payload bytes, big-endian:

    u8      format   = 2
    u64     chainId
    bytes20 contract (verifyingContract)
    bytes20 holder
    u40     deadline (unix seconds), shared by every voucher in the QR
    u8      providerFlag: 0 = any provider (provider = address(0)); 1 = followed by bytes20 provider
    u8      count    (1..8)
    count times:
      bytes20 budget     (the budget id as uint160)
      u32     maxAmount  (cents)
      u32     nonce
      bytes64 signature  (EIP-2098 compact: r || yParityAndS)

Each entry is the EIP-712 voucher (holder, provider, budget, maxAmount, nonce, deadline)
with the shared fields filled in (see citypass/voucher.py). A paper coupon is the same
format with count 1 and deadline = the budget's end. The signatures are the holder key's
own (ECDSA, low-s): a smart-account holder (ERC-1271) cannot be put in this QR.

Refreshing: the phone re-signs each budget with the same nonce (the lowest unused one)
until it sees that nonce used, so a copied QR dies at the resident's next payment with
that budget, and refreshing uses up no nonces (wallet.pass_qr does this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eth_account import Account
from eth_utils import to_checksum_address

from citypass import base45
from citypass import voucher as V

PREFIX = "CP2:"
FORMAT = 2
MAX_ENTRIES = 8
ANY_PROVIDER = "0x0000000000000000000000000000000000000000"
MAX_U32 = 2**32 - 1
MAX_U40 = 2**40 - 1
MAX_BUDGET = 2**160 - 1
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEADER = 1 + 8 + 20 + 20 + 5 + 1  # through providerFlag
_ENTRY = 20 + 4 + 4 + 64
MAX_TEXT = len(PREFIX) + 3 * ((_HEADER + 20 + 1 + MAX_ENTRIES * _ENTRY + 1) // 2) + 3  # a bound, for refusing junk early


class PassQRError(ValueError):
    """A pass QR that is malformed; the message names the field (and the entry) and why."""


@dataclass(frozen=True)
class Entry:
    budget: int
    max_amount: int  # cents
    nonce: int
    signature: bytes  # 64 bytes, EIP-2098 compact


@dataclass(frozen=True)
class PassQR:
    chain_id: int
    contract: str
    holder: str
    deadline: int
    provider: str  # ANY_PROVIDER: any provider approved for the budget's category
    entries: tuple[Entry, ...]

    def voucher(self, entry: Entry) -> V.Voucher:
        return V.Voucher(self.holder, self.provider, entry.budget, entry.max_amount, entry.nonce, self.deadline)

    def signed(self, entry: Entry) -> V.SignedVoucher:
        """The entry as a signed voucher (with the usual 65-byte signature)."""
        return V.SignedVoucher(self.voucher(entry), from_compact(entry.signature), self.chain_id, self.contract)

    def vouchers(self) -> list[V.SignedVoucher]:
        return [self.signed(e) for e in self.entries]

    def budgets(self) -> list[int]:
        return [e.budget for e in self.entries]

    def for_budget(self, budget: int) -> V.SignedVoucher:
        for e in self.entries:
            if e.budget == budget:
                return self.signed(e)
        raise PassQRError(f"budget: this pass QR has no voucher for budget #{budget >> 128} "
                          f"(it has {len(self.entries)}: {', '.join('#' + str(b >> 128) for b in self.budgets())})")

    def encode(self) -> str:
        return encode(self)


# ------------------------------------------------------------------ signatures
def to_compact(signature: bytes) -> bytes:
    """65-byte r||s||v (v = 27/28 or 0/1, low s) -> 64-byte EIP-2098 r||yParityAndS."""
    if len(signature) == 64:
        return bytes(signature)
    if len(signature) != 65:
        raise PassQRError(f"signature: {len(signature)} bytes; only a key's 65-byte ECDSA signature fits a pass QR")
    v = signature[64]
    parity = v - 27 if v >= 27 else v
    s = int.from_bytes(signature[32:64], "big")
    if parity not in (0, 1) or s > _SECP256K1_N // 2:
        raise PassQRError("signature: not a low-s ECDSA signature with v 27/28")
    return signature[:32] + (s | parity << 255).to_bytes(32, "big")


def from_compact(signature: bytes) -> bytes:
    """64-byte EIP-2098 -> 65-byte r||s||v with v = 27/28."""
    if len(signature) != 64:
        raise PassQRError(f"signature: {len(signature)} bytes, expected 64 (EIP-2098)")
    vs = int.from_bytes(signature[32:], "big")
    return signature[:32] + (vs & ((1 << 255) - 1)).to_bytes(32, "big") + bytes([27 + (vs >> 255)])


# ------------------------------------------------------------------ build and sign
def sign_pass(key: Any, chain_id: int, contract: str, entries: Sequence[tuple[int, int, int]], deadline: int,
              provider: str = ANY_PROVIDER) -> PassQR:
    """Signs one voucher per (budget, max_amount, nonce) with the holder's key (the
    holder is the key's address) and packs them into a pass QR."""
    key = getattr(key, "key", key)
    holder = Account.from_key(key).address
    if not 1 <= len(entries) <= MAX_ENTRIES:
        raise PassQRError(f"count: a pass QR holds 1 to {MAX_ENTRIES} vouchers, got {len(entries)}")
    signed_entries = []
    for budget, max_amount, nonce in entries:
        signed = V.sign(V.Voucher(holder, provider, budget, max_amount, nonce, deadline), key, chain_id, contract)
        signed_entries.append(Entry(budget, max_amount, nonce, to_compact(signed.signature)))
    pq = PassQR(chain_id, to_checksum_address(contract), holder, deadline, to_checksum_address(provider),
                tuple(signed_entries))
    pack(pq)  # every field within its width, or PassQRError now rather than at the till
    return pq


def coupon(key: Any, chain_id: int, contract: str, budget: int, max_amount: int, nonce: int, budget_end: int,
           provider: str = ANY_PROVIDER) -> PassQR:
    """One paper coupon: the pass QR format with one voucher valid until the budget's end."""
    return sign_pass(key, chain_id, contract, [(budget, max_amount, nonce)], budget_end, provider)


# ------------------------------------------------------------------ bytes
def _field(value: int, width: int, name: str) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << (8 * width):
        raise PassQRError(f"{name}: {value!r} does not fit {width * 8} bits")
    return value.to_bytes(width, "big")


def _address(value: str) -> bytes:
    return bytes.fromhex(to_checksum_address(value)[2:])


def pack(pq: PassQR) -> bytes:
    if not 1 <= len(pq.entries) <= MAX_ENTRIES:
        raise PassQRError(f"count: a pass QR holds 1 to {MAX_ENTRIES} vouchers, got {len(pq.entries)}")
    out = bytearray([FORMAT])
    out += _field(pq.chain_id, 8, "chainId")
    out += _address(pq.contract) + _address(pq.holder)
    out += _field(pq.deadline, 5, "deadline")
    if int(pq.provider, 16) == 0:
        out.append(0)
    else:
        out.append(1)
        out += _address(pq.provider)
    out.append(len(pq.entries))
    for i, e in enumerate(pq.entries, start=1):
        out += _field(e.budget, 20, f"entry {i} budget")
        out += _field(e.max_amount, 4, f"entry {i} maxAmount")
        out += _field(e.nonce, 4, f"entry {i} nonce")
        if len(e.signature) != 64:
            raise PassQRError(f"entry {i} signature: {len(e.signature)} bytes, expected 64 (EIP-2098)")
        out += e.signature
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int, name: str) -> bytes:
        if self.pos + n > len(self.data):
            raise PassQRError(f"{name}: the payload ends after {len(self.data)} bytes, {self.pos + n - len(self.data)} "
                              "bytes short (the QR was cut off)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self, n: int, name: str) -> int:
        return int.from_bytes(self.take(n, name), "big")

    def address(self, name: str) -> str:
        return to_checksum_address("0x" + self.take(20, name).hex())


def unpack(data: bytes) -> PassQR:
    r = _Reader(data)
    fmt = r.int(1, "format")
    if fmt != FORMAT:
        raise PassQRError(f"format: {fmt}, this program reads format {FORMAT}: update citypass, or ask for a new QR code")
    chain_id = r.int(8, "chainId")
    if chain_id == 0:
        raise PassQRError("chainId: 0 is no chain")
    contract = r.address("contract")
    holder = r.address("holder")
    if int(holder, 16) == 0:
        raise PassQRError("holder: the zero address cannot sign a voucher")
    deadline = r.int(5, "deadline")
    flag = r.int(1, "providerFlag")
    if flag == 0:
        provider = ANY_PROVIDER
    elif flag == 1:
        provider = r.address("provider")
        if int(provider, 16) == 0:
            raise PassQRError("provider: providerFlag 1 with the zero address (use providerFlag 0 for any provider)")
    else:
        raise PassQRError(f"providerFlag: {flag}, expected 0 (any provider) or 1 (one provider follows)")
    count = r.int(1, "count")
    if not 1 <= count <= MAX_ENTRIES:
        raise PassQRError(f"count: {count}, a pass QR holds 1 to {MAX_ENTRIES} vouchers")
    entries, seen = [], set()
    for i in range(1, count + 1):
        budget = r.int(20, f"entry {i} budget")
        if budget in seen:
            raise PassQRError(f"entry {i} budget: budget {budget >> 128} appears twice in one pass QR")
        seen.add(budget)
        max_amount = r.int(4, f"entry {i} maxAmount")
        if max_amount == 0:
            raise PassQRError(f"entry {i} maxAmount: 0 cents, a voucher allows at least 1 cent")
        nonce = r.int(4, f"entry {i} nonce")
        signature = r.take(64, f"entry {i} signature")
        entries.append(Entry(budget, max_amount, nonce, signature))
    if r.pos != len(data):
        raise PassQRError(f"payload: {len(data) - r.pos} bytes after the last of the {count} vouchers (altered?)")
    return PassQR(chain_id, contract, holder, deadline, provider, tuple(entries))


# ------------------------------------------------------------------ text
def encode(pq: PassQR) -> str:
    return PREFIX + base45.encode(pack(pq))


def decode(text: str) -> PassQR:
    """Parses QR text; raises PassQRError naming the bad field."""
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise PassQRError(f"payload: {len(text):,} characters, more than a pass QR can have ({MAX_TEXT:,})")
    head = text[:4].upper()
    if head != PREFIX:
        if head[:2] == "CP" and head[2:3].isdigit():
            raise PassQRError(f"prefix: a {text.split(':')[0].upper()} code; this program reads {PREFIX[:-1]} "
                              "pass QR codes: ask the resident to update the app, or update citypass")
        raise PassQRError(f"prefix: not a CityPass pass QR (it should start with '{PREFIX}')")
    try:
        data = base45.decode(text[4:])
    except base45.Base45Error as exc:
        raise PassQRError(f"base45: {exc}") from None
    return unpack(data)


def verify(pq: PassQR) -> list[tuple[int, str | None]]:
    """Offline check of each entry's signature: [(budget, None if it recovers to the holder,
    else what is wrong)]. The chain's checkVoucher judges the rest (credit, pass, deadline)."""
    out: list[tuple[int, str | None]] = []
    for i, e in enumerate(pq.entries, start=1):
        try:
            signer = V.recover_signer(pq.signed(e))
        except Exception as exc:  # noqa: BLE001 - not a valid ECDSA signature at all
            out.append((e.budget, f"entry {i} signature: not a valid ECDSA signature ({exc})"))
            continue
        out.append((e.budget, None if signer == pq.holder else
                    f"entry {i} signature: made by {signer}, not by the holder {pq.holder} (the QR was altered)"))
    return out


def qr_version(text: str) -> int:
    """The QR version segno needs for `text` at error correction M (alphanumeric mode)."""
    import segno

    return segno.make_qr(text, error="m", boost_error=False).version
