"""Stateful fuzz test: random sequences of every CityPass action, by several residents,
providers and officials, across budget ends, checked after every step against a Python model
of the contract AND against the chain itself.

Actions: budgets (create, change cap); providers (add, update, suspend, reinstate, remove);
passes (enrol, renew, suspend, reinstate, revoke, migrate); issue and enrollAndIssue; redeem and
redeemBatch, with good vouchers and bad ones (replayed, expired, wrong category, above the
provider's limit, while paused, revoked or migrated pass, submitted by a non-provider or by
another provider, tampered, signed with the wrong key, typed above the voucher's limit),
ordinary and refundable scans; plain ERC-1155 transfers; refund (of refundable redemptions
only); correction; migration of listed budgets and migrateBalances of the rest; reclaim;
settle; pause and unpause; time jumps of an hour to a month.

The model predicts the outcome of every action (the exact `Reason` for vouchers and transfers,
the custom error for everything else) before it is sent; the chain must agree. After every
step the invariants below are checked on the model and on the chain (one batched JSON-RPC
request reads every balance, counter, pass and provider):

  * conservation per budget, the identity of citypass/report.py's reconciliation:
      issued = spent - refunded + reclaimed + corrected + still with residents, and
      spent - refunded (received by providers) = settled + still owed to providers;
    the chain's counters and every balance equal the model's, and `outstanding` equals the
    balances of the known addresses (no credit anywhere else);
  * credit sits only with passes (active, suspended or revoked: a revoked pass keeps its credit
    until reclaim; a migrated one until migrateBalances moves it) or with providers approved for the
    budget's category when it arrived (a provider keeps credit after its categories change or
    it is removed: that credit stays payable, see `setProviderStatus`);
  * no voucher is used twice: every used (holder, budget, nonce) reads as used on chain, and a
    replay is refused by `redeem`, skipped by `redeemBatch` and flagged by `checkVoucher`;
  * refunds: what the chain says a refundable redemption can still return (refundableOf) equals
    the model's (what it debited minus its refunds), so no resident ever holds more than was
    issued to them, minus what they spent, plus refunds of their own refundable redemptions;
  * nothing changes a balance or a counter while paused (compared with a snapshot taken at
    the pause, after every step until the unpause).

At the end of every run the project's own reconciliation (citypass.report: events ->
summary -> reconcile -> verify_against_chain) must agree with the model's totals.

Sizes: CITYPASS_FUZZ_EXAMPLES runs of up to CITYPASS_FUZZ_STEPS steps (defaults: the short
version `make test` runs); CITYPASS_FUZZ_MIN_STEPS makes the test fail if fewer steps ran
(`make fuzz` asks for 10,000). Steps are counted inside the machine, not inferred.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from brownie import accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from citypass import budget_id, events, report
from citypass.reasons import Reason
from tests.revert_helpers import latest_time, mine_at, sign_for

FUZZ_EXAMPLES = int(os.environ.get("CITYPASS_FUZZ_EXAMPLES", "30"))
FUZZ_STEPS = int(os.environ.get("CITYPASS_FUZZ_STEPS", "25"))
FUZZ_MIN_STEPS = int(os.environ.get("CITYPASS_FUZZ_MIN_STEPS", "0"))

HOUR, DAY = 3_600, 86_400
# Every time the machine sets (budget windows, pass validity) is "now + whole hours + OFF",
# and every time jump is whole hours, so no boundary ever falls within the few seconds of
# wall-clock drift between the model's "now" (the latest block) and the next transaction.
OFF = 1_800
ZERO = "0x" + "00" * 20
NONE, ACTIVE, SUSPENDED, REVOKED, MIGRATED, PROVIDER = range(6)  # CityPass.PassStatus
P_NONE, P_ACTIVE, P_SUSPENDED, P_REMOVED = range(4)  # CityPass.ProviderStatus
NONCES = [0, 1, 2, 3, 5, 127, 128, 129, 383, 384, 1_000]  # hot (< 128) and cold nonces
AMOUNTS = [0, 1, 300, 300, 2_500, 2_500, 5_000, 6_000, 30_000]  # 6,000 > the pool's 5,000 limit; 30,000 > any balance
MAX_BUDGETS = 5
HOT_NONCES_IN_WALLET = 10_000  # more than any run uses
# The short run (make test) is derandomized, so CI sees the same sequences every time; the long
# one (make fuzz) explores new ones on every run.
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, stateful_step_count=FUZZ_STEPS, deadline=None, database=None,
                    derandomize=FUZZ_MIN_STEPS == 0, suppress_health_check=list(HealthCheck))
# Refusals every run of the test must have seen (each from the model and the chain alike), so
# a machine that stopped reaching a rule fails; the long run must see every reason there is.
REASONS_ALWAYS = {"NonceUsed", "BadSignature", "VoucherExpired", "NotAProvider", "InsufficientCredit",
                  "AboveVoucherLimit", "WrongProvider"}
REASONS_LONG = {r.name for r in Reason} - {"BudgetNotEnded", "TransferNotAllowed"}  # not voucher reasons


# ---------------------------------------------------------------- the model
@dataclass
class BudgetModel:
    id: int
    category: int
    valid_from: int
    valid_until: int
    cap: int
    issued: int = 0
    spent: int = 0  # paid by residents to providers (vouchers and plain transfers)
    refunded: int = 0
    settled: int = 0
    reclaimed: int = 0
    corrected: int = 0


@dataclass
class Model:
    """What the contract should hold, kept by replaying each successful action in Python."""

    budgets: list[BudgetModel]
    passes: dict[str, list[int]]  # address -> [PassStatus, validUntil]
    providers: dict[str, list[int]]  # address -> [ProviderStatus, categories, maxAmount]
    balance: Counter  # (address, budget) -> cents
    paused: bool = False
    migrated_to: dict[str, str] = field(default_factory=dict)
    used: set = field(default_factory=set)  # (holder, budget, nonce) of redeemed vouchers
    refundable: dict = field(default_factory=dict)  # (holder, budget, nonce) -> [provider, cents left]
    references: set = field(default_factory=set)
    batches: set = field(default_factory=set)
    arrived_approved: set = field(default_factory=set)  # (provider, budget) credit arrived while approved

    def budget(self, budget: int) -> BudgetModel | None:
        return next((b for b in self.budgets if b.id == budget), None)

    def status(self, who: str) -> int:
        return self.passes.get(who, [NONE, 0])[0]

    def current(self, holder: str) -> str:
        while self.status(holder) == MIGRATED:
            holder = self.migrated_to[holder]
        return holder

    # The rules, in the contract's order (CityPass._passRule, _moveRule, _voucherRule).
    def pass_rule(self, who: str, now: int) -> Reason:
        status, valid_until = self.passes.get(who, [NONE, 0])
        if status == ACTIVE:
            return Reason.PassExpired if now > valid_until else Reason.Ok
        return {SUSPENDED: Reason.PassSuspended, REVOKED: Reason.PassRevoked,
                MIGRATED: Reason.PassMigrated}.get(status, Reason.NoPass)

    def move_rule(self, sender: str, to: str, budget: int, amount: int, now: int) -> Reason:
        """A plain move sender -> to outside refund/migrate/settle/reclaim (payment or nothing)."""
        receiver = self.providers.get(to)
        if receiver is None:
            return Reason.TransferNotAllowed  # holder -> holder, provider -> anyone
        b = budget_id.decode(budget)
        status, categories, max_amount = receiver
        if self.paused:
            return Reason.Paused
        if self.status(sender) == PROVIDER:
            return Reason.TransferNotAllowed  # provider -> provider
        reason = self.pass_rule(sender, now)
        if reason != Reason.Ok:
            return reason
        if status == P_SUSPENDED:
            return Reason.ProviderSuspended
        if status == P_REMOVED:
            return Reason.ProviderRemoved
        if not categories >> b.category & 1:
            return Reason.CategoryNotApproved
        if now < b.valid_from:
            return Reason.BudgetNotStarted
        if now > b.valid_until:
            return Reason.BudgetEnded
        if max_amount and amount > max_amount:
            return Reason.AboveProviderLimit
        return Reason.Ok

    def voucher_rule(self, v: tuple, submitter: str, signature_ok: bool, now: int, amount: int) -> Reason:
        holder, named, budget, max_amount, nonce, deadline = v
        if now > deadline:
            return Reason.VoucherExpired
        if amount == 0:
            return Reason.ZeroAmount
        if amount > max_amount:
            return Reason.AboveVoucherLimit
        if submitter not in self.providers:
            return Reason.NotAProvider
        if named != ZERO and named != submitter:
            return Reason.WrongProvider
        if not signature_ok:
            return Reason.BadSignature
        if (holder, budget, nonce) in self.used:
            return Reason.NonceUsed
        reason = self.move_rule(holder, submitter, budget, amount, now)
        if reason != Reason.Ok:
            return reason
        return Reason.InsufficientCredit if self.balance[(holder, budget)] < amount else Reason.Ok

    def pay(self, holder: str, provider: str, budget: int, amount: int) -> None:
        self.balance[(holder, budget)] -= amount
        self.balance[(provider, budget)] += amount
        self.budget(budget).spent += amount
        self.arrived_approved.add((provider, budget))

    def held(self, budget: int) -> tuple[int, int]:
        """(still with residents, still with providers) of `budget`."""
        residents = sum(v for (who, b), v in self.balance.items() if b == budget and who not in self.providers)
        providers = sum(v for (who, b), v in self.balance.items() if b == budget and who in self.providers)
        return residents, providers


# ---------------------------------------------------------------- chain reads
class Reader:
    """Many view calls of the contract in one JSON-RPC batch request (one round trip)."""

    def __init__(self, cp):
        self.cp = cp
        self.url = web3.provider.endpoint_uri
        self.session = requests.Session()

    def __call__(self, calls: list[tuple[str, tuple]]) -> list:
        payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                    "params": [{"to": self.cp.address, "data": getattr(self.cp, name).encode_input(*args)}, "latest"]}
                   for i, (name, args) in enumerate(calls)]
        replies = {r["id"]: r for r in self.session.post(self.url, json=payload, timeout=60).json()}
        out = []
        for i, (name, _) in enumerate(calls):
            assert "result" in replies[i], f"{name} failed: {replies[i]}"
            out.append(getattr(self.cp, name).decode_output(replies[i]["result"]))
        return out


def revert_name(error: VirtualMachineError) -> str:
    """'CreditMoveRefused: 5, 0x.., 0x.., 42' -> 'CreditMoveRefused 5'; 'SystemPaused' -> 'SystemPaused'."""
    text = error.revert_msg or ""
    name, _, args = text.partition(":")
    if name == "CreditMoveRefused":
        return f"{name} {args.split(',')[0].strip()}"
    return name.strip()


def refusal(reason: Reason) -> str:
    """The revert the transfer hook gives for `reason` (see revert_name)."""
    return f"CreditMoveRefused {int(reason)}"


def logged(rule_function):
    """Counts each step and records it (rule name and arguments) for the failure report."""
    @functools.wraps(rule_function)
    def step(self, **arguments):
        self.steps.append((rule_function.__name__, arguments))
        stats["steps"] += 1
        return rule_function(self, **arguments)
    return step


stats: Counter = Counter()  # what the runs actually did; reset by the test


def test_random_sequences_keep_the_invariants(cp, roles, sport, culture, pool, museum, residents, deployment):
    stats.clear()
    started = time.monotonic()
    first_failure: list[str] = []
    read = Reader(cp)
    # One account with both roles enrollAndIssue needs (the fixture keeps them apart).
    enroller = accounts.add(keccak(text="citypass-stateful-enroller"))
    cp.grantRole(cp.ISSUER_ROLE(), enroller, {"from": roles.admin})
    cp.grantRole(cp.REGISTRAR_ROLE(), enroller, {"from": roles.admin})

    enrolled = list(residents[:4])
    candidates = [residents[4]] + [accounts.add(keccak(text=f"citypass-stateful-new-{i}")) for i in range(3)]
    phones = [accounts.add(keccak(text=f"citypass-stateful-phone-{i}")) for i in range(3)]
    clubs = [accounts.add(keccak(text=f"citypass-stateful-club-{i}")) for i in range(2)]  # providers to add
    keyed = {str(a): a for a in enrolled + candidates + phones}  # addresses with a resident key
    provider_candidates = [pool, museum] + clubs
    everyone = [str(a) for a in enrolled + candidates + phones + provider_candidates + [roles.stranger]]
    signers = {str(a): a for a in enrolled + candidates + phones + provider_candidates + [roles.stranger]}
    t0 = deployment.start + DAY  # the fixture's "now": its budgets and passes count from here
    deploy_block = cp.tx.block_number

    # The model starts from the fixture's state, read from the chain once.
    fixture_budgets = [sport, culture]
    initial = Model(budgets=[], passes={}, providers={}, balance=Counter())
    for b in fixture_budgets:
        terms = budget_id.decode(b)
        cap, issued, settled, reclaimed, corrected = cp.budgetTotals(b)
        initial.budgets.append(BudgetModel(b, terms.category, terms.valid_from, terms.valid_until, cap, issued,
                                           settled=settled, reclaimed=reclaimed, corrected=corrected))
    for who in everyone:
        status, valid_until = cp.passOf(who)
        if status != NONE:
            initial.passes[who] = [status, valid_until]
        p_status, categories, max_amount = cp.providerOf(who)
        if p_status != P_NONE:
            initial.providers[who] = [p_status, categories, max_amount]
        for b in fixture_budgets:
            if cp.balanceOf(who, b):
                initial.balance[(who, b)] = cp.balanceOf(who, b)
    assert cp.budgets() == fixture_budgets and not cp.paused()

    class CityPassMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            chain.snapshot()
            self.m = copy.deepcopy(initial)
            self.holders = [str(a) for a in enrolled]  # addresses that have (or had) a pass
            self.candidates = [str(a) for a in candidates]
            self.phones = [str(a) for a in phones]
            self.redemptions = []  # (voucher, provider, amount) of redeemed vouchers, for refunds
            self.paused_view = None  # balances and counters when paused
            self.serial = 0  # for unique batch ids and payment references
            self.steps = []  # (rule, arguments) of this run, for the failure report
            # Start every run at "t0 + whole hours + OFF", the grid every boundary sits on.
            now = latest_time()
            anchor = t0 + OFF + -(-(now + 1 - t0 - OFF) // HOUR) * HOUR
            assert anchor < t0 + DAY, "the chain's clock ran away between runs"
            mine_at(anchor)

        def teardown(self):
            error = sys.exc_info()[1]
            try:
                if error is None:
                    self.reconcile_with_the_library()
            finally:
                stats["runs"] += 1
                if error is not None and not first_failure and not type(error).__module__.startswith("hypothesis"):
                    # Hypothesis replays a failure to shrink it; if the replay diverges it reports
                    # only "Flaky". Keep the original error and its steps for the report.
                    first_failure.append(f"{type(error).__name__}: {error}\nsteps: {self.steps}")
                chain.revert()

        # ------------------------------------------------------------ helpers
        def expect(self, fn, args: tuple, sender, expected: str | None):
            """Runs fn as eth_call; the model said it succeeds (expected None) or reverts with
            `expected` (see revert_name). Sends the transaction only on success."""
            try:
                fn.call(*args, {"from": sender})
            except VirtualMachineError as error:
                got = revert_name(error)
                assert expected is not None, f"{fn._name}{args}: the model expected success, the chain reverted with {got}"
                assert got == expected, f"{fn._name}{args}: reverted with {got}, the model expected {expected}"
                stats[f"refused {fn.abi['name']}: {expected}"] += 1
                return None
            assert expected is None, f"{fn._name}{args}: the chain accepted it, the model expected {expected}"
            tx = fn(*args, {"from": sender})
            self.check_arrivals(tx)
            stats[f"did {fn.abi['name']}"] += 1
            return tx

        def check_arrivals(self, tx):
            """On chain, right after the transaction: every credit that arrived went to an
            active, unexpired pass or to an active provider approved for the budget's category."""
            moves = [(ev["to"], ev["id"], ev["value"]) for ev in tx.events["TransferSingle"]] if "TransferSingle" in tx.events else []
            if "TransferBatch" in tx.events:
                for ev in tx.events["TransferBatch"]:
                    moves += [(ev["to"], i, v) for i, v in zip(ev["ids"], ev["values"])]
            for to, budget, value in moves:
                if to == ZERO or value == 0:
                    continue
                status, valid_until = cp.passOf(to)
                if status == PROVIDER:
                    p_status, categories, _ = cp.providerOf(to)
                    category = budget_id.decode(budget).category
                    assert p_status == P_ACTIVE and categories >> category & 1, f"credit reached unapproved provider {to}"
                else:
                    # Migration moves a pass with its standing (suspended, expired); all else needs an active pass.
                    migrated = "PassMigrated" in tx.events or tx.fn_name == "migrateBalances"
                    assert status in (ACTIVE, SUSPENDED) and (migrated or tx.timestamp <= valid_until), f"credit reached pass {to} ({status})"
                    assert status == ACTIVE or migrated, f"credit reached suspended pass {to}"

        def now(self) -> int:
            return latest_time()

        def holder(self, h: int) -> str:
            return self.holders[h % len(self.holders)]

        def budget(self, b: int) -> BudgetModel:
            return self.m.budgets[b % len(self.m.budgets)]

        def next_serial(self) -> int:
            self.serial += 1
            return self.serial

        def sign(self, holder: str, provider: str | None, budget: int, max_amount: int, nonce: int, deadline: int,
                 key_of: str | None = None):
            key = keyed[key_of or holder].private_key
            return sign_for(cp, holder, key, provider, budget, max_amount, nonce=nonce, deadline=deadline)

        # ------------------------------------------------------------ the first step
        @initialize()
        def providers_hold_some_credit(self):
            """Each fixture provider starts with one redemption, so settle and refund have work from step 1."""
            self.steps.append(("providers_hold_some_credit", {}))
            for holder, budget, provider in ((enrolled[0], sport, pool), (enrolled[1], culture, museum)):
                self.redeem_one(str(holder), str(provider), budget, 1_000, 99, "none", True)

        # ------------------------------------------------------------ budgets
        @precondition(lambda self: len(self.m.budgets) < MAX_BUDGETS)
        @rule(category=st.sampled_from([0, 1, 2, 64]), start=st.sampled_from([-DAY, -DAY, 2 * HOUR]),
              length=st.sampled_from([-2 * DAY, DAY, 3 * DAY, 40 * DAY]), cap=st.sampled_from([0, 5_000, 200_000]))
        @logged
        def create_budget(self, category, start, length, cap):
            now = self.now()
            valid_from, valid_until = now + start + OFF, now + start + length + OFF
            bad = category > budget_id.MAX_CATEGORY or valid_until <= valid_from or valid_until < now or cap == 0
            tx = self.expect(cp.createBudget, (category, valid_from, valid_until, cap, "fuzz"), roles.budget,
                             "InvalidBudgetTerms" if bad else None)
            if tx:
                budget = budget_id.encode(len(self.m.budgets) + 1, category, valid_from, valid_until)
                assert tx.return_value == budget
                self.m.budgets.append(BudgetModel(budget, category, valid_from, valid_until, cap))

        @rule(b=st.integers(0, 4), change=st.sampled_from([-1, 0, 1_000, 500_000]))
        @logged
        def set_budget_cap(self, b, change):
            budget = self.budget(b)
            cap = max(budget.issued + change, 0)
            self.expect(cp.setBudgetCap, (budget.id, cap), roles.budget, "CapBelowIssued" if cap <= 0 or cap < budget.issued else None)
            if cap > 0 and cap >= budget.issued:
                budget.cap = cap

        # ------------------------------------------------------------ providers
        @rule(p=st.integers(0, 4), categories=st.sampled_from([1, 2, 4, 3, 6, 7]), max_amount=st.sampled_from([0, 2_000, 5_000]))
        @logged
        def add_provider(self, p, categories, max_amount):
            who = ([str(a) for a in provider_candidates] + [self.holder(p)])[p]  # p == 4: a pass holder
            expected = ("ProviderExists" if who in self.m.providers else
                        "AddressHasPass" if self.m.status(who) != NONE else None)
            if self.expect(cp.addProvider, (who, categories, max_amount, f"Fuzz provider {p}"), roles.providers, expected):
                self.m.providers[who] = [P_ACTIVE, categories, max_amount]
                self.m.passes[who] = [PROVIDER, 0]

        @rule(p=st.integers(0, 3), categories=st.sampled_from([0, 1, 2, 3, 6, 7]), max_amount=st.sampled_from([0, 2_000, 5_000]))
        @logged
        def update_provider(self, p, categories, max_amount):
            who = str(provider_candidates[p])
            if self.expect(cp.updateProvider, (who, categories, max_amount), roles.providers,
                           None if who in self.m.providers else "UnknownProvider"):
                self.m.providers[who][1:] = [categories, max_amount]

        @rule(p=st.integers(0, 3), status=st.sampled_from([P_NONE, P_ACTIVE, P_ACTIVE, P_SUSPENDED, P_SUSPENDED, P_REMOVED]))
        @logged
        def set_provider_status(self, p, status):
            who = str(provider_candidates[p])
            record = self.m.providers.get(who)
            expected = ("UnknownProvider" if record is None else
                        "ProviderStatusUnchanged" if status in (P_NONE, record[0]) or record[0] == P_REMOVED else None)
            if self.expect(cp.setProviderStatus, (who, status), roles.providers, expected):
                record[0] = status

        # ------------------------------------------------------------ passes
        @rule(c=st.integers(0, 9), until=st.sampled_from([365 * DAY, -HOUR]))
        @logged
        def enrol(self, c, until):
            """A new resident (mostly), or an address that already has a pass or is a provider."""
            pool_of = self.candidates + self.holders + [str(pool)]
            who = pool_of[c % len(pool_of)] if c < 7 or not self.candidates else self.candidates[0]
            valid_until = self.now() + until + OFF
            expected = ("InvalidValidity" if until < 0 else "AddressIsProvider" if self.m.status(who) == PROVIDER
                        else "PassExists" if self.m.status(who) != NONE else None)
            if self.expect(cp.enrollPasses, ([who], valid_until), roles.registrar, expected):
                self.m.passes[who] = [ACTIVE, valid_until]
                self.candidates.remove(who)
                self.holders.append(who)

        @rule(h=st.integers(0, 9), action=st.sampled_from(["suspendPass", "reinstatePass", "revokePass", "renew_long",
                                                            "renew_short", "renew_past"]))
        @logged
        def pass_status(self, h, action):
            who = self.holder(h)
            status = self.m.status(who)
            if action.startswith("renew"):
                until = {"renew_long": 365 * DAY, "renew_short": DAY, "renew_past": -HOUR}[action]
                valid_until = self.now() + until + OFF
                expected = ("InvalidValidity" if until < 0 else
                            None if status in (ACTIVE, SUSPENDED) else "PassNotActive")
                if self.expect(cp.renewPasses, ([who], valid_until), roles.registrar, expected):
                    self.m.passes[who][1] = valid_until
                return
            allowed, new, error = {"suspendPass": ((ACTIVE,), SUSPENDED, "PassNotActive"),
                                   "reinstatePass": ((SUSPENDED,), ACTIVE, "PassNotSuspended"),
                                   "revokePass": ((ACTIVE, SUSPENDED), REVOKED, "PassNotActive")}[action]
            if self.expect(getattr(cp, action), (who,), roles.registrar, None if status in allowed else error):
                self.m.passes[who][0] = new

        @rule(h=st.integers(0, 9), to=st.sampled_from(["phone", "phone", "holder", "provider"]),
              listed=st.sampled_from(["all", "all", "first", "none"]))
        @logged
        def migrate(self, h, to, listed):
            """migratePass with the budgets the caller lists (all, the first one, or none)."""
            old = self.holder(h)
            new = {"phone": self.phones[0] if self.phones else str(pool), "holder": self.holder(h + 1), "provider": str(museum)}[to]
            status = self.m.status(old)
            ids = {"all": [b.id for b in self.m.budgets], "first": [self.m.budgets[0].id], "none": []}[listed]
            moving = any(self.m.balance[(old, b)] for b in ids)
            expected = ("PassNotActive" if status not in (ACTIVE, SUSPENDED) else
                        "AddressIsProvider" if self.m.status(new) == PROVIDER else
                        "PassExists" if self.m.status(new) != NONE else
                        refusal(Reason.Paused) if self.m.paused and moving else None)
            tx = self.expect(cp.migratePass, (old, new, ids), roles.registrar, expected)
            if tx:
                self.m.passes[new] = list(self.m.passes[old])
                self.m.passes[old][0] = MIGRATED
                self.m.migrated_to[old] = new
                for b in ids:
                    self.m.balance[(new, b)] += self.m.balance.pop((old, b), 0)
                self.phones.remove(new)
                self.holders.append(new)

        @rule(h=st.integers(0, 9))
        @logged
        def migrate_balances(self, h):
            """What a migrated pass still holds moves to its current address, following every migration."""
            migrated = [w for w in self.holders if self.m.status(w) == MIGRATED]
            old = migrated[h % len(migrated)] if migrated and h < 8 else self.holder(h)
            ids = [b.id for b in self.m.budgets]
            moving = any(self.m.balance[(old, b)] for b in ids)
            expected = ("PassNotMigrated" if self.m.status(old) != MIGRATED else
                        refusal(Reason.Paused) if self.m.paused and moving else None)
            if self.expect(cp.migrateBalances, (old, ids), roles.registrar, expected):
                to = self.m.current(old)
                for b in ids:
                    self.m.balance[(to, b)] += self.m.balance.pop((old, b), 0)

        # ------------------------------------------------------------ issuance
        def issue_error(self, batch_id, budget: BudgetModel, pairs, enrolling_until: int | None) -> str | None:
            now = self.now()
            if enrolling_until is not None and enrolling_until < now:
                return "InvalidValidity"
            if self.m.paused:
                return "SystemPaused"
            if batch_id in self.m.batches:
                return "BatchAlreadyIssued"
            if now > budget.valid_until:
                return "BudgetClosed"
            seen = set()
            for who, amount in pairs:  # CityPass._mintBatch, then _refuseMint's order
                if enrolling_until is not None:
                    refused = "AddressIsProvider" if self.m.status(who) == PROVIDER else (
                        "PassExists" if self.m.status(who) != NONE or who in seen else None)
                    seen.add(who)
                else:
                    reason = self.m.pass_rule(who, now)
                    refused = refusal(reason) if reason != Reason.Ok else None
                if amount == 0:
                    return "ZeroAmount"
                if refused:
                    return refused
            if budget.issued + sum(a for _, a in pairs) > budget.cap:
                return "BudgetCapExceeded"
            return None

        def credit(self, batch_id, budget: BudgetModel, pairs):
            self.m.batches.add(batch_id)
            for who, amount in pairs:
                self.m.balance[(who, budget.id)] += amount
                budget.issued += amount

        @rule(h=st.integers(0, 9), g=st.integers(0, 9), b=st.integers(0, 4), amount=st.sampled_from([0, 500, 5_000, 90_000]),
              reuse=st.sampled_from([False, False, False, True]))
        @logged
        def issue(self, h, g, b, amount, reuse):
            budget = self.budget(b)
            pairs = [(self.holder(h), amount), (self.holder(g), 700)]
            batch_id = keccak(text=f"fuzz-batch-{self.serial if reuse else self.next_serial()}")
            if self.expect(cp.issue, (batch_id, budget.id, [p[0] for p in pairs], [p[1] for p in pairs]), roles.issuer,
                           self.issue_error(batch_id, budget, pairs, None)):
                self.credit(batch_id, budget, pairs)

        @rule(c=st.integers(0, 9), twice=st.sampled_from([False, False, True]), b=st.integers(0, 4),
              until=st.sampled_from([365 * DAY, 365 * DAY, -HOUR]))
        @logged
        def enroll_and_issue(self, c, twice, b, until):
            """New residents with their first credit; sometimes an existing pass or a provider,
            or the same address twice (all refused as a whole)."""
            pool_of = self.candidates + self.holders + [str(museum)]
            who = pool_of[c % len(pool_of)] if c >= 5 or not self.candidates else self.candidates[c % len(self.candidates)]
            pairs = [(who, 1_000)] + ([(who, 1_000)] if twice else [])
            budget, valid_until = self.budget(b), self.now() + until + OFF
            batch_id = keccak(text=f"fuzz-batch-{self.next_serial()}")
            if self.expect(cp.enrollAndIssue, (batch_id, budget.id, valid_until, [who] * len(pairs), [1_000] * len(pairs)),
                           enroller, self.issue_error(batch_id, budget, pairs, valid_until)):
                self.m.passes[who] = [ACTIVE, valid_until]
                self.credit(batch_id, budget, pairs)
                self.candidates.remove(who)
                self.holders.append(who)

        # ------------------------------------------------------------ redemption
        def make_voucher(self, holder, provider, budget, amount, nonce, tamper):
            """(voucher, signature, submitter, signature_ok, amount typed) for one way of presenting a voucher."""
            now = self.now()
            deadline = now - 1 if tamper == "expired" else now + 300
            if tamper == "non_provider":  # a resident or a stranger names itself as provider
                provider = self.holder(nonce) if nonce % 2 else str(roles.stranger)
            key_of = self.holder(nonce + 1) if tamper == "wrong_key" and self.holder(nonce + 1) in keyed else None
            if tamper == "wrong_key" and (key_of is None or key_of == holder):
                key_of = next(k for k in keyed if k != holder)
            limit = max(amount, 1) + (0 if tamper == "over_limit" else 100 * (nonce % 3))  # the till types up to it
            named = None if tamper == "any_provider" or (tamper == "none" and nonce % 4 == 1) else provider
            v, s = self.sign(holder, named, budget, max(limit - (1 if tamper == "over_limit" else 0), 1), nonce,
                             max(deadline, 0), key_of)
            signature_ok = key_of is None
            if tamper == "max_amount":  # changed after signing
                v, signature_ok = (*v[:3], v[3] + 1, *v[4:]), False
            submitter = provider
            if tamper == "other_provider":
                others = [p for p in self.m.providers if p != provider]
                if others:
                    submitter = others[nonce % len(others)]  # WrongProvider if the voucher names one
            return v, s, submitter, signature_ok, amount

        def redeem_one(self, holder, provider, budget, amount, nonce, tamper, refundable=False):
            v, s, submitter, signature_ok, amount = self.make_voucher(holder, provider, budget, amount, nonce, tamper)
            expected = self.m.voucher_rule(v, submitter, signature_ok, self.now(), amount)
            got = Reason(cp.checkVoucher(v, submitter, s, amount))
            assert got == expected, f"checkVoucher said {got.name}, the model {expected.name}"
            stats[f"voucher {expected.name}"] += 1
            fn = cp.redeemRefundable if refundable else cp.redeem
            try:
                fn.call(v, s, amount, 7, {"from": signers[submitter]})
                accepted = None
            except VirtualMachineError as error:
                accepted = revert_name(error)
            # One rule, one code: redeem refuses with the reason checkVoucher gives.
            assert accepted == (None if expected == Reason.Ok else refusal(expected)), (
                f"redeem said {accepted}, the model {expected.name}")
            if accepted is None:
                tx = fn(v, s, amount, 7, {"from": signers[submitter]})
                self.check_arrivals(tx)
                stats["did redeemRefundable" if refundable else "did redeem"] += 1
                self.redeemed(tx, [(v, submitter, amount)], refundable)

        def redeemed(self, tx, presented, refundable=False):
            """Applies the Redeemed events of `tx` to the model; each must be a new voucher."""
            events_ = list(tx.events["Redeemed"]) if "Redeemed" in tx.events else []
            assert len(events_) == len(presented)
            for ev, (v, submitter, amount) in zip(events_, presented):
                key = (v[0], v[2], v[4])
                assert ev["holder"] == v[0] and ev["nonce"] == v[4]
                assert key not in self.m.used, f"voucher used twice: {key}"
                self.m.used.add(key)
                self.m.pay(v[0], submitter, v[2], amount)
                self.redemptions.append((v, submitter, amount))
                if refundable:
                    self.m.refundable[key] = [submitter, amount]
                    assert tx.events["RefundableRedemption"]["amount"] == amount

        def provider_for(self, p: int, budget: int) -> str:
            """p < 4: that provider candidate (registered or not, approved or not); otherwise a
            registered provider approved for the budget's category, when there is one."""
            if p < len(provider_candidates):
                return str(provider_candidates[p])
            category = budget_id.decode(budget).category
            approved = [w for w, (_, cats, _) in self.m.providers.items() if cats >> category & 1]
            return approved[p % len(approved)] if approved else str(provider_candidates[p % 4])

        @rule(h=st.integers(0, 9), p=st.integers(0, 7), b=st.integers(0, 4), amount=st.sampled_from(AMOUNTS),
              n=st.sampled_from(NONCES),
              tamper=st.sampled_from(["none"] * 5 + ["replay", "replay", "max_amount", "max_amount", "wrong_key", "other_provider", "expired",
                                                     "non_provider", "wrong_key", "no_pass", "over_limit",
                                                     "any_provider"]),
              refundable=st.sampled_from([False, False, True]))
        @logged
        def redeem(self, h, p, b, amount, n, tamper, refundable):
            holder, budget = self.holder(h), self.budget(b).id
            provider = self.provider_for(p, budget)
            if tamper == "replay":
                used = sorted(k for k in self.m.used)
                if not used:
                    return
                holder, budget, n = used[h % len(used)]
                tamper = "none"
                stats["replays"] += 1
            elif tamper == "no_pass":  # a resident not (yet) enrolled
                holder, tamper = (self.candidates + self.phones + [holder])[0], "none"
            self.redeem_one(holder, provider, budget, amount, n, tamper, refundable)

        @rule(h=st.integers(0, 9), b=st.integers(0, 4), amount=st.sampled_from([100, 1_000, 2_500]),
              refundable=st.sampled_from([False, True]))
        @logged
        def pay_at_till(self, h, b, amount, refundable):
            """The everyday scan: a fresh voucher (the wallet's lowest free nonce) at a provider
            approved for the budget, so most of these are redeemed unless the state says no."""
            holder, budget = self.holder(h), self.budget(b).id
            nonce = next(n for n in range(HOT_NONCES_IN_WALLET) if (holder, budget, n) not in self.m.used)
            self.redeem_one(holder, self.provider_for(4 + h, budget), budget, amount, nonce, "any_provider", refundable)

        @rule(h=st.integers(0, 9), p=st.integers(0, 7), b=st.integers(0, 4), n=st.sampled_from(NONCES),
              plan=st.lists(st.sampled_from(["new", "same", "replay", "expired", "big", "other_budget"]), min_size=1, max_size=4))
        @logged
        def redeem_batch(self, h, p, b, n, plan):
            """Vouchers collected offline by one provider: the chain skips exactly the ones the model refuses."""
            holder, budget = self.holder(h), self.budget(b).id
            provider = self.provider_for(p, budget)
            if holder not in keyed:
                return
            now, items, nonce = self.now(), [], n
            for kind in plan:
                if kind == "same" and items:
                    items.append(items[-1])
                    continue
                if kind == "replay" and self.m.used:
                    u_holder, u_budget, u_nonce = sorted(self.m.used)[h % len(self.m.used)]
                    v, s, _, _, _ = self.make_voucher(u_holder, provider, u_budget, 100, u_nonce, "none")
                    items.append((v, s, 100))
                    continue
                nonce += 1
                b_id = self.budget(b + 1).id if kind == "other_budget" else budget
                amount = 30_000 if kind == "big" else 200
                v, s, _, _, typed = self.make_voucher(holder, provider, b_id, amount, nonce, "expired" if kind == "expired" else "none")
                items.append((v, s, typed))
            # Predict item by item: each sees the effects of the ones before it.
            trial = copy.deepcopy(self.m)
            reasons = []
            for v, s, amount in items:
                reason = trial.voucher_rule(v, provider, True, now, amount)
                reasons.append(reason)
                if reason == Reason.Ok:
                    trial.used.add((v[0], v[2], v[4]))
                    trial.pay(v[0], provider, v[2], amount)
                stats[f"batch voucher {reason.name}"] += 1
            tx = cp.redeemBatch([i[0] for i in items], [i[1] for i in items], [i[2] for i in items], [0] * len(items),
                                {"from": signers[provider]})
            stats["did redeemBatch"] += 1
            skipped = [Reason(ev["reason"]) for ev in tx.events["VoucherSkipped"]] if "VoucherSkipped" in tx.events else []
            assert skipped == [r for r in reasons if r != Reason.Ok], (skipped, reasons)
            assert tx.return_value == reasons.count(Reason.Ok)
            self.check_arrivals(tx)
            self.redeemed(tx, [(v, provider, amount) for (v, s, amount), r in zip(items, reasons) if r == Reason.Ok])

        @rule(h=st.integers(0, 9), g=st.integers(0, 9), p=st.integers(0, 7), b=st.integers(0, 4),
              amount=st.sampled_from([50, 2_000, 6_000, 30_000]), kind=st.sampled_from(["pay", "pay", "pay_batch", "to_holder", "from_provider"]))
        @logged
        def direct_transfer(self, h, g, p, b, amount, kind):
            """Plain ERC-1155 transfers: a payment to a provider passes exactly the voucher rules; nothing else moves."""
            holder, budget = self.holder(h), self.budget(b)
            provider = self.provider_for(p, budget.id)
            if kind == "from_provider":
                sender, to = provider, self.holder(g)
            else:
                sender, to = holder, (provider if kind.startswith("pay") else self.holder(g))
            if sender not in signers:
                return
            now = self.now()
            reason = self.m.move_rule(sender, to, budget.id, amount, now)
            if kind == "pay_batch":
                other = self.budget(b + 1)
                if other.id == budget.id:
                    return
                expected = None
                for x in (budget, other):  # id by id: the move rule, then the balance
                    reason = self.m.move_rule(sender, to, x.id, amount, now)
                    expected = (refusal(reason) if reason != Reason.Ok else
                                "ERC1155InsufficientBalance" if self.m.balance[(sender, x.id)] < amount else None)
                    if expected:
                        break
                if self.expect(cp.safeBatchTransferFrom, (sender, to, [budget.id, other.id], [amount, amount], b""), signers[sender], expected):
                    self.m.pay(sender, to, budget.id, amount)
                    self.m.pay(sender, to, other.id, amount)
                    stats["paid directly"] += 1
                return
            short = self.m.balance[(sender, budget.id)] < amount
            expected = refusal(reason) if reason != Reason.Ok else "ERC1155InsufficientBalance" if short else None
            if self.expect(cp.safeTransferFrom, (sender, to, budget.id, amount, b""), signers[sender], expected):
                self.m.pay(sender, to, budget.id, amount)
                stats["paid directly"] += 1

        @precondition(lambda self: self.redemptions)
        @rule(i=st.integers(0, 50), amount=st.sampled_from([0, 1, 100, 100, 1_000, 30_000]),
              kind=st.sampled_from(["own", "own", "own", "wrong_provider", "unused_nonce"]))
        @logged
        def refund(self, i, amount, kind):
            """Refunds exist only for refundable redemptions, by the provider that made them, up to
            what they debited (an ordinary scan's refund is an UnknownRedemption)."""
            v, provider, _ = self.redemptions[i % len(self.redemptions)]
            holder, budget, nonce = v[0], v[2], v[4]
            submitter = provider
            if kind == "wrong_provider":
                submitter = next((p for p in self.m.providers if p != provider), provider)
            elif kind == "unused_nonce":
                nonce = 5_000 + i
            key = (holder, budget, nonce)
            record = self.m.refundable.get(key)
            to = self.m.current(holder)
            ends = self.m.budget(budget).valid_until
            reason = Reason.Paused if self.m.paused else self.m.pass_rule(to, self.now())
            if reason == Reason.Ok and self.now() > ends:
                reason = Reason.BudgetEnded
            expected = ("ZeroAmount" if amount == 0 else
                        "UnknownRedemption" if record is None else
                        "NotTheRedeemingProvider" if record[0] != submitter else
                        "RefundExceedsRedemption" if amount > record[1] else
                        refusal(reason) if reason != Reason.Ok else
                        "ERC1155InsufficientBalance" if self.m.balance[(submitter, budget)] < amount else None)
            tx = self.expect(cp.refund, (holder, budget, nonce, amount), signers[submitter], expected)
            if tx:
                assert tx.events["Refunded"]["holder"] == to
                record[1] -= amount
                self.m.balance[(submitter, budget)] -= amount
                self.m.balance[(to, budget)] += amount
                self.m.budget(budget).refunded += amount
                stats[f"refund {kind}"] += 1

        @rule(h=st.integers(0, 11), b=st.integers(0, 4), amount=st.sampled_from([0, 100, 1_000, 30_000]))
        @logged
        def correct(self, h, b, amount):
            """The issuer takes back credit issued in error: never more than the holder has, never a provider's."""
            who = (self.holders + [str(pool), self.candidates[0] if self.candidates else str(museum)])[h % (len(self.holders) + 2)]
            budget = self.budget(b)
            expected = ("ZeroAmount" if amount == 0 else
                        refusal(Reason.TransferNotAllowed) if who in self.m.providers else
                        refusal(Reason.NoPass) if self.m.status(who) in (NONE, PROVIDER) else
                        refusal(Reason.Paused) if self.m.paused else
                        "ERC1155InsufficientBalance" if self.m.balance[(who, budget.id)] < amount else None)
            if self.expect(cp.correct, (who, budget.id, amount, "fuzz correction"), roles.issuer, expected):
                self.m.balance[(who, budget.id)] -= amount
                budget.corrected += amount

        # ------------------------------------------------------------ end of a budget, settlement
        @rule(b=st.integers(0, 4))
        @logged
        def reclaim(self, b):
            budget = self.budget(b)
            expected = ("SystemPaused" if self.m.paused else
                        "BudgetNotEnded" if self.now() <= budget.valid_until else None)
            tx = self.expect(cp.reclaim, (budget.id, everyone), roles.budget, expected)
            if tx:
                total = 0
                for who in everyone:
                    if who not in self.m.providers and self.m.balance[(who, budget.id)]:
                        total += self.m.balance.pop((who, budget.id))
                budget.reclaimed += total
                assert tx.events["Reclaimed"]["total"] == total
                stats["reclaimed cents"] += total

        @rule(p=st.integers(0, 6), b=st.integers(0, 4), two=st.booleans(), part=st.sampled_from([1, 2, 2, 0]),
              reuse=st.sampled_from([False, False, False, True]))
        @logged
        def settle(self, p, b, two, part, reuse):
            """part 1: all of it; 2: half; 0: one cent more than it holds."""
            owed = sorted(self.m.providers, key=lambda w: -self.m.balance[(w, self.budget(b).id)])
            who = ([str(x) for x in provider_candidates] + [self.holder(b)] + owed[:1] * 2)[p]  # 5, 6: the one owed most
            chosen = [self.budget(b)] + ([self.budget(b + 1)] if two and self.budget(b + 1).id != self.budget(b).id else [])
            amounts = [(self.m.balance[(who, x.id)] // part if part else self.m.balance[(who, x.id)] + 1) for x in chosen]
            reference = f"fuzz-ref-{self.serial if reuse else self.next_serial()}"
            expected = ("UnknownProvider" if who not in self.m.providers else
                        "ReferenceAlreadySettled" if reference in self.m.references else
                        "ZeroAmount" if amounts[0] == 0 else
                        refusal(Reason.Paused) if self.m.paused else
                        "ERC1155InsufficientBalance" if amounts[0] > self.m.balance[(who, chosen[0].id)] else
                        "ZeroAmount" if amounts[-1] == 0 else
                        "ERC1155InsufficientBalance" if amounts[-1] > self.m.balance[(who, chosen[-1].id)] else None)
            if self.expect(cp.settle, (who, [x.id for x in chosen], amounts, reference), roles.treasurer, expected):
                self.m.references.add(reference)
                for x, amount in zip(chosen, amounts):
                    self.m.balance[(who, x.id)] -= amount
                    x.settled += amount

        # ------------------------------------------------------------ pause, time
        @rule(stop=st.sampled_from([True, False, False]))
        @logged
        def pause_or_unpause(self, stop):
            """Mostly unpause: a machine that sits paused half the time tests little else."""
            unchanged = stop == self.m.paused
            if self.expect(cp.pause if stop else cp.unpause, (), roles.pauser, "PauseUnchanged" if unchanged else None):
                self.m.paused = stop
                self.paused_view = self.chain_view() if stop else None

        @rule(dt=st.sampled_from([HOUR, HOUR, DAY, 2 * DAY, 2 * DAY, 31 * DAY]))
        @logged
        def time_jump(self, dt):
            before = latest_time()
            chain.sleep(dt)
            chain.mine()
            assert latest_time() >= before + dt
            ended = [b for b in self.m.budgets if before <= b.valid_until < latest_time()]
            stats["budget ends crossed"] += len(ended)

        # ------------------------------------------------------------ invariants
        def chain_view(self):
            """Every balance, counter, pass and provider record, read in one batch."""
            ids = [b.id for b in self.m.budgets]
            calls = [("balanceOfBatch", ([w for w in everyone for _ in ids], ids * len(everyone)))]
            calls += [("budgetTotals", (b,)) for b in ids] + [("outstanding", (b,)) for b in ids]
            calls += [("passOf", (w,)) for w in everyone] + [("providerOf", (w,)) for w in everyone]
            calls += [("paused", ()), ("budgets", ())]
            calls += [("isNonceUsed", key) for key in sorted(self.m.used)]
            calls += [("refundableOf", key) for key in sorted(self.m.refundable)]
            out = read(calls)
            balances = dict(zip([(w, b) for w in everyone for b in ids], out[0]))
            k = 1
            totals = out[k:k + len(ids)]; k += len(ids)
            outstanding = out[k:k + len(ids)]; k += len(ids)
            passes = out[k:k + len(everyone)]; k += len(everyone)
            providers = out[k:k + len(everyone)]; k += len(everyone)
            paused, budget_list = out[k], out[k + 1]
            nonces_used = out[k + 2:k + 2 + len(self.m.used)]
            refundables = out[k + 2 + len(self.m.used):]
            return balances, totals, outstanding, passes, providers, paused, budget_list, nonces_used, refundables

        @invariant()
        def model_and_chain_agree(self):
            stats["invariant checks"] += 1
            balances, totals, outstanding, passes, providers, paused, budget_list, nonces_used, refundables = self.chain_view()
            m = self.m
            assert list(budget_list) == [b.id for b in m.budgets]
            assert paused == m.paused
            for who, (status, valid_until), (p_status, categories, max_amount) in zip(everyone, passes, providers):
                assert [status, valid_until] == m.passes.get(who, [NONE, 0]) or status == PROVIDER == m.status(who), who
                assert [p_status, categories, max_amount] == m.providers.get(who, [P_NONE, 0, 0]), who
            for b, (cap, issued, settled, reclaimed, corrected), out in zip(m.budgets, totals, outstanding):
                # Conservation, on the model (the identity of citypass/report.py) ...
                residents, providers_held = m.held(b.id)
                assert b.issued <= b.cap
                assert b.issued == b.spent - b.refunded + b.reclaimed + b.corrected + residents, (b, residents)
                assert b.spent - b.refunded == b.settled + providers_held, (b, providers_held)
                # ... and on the chain, which must match the model to the cent.
                assert (cap, issued, settled, reclaimed, corrected) == (b.cap, b.issued, b.settled, b.reclaimed, b.corrected), b
                held_on_chain = sum(balances[(w, b.id)] for w in everyone)
                assert issued == held_on_chain + settled + reclaimed + corrected
                assert out == held_on_chain, "credit outside the known addresses"
            for (who, budget), value in balances.items():
                assert value == m.balance[(who, budget)], (who, budget, value, m.balance[(who, budget)])
                if value:  # credit sits only with passes or with providers approved when it arrived
                    if who in m.providers:
                        assert (who, budget) in m.arrived_approved, f"{who} holds {value} of {budget} it never received while approved"
                    else:
                        assert m.status(who) in (ACTIVE, SUSPENDED, REVOKED, MIGRATED), f"{who} holds {value}, pass status {m.status(who)}"
            assert all(nonces_used), "a redeemed voucher's nonce reads as unused"
            # The refund bound: each refundable redemption can return exactly what it debited minus its refunds.
            for key, (provider, remaining) in zip(sorted(m.refundable), refundables):
                assert [provider, remaining] == m.refundable[key], (key, provider, remaining, m.refundable[key])
            if m.paused:  # nothing moved since the pause
                assert self.paused_view is not None
                then_balances, then_totals = self.paused_view[0], self.paused_view[1]
                assert all(balances[k] == v for k, v in then_balances.items()), "a balance changed while paused"
                assert [t[1:] for t in totals[:len(then_totals)]] == [t[1:] for t in then_totals], "issued/settled/reclaimed changed while paused"
                stats["checks while paused"] += 1

        def reconcile_with_the_library(self):
            """citypass.report's reconciliation from the events, and its per-budget totals equal the model's."""
            contract = web3.eth.contract(address=cp.address, abi=cp.abi)
            act = events.activity(events.fetch_events(contract, from_block=deploy_block))
            summary = report.summarize(act)
            report.reconcile(summary)
            report.verify_against_chain(summary, contract)
            lines = {line.budget: line for line in summary.budgets}
            for b in self.m.budgets:
                line = lines[b.id]
                residents, providers_held = self.m.held(b.id)
                assert (line.issued, line.redeemed, line.refunded, line.settled, line.reclaimed,
                        line.held_by_residents, line.held_by_providers) == (
                    b.issued, b.spent, b.refunded, b.settled, b.reclaimed, residents, providers_held), b
            stats["library reconciliations"] += 1

    try:
        run_state_machine_as_test(CityPassMachine, settings=SETTINGS)
    except Exception:
        if first_failure:
            print("first failure before shrinking:", first_failure[0])
        raise
    elapsed = time.monotonic() - started
    print(f"\nstateful fuzz: {stats['steps']} steps in {stats['runs']} runs, {stats['invariant checks']} invariant checks, "
          f"{stats['library reconciliations']} library reconciliations, {elapsed:.0f} s")
    print("what the runs did:", dict(sorted(stats.items())))
    assert stats["steps"] >= FUZZ_MIN_STEPS, f"only {stats['steps']} steps ran, {FUZZ_MIN_STEPS} required"
    for action in ("did redeem", "did redeemRefundable", "did redeemBatch", "did issue", "did enrollAndIssue", "did refund",
                   "did migratePass", "did migrateBalances", "did correct", "did settle", "did pause", "did createBudget",
                   "did addProvider", "did setProviderStatus", "paid directly"):
        assert stats[action] > 0, f"no run ever {action}: the machine is not exercising the contract"
    seen = {key.split()[-1] for key in stats if key.startswith(("voucher ", "batch voucher "))}
    required = REASONS_LONG if FUZZ_MIN_STEPS >= 10_000 else REASONS_ALWAYS
    assert required <= seen, f"refusals never reached: {sorted(required - seen)}"
