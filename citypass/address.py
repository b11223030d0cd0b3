"""EIP-55 checksums, fast: an issuance file of 50,000 residents checks every address, and
eth_utils' version (~50 µs each, with its generic validation) was a noticeable part of it."""

from __future__ import annotations

import re
from functools import lru_cache

from eth_hash.auto import keccak as _keccak  # the backend eth_utils uses, without its checks

_HEX40 = re.compile(r"0[xX][0-9a-fA-F]{40}")


def eip55(address: str) -> str:
    """The EIP-55 checksummed spelling of a 0x-prefixed 40-hex-digit address (any case).
    ValueError if it is not one."""
    if not _HEX40.fullmatch(address):
        raise ValueError(f"{address!r} is not a 0x-prefixed 20-byte hex address")
    lower = address[2:].lower()
    known = _by_lower.get(lower)
    if known is not None:
        return known
    digest = _keccak(lower.encode("ascii")).hex()
    checksummed = "0x" + "".join([c.upper() if d > "7" else c for c, d in zip(lower, digest)])
    if len(_verified) > _VERIFIED_MAX:
        _verified.clear()
        _by_lower.clear()
    _verified.add(checksummed)
    _by_lower[lower] = checksummed
    return checksummed


# Spellings eip55 produced: the same addresses are encoded again and again (an issuance file
# is read, planned, sent and reconciled), and a set lookup is ~100x cheaper than a hash.
_verified: set[str] = set()
_by_lower: dict[str, str] = {}  # the same, by lower-case hex: event logs give addresses in lower case
_VERIFIED_MAX = 1_000_000


def is_valid_spelling(address: str) -> bool:
    """True for a 0x address in all lower case or with a correct EIP-55 checksum (what
    eth-abi accepts); a mixed-case typo is not."""
    if address in _verified:
        return True
    if not _HEX40.fullmatch(address):
        return False
    body = address[2:]
    return body == body.lower() or eip55(address) == address


@lru_cache(maxsize=1024)
def eip55_cached(address: str) -> str:
    """eip55 for the few addresses seen over and over (contracts, senders)."""
    return eip55(address)


# ------------------------------------------------------------------ the pass app's address QR
ADDRESS_QR_SCHEME = "ethereum:"
_ADDRESS_QR = re.compile(r"ethereum:(?:pay-)?(0[xX][0-9a-fA-F]{40})(?:@([0-9]{1,20}))?", re.IGNORECASE)


class AddressQRError(ValueError):
    """Text that is not the pass app's address QR; the message says what is wrong and where."""


def address_qr(address: str, chain_id: int) -> str:
    """The pass app's "Mijn pas" QR text: `ethereum:<EIP-55 address>@<chainId>` (EIP-681)."""
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
        raise AddressQRError(f"chain id: expected a positive whole number, got {chain_id!r}")
    return f"{ADDRESS_QR_SCHEME}{eip55(address)}@{chain_id}"


def parse_address_qr(text: str) -> tuple[str, int | None]:
    """(EIP-55 address, chain id or None) from the pass app's address QR text
    `ethereum:0x...@<chainId>` (EIP-681; the chain id is optional there). A bare 0x address is
    accepted too. An address in mixed case must carry a correct EIP-55 checksum (a mistyped
    letter is refused, not silently taken); all lower or all upper case has none to check.
    Raises AddressQRError naming the part that is wrong."""
    if not isinstance(text, str):
        raise AddressQRError(f"expected the QR text as a string, got {type(text).__name__}")
    raw = text.strip()
    if len(raw) > 200:
        raise AddressQRError(f"{len(raw)} characters: too long for a pass address QR "
                             "(ethereum:0x + 40 hex digits + @chain id)")
    if not raw:
        raise AddressQRError("empty text: expected ethereum:0x<40 hex digits>@<chain id>")
    if raw[:9].lower() != ADDRESS_QR_SCHEME and not raw.lower().startswith("0x"):
        if raw.upper().startswith("CP"):
            raise AddressQRError("this is a pass QR (for the till), not the address QR: on the phone open "
                                 "'Mijn pas' and scan the code shown there")
        raise AddressQRError(f"{raw[:24]!r}...: not an address QR (it should start with '{ADDRESS_QR_SCHEME}0x')")
    if raw.lower().startswith("0x"):
        if not _HEX40.fullmatch(raw):
            raise AddressQRError(f"{raw[:50]!r}: an address is 0x followed by exactly 40 hex digits")
        address, chain = raw, None
    else:
        head = raw[len(ADDRESS_QR_SCHEME):]
        if "/" in head or "?" in head:
            raise AddressQRError("a payment request (with /function or ?parameters), not a pass address: "
                                 "scan the code on the 'Mijn pas' screen")
        match = _ADDRESS_QR.fullmatch(raw)
        if not match:
            addr_part = head.split("@", 1)[0]
            if not re.fullmatch(r"(?:pay-)?0[xX][0-9a-fA-F]{40}", addr_part):
                raise AddressQRError(f"address: {addr_part[:50]!r} is not 0x followed by 40 hex digits")
            raise AddressQRError(f"chain id: {head.split('@', 1)[1][:30]!r} is not a whole number")
        address, chain = match.group(1), match.group(2)
    digits = address[2:]
    if digits != digits.lower() and digits != digits.upper() and eip55(address) != "0x" + digits:
        raise AddressQRError(f"address: {address} has a wrong EIP-55 checksum (a mistyped letter?); "
                             f"scan the QR again rather than typing it")
    chain_id = int(chain) if chain is not None else None
    if chain_id == 0:
        raise AddressQRError("chain id: 0 is no chain")
    return eip55("0x" + digits), chain_id


def pass_address(text: str, chain_id: int | None = None, where: str = "address") -> str:
    """The pass address a registrar gives: a 0x address or the app's address QR text
    (`ethereum:0x...@<chainId>`). With `chain_id`, a QR made for another chain is refused (the
    phone is set up for another CityPass). Raises AddressQRError beginning with `where`.
    (The CLI reads a picture of the code first, with citypass.wallet.read_qr.)"""
    try:
        address, qr_chain = parse_address_qr(text)
    except AddressQRError as exc:
        raise AddressQRError(f"{where}: {exc}") from None
    if chain_id is not None and qr_chain is not None and qr_chain != chain_id:
        raise AddressQRError(f"{where}: the address QR is for chain {qr_chain}, this is chain {chain_id}: "
                             "the phone's app belongs to another CityPass server")
    return address
