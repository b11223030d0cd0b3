"""The voucher-dependent part of the API, in one place: reading a scanned pass QR and asking
the chain whether this provider may redeem each voucher in it.

Contract v2: the `CP2:` pass QR (citypass.passqr) carries one spending-limit voucher per
budget; the till types the amount and the chain judges it with
`checkVoucher(v, provider, sig, amount)` (citypass.redemption.explain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from citypass import passqr
from citypass import redemption
from citypass import voucher as V
from citypass.reasons import Reason
from citypass.web.errors import bad

ANY_PROVIDER = passqr.ANY_PROVIDER
CONTRACT_VERSION = 2  # the EIP-712 domain version and the ABI this server speaks
MAX_QR_TEXT = 4_296  # the most a QR code can hold (alphanumeric, version 40, level L)


@dataclass(frozen=True)
class Scanned:
    """One voucher of a scanned QR, in the terms the API shows."""

    holder: str
    provider: str  # ANY_PROVIDER: any approved provider
    budget: int
    max_amount: int  # cents: the voucher's spending limit (the till types the amount)
    nonce: int
    deadline: int
    signature: bytes
    chain_id: int
    contract: str
    signed: Any  # the library's SignedVoucher

    def struct(self) -> dict[str, Any]:
        """The EIP-712 struct as the page passes it to redeem()."""
        return {"holder": self.holder, "provider": self.provider, "budget": str(self.budget),
                "maxAmount": self.max_amount, "nonce": self.nonce, "deadline": self.deadline}


def decode(dep: Any, text: str) -> list[Scanned]:
    """The vouchers of a scanned QR text; a 400 naming `qr` if it is not a CityPass pass QR
    for this chain and contract."""
    text = text.strip()
    if not text:
        raise bad("qr: empty; scan the pass QR code", "qr")
    if len(text) > MAX_QR_TEXT:
        raise bad(f"qr: {len(text)} characters is more than a QR code holds", "qr")
    if not text.upper().startswith(passqr.PREFIX):
        raise bad("qr: not a CityPass pass QR code (it should start with CP2:)", "qr")
    scanned = _decode(text)
    for s in scanned:
        if s.chain_id != dep.chain.chain_id:
            raise bad(f"qr: this pass is for chain {s.chain_id}, but this till is on chain {dep.chain.chain_id}", "qr")
        if s.contract.lower() != dep.address.lower():
            raise bad(f"qr: this pass is for the CityPass contract at {s.contract}, not the one at {dep.address}", "qr")
    return scanned


def _decode(text: str) -> list[Scanned]:
    try:
        decoded = passqr.decode(text)
    except (ValueError, TypeError) as exc:  # PassQRError (a ValueError) names the field
        raise bad(f"qr: {exc}", "qr") from None
    out = []
    for signed in decoded.vouchers():
        v = signed.voucher
        out.append(Scanned(v.holder, v.provider, v.budget, v.max_amount, v.nonce, v.deadline, signed.signature,
                           signed.chain_id, to_checksum_address(signed.contract), signed))
    return out


def check(dep: Any, s: Scanned, provider: str, amount: int) -> tuple[Reason | None, int | None, str]:
    """The chain's pre-check (redemption.explain: checkVoucher, plus what the voucher's own
    addressing says) of voucher `s` redeemed by `provider` for `amount` cents:
    (Reason or None, the raw code, an English message)."""
    explained = redemption.explain(dep, s.signed, provider, amount)  # at the next block's time
    code = int(explained.reason) if explained.reason is not None else None
    return explained.reason, code, explained.message


def refundable(dep: Any, holder: str, budget: int, nonce: int | None, provider: str) -> int:
    """Cents a refundable redemption (`redeemRefundable`) can still return to `holder`
    through `provider`; 0 for a plain redemption (refundableOf answers (provider, remaining),
    (0, 0) if there is none)."""
    if nonce is None:
        return 0
    who, remaining = dep.contract.functions.refundableOf(holder, budget, nonce).call()
    return int(remaining) if who.lower() == provider.lower() else 0


def check_without_provider(dep: Any, s: Scanned, amount: int, *, now: int, paused: bool, pass_status: str,
                           pass_valid_until: int, left: int, nonce_used: bool) -> tuple[Reason, int, str]:
    """What can be judged before a provider's wallet is connected (the till still scans and
    pre-checks then): the voucher's deadline, amount and limit, signature and nonce, the
    pause, the budget's window, the pass and the credit, in the chain's order (_voucherRule).
    The provider's own checks (approved, named in the voucher, category, limit) come with
    `check` once the wallet is known."""
    from citypass import budget_id

    def out(reason: Reason) -> tuple[Reason, int, str]:
        return reason, int(reason), reason.message

    terms = budget_id.decode(s.budget)
    if now > s.deadline:
        return out(Reason.VoucherExpired)
    if amount <= 0:
        return out(Reason.ZeroAmount)
    if amount > s.max_amount:
        return out(Reason.AboveVoucherLimit)
    if not _signature_ok(dep, s):
        return out(Reason.BadSignature)
    if nonce_used:
        return out(Reason.NonceUsed)
    if paused:
        return out(Reason.Paused)
    by_status = {"none": Reason.NoPass, "provider": Reason.TransferNotAllowed,  # provider => provider
                 "suspended": Reason.PassSuspended, "revoked": Reason.PassRevoked, "migrated": Reason.PassMigrated}
    if pass_status in by_status:
        return out(by_status[pass_status])
    if now > pass_valid_until:
        return out(Reason.PassExpired)
    if now < terms.valid_from:
        return out(Reason.BudgetNotStarted)
    if now > terms.valid_until:
        return out(Reason.BudgetEnded)
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
