"""The flows that need the clock to move (the admin's delayed transfer, a budget's end), with
the time travel every development node has: Brownie's chain.sleep/mine (evm_increaseTime,
evm_mine). test_roles.py and test_lifecycle.py pin the exact boundaries with
evm_setNextBlockTimestamp, which Ganache 7 lacks; these also run in the Ganache subset."""

from __future__ import annotations

import pytest
from brownie import chain
from eth_utils import keccak

from citypass.reasons import Reason
from tests.revert_helpers import assert_conserved, assert_reverts_with, latest_time, refused

pytestmark = pytest.mark.ganache

DAY = 86_400
ADMIN_DELAY = 3 * DAY
ZERO = "0x" + "00" * 20


def sleep_past(timestamp: int) -> None:
    """The chain's latest block is later than `timestamp` (wall time may add a few seconds)."""
    chain.sleep(max(0, timestamp - latest_time()) + 1)
    chain.mine()
    assert latest_time() > timestamp


def test_admin_transfer_is_accepted_after_the_delay(cp, roles):
    new_admin = roles.stranger
    tx = cp.beginDefaultAdminTransfer(new_admin, {"from": roles.admin})
    schedule = tx.events["DefaultAdminTransferScheduled"]["acceptSchedule"]
    assert cp.pendingDefaultAdmin() == (new_admin, schedule) and schedule == tx.timestamp + ADMIN_DELAY
    assert_reverts_with(lambda: cp.acceptDefaultAdminTransfer({"from": new_admin}),
                        "AccessControlEnforcedDefaultAdminDelay(uint48)", schedule)
    sleep_past(schedule)
    cp.acceptDefaultAdminTransfer({"from": new_admin})
    assert cp.defaultAdmin() == new_admin and cp.pendingDefaultAdmin() == (ZERO, 0)
    assert not cp.hasRole(cp.DEFAULT_ADMIN_ROLE(), roles.admin)


def test_a_cancelled_admin_transfer_cannot_be_accepted(cp, roles):
    cp.beginDefaultAdminTransfer(roles.stranger, {"from": roles.admin})
    cp.cancelDefaultAdminTransfer({"from": roles.admin})
    sleep_past(latest_time() + ADMIN_DELAY)
    assert_reverts_with(lambda: cp.acceptDefaultAdminTransfer({"from": roles.stranger}),
                        "AccessControlInvalidDefaultAdmin(address)", roles.stranger)
    assert cp.defaultAdmin() == roles.admin


def test_admin_delay_change_takes_effect_later_and_can_be_rolled_back(cp, roles):
    assert cp.defaultAdminDelayIncreaseWait() == 5 * DAY  # OpenZeppelin's cap on the wait for a longer delay
    cp.changeDefaultAdminDelay(DAY, {"from": roles.admin})
    cp.rollbackDefaultAdminDelay({"from": roles.admin})
    assert cp.pendingDefaultAdminDelay() == (0, 0)
    tx = cp.changeDefaultAdminDelay(DAY, {"from": roles.admin})
    new_delay, effect = cp.pendingDefaultAdminDelay()
    assert new_delay == DAY and effect == tx.timestamp + ADMIN_DELAY - DAY  # shorter: wait the difference
    sleep_past(effect)
    assert cp.defaultAdminDelay() == DAY


def test_after_the_budget_ends_credit_is_reclaimed_and_providers_settled(cp, roles, sport, pool, museum, residents,
                                                                         alice, bob, sign, deployment):
    cp.redeem(*sign(alice, pool, sport, 300), 300, 0, {"from": pool})
    late = sign(bob, pool, sport, 100, deadline=deployment.end + DAY)
    assert_reverts_with(lambda: cp.reclaim(sport, [alice], {"from": roles.budget}),
                        "BudgetNotEnded(uint256,uint40)", sport, deployment.end)
    sleep_past(deployment.end)
    refused(lambda: cp.redeem(*late, 100, 0, {"from": pool}), Reason.BudgetEnded, bob, pool, sport)
    holders = [r.address for r in residents[:4]]
    tx = cp.reclaim(sport, holders, {"from": roles.budget})
    assert tx.events["Reclaimed"].values() == [sport, 4, 4 * 10_000 - 300]
    assert cp.outstanding(sport) == 300  # the pool's balance stays payable
    reference = "citypass-test-time-travel-payment"
    cp.settle(pool, [sport], [300], reference, {"from": roles.treasurer})
    assert cp.referenceSettled(keccak(text=reference)) and cp.balanceOf(pool, sport) == 0
    assert_conserved(cp, sport, [r.address for r in residents] + [str(pool), str(museum)])
