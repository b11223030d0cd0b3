"""Budgets: categories, creation (the id carries the terms), cap changes, views."""

from __future__ import annotations

import pytest

from citypass import budget_id
from tests.revert_helpers import assert_reverts_with, latest_time, missing_role, next_block_at

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

SPORT, CULTURE, EDUCATION = 0, 1, 2
DAY = 86_400
TERMS = "InvalidBudgetTerms(uint8,uint40,uint40,uint128)"


def test_define_category_emits_name(cp, roles):
    tx = cp.defineCategory(63, "youth", {"from": roles.budget})
    assert tx.events["CategoryDefined"]["category"] == 63
    assert tx.events["CategoryDefined"]["name"] == "youth"


def test_define_category_above_63_reverts(cp, roles):
    assert_reverts_with(lambda: cp.defineCategory(64, "x", {"from": roles.budget}), "InvalidCategory(uint8)", 64)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", ["admin", "providers", "registrar", "issuer", "treasurer", "pauser", "stranger"])
def test_define_category_needs_budget_manager(cp, roles, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.defineCategory(1, "x", {"from": caller}), caller, cp.BUDGET_MANAGER_ROLE())


def test_create_budget_id_encodes_terms(cp, roles):
    now = latest_time()
    serial = len(cp.budgets()) + 1
    tx = cp.createBudget(EDUCATION, now, now + 10 * DAY, 123_456, "Education test", {"from": roles.budget})
    budget = tx.return_value
    assert budget == budget_id.encode(serial, EDUCATION, now, now + 10 * DAY)
    terms = budget_id.decode(budget)
    assert (terms.serial, terms.category, terms.valid_from, terms.valid_until) == (serial, EDUCATION, now, now + 10 * DAY)
    assert cp.budgets()[-1] == budget
    assert cp.budgetTotals(budget) == (123_456, 0, 0, 0, 0)
    ev = tx.events["BudgetCreated"]
    assert (ev["budget"], ev["category"], ev["validFrom"], ev["validUntil"], ev["cap"], ev["name"]) == (
        budget, EDUCATION, now, now + 10 * DAY, 123_456, "Education test")


def test_same_terms_give_distinct_ids(cp, roles):
    now = latest_time()
    a = cp.createBudget(SPORT, now, now + DAY, 1, "a", {"from": roles.budget}).return_value
    b = cp.createBudget(SPORT, now, now + DAY, 1, "b", {"from": roles.budget}).return_value
    assert a != b and budget_id.decode(b).serial == budget_id.decode(a).serial + 1


def test_budget_may_start_in_the_past_or_future(cp, roles):
    now = latest_time()
    cp.createBudget(SPORT, now - 100 * DAY, now + DAY, 1, "past start", {"from": roles.budget})
    cp.createBudget(SPORT, now + 100 * DAY, now + 200 * DAY, 1, "future", {"from": roles.budget})


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_budget_ending_exactly_now_is_accepted(cp, roles):
    """`validUntil < block.timestamp` reverts: a window ending at the block's own time is still valid."""
    now = latest_time()
    next_block_at(now + 5)
    cp.createBudget(SPORT, now, now + 5, 1, "ends now", {"from": roles.budget})


@pytest.mark.parametrize(
    "case", ["category 64", "until == from", "until < from", "ended", "zero cap"],
)
def test_create_budget_invalid_terms(cp, roles, case):
    now = latest_time() + 10
    category, start, end, cap = SPORT, now, now + DAY, 100
    if case == "category 64":
        category = 64
    elif case == "until == from":
        end = start
    elif case == "until < from":
        end = start - 1
    elif case == "ended":
        start, end = now - 2 * DAY, now - DAY
    elif case == "zero cap":
        cap = 0
    assert_reverts_with(
        lambda: cp.createBudget(category, start, end, cap, "bad", {"from": roles.budget}), TERMS, category, start, end, cap
    )


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", ["admin", "providers", "registrar", "issuer", "treasurer", "pauser", "stranger"])
def test_create_budget_needs_budget_manager(cp, roles, who):
    caller = getattr(roles, who)
    now = latest_time()
    missing_role(lambda: cp.createBudget(SPORT, now, now + DAY, 1, "x", {"from": caller}), caller, cp.BUDGET_MANAGER_ROLE())


def test_set_cap_up_and_down_to_issued(cp, roles, sport):
    cap, issued, _, _, _ = cp.budgetTotals(sport)
    tx = cp.setBudgetCap(sport, cap + 1, {"from": roles.budget})
    assert tx.events["BudgetCapChanged"].values() == [sport, cap, cap + 1]
    cp.setBudgetCap(sport, issued, {"from": roles.budget})  # down to exactly what was issued
    assert cp.budgetTotals(sport)[0] == issued


def test_set_cap_below_issued_or_zero_reverts(cp, roles, sport):
    issued = cp.budgetTotals(sport)[1]
    err = "CapBelowIssued(uint256,uint128,uint128)"
    assert_reverts_with(lambda: cp.setBudgetCap(sport, issued - 1, {"from": roles.budget}), err, sport, issued - 1, issued)
    assert_reverts_with(lambda: cp.setBudgetCap(sport, 0, {"from": roles.budget}), err, sport, 0, issued)


def test_set_cap_zero_on_empty_budget_reverts(cp, roles):
    now = latest_time()
    b = cp.createBudget(SPORT, now, now + DAY, 5, "empty", {"from": roles.budget}).return_value
    assert_reverts_with(lambda: cp.setBudgetCap(b, 0, {"from": roles.budget}), "CapBelowIssued(uint256,uint128,uint128)", b, 0, 0)


def test_set_cap_unknown_budget_reverts(cp, roles, sport):
    assert_reverts_with(lambda: cp.setBudgetCap(sport + 1, 10, {"from": roles.budget}), "UnknownBudget(uint256)", sport + 1)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", ["admin", "providers", "registrar", "issuer", "treasurer", "pauser", "stranger"])
def test_set_cap_needs_budget_manager(cp, roles, sport, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.setBudgetCap(sport, 2_000_000, {"from": caller}), caller, cp.BUDGET_MANAGER_ROLE())


def test_views_after_fixture(cp, sport, culture):
    """Fixture issued 4 x 10,000 cents in each budget; nothing settled or reclaimed yet."""
    assert list(cp.budgets()) == [sport, culture]
    for b in (sport, culture):
        assert cp.budgetTotals(b) == (1_000_000, 40_000, 0, 0, 0)
        assert cp.outstanding(b) == 40_000
    assert cp.outstanding(sport + 1) == 0  # an unknown id has nothing outstanding
