"""Issuance: batches with a once-only id, the cap, eligible recipients; enrol-and-credit."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from citypass.reasons import Reason
from tests.revert_helpers import (assert_conserved, assert_reverts_with, latest_time, missing_role,
                                  next_block_at, refused)

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

DAY = 86_400
ZERO = "0x" + "00" * 20
ACTIVE = 1


def batch(label: str) -> str:
    """A deterministic batch id, as the 0x-hex text Brownie takes and returns for bytes32."""
    return "0x" + keccak(text=f"citypass-test-batch-{label}").hex()


def new_addresses(n: int, tag: str) -> list[str]:
    return [Account.from_key(keccak(text=f"citypass-test-issue-{tag}-{i}")).address for i in range(n)]


@pytest.fixture
def small(cp, roles):
    """A fresh budget with a cap of 1,000 cents and nothing issued."""
    now = latest_time()
    return cp.createBudget(0, now - DAY, now + 10 * DAY, 1_000, "small", {"from": roles.budget}).return_value


# ---------------------------------------------------------------- issue
def test_issue_credits_and_records(cp, roles, residents, small):
    holders = [r.address for r in residents[:3]]
    tx = cp.issue(batch("a"), small, holders, [100, 200, 300], {"from": roles.issuer})
    assert [cp.balanceOf(h, small) for h in holders] == [100, 200, 300]
    assert tx.events["BatchIssued"].values() == [batch("a"), small, 3, 600]
    mints = [(e["operator"], e["from"], e["to"], e["id"], e["value"]) for e in tx.events["TransferSingle"]]
    assert mints == [(roles.issuer, ZERO, h, small, a) for h, a in zip(holders, [100, 200, 300])]
    assert cp.batchIssued(batch("a"))
    assert cp.budgetTotals(small) == (1_000, 600, 0, 0, 0)  # cap, issued, settled, reclaimed, corrected
    assert_conserved(cp, small, holders)


def test_same_holder_twice_in_a_batch_gets_both(cp, roles, alice, small):
    cp.issue(batch("twice"), small, [alice, alice], [10, 20], {"from": roles.issuer})
    assert cp.balanceOf(alice, small) == 30


def test_issue_up_to_exactly_the_cap(cp, roles, alice, bob, small):
    cp.issue(batch("1"), small, [alice], [600], {"from": roles.issuer})
    cp.issue(batch("2"), small, [bob], [400], {"from": roles.issuer})
    assert cp.budgetTotals(small)[1] == 1_000
    assert_reverts_with(
        lambda: cp.issue(batch("3"), small, [bob], [1], {"from": roles.issuer}),
        "BudgetCapExceeded(uint256,uint256,uint256)", small, 1_000, 1_001,
    )


def test_issue_above_cap_in_one_batch(cp, roles, alice, bob, small):
    assert_reverts_with(
        lambda: cp.issue(batch("big"), small, [alice, bob], [600, 401], {"from": roles.issuer}),
        "BudgetCapExceeded(uint256,uint256,uint256)", small, 1_000, 1_001,
    )
    assert cp.balanceOf(alice, small) == 0 and not cp.batchIssued(batch("big"))


def test_amount_above_uint128_cannot_wrap(cp, roles, alice, small):
    """A balance is 128 bits of a ledger word: a huge amount must never reach it."""
    huge = 2**128
    assert_reverts_with(
        lambda: cp.issue(batch("huge"), small, [alice], [huge], {"from": roles.issuer}),
        "ERC1155InsufficientBalance(address,uint256,uint256,uint256)", ZERO, 0, huge, small,
    )
    assert cp.balanceOf(alice, small) == 0 and cp.hotNonces(alice, small) == 0


def test_batch_id_used_once(cp, roles, alice, small, sport):
    cp.issue(batch("once"), small, [alice], [1], {"from": roles.issuer})
    err = "BatchAlreadyIssued(bytes32)"
    assert_reverts_with(lambda: cp.issue(batch("once"), small, [alice], [1], {"from": roles.issuer}), err, batch("once"))
    # Not even for another budget, nor through enrollAndIssue.
    assert_reverts_with(lambda: cp.issue(batch("once"), sport, [alice], [1], {"from": roles.issuer}), err, batch("once"))
    cp.grantRole(cp.REGISTRAR_ROLE(), roles.issuer, {"from": roles.admin})
    new = new_addresses(1, "once")
    assert_reverts_with(
        lambda: cp.enrollAndIssue(batch("once"), small, latest_time() + DAY, new, [1], {"from": roles.issuer}), err, batch("once")
    )


def test_fixture_batch_ids_are_recorded(cp, roles, alice, sport):
    assert_reverts_with(
        lambda: cp.issue(b"\x01" * 32, sport, [alice], [1], {"from": roles.issuer}), "BatchAlreadyIssued(bytes32)", b"\x01" * 32
    )


def test_issue_length_mismatch(cp, roles, alice, small):
    assert_reverts_with(
        lambda: cp.issue(batch("len"), small, [alice], [1, 2], {"from": roles.issuer}), "LengthMismatch(uint256,uint256)", 1, 2
    )


def test_issue_batch_too_large(cp, roles, alice, small):
    n = 2_001
    assert_reverts_with(
        lambda: cp.issue(batch("large"), small, [alice.address] * n, [1] * n, {"from": roles.issuer}),
        "BatchTooLarge(uint256,uint256)", n, 2_000,
    )


def test_issue_zero_amount(cp, roles, alice, bob, small):
    assert_reverts_with(lambda: cp.issue(batch("z"), small, [alice, bob], [5, 0], {"from": roles.issuer}), "ZeroAmount()")


def test_issue_unknown_budget(cp, roles, alice, sport):
    assert_reverts_with(lambda: cp.issue(batch("u"), sport + 1, [alice], [5], {"from": roles.issuer}), "UnknownBudget(uint256)", sport + 1)


def test_issue_before_budget_start_is_allowed(cp, roles, alice):
    """Credit can be loaded before the window opens; it can only be spent inside it."""
    now = latest_time()
    future = cp.createBudget(0, now + 10 * DAY, now + 20 * DAY, 100, "future", {"from": roles.budget}).return_value
    cp.issue(batch("f"), future, [alice], [100], {"from": roles.issuer})
    assert cp.balanceOf(alice, future) == 100


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_issue_window_end_boundary(cp, roles, alice):
    now = latest_time()
    short = cp.createBudget(0, now - DAY, now + 100, 1_000, "short", {"from": roles.budget}).return_value
    next_block_at(now + 100)
    cp.issue(batch("last second"), short, [alice], [1], {"from": roles.issuer})
    next_block_at(now + 101)
    assert_reverts_with(
        lambda: cp.issue(batch("too late"), short, [alice], [1], {"from": roles.issuer}),
        "BudgetClosed(uint256,uint40)", short, now + 100,
    )


def test_issue_while_paused(cp, roles, alice, small):
    cp.pause({"from": roles.pauser})
    assert_reverts_with(lambda: cp.issue(batch("p"), small, [alice], [1], {"from": roles.issuer}), "SystemPaused()")
    cp.unpause({"from": roles.pauser})
    cp.issue(batch("p"), small, [alice], [1], {"from": roles.issuer})


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
@pytest.mark.parametrize("kind", ["no pass", "zero", "provider", "suspended", "revoked", "migrated", "expired"])
def test_issue_only_to_active_passes(cp, roles, alice, outsider, pool, small, kind):
    target, reason = alice, None
    if kind == "no pass":
        target, reason = outsider, Reason.NoPass
    elif kind == "zero":
        assert_reverts_with(lambda: cp.issue(batch(kind), small, [ZERO], [1], {"from": roles.issuer}), "ZeroAddress()")
        return
    elif kind == "provider":
        target, reason = pool, Reason.NoPass
    elif kind == "suspended":
        cp.suspendPass(alice, {"from": roles.registrar})
        reason = Reason.PassSuspended
    elif kind == "revoked":
        cp.revokePass(alice, {"from": roles.registrar})
        reason = Reason.PassRevoked
    elif kind == "migrated":
        cp.migratePass(alice, outsider, [], {"from": roles.registrar})
        reason = Reason.PassMigrated
    elif kind == "expired":
        until = latest_time() + 10
        cp.renewPasses([alice], until, {"from": roles.registrar})
        next_block_at(until + 1)
        reason = Reason.PassExpired
    refused(lambda: cp.issue(batch(kind), small, [target], [1], {"from": roles.issuer}), reason, ZERO, target, small)


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_issue_to_pass_on_its_last_day(cp, roles, alice, small):
    until = latest_time() + 10
    cp.renewPasses([alice], until, {"from": roles.registrar})
    next_block_at(until)
    cp.issue(batch("last day"), small, [alice], [1], {"from": roles.issuer})


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", ["admin", "budget", "providers", "registrar", "treasurer", "pauser", "stranger"])
def test_issue_needs_issuer(cp, roles, alice, small, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.issue(batch("r"), small, [alice], [1], {"from": caller}), caller, cp.ISSUER_ROLE())


def test_pool_and_museum_cannot_issue(cp, pool, museum, alice, small):
    for p in (pool, museum):
        missing_role(lambda: cp.issue(batch("pm"), small, [alice], [1], {"from": p}), p, cp.ISSUER_ROLE())


# ---------------------------------------------------------------- enrollAndIssue
@pytest.fixture
def enroller(cp, roles):
    """The issuer key, also given the registrar role, as enrollAndIssue needs both."""
    cp.grantRole(cp.REGISTRAR_ROLE(), roles.issuer, {"from": roles.admin})
    return roles.issuer


def test_enroll_and_issue(cp, enroller, small):
    holders = new_addresses(3, "new")
    until = latest_time() + 365 * DAY
    tx = cp.enrollAndIssue(batch("e"), small, until, holders, [100, 100, 50], {"from": enroller})
    assert all(cp.passOf(h) == (ACTIVE, until) for h in holders)
    assert [cp.balanceOf(h, small) for h in holders] == [100, 100, 50]
    assert tx.events["PassesEnrolled"].values() == [batch("e"), until, 3]
    assert tx.events["BatchIssued"].values() == [batch("e"), small, 3, 250]
    assert [e["to"] for e in tx.events["TransferSingle"]] == holders
    assert_conserved(cp, small, holders)


def test_enroll_and_issue_rejects_existing_passes_and_providers(cp, enroller, alice, pool, small):
    (new,) = new_addresses(1, "x")
    until = latest_time() + DAY
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("x"), small, until, [new, alice], [1, 1], {"from": enroller}), "PassExists(address)", alice)
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("x"), small, until, [new, new], [1, 1], {"from": enroller}), "PassExists(address)", new)
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("x"), small, until, [pool], [1], {"from": enroller}), "AddressIsProvider(address)", pool)
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("x"), small, until, [ZERO], [1], {"from": enroller}), "ZeroAddress()")
    assert cp.passOf(new)[0] == 0


def test_enroll_and_issue_batch_checks(cp, roles, enroller, small):
    new = new_addresses(2, "checks")
    until = latest_time() + DAY
    past = latest_time() - 1
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("c"), small, past, new, [1, 1], {"from": enroller}), "InvalidValidity(uint40)", past)
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("c"), small, until, new, [1], {"from": enroller}), "LengthMismatch(uint256,uint256)", 2, 1)
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("c"), small, until, new, [1, 0], {"from": enroller}), "ZeroAmount()")
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("c"), small + 1, until, new, [1, 1], {"from": enroller}), "UnknownBudget(uint256)", small + 1)
    assert_reverts_with(
        lambda: cp.enrollAndIssue(batch("c"), small, until, new, [1_000, 1], {"from": enroller}),
        "BudgetCapExceeded(uint256,uint256,uint256)", small, 1_000, 1_001,
    )
    cp.pause({"from": roles.pauser})
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("c"), small, until, new, [1, 1], {"from": enroller}), "SystemPaused()")


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_enroll_and_issue_batch_size_window_and_reuse(cp, roles, enroller, small, sport):
    until = latest_time() + DAY
    n = 2_001
    many = new_addresses(n, "many")
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("many"), small, until, many, [1] * n, {"from": enroller}),
                        "BatchTooLarge(uint256,uint256)", n, 2_000)
    new = new_addresses(2, "reuse")
    cp.enrollAndIssue(batch("reuse"), small, until, new[:1], [1], {"from": enroller})
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("reuse"), small, until, new[1:], [1], {"from": enroller}),
                        "BatchAlreadyIssued(bytes32)", batch("reuse"))
    now = latest_time()
    short = cp.createBudget(0, now - DAY, now + 30, 100, "short", {"from": roles.budget}).return_value
    next_block_at(now + 31)
    assert_reverts_with(lambda: cp.enrollAndIssue(batch("late"), short, now + DAY, new[1:], [1], {"from": enroller}),
                        "BudgetClosed(uint256,uint40)", short, now + 30)


def test_batch_limit_constants(cp):
    assert cp.MAX_PASSES_PER_BATCH() == 2_000 and cp.HOT_NONCES() == 128


def test_enroll_and_issue_needs_both_roles(cp, roles, small):
    new = new_addresses(1, "roles")
    until = latest_time() + DAY
    missing_role(lambda: cp.enrollAndIssue(batch("r"), small, until, new, [1], {"from": roles.issuer}), roles.issuer, cp.REGISTRAR_ROLE())
    missing_role(lambda: cp.enrollAndIssue(batch("r"), small, until, new, [1], {"from": roles.registrar}), roles.registrar, cp.ISSUER_ROLE())
    for who in ("admin", "budget", "providers", "treasurer", "pauser", "stranger"):
        caller = getattr(roles, who)
        missing_role(lambda: cp.enrollAndIssue(batch("r"), small, until, new, [1], {"from": caller}), caller, cp.ISSUER_ROLE())
