"""Why the chain refuses a voucher or a credit move, in words a till clerk can read out.

The order mirrors `CityPass.Reason` in contracts/CityPass.sol (a test checks they agree).
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    Ok = 0
    Paused = 1
    BudgetNotStarted = 2
    BudgetEnded = 3
    BudgetNotEnded = 4
    NoPass = 5
    PassSuspended = 6
    PassRevoked = 7
    PassMigrated = 8
    PassExpired = 9
    NotAProvider = 10
    ProviderSuspended = 11
    ProviderRemoved = 12
    CategoryNotApproved = 13
    AboveProviderLimit = 14
    InsufficientCredit = 15
    ZeroAmount = 16
    VoucherExpired = 17
    NonceUsed = 18
    BadSignature = 19
    TransferNotAllowed = 20
    AboveVoucherLimit = 21
    WrongProvider = 22

    @property
    def message(self) -> str:
        return MESSAGES[self]


MESSAGES: dict[Reason, str] = {
    Reason.Ok: "OK: the voucher can be redeemed",
    Reason.Paused: "CityPass is paused by the municipality; no payments are possible right now",
    Reason.BudgetNotStarted: "this budget is not valid yet",
    Reason.BudgetEnded: "this budget has ended; its credit can no longer be spent",
    Reason.BudgetNotEnded: "this budget has not ended yet",
    Reason.NoPass: "this address has no city pass",
    Reason.PassSuspended: "the city pass is suspended; the resident should contact the municipality",
    Reason.PassRevoked: "the city pass has been revoked",
    Reason.PassMigrated: "this pass moved to a new phone; ask the resident to show the QR code from the new phone",
    Reason.PassExpired: "the city pass has expired; the resident should renew it",
    Reason.NotAProvider: "this wallet is not a registered CityPass provider",
    Reason.ProviderSuspended: "this provider is suspended and cannot accept city pass credit",
    Reason.ProviderRemoved: "this provider is no longer registered",
    Reason.CategoryNotApproved: "this provider is not approved for this budget's category (wrong category)",
    Reason.AboveProviderLimit: "the amount is above this provider's limit per payment",
    Reason.InsufficientCredit: "not enough credit left on the pass for this amount",
    Reason.ZeroAmount: "the amount is zero",
    Reason.VoucherExpired: "the voucher's deadline has passed; ask the resident for a new QR code",
    Reason.NonceUsed: "this voucher was already used (replayed)",
    Reason.BadSignature: "the voucher's signature is not valid for this pass, provider and chain",
    Reason.TransferNotAllowed: "city pass credit cannot be moved this way",
    Reason.AboveVoucherLimit: "the amount is above this voucher's limit; ask the resident for a QR code with a higher limit",
    Reason.WrongProvider: "this voucher is for another provider",
}
