"""Stateful property test: random sequences of every action on CityPass, with invariants
checked after each step:

  * conservation, per budget: issued == held by holders + held by providers + settled + reclaimed;
  * credit only arrives at a pass (active, at that moment) or at a provider approved for the
    budget's category (at that moment), and only ever sits with passes or providers;
  * no voucher is used twice (holder, budget, nonce), and a voucher redeems exactly when the
    till's pre-check (`checkVoucher`) said Ok.

Plain hypothesis RuleBasedStateMachine; each run starts from the module's fixture state through
chain.snapshot()/chain.revert(). Expected failures are probed with eth_call first (same code,
no trace), so a run of ~30 x 20 steps stays well under a minute.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter

from brownie import accounts, chain
from brownie.exceptions import VirtualMachineError
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from citypass import budget_id
from citypass.reasons import Reason
from tests.revert_helpers import latest_time, sign_for

DAY = 86_400
ZERO = "0x" + "00" * 20
ACTIVE, SUSPENDED, REVOKED, MIGRATED, PROVIDER = 1, 2, 3, 4, 5
PROVIDER_ACTIVE = 1
NONCES = [0, 1, 2, 127, 128, 300]  # hot and cold nonces
SETTINGS = settings(max_examples=30, stateful_step_count=20, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def logged(rule_function):
    """Records each step (rule name and arguments) on the machine, for the failure report."""
    @functools.wraps(rule_function)
    def step(self, **arguments):
        self.steps.append((rule_function.__name__, arguments))
        return rule_function(self, **arguments)
    return step


def attempt(fn, *args):
    """Runs fn as eth_call first; sends the transaction only if the call succeeds.
    Returns the receipt, or None if the call reverted."""
    tx_params = args[-1]
    try:
        fn.call(*args[:-1], tx_params)
    except VirtualMachineError:
        return None
    return fn(*args[:-1], tx_params)


def test_random_sequences_keep_the_invariants(cp, roles, sport, culture, pool, museum, residents):
    stats: Counter = Counter()  # what the runs actually did, so a degenerate machine fails
    first_failure: list[str] = []
    enrolled = list(residents[:4])
    candidates = [residents[4]] + [accounts.add(keccak(text=f"citypass-stateful-new-{i}")) for i in range(3)]
    phones = [accounts.add(keccak(text=f"citypass-stateful-phone-{i}")) for i in range(4)]
    budgets = [sport, culture]
    providers = [pool, museum]
    everyone = [str(a) for a in enrolled + candidates + phones + providers]

    class CityPassMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            chain.snapshot()
            self.holders = list(enrolled)  # accounts that have (or had) a pass and a key
            self.candidates = list(candidates)
            self.phones = list(phones)
            self.used = set()  # (holder, budget, nonce) of redeemed vouchers
            self.redemptions = []  # (holder, budget, nonce, provider, voucher, signature)
            self.refunded = Counter()  # euro cents refunded per redeemed voucher (holder, budget, nonce)
            self.references = []
            self.batch = 0
            self.steps = []  # (rule, arguments) of this run, for the failure report

        def teardown(self):
            stats["runs"] += 1
            error = sys.exc_info()[1]
            if error is not None and not first_failure and not type(error).__module__.startswith("hypothesis"):
                # Hypothesis replays a failure to shrink it; if the replay diverges it reports
                # only "Flaky". Keep the original error and its steps for the report.
                first_failure.append(f"{type(error).__name__}: {error}\nsteps: {self.steps}")
            chain.revert()

        # ------------------------------------------------------------ helpers
        def check_arrivals(self, tx):
            """Every credit that arrived went to an active pass or an approved, active provider."""
            moves = []
            for ev in tx.events["TransferSingle"] if "TransferSingle" in tx.events else []:
                moves.append((ev["to"], ev["id"], ev["value"]))
            for ev in tx.events["TransferBatch"] if "TransferBatch" in tx.events else []:
                moves += [(ev["to"], i, v) for i, v in zip(ev["ids"], ev["values"])]
            for to, budget, value in moves:
                if to == ZERO or value == 0:
                    continue
                status, valid_until = cp.passOf(to)
                if status == PROVIDER:
                    p_status, _, categories, _ = cp.providerOf(to)
                    category = budget_id.decode(budget).category
                    assert p_status == PROVIDER_ACTIVE and categories >> category & 1, f"credit reached unapproved provider {to}"
                else:
                    assert status == ACTIVE and tx.timestamp <= valid_until, f"credit reached a non-active pass {to} ({status})"

        def record_redemptions(self, tx, holder, budget, signed):
            """Every voucher redeemed in `tx` (all from `holder` in `budget`) is new.
            `signed` maps each submitted nonce to its (voucher, signature), kept for refunds."""
            for ev in tx.events["Redeemed"] if "Redeemed" in tx.events else []:
                assert ev["holder"] == holder
                key = (str(holder), budget, ev["nonce"])
                assert key not in self.used, f"voucher used twice: {key}"
                self.used.add(key)
                self.redemptions.append((holder, budget, ev["nonce"], tx.sender, *signed[ev["nonce"]]))
                stats["redeemed"] += 1

        # ------------------------------------------------------------ rules
        @initialize()
        @logged
        def providers_hold_some_credit(self):
            """Each provider starts with one redemption, so settle and refund have work from step 1."""
            for holder, budget, provider in ((enrolled[0], sport, pool), (enrolled[1], culture, museum)):
                v, s = sign_for(cp, holder.address, holder.private_key, provider, budget, 1_000, nonce=99)
                self.record_redemptions(cp.redeem(v, s, {"from": provider}), holder, budget, {99: (v, s)})

        @rule(h=st.integers(0, 7), b=st.integers(0, 1), amount=st.sampled_from([1, 500, 5_000]))
        @logged
        def issue(self, h, b, amount):
            holder = self.holders[h % len(self.holders)]
            self.batch += 1
            tx = attempt(cp.issue, keccak(text=f"stateful-{self.batch}"), budgets[b], [holder], [amount], {"from": roles.issuer})
            if tx:
                self.check_arrivals(tx)
                stats["issued"] += 1

        @precondition(lambda self: self.candidates)
        @rule()
        @logged
        def enrol(self):
            new = self.candidates.pop()
            cp.enrollPasses([new], latest_time() + 365 * DAY, {"from": roles.registrar})
            self.holders.append(new)

        @rule(h=st.integers(0, 7), p=st.integers(0, 1), b=st.integers(0, 1), amount=st.sampled_from([1, 300, 5_000, 6_000]),
              n=st.sampled_from(NONCES), tamper=st.sampled_from(["none", "none", "amount", "provider", "expired"]))
        @logged
        def redeem(self, h, p, b, amount, n, tamper):
            holder, provider, budget = self.holders[h % len(self.holders)], providers[p], budgets[b]
            deadline = latest_time() + (-1 if tamper == "expired" else 300)
            v, s = sign_for(cp, holder.address, holder.private_key, provider, budget, amount, nonce=n, deadline=max(deadline, 0))
            if tamper == "amount":
                v = (v[0], v[1], v[2] + 1, *v[3:])
            submitter = providers[1 - p] if tamper == "provider" else provider
            pre = cp.checkVoucher(v, submitter, s)
            tx = attempt(cp.redeem, v, s, {"from": submitter})
            # The pre-check agrees with the chain (a later block is the same block here: no time passes).
            assert (tx is not None) == (pre == Reason.Ok), f"checkVoucher said {Reason(pre).name}, redeem {'succeeded' if tx else 'reverted'}"
            if tx:
                self.record_redemptions(tx, holder, budget, {n: (v, s)})
                self.check_arrivals(tx)

        @precondition(lambda self: self.redemptions)
        @rule(i=st.integers(0, 50))
        @logged
        def replay(self, i):
            holder, budget, n, provider, _, _ = self.redemptions[i % len(self.redemptions)]
            v, s = sign_for(cp, holder.address, holder.private_key, provider, budget, 1, nonce=n)
            assert cp.checkVoucher(v, provider, s) != Reason.Ok
            assert attempt(cp.redeem, v, s, {"from": provider}) is None
            tx = cp.redeemBatch([v, v], [s, s], {"from": provider})
            assert tx.return_value == 0 and "Redeemed" not in tx.events

        @rule(h=st.integers(0, 7), b=st.integers(0, 1), n=st.integers(0, 3))
        @logged
        def redeem_batch(self, h, b, n):
            holder, budget = self.holders[h % len(self.holders)], budgets[b]
            provider = providers[b]
            items = [sign_for(cp, holder.address, holder.private_key, provider, budget, 100, nonce=k) for k in (n, n, n + 1)]
            tx = cp.redeemBatch([i[0] for i in items], [i[1] for i in items], {"from": provider})
            self.record_redemptions(tx, holder, budget, {i[0][4]: i for i in items})
            self.check_arrivals(tx)
            assert tx.return_value <= 2  # the same voucher twice in a batch redeems once

        @rule(h=st.integers(0, 7), g=st.integers(0, 7), b=st.integers(0, 1), kind=st.sampled_from(["holder", "provider", "provider", "back"]))
        @logged
        def direct_transfer(self, h, g, b, kind):
            sender, budget = self.holders[h % len(self.holders)], budgets[b]
            if kind == "holder":  # holder -> holder: never
                to = self.holders[g % len(self.holders)]
                assert attempt(cp.safeTransferFrom, sender, to, budget, 1, b"", {"from": sender}) is None
            elif kind == "provider":  # holder -> provider: exactly when a voucher would pass
                provider = providers[b]
                v, s = sign_for(cp, sender.address, sender.private_key, provider, budget, 50, nonce=10_000 + g)
                pre = cp.checkVoucher(v, provider, s)
                tx = attempt(cp.safeTransferFrom, sender, provider, budget, 50, b"", {"from": sender})
                assert (tx is not None) == (pre == Reason.Ok), Reason(pre).name
                if tx:
                    self.check_arrivals(tx)
                    stats["paid directly"] += 1
            else:  # provider -> a resident or anyone: never by a plain transfer (refunds have their own function)
                provider = providers[b]
                to = self.holders[g % len(self.holders)] if g % 2 else (self.phones or candidates)[0]
                assert attempt(cp.safeTransferFrom, provider, to, budget, 1, b"", {"from": provider}) is None

        @precondition(lambda self: self.redemptions)
        @rule(i=st.integers(0, 50), amount=st.sampled_from([1, 100, 100, 1_000]))
        @logged
        def refund(self, i, amount):
            holder, budget, n, provider, v, s = self.redemptions[i % len(self.redemptions)]
            key = (str(holder), budget, n)
            tx = attempt(cp.refund, v, s, amount, {"from": provider})
            if self.refunded[key] + amount > v[2]:
                assert tx is None, "refunded more than the voucher redeemed"
            if tx:
                self.refunded[key] += amount
                assert tx.events["Refunded"]["holder"] == cp.currentAddress(holder)
                self.check_arrivals(tx)
                stats["refunded"] += 1

        @rule(h=st.integers(0, 7), action=st.sampled_from(["suspendPass", "reinstatePass", "revokePass", "renew_short"]))
        @logged
        def pass_status(self, h, action):
            holder = self.holders[h % len(self.holders)]
            if action == "renew_short":
                attempt(cp.renewPasses, [holder], latest_time() + DAY, {"from": roles.registrar})
            else:
                attempt(getattr(cp, action), holder, {"from": roles.registrar})

        @precondition(lambda self: self.phones)
        @rule(h=st.integers(0, 7))
        @logged
        def migrate(self, h):
            holder = self.holders[h % len(self.holders)]
            phone = self.phones[-1]
            tx = attempt(cp.migratePass, holder, phone, {"from": roles.registrar})
            if tx:
                self.phones.pop()
                self.holders.append(phone)
                stats["migrated"] += 1
                self.check_arrivals_migration(tx, holder, phone)

        def check_arrivals_migration(self, tx, old, new):
            for b in budgets:
                assert cp.balanceOf(old, b) == 0
            assert cp.passOf(old)[0] == MIGRATED and cp.migratedTo(old) == new

        @rule(dt=st.sampled_from([60, 2 * DAY, 2 * DAY, 31 * DAY]))
        @logged
        def time_travel(self, dt):
            chain.sleep(dt)
            chain.mine()

        @rule(b=st.integers(0, 1))
        @logged
        def reclaim(self, b):
            budget = budgets[b]
            holders = [str(h) for h in self.holders] + [str(p) for p in providers]
            before = {p: cp.balanceOf(p, budget) for p in providers}
            tx = attempt(cp.reclaim, budget, holders, {"from": roles.budget})
            if tx:
                assert {p: cp.balanceOf(p, budget) for p in providers} == before  # never provider credit
                if tx.events["Reclaimed"]["total"]:
                    assert latest_time() > budget_id.decode(budget).valid_until
                    stats["reclaimed"] += 1

        @rule(other=st.sampled_from([False, False, True]), b=st.integers(0, 1), part=st.sampled_from([1, 2, 2]),
              reuse=st.sampled_from([False, False, True]))
        @logged
        def settle(self, other, b, part, reuse):
            provider, budget = providers[1 - b if other else b], budgets[b]
            balance = cp.balanceOf(provider, budget)
            if reuse and self.references:
                reference = self.references[-1]
                assert attempt(cp.settle, provider, [budget], [max(balance, 1)], reference, {"from": roles.treasurer}) is None
                return
            if balance == 0:
                return
            reference = keccak(text=f"stateful-ref-{len(self.references)}-{latest_time()}")
            tx = attempt(cp.settle, provider, [budget], [balance // part], reference, {"from": roles.treasurer})
            if tx:
                self.references.append(reference)
                stats["settled"] += 1

        @rule(stop=st.sampled_from([True, False, False]))
        @logged
        def pause_or_unpause(self, stop):
            """Mostly unpause: a machine that sits paused half the time tests little else."""
            if stop and not cp.paused():
                cp.pause({"from": roles.pauser})
            elif not stop and cp.paused():
                cp.unpause({"from": roles.pauser})

        @rule(on=st.booleans())
        @logged
        def change_pool_categories(self, on):
            """Approvals change over time; credit that arrived while approved may stay."""
            cp.updateProvider(pool, 1 | (2 if on else 0), 5_000, {"from": roles.providers})

        # ------------------------------------------------------------ invariants
        @invariant()
        def conservation_and_location(self):
            for budget in budgets:
                cap, issued, settled, reclaimed = cp.budgetTotals(budget)
                balances = cp.balanceOfBatch(everyone, [budget] * len(everyone))
                held = sum(balances)
                assert issued <= cap
                assert issued == held + settled + reclaimed, (budget, issued, held, settled, reclaimed)
                assert cp.outstanding(budget) == held  # no credit outside the known addresses
                for who, balance in zip(everyone, balances):
                    if balance:  # only passes (any standing but migrated) and providers hold credit
                        status = cp.passOf(who)[0]
                        assert status in (ACTIVE, SUSPENDED, REVOKED, PROVIDER), f"{who} holds {balance}, pass status {status}"

    try:
        run_state_machine_as_test(CityPassMachine, settings=SETTINGS)
    except Exception:
        if first_failure:
            print("first failure before shrinking:", first_failure[0])
        raise
    print("stateful runs did:", dict(stats))
    for action in ("issued", "redeemed", "paid directly", "refunded", "migrated", "settled"):
        assert stats[action] > 0, f"no run ever {action}: the machine is not exercising the contract"

