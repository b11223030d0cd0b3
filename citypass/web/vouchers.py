"""The voucher-dependent part of the API, in one place: reading a scanned pass QR and asking
the chain whether this provider may redeem each voucher in it.

Contract v2 (`CP2:` pass QR, spending-limit vouchers, `checkVoucher(v, provider, sig, amount)`)
is the target; v1 (`CP1` single vouchers with a fixed amount) works until v2 merges, so
the API can be tested today. When v2 lands only this file changes (the CP1 branch goes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from citypass import voucher as V
from citypass.reasons import Reason
from citypass.web.errors import bad

ANY_PROVIDER = "0x0000000000000000000000000000000000000000"
MAX_QR_TEXT = 4_296  # the most a QR code can hold (alphanumeric, version 40, level L)


@dataclass(frozen=True)
class Scanned:
    """One voucher of a scanned QR, in the terms the API shows."""

    holder: str
    provider: str  # ANY_PROVIDER: any approved provider
    budget: int
    max_amount: int  # cents: v2's spending limit; v1's fixed amount
    nonce: int
    deadline: int
    signature: bytes
    chain_id: int
    contract: str
    signed: Any  # the library's SignedVoucher

    @property
    def fixed_amount(self) -> bool:
        """v1 vouchers carry the amount itself; v2's carry only a limit."""
        return contract_version_of(self.signed) == 1

    def struct(self) -> dict[str, Any]:
        """The EIP-712 struct as the page passes it to redeem()."""
        if contract_version_of(self.signed) == 1:
            v = self.signed.voucher
            return {"holder": v.holder, "budget": str(v.budget), "amount": v.amount, "coPayment": v.co_payment,
                    "nonce": v.nonce, "deadline": v.deadline}
        return {"holder": self.holder, "provider": self.provider, "budget": str(self.budget),
                "maxAmount": self.max_amount, "nonce": self.nonce, "deadline": self.deadline}


def contract_version(dep: Any) -> int:
    """2 if the deployed ABI's checkVoucher takes an amount (v2), else 1."""
    for item in dep.contract.abi:
        if item.get("type") == "function" and item.get("name") == "checkVoucher":
            return 2 if len(item.get("inputs", [])) == 4 else 1
    return 1


def contract_version_of(signed: Any) -> int:
    return 2 if hasattr(signed.voucher, "max_amount") else 1


def decode(dep: Any, text: str) -> list[Scanned]:
    """The vouchers of a scanned QR text; a 400 naming `qr` if it is not a CityPass pass QR
    for this chain and contract."""
    text = text.strip()
    if not text:
        raise bad("qr: empty; scan the pass QR code", "qr")
    if len(text) > MAX_QR_TEXT:
        raise bad(f"qr: {len(text)} characters is more than a QR code holds", "qr")
    version = contract_version(dep)
    if text.upper().startswith("CP2:"):
        if version < 2:
            raise bad("qr: this is a CityPass v2 pass QR, but this server's contract is v1", "qr")
        scanned = _decode_v2(text)
    elif text.upper().startswith("CP1"):
        if version != 1:
            raise bad("qr: this is an old CityPass v1 voucher; ask the resident to update the pass app", "qr")
        scanned = _decode_v1(text)
    else:
        raise bad("qr: not a CityPass pass QR code (it should start with CP2:)", "qr")
    for s in scanned:
        if s.chain_id != dep.chain.chain_id:
            raise bad(f"qr: this pass is for chain {s.chain_id}, but this till is on chain {dep.chain.chain_id}", "qr")
        if s.contract.lower() != dep.address.lower():
            raise bad(f"qr: this pass is for the CityPass contract at {s.contract}, not the one at {dep.address}", "qr")
    return scanned


def _decode_v1(text: str) -> list[Scanned]:
    try:
        signed = V.decode_payload(text)
    except (ValueError, TypeError) as exc:
        raise bad(f"qr: {exc}", "qr") from None
    v = signed.voucher
    return [Scanned(v.holder, v.provider, v.budget, v.amount, v.nonce, v.deadline, signed.signature,
                    signed.chain_id, to_checksum_address(signed.contract), signed)]


