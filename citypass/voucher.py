"""Vouchers: what a resident's phone signs and a provider redeems at the till.

A voucher is a spending limit: an EIP-712 message (domain: name "CityPass", version "2",
the chain id and the contract address) of this type:

    Voucher(address holder,address provider,uint256 budget,uint256 maxAmount,
            uint256 nonce,uint256 deadline)

`provider` is the one provider who may redeem it, or the zero address (`ANY_PROVIDER`): any
provider approved for the budget's category. The till types the amount (1..maxAmount cents)
and the co-payment when it redeems (`redeem(voucher, signature, amount, coPayment)`).

A single voucher travels as text (see `encode_payload`); the pass QR, which carries one
voucher per budget, is `citypass.passqr`. The 65-byte and the 64-byte (EIP-2098) form of one
signature are both valid on chain: never deduplicate vouchers by their signature bytes (the
(holder, budget, nonce) triple is what makes a voucher single-use).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "CityPass"
DOMAIN_VERSION = "2"
PAYLOAD_PREFIX = "CP1"  # the single-voucher text form (the pass QR is CP2, in citypass.passqr)
DEFAULT_TTL_SECONDS = 24 * 3600  # the municipality's default deadline of a pass QR
ANY_PROVIDER = "0x0000000000000000000000000000000000000000"

VOUCHER_FIELDS = [
    {"name": "holder", "type": "address"},
    {"name": "provider", "type": "address"},
    {"name": "budget", "type": "uint256"},
    {"name": "maxAmount", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
EIP712_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


class VoucherError(ValueError):
    """A voucher or payload that is malformed; the message says which field and why."""


@dataclass(frozen=True)
class Voucher:
    holder: str
    provider: str  # ANY_PROVIDER (the zero address): any provider approved for the category
    budget: int
    max_amount: int  # euro cents: the most the provider may take with it
    nonce: int
    deadline: int  # unix seconds

    def __post_init__(self) -> None:
        for name in ("holder", "provider"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, to_checksum_address(value))
            except (ValueError, TypeError) as exc:
                raise VoucherError(f"{name}: not an Ethereum address: {value!r}") from exc
        for name in ("budget", "max_amount", "nonce", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
                raise VoucherError(f"{name}: must be a whole number from 0 to 2**256-1, got {value!r}")

    @property
    def any_provider(self) -> bool:
        return int(self.provider, 16) == 0

    def contract_args(self) -> tuple:
        """The `Voucher` struct as the contract takes it."""
        return (self.holder, self.provider, self.budget, self.max_amount, self.nonce, self.deadline)


@dataclass(frozen=True)
class SignedVoucher:
    voucher: Voucher
    signature: bytes
    chain_id: int
    contract: str

    def encode(self) -> str:
        return encode_payload(self)


def build(
    holder: str,
    provider: str | None,
    budget: int,
    max_amount: int,
    *,
    nonce: int,
    deadline: int | None = None,
    ttl: int = DEFAULT_TTL_SECONDS,
    now: int | None = None,
) -> Voucher:
    """A voucher for up to `max_amount` cents, valid for `ttl` seconds from `now` (or until
    `deadline`). `provider` None or ANY_PROVIDER: any provider approved for the category."""
    if isinstance(max_amount, bool) or not isinstance(max_amount, int) or max_amount <= 0:
        raise VoucherError(f"max_amount: must be a whole number of cents above 0, got {max_amount!r}")
    if deadline is None:
        deadline = (int(time.time()) if now is None else now) + ttl
    return Voucher(holder, ANY_PROVIDER if provider is None else provider, budget, max_amount, nonce, deadline)


def typed_data(voucher: Voucher, chain_id: int, contract: str) -> dict[str, Any]:
    """The full EIP-712 message, as wallets (eth_signTypedData_v4) take it."""
    message = {k: v for k, v in asdict(voucher).items() if k != "max_amount"}
    message["maxAmount"] = voucher.max_amount
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Voucher": VOUCHER_FIELDS},
        "primaryType": "Voucher",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(contract),
        },
        "message": message,
    }


def digest(voucher: Voucher, chain_id: int, contract: str) -> bytes:
    """The 32-byte EIP-712 digest the holder signs (and the contract recomputes), hashed
    directly: eth-account's generic encode_typed_data takes ~0.7 ms, and a provider checks
    every voucher it redeems. tests/test_vouchers.py compares the two on random vouchers."""
    v = voucher
    # Every field is a static 32-byte word: the ABI encoding is their concatenation.
    struct = keccak(_VOUCHER_TYPEHASH + b"".join((
        _word(int(v.holder, 16)), _word(int(v.provider, 16)), _word(v.budget), _word(v.max_amount),
        _word(v.nonce), _word(v.deadline))))
    return keccak(b"\x19\x01" + _domain_separator(chain_id, to_checksum_address(contract)) + struct)


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def digest_generic(voucher: Voucher, chain_id: int, contract: str) -> bytes:
    """The same digest through eth-account's EIP-712 encoder (the reference for tests)."""
    return _hash_eip191_message(encode_typed_data(full_message=typed_data(voucher, chain_id, contract)))


def _type_string(name: str, fields: list[dict[str, str]]) -> bytes:
    return f"{name}({','.join(f['type'] + ' ' + f['name'] for f in fields)})".encode()


_VOUCHER_TYPEHASH = keccak(_type_string("Voucher", VOUCHER_FIELDS))


@lru_cache(maxsize=64)
def _domain_separator(chain_id: int, contract: str) -> bytes:
    return keccak(keccak(_type_string("EIP712Domain", EIP712_DOMAIN_FIELDS)) + abi_encode(
        ["bytes32", "bytes32", "uint256", "address"],
        [keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), chain_id, contract]))


