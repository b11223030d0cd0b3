"""The provider's side: check a resident's voucher, redeem it, refund, see what is owed.

Every redemption is checked with the contract's read-only `checkVoucher` first, so the till
shows the exact reason ("the city pass has expired") instead of "execution reverted", and a
refused voucher costs no gas. Needs only the package (web3, eth-account): no Brownie, no node
tools, so a provider can run it from a plain virtualenv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eth_utils import to_checksum_address

from citypass import budget_id
from citypass.address import eip55_cached
from citypass import voucher as V
from citypass.errors import CityPassError, budget_text, date_text, euros
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


@dataclass(frozen=True)
class Explanation:
    """What a voucher says, and whether (and why not) this provider can redeem it now."""

    signed: V.SignedVoucher
    provider: str  # the wallet that would redeem it
    reason: Reason | None  # the chain's pre-check (BadSignature also for an altered voucher
    # caught locally); None if a chain, contract or provider mismatch stopped it
    message: str
    terms: budget_id.BudgetTerms

    @property
    def ok(self) -> bool:
        return self.reason == Reason.Ok

    def lines(self) -> list[str]:
        v = self.signed.voucher
        return [
            f"holder:      {v.holder}",
            f"provider:    {v.provider}",
            f"budget:      #{self.terms.serial} (category {self.terms.category}, {self.terms.window_text()})",
            f"amount:      {euros(v.amount)} from the pass, {euros(v.co_payment)} co-payment",
            f"nonce:       {v.nonce}",
            f"valid until: {date_text(v.deadline)}",
            f"chain:       {self.signed.chain_id}, contract {self.signed.contract}",
            f"check:       {self.message}",
        ]

    def as_dict(self) -> dict[str, Any]:
        v = self.signed.voucher
        return {
            "holder": v.holder, "provider": v.provider, "budget": str(v.budget), "budget_serial": self.terms.serial,
            "category": self.terms.category, "amount_cents": v.amount, "co_payment_cents": v.co_payment,
            "nonce": v.nonce, "deadline": v.deadline, "chain_id": self.signed.chain_id,
            "contract": self.signed.contract, "ok": self.ok, "reason": self.reason.name if self.reason is not None else None,
            "message": self.message,
        }


def _mismatch(dep: Any, signed: V.SignedVoucher, provider: str) -> tuple[Reason | None, str] | None:
    """A voucher for another chain, contract or provider, or altered after signing, would only
    say "bad signature" on chain; say what is actually wrong instead (with BadSignature as
    the reason code for the last)."""
    if signed.chain_id != dep.chain.chain_id:
        return None, f"this voucher is for chain {signed.chain_id}, but the node is chain {dep.chain.chain_id}"
    if eip55_cached(signed.contract) != eip55_cached(dep.address):
        return None, f"this voucher is for the CityPass contract at {signed.contract}, not the one at {dep.address}"
    if eip55_cached(provider) != signed.voucher.provider:
        return None, (f"this voucher is made out to provider {signed.voucher.provider}, "
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


def explain(dep: Any, signed: V.SignedVoucher, provider: str | None = None) -> Explanation:
    """Runs the chain's pre-check for `provider` (default: the provider the voucher names)."""
    provider = to_checksum_address(provider or signed.voucher.provider)
    terms = budget_id.decode(signed.voucher.budget)
    mismatch = _mismatch(dep, signed, provider)
    if mismatch:
        return Explanation(signed, provider, *mismatch, terms)
    code = dep.contract.functions.checkVoucher(signed.voucher.contract_args(), provider, signed.signature).call()
    try:
        reason = Reason(int(code))
    except ValueError:
        return Explanation(signed, provider, None, f"the chain refuses it for an unknown reason ({code})", terms)
    return Explanation(signed, provider, reason, reason.message, terms)


@dataclass(frozen=True)
class Redemption:
    voucher: V.Voucher
    tx_hash: str
    block: int
    gas_used: int


def redeem(dep: Any, provider_account: Any, signed: V.SignedVoucher) -> Redemption:
    """Pre-checks, then redeems one voucher from the provider's own wallet (which pays gas).
    Raises VoucherRefused with the plain reason if the chain would refuse it."""
    from citypass.tx import send

    check = explain(dep, signed, provider_account.address)
    if not check.ok:
        raise VoucherRefused(check.reason, f"voucher refused: {check.message}")
    fn = dep.contract.functions.redeem(signed.voucher.contract_args(), V.compact_signature(signed))
    receipt = send(dep.chain, provider_account, fn)
    return Redemption(signed.voucher, _hex(receipt["transactionHash"]), int(receipt["blockNumber"]), int(receipt["gasUsed"]))


