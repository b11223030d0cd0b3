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