def sign(voucher: Voucher, private_key: Any, chain_id: int, contract: str) -> SignedVoucher:
    """Signs with an EOA key (bytes, hex string or eth-account LocalAccount)."""
    key = getattr(private_key, "key", private_key)  # LocalAccount -> its key
    signed = Account.unsafe_sign_hash(digest(voucher, chain_id, contract), key)  # "unsafe": we made the hash
    return SignedVoucher(voucher, bytes(signed.signature), chain_id, to_checksum_address(contract))


@lru_cache(maxsize=4096)  # a provider's checks and the on-chain form both need it
def recover_signer(signed: SignedVoucher) -> str:
    """The address whose key made an ECDSA voucher signature (smart accounts: use the chain)."""
    return Account._recover_hash(digest(signed.voucher, signed.chain_id, signed.contract), signature=signed.signature)


_FIELDS = ("chain_id", "contract", "holder", "provider", "budget", "max_amount", "nonce", "deadline", "signature")


def encode_payload(signed: SignedVoucher) -> str:
    """Text form of one voucher: `CP1:chainId:contract:holder:provider:budget:maxAmount:nonce:deadline:signature`
    (provider 0000...0000: any provider).

    Numbers in decimal, addresses and the signature in hex without 0x, all upper case so
    the QR code can use its compact alphanumeric mode.
    """
    v = signed.voucher
    parts = [
        PAYLOAD_PREFIX,
        str(signed.chain_id),
        signed.contract[2:],
        v.holder[2:],
        v.provider[2:],
        str(v.budget),
        str(v.max_amount),
        str(v.nonce),
        str(v.deadline),
        signed.signature.hex(),
    ]
    return ":".join(parts).upper()


# A holder's own key signs 65 bytes, so a payload is ~320 characters; the rest leaves room
# for an ERC-1271 smart account's longer signature (a passkey's is ~700 bytes).
MAX_PAYLOAD_CHARS = 2048
MAX_NUMBER_DIGITS = len(str(2**256 - 1))
_VERSION = re.compile(r"CP[0-9]+")


def decode_payload(payload: str) -> SignedVoucher:
    """Parses QR text back into a signed voucher; raises VoucherError naming the bad field."""
    payload = payload.strip()
    if len(payload) > MAX_PAYLOAD_CHARS:
        raise VoucherError(f"payload: {len(payload):,} characters, more than a voucher can have ({MAX_PAYLOAD_CHARS:,})")
    parts = payload.split(":")
    version = parts[0].upper()
    if version != PAYLOAD_PREFIX:
        if _VERSION.fullmatch(version) and len(parts) > 1:
            raise VoucherError(f"payload: a version {version[2:]} voucher ({version}:...); this program reads "
                               f"version {PAYLOAD_PREFIX[2:]} ({PAYLOAD_PREFIX}:...): update citypass, or ask for a new QR code")
        raise VoucherError(f"payload: not a CityPass voucher (expected it to start with '{PAYLOAD_PREFIX}:')")
    if len(parts) != len(_FIELDS) + 1:
        cut = " (cut off?)" if len(parts) < len(_FIELDS) + 1 else ""
        raise VoucherError(f"payload: expected {len(_FIELDS) + 1} ':'-separated fields "
                           f"({PAYLOAD_PREFIX}:{':'.join(_FIELDS)}), found {len(parts)}{cut}")
    raw = dict(zip(_FIELDS, parts[1:]))
    values: dict[str, Any] = {}
    for name in ("chain_id", "budget", "max_amount", "nonce", "deadline"):
        text = raw[name]
        if not (text.isascii() and text.isdigit()):
            raise VoucherError(f"{name}: not a whole number: {text[:80]!r}")
        if len(text.lstrip("0")) > MAX_NUMBER_DIGITS:  # before int(): Python refuses over 4,300 digits
            raise VoucherError(f"{name}: {len(text)} digits, more than a uint256 can hold")
        values[name] = int(text)
    for name in ("contract", "holder", "provider"):
        text = raw[name]
        if len(text) != 40 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise VoucherError(f"{name}: not a 40-hex-digit address: {text[:80]!r}")
        values[name] = to_checksum_address("0x" + text)
    if int(values["holder"], 16) == 0:
        raise VoucherError("holder: the zero address cannot sign a voucher")
    text = raw["signature"]
    if not text:
        raise VoucherError("signature: empty")
    if len(text) % 2:
        raise VoucherError(f"signature: an odd number of hex digits ({len(text)}): the payload was cut off or altered")
    try:
        signature = bytes.fromhex(text)
    except ValueError as exc:
        raise VoucherError(f"signature: not hex: {text[:80]!r}") from exc
    voucher = Voucher(
        values["holder"], values["provider"], values["budget"], values["max_amount"],
        values["nonce"], values["deadline"],
    )
    return SignedVoucher(voucher, signature, values["chain_id"], values["contract"])


def with_deadline(voucher: Voucher, deadline: int) -> Voucher:
    return replace(voucher, deadline=deadline)


def compact_signature(signed: SignedVoucher) -> bytes:
    """The signature to send on chain: EIP-2098 64-byte form when the holder's own key made
    it (one calldata word less per redemption), unchanged otherwise (ERC-1271 accounts)."""
    sig = signed.signature
    if len(sig) != 65:
        return sig
    try:
        if recover_signer(signed) != signed.voucher.holder:
            return sig
    except Exception:  # not an ECDSA signature at all: leave it to ERC-1271
        return sig
    v = sig[64]
    s = int.from_bytes(sig[32:64], "big") | ((v - 27) << 255 if v >= 27 else v << 255)
    return sig[:32] + s.to_bytes(32, "big")