def redeem_many(dep: Any, provider_account: Any, signed_list: Sequence[V.SignedVoucher]
                ) -> list[Redemption | VoucherRefused]:
    """Redeems many single vouchers from one wallet without waiting between them (several
    gates or tills on one wallet): all are pre-checked in one batch of checkVoucher calls,
    the accepted ones are sent as separate `redeem` transactions back to back, and each is
    confirmed. Returns, in order, a Redemption or the VoucherRefused saying why (a refused
    voucher is never sent)."""
    from citypass.tx import call_many, send_many

    chain, provider = dep.chain, provider_account.address
    results: list[Redemption | VoucherRefused | None] = [None] * len(signed_list)
    checked: list[tuple[int, V.SignedVoucher]] = []
    for i, s in enumerate(signed_list):
        problem = _mismatch(dep, s, provider)
        if problem:
            results[i] = VoucherRefused(None, f"voucher refused: {problem}")
        else:
            checked.append((i, s))
    codes = call_many(chain, dep.contract, "checkVoucher",
                      [(s.voucher.contract_args(), provider, s.signature) for _, s in checked])
    seen: set[tuple[str, int, int]] = set()
    accepted: list[tuple[int, V.SignedVoucher]] = []
    for (i, s), (code,) in zip(checked, codes):
        key = (s.voucher.holder, s.voucher.budget, s.voucher.nonce)
        reason = Reason.NonceUsed if key in seen else Reason(int(code))
        if reason != Reason.Ok:
            results[i] = VoucherRefused(reason, f"voucher refused: {reason.message}")
        else:
            seen.add(key)
            accepted.append((i, s))
    holders = sorted({s.voucher.holder for _, s in accepted})
    has_code = {h for h, c in zip(holders, chain.rpc_batch([("eth_getCode", [h, "latest"]) for h in holders]))
                if c not in ("0x", None)}
    for contracts, gas in ((False, REDEEM_GAS_LIMIT), (True, None)):
        part = [(i, s) for i, s in accepted if (s.voucher.holder in has_code) == contracts]
        fns = [dep.contract.functions.redeem(s.voucher.contract_args(), V.compact_signature(s)) for _, s in part]
        receipts = [r for w in range(0, len(fns), SEND_WINDOW)
                    for r in send_many(chain, provider_account, fns[w:w + SEND_WINDOW], gas=gas, check=False)]
        for (i, s), receipt in zip(part, receipts):
            tx_hash = _hex(receipt["transactionHash"])
            if int(receipt["status"]) == 1:
                results[i] = Redemption(s.voucher, tx_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"]))
            else:  # accepted by the check, refused when mined: the state changed in between
                check = explain(dep, s, provider)
                why = check.message if not check.ok else "the transaction failed although the voucher checks out"
                results[i] = VoucherRefused(check.reason, f"voucher refused when mined (tx {tx_hash}): {why}")
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


@dataclass(frozen=True)
class BatchOutcome:
    index: int  # position in the list given
    voucher: V.Voucher
    redeemed: bool
    reason: Reason | None  # why it was skipped (None: redeemed, or another chain, contract or provider)
    message: str
    tx_hash: str | None  # None: not sent (a local mismatch)


def redeem_batch(dep: Any, provider_account: Any, signed_list: Sequence[V.SignedVoucher],
                 chunk: int = BATCH_CHUNK) -> list[BatchOutcome]:
    """Redeems vouchers collected offline with `redeemBatch`: the chain skips (with a
    VoucherSkipped event) each one it refuses instead of reverting the batch. Vouchers for
    another chain, contract or provider are not sent at all."""
    from citypass.tx import send

    provider = provider_account.address
    outcomes: dict[int, BatchOutcome] = {}
    to_send: list[tuple[int, V.SignedVoucher]] = []
    for i, s in enumerate(signed_list):
        mismatch = _mismatch(dep, s, provider)
        if mismatch:
            outcomes[i] = BatchOutcome(i, s.voucher, False, *mismatch, None)
        else:
            to_send.append((i, s))
    contract = dep.contract
    for start in range(0, len(to_send), chunk):
        part = to_send[start : start + chunk]
        fn = contract.functions.redeemBatch([s.voucher.contract_args() for _, s in part],
                                            [V.compact_signature(s) for _, s in part])
        receipt = send(dep.chain, provider_account, fn)
        tx_hash = _hex(receipt["transactionHash"])
        # Each voucher emits exactly one Redeemed or VoucherSkipped, in order.
        results = _events(contract, receipt, ("Redeemed", "VoucherSkipped"))
        if len(results) != len(part):
            raise CityPassError(f"transaction {tx_hash}: {len(results)} outcomes for {len(part)} vouchers")
        for (i, s), (name, args) in zip(part, results):
            if (args["holder"], int(args["nonce"])) != (s.voucher.holder, s.voucher.nonce):
                raise CityPassError(f"transaction {tx_hash}: outcome {i} does not match its voucher")
            if name == "Redeemed":
                outcomes[i] = BatchOutcome(i, s.voucher, True, None, "redeemed", tx_hash)
            else:
                reason = Reason(int(args["reason"]))
                outcomes[i] = BatchOutcome(i, s.voucher, False, reason, reason.message, tx_hash)
    return [outcomes[i] for i in range(len(signed_list))]


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
    """How much of one redeemed voucher its provider has refunded, and what is left."""

    signed: V.SignedVoucher
    digest: bytes  # the voucher's EIP-712 digest: the key of the contract's `refunded` mapping
    redeemed: bool  # the voucher's nonce is used (the contract's test for "was redeemed")
    refunded: int  # euro cents refunded of this voucher so far

    @property
    def left(self) -> int:
        """Euro cents that can still be refunded of this voucher."""
        return max(self.signed.voucher.amount - self.refunded, 0) if self.redeemed else 0


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
        """Euro cents of the voucher still refundable after this refund."""
        return self.state.left - self.amount


def refund_state(dep: Any, signed: V.SignedVoucher, provider: str) -> RefundState:
    """What `provider` may still refund of `signed`. Raises VoucherRefused when it may not
    refund this voucher at all: another chain or contract, or another provider's voucher (the
    contract would only say "bad signature", since it checks the signature with the caller
    as provider)."""
    v = signed.voucher
    provider = to_checksum_address(provider)
    mismatch = _mismatch(dep, signed, v.provider)  # chain, contract and signature
    problem = mismatch[1] if mismatch else None
    if problem is None and provider != v.provider:
        problem = (f"this voucher was made out to provider {v.provider}: only that provider can refund it, "
                   f"not this wallet {provider}")
    if problem:
        raise VoucherRefused(None, f"refund refused: {problem}")
    f = dep.contract.functions
    digest = V.digest(v, signed.chain_id, signed.contract)
    redeemed = bool(f.isNonceUsed(v.holder, v.budget, v.nonce).call())
    return RefundState(signed, digest, redeemed, int(f.refunded(digest).call()) if redeemed else 0)


def refund(dep: Any, provider_account: Any, signed: V.SignedVoucher, amount: int | None = None) -> Refund:
    """The provider the voucher named returns `amount` cents of it (default: all that is
    left to refund) to the resident, at the pass's current address if it moved. Checks
    before sending that the voucher was redeemed, that the refunds of it stay within its
    amount and that this provider still holds the credit; raises CityPassError (nothing
    sent) with the plain reason otherwise."""
    from citypass.tx import send

    v = signed.voucher
    where = f"nonce {v.nonce} of {v.holder}, {budget_text(v.budget)}"
    state = refund_state(dep, signed, provider_account.address)
    if not state.redeemed:
        raise VoucherRefused(None, f"refund refused: this voucher ({where}) was never redeemed, so there is nothing to refund")
    if amount is None:
        amount = state.left
        if amount == 0:
            raise VoucherRefused(None, f"refund refused: this voucher ({where}) was redeemed for {euros(v.amount)} "
                                       "and all of it was refunded already")
    if amount <= 0:
        raise CityPassError(f"amount: must be more than 0 cents, got {amount}")
    if state.refunded + amount > v.amount:
        before = f"{euros(state.refunded)} of it was refunded already, so " if state.refunded else ""
        raise VoucherRefused(None, f"refund refused: this voucher ({where}) was redeemed for {euros(v.amount)}; "
                                   f"{before}at most {euros(state.left)} can be refunded, not {euros(amount)}")
    f = dep.contract.functions
    have = int(f.balanceOf(provider_account.address, v.budget).call())
    if have < amount:
        raise CityPassError(f"this provider holds {euros(have)} of {budget_text(v.budget)}, less than the "
                            f"{euros(amount)} to refund (settled credit cannot be refunded)")
    receipt = send(dep.chain, provider_account, f.refund(v.contract_args(), V.compact_signature(signed), amount))
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
