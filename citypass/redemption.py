"""The provider's side: check a resident's voucher, redeem an amount of it, refund a
refundable redemption, see what is owed.

A voucher (contract v2) is a spending limit: the till types the amount, from 1 cent up to
the voucher's maxAmount. Every redemption is checked with the contract's read-only
`checkVoucher` first, judged at the time the next block will have (citypass.clock), so the
till shows the exact reason ("the city pass has expired") instead of "execution reverted",
a refused voucher costs no gas, and the check agrees with what the chain will do. Needs only the package (web3, eth-account): no Brownie, no node
tools, so a provider can run it from a plain virtualenv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eth_utils import to_checksum_address

from citypass import budget_id, passqr
from citypass.address import eip55_cached
from citypass import voucher as V
from citypass.clock import call_at, next_block_time
from citypass.errors import CityPassError, UsageError, budget_text, date_text, euros
from citypass.money import plain_euros
from citypass.reasons import Reason

BATCH_CHUNK = 100  # vouchers per redeemBatch transaction (~5M gas)
# Gas limit of one redemption by a plain (EOA) holder once checkVoucher accepted it: at most
# ~100k (a provider's first credit of a budget and a new nonce word each open a slot).
# Unused gas is not charged; a holder that is a contract (ERC-1271) gets an estimate instead.
REDEEM_GAS_LIMIT = 200_000
# Transactions in flight at once: Anvil 1.7.1 stopped answering with thousands pipelined
# into its pool (seen at 2,000), while windows of a few hundred keep it busy and healthy.
SEND_WINDOW = 250


class VoucherRefused(CityPassError):
    """The chain (or the voucher's own addressing) refuses this voucher; nothing was sent."""

    def __init__(self, reason: Reason | None, message: str):
        self.reason = reason
        super().__init__(message)


def money(name: str, cents: int) -> dict[str, Any]:
    """An amount in --json output, one convention everywhere: `name` in euros as a string
    ("12.50") and `name_cents` as an integer."""
    return {name: plain_euros(cents), f"{name}_cents": cents}


def is_any(provider: str) -> bool:
    return int(provider, 16) == 0


@dataclass(frozen=True)
class Explanation:
    """What a voucher says, and whether (and why not) this provider can redeem `amount`
    of it at the time the next block will have."""

    signed: V.SignedVoucher
    provider: str  # the wallet that would redeem it
    amount: int  # cents the till would take (default: the voucher's limit)
    reason: Reason | None  # the chain's pre-check (BadSignature also for an altered voucher
    # caught locally); None if a chain or contract mismatch stopped it
    message: str
    terms: budget_id.BudgetTerms
    judged_at: int  # the time the check assumed (the next block's)

    @property
    def ok(self) -> bool:
        return self.reason == Reason.Ok

    def lines(self) -> list[str]:
        v = self.signed.voucher
        return [
            f"holder:      {v.holder}",
            f"provider:    {'any provider approved for the category' if is_any(v.provider) else v.provider}",
            f"budget:      #{self.terms.serial} (category {self.terms.category}, {self.terms.window_text()})",
            f"limit:       up to {euros(v.max_amount)} in one payment",
            f"nonce:       {v.nonce}",
            f"valid until: {date_text(v.deadline)}",
            f"chain:       {self.signed.chain_id}, contract {self.signed.contract}",
            f"check:       {euros(self.amount)} by {self.provider} at {date_text(self.judged_at)}: {self.message}",
        ]

    def as_dict(self) -> dict[str, Any]:
        v = self.signed.voucher
        return {
            "holder": v.holder, "provider": v.provider, "any_provider": is_any(v.provider), "budget": str(v.budget),
            "budget_serial": self.terms.serial, "category": self.terms.category, **money("max_amount", v.max_amount),
            "nonce": v.nonce, "deadline": v.deadline, "chain_id": self.signed.chain_id,
            "contract": self.signed.contract, "checked_for": self.provider, **money("amount", self.amount),
            "judged_at": self.judged_at, "ok": self.ok,
            "reason": self.reason.name if self.reason is not None else None, "message": self.message,
        }


def _mismatch(dep: Any, signed: V.SignedVoucher, provider: str) -> tuple[Reason | None, str] | None:
    """A voucher for another chain, contract or provider, or altered after signing, would only
    say "bad signature" (or "wrong provider") on chain; say what is actually wrong instead."""
    if signed.chain_id != dep.chain.chain_id:
        return None, f"this voucher is for chain {signed.chain_id}, but the node is chain {dep.chain.chain_id}"
    if eip55_cached(signed.contract) != eip55_cached(dep.address):
        return None, f"this voucher is for the CityPass contract at {signed.contract}, not the one at {dep.address}"
    named = signed.voucher.provider
    if not is_any(named) and eip55_cached(provider) != named:
        return Reason.WrongProvider, (f"this voucher is made out to provider {named}, "
                                      f"not to this wallet {eip55_cached(provider)}")
    problem = _signature_problem(dep, signed)
    return (Reason.BadSignature, problem) if problem else None


def _signature_problem(dep: Any, signed: V.SignedVoucher) -> str | None:
    """A holder's key signature that does not recover to the holder: the voucher was altered
    (or signed by another key). Smart-account holders (code at the address) and the 64-byte
    form are left to the chain's check."""
    sig, holder = signed.signature, signed.voucher.holder
    if len(sig) == 65:
        try:
            if V.recover_signer(signed) == holder:
                return None
        except Exception:  # noqa: BLE001 - not a valid ECDSA signature at all: reported below
            pass
    elif len(sig) == 64:
        return None
    if dep.chain.w3.eth.get_code(holder):
        return None
    if len(sig) != 65:
        return (f"the signature is {len(sig)} bytes, but the holder {holder} signs with a key (65 bytes): "
                "the QR code was cut off or altered")
    return (f"the signature does not match the holder {holder}: the voucher was altered after it was signed, "
            "or signed with another key")


def _provider_for(signed: V.SignedVoucher, provider: str | None) -> str:
    if provider:
        return to_checksum_address(provider)
    if is_any(signed.voucher.provider):
        raise UsageError("this voucher is for any approved provider: say which provider would redeem it (--provider)")
    return signed.voucher.provider


def _judge(dep: Any, checks: Sequence[tuple[V.SignedVoucher, str, int]]) -> tuple[list[Reason | int], int]:
    """checkVoucher for each (voucher, provider, amount), at the time the next block will
    have. A node without eth_call time overrides is asked at the latest block and the
    time-bound rules (voucher deadline, budget end) are re-judged here."""
    at = next_block_time(dep.chain)
    results, applied = call_at(dep.chain, dep.contract, "checkVoucher",
                               [(s.voucher.contract_args(), p, s.signature, a) for s, p, a in checks], at)
    out: list[Reason | int] = []
    for (s, _, _), (code,) in zip(checks, results):
        try:
            reason: Reason | int = Reason(int(code))
        except ValueError:
            out.append(int(code))
            continue
        if not applied and reason == Reason.Ok:
            if at > budget_id.decode(s.voucher.budget).valid_until:
                reason = Reason.BudgetEnded
            elif at > s.voucher.deadline:
                reason = Reason.VoucherExpired
        out.append(reason)
    return out, at


def explain(dep: Any, signed: V.SignedVoucher, provider: str | None = None, amount: int | None = None) -> Explanation:
    """Runs the chain's pre-check for `provider` (default: the provider the voucher names)
    taking `amount` cents (default: the voucher's limit), judged at the next block's time,
    so it agrees with what `redeem` will do."""
    provider = _provider_for(signed, provider)
    amount = signed.voucher.max_amount if amount is None else amount
    terms = budget_id.decode(signed.voucher.budget)
    mismatch = _mismatch(dep, signed, provider)
    if mismatch:
        return Explanation(signed, provider, amount, *mismatch, terms, next_block_time(dep.chain))
    (code,), at = _judge(dep, [(signed, provider, amount)])
    if not isinstance(code, Reason):
        return Explanation(signed, provider, amount, None, f"the chain refuses it for an unknown reason ({code})", terms, at)
    return Explanation(signed, provider, amount, code, code.message, terms, at)


def pick(dep: Any, pq: passqr.PassQR, provider: str, budget: int | None = None) -> V.SignedVoucher:
    """The voucher of a pass QR the till at `provider` uses: the one of `budget`, or the
    only one whose budget's category the provider is approved for."""
    from citypass.contract import provider_info

    if budget is not None:
        try:
            return pq.for_budget(budget)
        except passqr.PassQRError as exc:
            raise VoucherRefused(None, f"voucher refused: {exc}") from None
    if len(pq.entries) == 1:
        return pq.signed(pq.entries[0])
    approved = set(provider_info(dep, provider, names={}).categories)
    fits = [e for e in pq.entries if budget_id.decode(e.budget).category in approved]
    if len(fits) == 1:
        return pq.signed(fits[0])
    listed = ", ".join(f"#{budget_id.decode(e.budget).serial}" for e in (fits or pq.entries))
    if not fits:
        raise VoucherRefused(Reason.CategoryNotApproved,
                             f"voucher refused: the pass QR has vouchers for budgets {listed}, none in a category "
                             f"provider {provider} is approved for")
    raise VoucherRefused(None, f"the pass QR has vouchers for several budgets this provider may take ({listed}): "
                               "say which (--budget)")


@dataclass(frozen=True)
class Scan:
    """What the till sends for one voucher: the amount typed, the co-payment stated, and
    whether the clerk marked it refundable (the chain then stores what it debited)."""

    signed: V.SignedVoucher
    amount: int
    co_payment: int = 0
    refundable: bool = False


@dataclass(frozen=True)
class Redemption:
    voucher: V.Voucher
    amount: int
    co_payment: int
    refundable: bool
    tx_hash: str
    block: int
    gas_used: int


def _check_amounts(scan: Scan) -> None:
    if scan.amount <= 0:
        raise VoucherRefused(Reason.ZeroAmount, f"voucher refused: {Reason.ZeroAmount.message}")
    if scan.co_payment < 0:
        raise CityPassError(f"co-payment: must be 0 or more cents, got {scan.co_payment}")


def _redeem_fn(dep: Any, scan: Scan) -> Any:
    f = dep.contract.functions
    fn = f.redeemRefundable if scan.refundable else f.redeem
    return fn(scan.signed.voucher.contract_args(), V.compact_signature(scan.signed), scan.amount, scan.co_payment)


def redeem(dep: Any, provider_account: Any, signed: V.SignedVoucher, amount: int, co_payment: int = 0,
           refundable: bool = False) -> Redemption:
    """Pre-checks (at the next block's time), then redeems `amount` cents of one voucher
    from the provider's own wallet (which pays gas); `refundable` stores the debit on chain
    so it can be refunded later (costs more gas). Raises VoucherRefused with the plain
    reason if the chain would refuse it."""
    from citypass.tx import send

    scan = Scan(signed, amount, co_payment, refundable)
    _check_amounts(scan)
    check = explain(dep, signed, provider_account.address, amount)
    if not check.ok:
        raise VoucherRefused(check.reason, f"voucher refused: {check.message}")
    receipt = send(dep.chain, provider_account, _redeem_fn(dep, scan))
    return Redemption(signed.voucher, amount, co_payment, refundable, _hex(receipt["transactionHash"]),
                      int(receipt["blockNumber"]), int(receipt["gasUsed"]))


def redeem_many(dep: Any, provider_account: Any, scans: Sequence[Scan]) -> list[Redemption | VoucherRefused]:
    """Redeems many scans from one wallet without waiting between them (several gates or
    tills on one wallet): all are pre-checked in one batch of checkVoucher calls at the next
    block's time, the accepted ones are sent as separate `redeem` transactions back to back,
    and each is confirmed. Returns, in order, a Redemption or the VoucherRefused saying why
    (a refused voucher is never sent)."""
    from citypass.tx import send_many

    chain, provider = dep.chain, provider_account.address
    results: list[Redemption | VoucherRefused | None] = [None] * len(scans)
    checked: list[tuple[int, Scan]] = []
    for i, sc in enumerate(scans):
        problem = _mismatch(dep, sc.signed, provider)
        if problem:
            results[i] = VoucherRefused(problem[0], f"voucher refused: {problem[1]}")
        elif sc.amount <= 0:
            results[i] = VoucherRefused(Reason.ZeroAmount, f"voucher refused: {Reason.ZeroAmount.message}")
        else:
            checked.append((i, sc))
    codes, _ = _judge(dep, [(sc.signed, provider, sc.amount) for _, sc in checked])
    # One nonce is one voucher, whatever the signature bytes (65-byte and 64-byte forms of one
    # signature are both valid): duplicates are found by (holder, budget, nonce).
    seen: set[tuple[str, int, int]] = set()
    accepted: list[tuple[int, Scan]] = []
    for (i, sc), code in zip(checked, codes):
        v = sc.signed.voucher
        key = (v.holder, v.budget, v.nonce)
        reason = Reason.NonceUsed if key in seen else code
        if reason != Reason.Ok:
            text = reason.message if isinstance(reason, Reason) else f"unknown reason ({reason})"
            results[i] = VoucherRefused(reason if isinstance(reason, Reason) else None, f"voucher refused: {text}")
        else:
            seen.add(key)
            accepted.append((i, sc))
    holders = sorted({sc.signed.voucher.holder for _, sc in accepted})
    has_code = {h for h, c in zip(holders, chain.rpc_batch([("eth_getCode", [h, "latest"]) for h in holders]))
                if c not in ("0x", None)}
    for contracts, gas in ((False, REDEEM_GAS_LIMIT), (True, None)):
        part = [(i, sc) for i, sc in accepted if (sc.signed.voucher.holder in has_code) == contracts]
        fns = [_redeem_fn(dep, sc) for _, sc in part]
        receipts = [r for w in range(0, len(fns), SEND_WINDOW)
                    for r in send_many(chain, provider_account, fns[w:w + SEND_WINDOW], gas=gas, check=False,
                                       brief=True)]
        for (i, sc), receipt in zip(part, receipts):
            tx_hash = _hex(receipt["transactionHash"])
            if int(receipt["status"]) == 1:
                results[i] = Redemption(sc.signed.voucher, sc.amount, sc.co_payment, sc.refundable, tx_hash,
                                        int(receipt["blockNumber"]), int(receipt["gasUsed"]))
            else:  # accepted by the check, refused when mined: the state changed in between
                check = explain(dep, sc.signed, provider, sc.amount)
                why = check.message if not check.ok else "the transaction failed although the voucher checks out"
                results[i] = VoucherRefused(check.reason, f"voucher refused when mined (tx {tx_hash}): {why}")
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


@dataclass(frozen=True)
class BatchOutcome:
    index: int  # position in the list given
    voucher: V.Voucher
    amount: int
    co_payment: int
    redeemed: bool
    reason: Reason | None  # why it was skipped (None: redeemed, or another chain or contract)
    message: str
    tx_hash: str | None  # None: not sent (a local mismatch)


def redeem_batch(dep: Any, provider_account: Any, scans: Sequence[Scan], chunk: int = BATCH_CHUNK) -> list[BatchOutcome]:
    """Redeems scans collected offline with `redeemBatch`: the chain skips (with a
    VoucherSkipped event) each one it refuses instead of reverting the batch. Vouchers for
    another chain, contract or provider are not sent at all. Batches are never refundable."""
    from citypass.tx import send

    provider = provider_account.address
    outcomes: dict[int, BatchOutcome] = {}
    to_send: list[tuple[int, Scan]] = []
    for i, sc in enumerate(scans):
        if sc.refundable:
            raise UsageError(f"scan {i + 1}: a batch cannot be refundable; redeem it on its own with --refundable")
        mismatch = _mismatch(dep, sc.signed, provider)
        if mismatch:
            outcomes[i] = BatchOutcome(i, sc.signed.voucher, sc.amount, sc.co_payment, False, *mismatch, None)
        else:
            to_send.append((i, sc))
    contract = dep.contract
    for start in range(0, len(to_send), chunk):
        part = to_send[start : start + chunk]
        fn = contract.functions.redeemBatch([sc.signed.voucher.contract_args() for _, sc in part],
                                            [V.compact_signature(sc.signed) for _, sc in part],
                                            [sc.amount for _, sc in part], [sc.co_payment for _, sc in part])
        receipt = send(dep.chain, provider_account, fn)
        tx_hash = _hex(receipt["transactionHash"])
        # Each voucher emits exactly one Redeemed or VoucherSkipped, in order.
        results = _events(contract, receipt, ("Redeemed", "VoucherSkipped"))
        if len(results) != len(part):
            raise CityPassError(f"transaction {tx_hash}: {len(results)} outcomes for {len(part)} vouchers")
        for (i, sc), (name, args) in zip(part, results):
            v = sc.signed.voucher
            if (args["holder"], int(args["nonce"])) != (v.holder, v.nonce):
                raise CityPassError(f"transaction {tx_hash}: outcome {i} does not match its voucher")
            if name == "Redeemed":
                outcomes[i] = BatchOutcome(i, v, sc.amount, sc.co_payment, True, None, "redeemed", tx_hash)
            else:
                reason = Reason(int(args["reason"]))
                outcomes[i] = BatchOutcome(i, v, sc.amount, sc.co_payment, False, reason, reason.message, tx_hash)
    return [outcomes[i] for i in range(len(scans))]


def _events(contract: Any, receipt: Any, names: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """(name, args) of the receipt's CityPass events called `names`, in log order."""
    wanted = {}
    for name in names:
        event = getattr(contract.events, name)()
        wanted[event.topic] = (name, event)
    out = []
    for log in receipt["logs"]:
        if to_checksum_address(log["address"]) != contract.address or not log["topics"]:
            continue
        match = wanted.get(_hex(log["topics"][0]))
        if match:
            name, event = match
            out.append((name, dict(event.process_log(log)["args"])))
    return out


@dataclass(frozen=True)
class RefundState:
    """What is left to refund of one refundable redemption (the chain's `refundableOf`)."""

    holder: str  # the address that paid (the pass's address at the time)
    budget: int
    nonce: int
    provider: str | None  # who made the redemption; None: no refundable redemption
    remaining: int  # euro cents that can still be refunded


@dataclass(frozen=True)
class Refund:
    state: RefundState  # as it was before this refund
    amount: int  # euro cents returned now
    to: str  # the pass's current address (it moves with a migrated pass)
    tx_hash: str
    block: int
    gas_used: int

    @property
    def left(self) -> int:
        """Euro cents of the redemption still refundable after this refund."""
        return self.state.remaining - self.amount


def refund_state(dep: Any, holder: str, budget: int, nonce: int) -> RefundState:
    holder = to_checksum_address(holder)
    provider, remaining = dep.contract.functions.refundableOf(holder, budget, nonce).call()
    provider = None if is_any(provider) else to_checksum_address(provider)
    return RefundState(holder, budget, nonce, provider, int(remaining) if provider else 0)


def refund(dep: Any, provider_account: Any, holder: str, budget: int, nonce: int, amount: int | None = None) -> Refund:
    """The provider that made the refundable redemption (holder, budget, nonce) returns
    `amount` cents of it (default: all that is left) to the resident, at the pass's current
    address if it moved. Only redemptions marked refundable when made can be refunded, and
    their refunds add up to at most what they debited; checked before sending (raises
    VoucherRefused or CityPassError, nothing sent)."""
    from citypass.tx import send

    where = f"nonce {nonce} of {holder}, {budget_text(budget)}"
    state = refund_state(dep, holder, budget, nonce)
    me = provider_account.address
    if state.provider is None:
        used = bool(dep.contract.functions.isNonceUsed(state.holder, budget, nonce).call())
        why = ("it was redeemed as an ordinary payment, and only payments marked refundable when they were made "
               "can be refunded" if used else "it was never redeemed")
        raise VoucherRefused(None, f"refund refused: no refundable redemption ({where}): {why}")
    if state.provider != me:
        raise VoucherRefused(None, f"refund refused: the redemption ({where}) was made by provider {state.provider}; "
                                   f"only that provider can refund it, not this wallet {me}")
    if amount is None:
        amount = state.remaining
        if amount == 0:
            raise VoucherRefused(None, f"refund refused: all of the redemption ({where}) was refunded already")
    if amount <= 0:
        raise CityPassError(f"amount: must be more than 0 cents, got {amount}")
    if amount > state.remaining:
        raise VoucherRefused(None, f"refund refused: at most {euros(state.remaining)} of the redemption ({where}) "
                                   f"can still be refunded, not {euros(amount)}")
    f = dep.contract.functions
    have = int(f.balanceOf(me, budget).call())
    if have < amount:
        raise CityPassError(f"this provider holds {euros(have)} of {budget_text(budget)}, less than the "
                            f"{euros(amount)} to refund (settled credit cannot be refunded)")
    receipt = send(dep.chain, provider_account, f.refund(state.holder, budget, nonce, amount))
    refunded = [args for _, args in _events(dep.contract, receipt, ("Refunded",))]
    if len(refunded) != 1:
        raise CityPassError(f"transaction {_hex(receipt['transactionHash'])}: expected one Refunded event, found {len(refunded)}")
    to = to_checksum_address(refunded[0]["holder"])
    return Refund(state, amount, to, _hex(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]))


@dataclass(frozen=True)
class Balance:
    budget: int
    serial: int
    category: int
    name: str
    cents: int


def balance(dep: Any, provider: str) -> list[Balance]:
    """What `provider` holds of each budget (non-zero only): credit redeemed, not yet settled."""
    from citypass.contract import budgets

    provider = to_checksum_address(provider)
    infos = budgets(dep)
    if not infos:
        return []
    amounts = dep.contract.functions.balanceOfBatch([provider] * len(infos), [b.id for b in infos]).call()
    return [Balance(b.id, b.serial, b.category, b.name, int(a)) for b, a in zip(infos, amounts) if a]


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()
