"""Signed requests: a holder's history goes only to a request its pass key signed, and the
holders behind a provider's takings only to a request the provider's wallet signed.

The pass app (or the till's wallet) signs this text with EIP-191 `personal_sign` (viem
`signMessage`); for the takings the first lines are `CityPass takings request` and
`provider: 0x...`, with `path: /api/takings`:

    CityPass history request
    holder: 0x<checksummed holder>
    path: /api/history
    chain: <chain id>
    contract: 0x<checksummed contract>
    time: <unix seconds>

The server rebuilds the text from the request, recovers the signer and accepts it if the
signer is the holder and `time` is within MAX_SKEW seconds of its clock. The path, chain
and contract in the text stop a signature made for one route or deployment from being used
for another; the short validity limits a leaked signature to minutes. No server state.
"""

from __future__ import annotations

import time

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address

from citypass.web.errors import ApiError

MAX_SKEW = 300  # seconds either side of the server's clock


KINDS = {"/api/history": ("history", "holder"), "/api/takings": ("takings", "provider")}


def request_text(holder: str, path: str, chain_id: int, contract: str, timestamp: int) -> str:
    """The text to sign for `path`; `holder` is the signer (the holder, or the provider)."""
    kind, role = KINDS.get(path, ("history", "holder"))
    return "\n".join([
        f"CityPass {kind} request",
        f"{role}: {to_checksum_address(holder)}",
        f"path: {path}",
        f"chain: {chain_id}",
        f"contract: {to_checksum_address(contract)}",
        f"time: {int(timestamp)}",
    ])


def sign_request(private_key: bytes | str, holder: str, path: str, chain_id: int, contract: str,
                 timestamp: int | None = None) -> tuple[int, str]:
    """(time, signature hex) as the pass app makes them (for tests and scripts)."""
    ts = int(time.time()) if timestamp is None else timestamp
    text = request_text(holder, path, chain_id, contract, ts)
    signed = Account.sign_message(encode_defunct(text=text), private_key)
    return ts, "0x" + bytes(signed.signature).hex()


def verify(holder: str, path: str, chain_id: int, contract: str, timestamp: int, signature: str,
           now: float | None = None) -> None:
    """Raises ApiError(401) unless `signature` is the holder's over this request, made recently."""
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > MAX_SKEW:
        raise ApiError(401, f"time: the request was signed at {timestamp}, more than {MAX_SKEW} s from the "
                            f"server's clock ({int(clock)}); check the phone's clock and sign again", "time")
    text = request_text(holder, path, chain_id, contract, timestamp)
    body = signature[2:] if signature.startswith("0x") else signature
    if len(body) != 130 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise ApiError(401, "signature: expected 65 bytes as 0x + 130 hex digits (personal_sign)", "signature")
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(body))
    except Exception:  # noqa: BLE001 - any malformed signature is simply not the holder's
        raise ApiError(401, "signature: not a valid signature", "signature") from None
    if signer != to_checksum_address(holder):
        kind, role = KINDS.get(path, ("history", "holder"))
        raise ApiError(401, f"signature: not signed by the {role}'s key (the {kind} is only for the {role})",
                       "signature")
