"""Pass QR texts (`CP2:`, /work V2-SPEC "The pass QR") for the browser tests, signed with the
synthetic residents' keys as the pass app would (EIP-712 domain "CityPass" version "2").

The library's own encoder lives in citypass/passqr.py; this one is written from the spec so the
till is tested against the format itself (tests/web/test_till_qr.py reads both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eth_account import Account

B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
ANY = "0x0000000000000000000000000000000000000000"

VOUCHER_TYPES = {
    "Voucher": [
        {"name": "holder", "type": "address"},
        {"name": "provider", "type": "address"},
        {"name": "budget", "type": "uint256"},
        {"name": "maxAmount", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}


def base45(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        c, n = n % 45, n // 45
        d, e = n % 45, n // 45
        out += [B45[c], B45[d], B45[e]]
    if len(data) % 2:
        n = data[-1]
        out += [B45[n % 45], B45[n // 45]]
    return "".join(out)


@dataclass(frozen=True)
class Entry:
    budget: int
    max_amount: int  # cents
    nonce: int


def sign_voucher(key: Any, chain_id: int, contract: str, holder: str, provider: str, e: Entry, deadline: int) -> bytes:
    signed = Account.sign_typed_data(
        key,
        domain_data={"name": "CityPass", "version": "2", "chainId": chain_id, "verifyingContract": contract},
        message_types=VOUCHER_TYPES,
        message_data={"holder": holder, "provider": provider, "budget": e.budget, "maxAmount": e.max_amount,
                      "nonce": e.nonce, "deadline": deadline},
    )
    r, s, v = signed.r, signed.s, signed.v
    compact_s = s | ((v - 27) << 255)
    return r.to_bytes(32, "big") + compact_s.to_bytes(32, "big")


def pass_qr(account: Any, chain_id: int, contract: str, entries: Sequence[Entry], deadline: int,
            provider: str = ANY) -> str:
    holder = account.address
    payload = bytearray()
    payload += bytes([2]) + chain_id.to_bytes(8, "big") + bytes.fromhex(contract[2:]) + bytes.fromhex(holder[2:])
    payload += deadline.to_bytes(5, "big")
    if provider == ANY:
        payload += b"\x00"
    else:
        payload += b"\x01" + bytes.fromhex(provider[2:])
    payload += bytes([len(entries)])
    for e in entries:
        payload += e.budget.to_bytes(20, "big") + e.max_amount.to_bytes(4, "big") + e.nonce.to_bytes(4, "big")
        payload += sign_voucher(account.key, chain_id, contract, holder, provider, e, deadline)
    return "CP2:" + base45(bytes(payload))