def _decode_v2(text: str) -> list[Scanned]:  # pragma: no cover - needs citypass.passqr (contract v2)
    from citypass import passqr  # type: ignore[attr-defined]

    try:
        decoded = passqr.decode(text)
    except (ValueError, TypeError) as exc:
        raise bad(f"qr: {exc}", "qr") from None
    out = []
    vouchers = decoded.vouchers() if callable(decoded.vouchers) else decoded.vouchers
    for signed in vouchers:
        v = signed.voucher
        out.append(Scanned(v.holder, v.provider, v.budget, v.max_amount, v.nonce, v.deadline, signed.signature,
                           signed.chain_id, to_checksum_address(signed.contract), signed))
    return out


def check(dep: Any, s: Scanned, provider: str, amount: int) -> tuple[Reason | None, int | None, str]:
    """The chain's pre-check (redemption.explain: checkVoucher, plus what the voucher's own
    addressing says) of voucher `s` redeemed by `provider` for `amount` cents:
    (Reason or None, the raw code, an English message)."""
    from citypass import redemption

    if contract_version_of(s.signed) == 1:
        explained = redemption.explain(dep, s.signed, provider)
    else:  # v2: judged at the next block's time, for the amount the clerk typed
        explained = redemption.explain(dep, s.signed, provider, amount)  # type: ignore[call-arg]
    code = int(explained.reason) if explained.reason is not None else None
    return explained.reason, code, explained.message


def refundable(dep: Any, holder: str, budget: int, nonce: int | None, provider: str) -> int:
    """Cents a refundable redemption (v2 `redeemRefundable`) can still return to `holder`
    through `provider`; 0 for a plain redemption, and always 0 on contract v1."""
    if nonce is None or contract_version(dep) < 2:
        return 0
    who, remaining = dep.contract.functions.refundableOf(holder, budget, nonce).call()
    return int(remaining) if who.lower() == provider.lower() else 0


def check_without_provider(dep: Any, s: Scanned, amount: int, *, now: int, paused: bool, pass_status: str,
                           pass_valid_until: int, left: int, nonce_used: bool) -> tuple[Reason, int, str]:
    """What can be judged before a provider's wallet is connected (the till still scans and
    pre-checks then): the voucher's deadline, amount, signature and nonce, the pause, the
    budget's window, the pass and the credit. The provider's own checks (approved, category,
    limit) come with `check` once the wallet is known."""
    from citypass import budget_id

    def out(reason: Reason) -> tuple[Reason, int, str]:
        return reason, int(reason), reason.message

    terms = budget_id.decode(s.budget)
    if now > s.deadline:
        return out(Reason.VoucherExpired)
    if amount <= 0:
        return out(Reason.ZeroAmount)
    if not _signature_ok(dep, s):
        return out(Reason.BadSignature)
    if nonce_used:
        return out(Reason.NonceUsed)
    if paused:
        return out(Reason.Paused)
    if now < terms.valid_from:
        return out(Reason.BudgetNotStarted)
    if now > terms.valid_until:
        return out(Reason.BudgetEnded)
    by_status = {"none": Reason.NoPass, "provider": Reason.NoPass, "suspended": Reason.PassSuspended,
                 "revoked": Reason.PassRevoked, "migrated": Reason.PassMigrated}
    if pass_status in by_status:
        return out(by_status[pass_status])
    if now > pass_valid_until:
        return out(Reason.PassExpired)
    if not s.fixed_amount and amount > s.max_amount:
        above = getattr(Reason, "AboveVoucherLimit", None)  # v2's reasons.py has it
        if above is not None:
            return out(above)
    if left < amount:
        return out(Reason.InsufficientCredit)
    return out(Reason.Ok)


def _signature_ok(dep: Any, s: Scanned) -> bool:
    """The holder's key signed this voucher (a contract holder's ERC-1271 check is left to
    the chain's own pre-check, once the provider is known)."""
    try:
        if V.recover_signer(s.signed) == to_checksum_address(s.holder):
            return True
    except Exception:  # noqa: BLE001 - not a valid ECDSA signature at all
        pass
    return bool(dep.chain.w3.eth.get_code(s.holder))
