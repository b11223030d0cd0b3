"""Lifecycle: expiry, suspended / revoked passes, migration, refund, reclaim after the end,
settlement with once-only references, pause. Conservation is checked along the way."""

from __future__ import annotations

import pytest
from brownie import accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from eth_account import Account
from eth_utils import keccak

from citypass import voucher as V
from citypass.reasons import Reason
from tests.revert_helpers import (assert_conserved, assert_reverts_with, latest_time, mine_at, missing_role,
                                  next_block_at, refused, sign_for)

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

DAY = 86_400
ZERO = "0x" + "00" * 20
CREDIT = 10_000
SUSPENDED, REMOVED = 2, 3


def ref(label: str) -> str:
    """A payment reference as the treasurer types it."""
    return f"CP-TEST-{label}"


def refhash(label: str) -> str:
    """The chain's key of a payment reference: keccak256 of its text."""
    return "0x" + keccak(text=ref(label)).hex()


def of(v):
    """refund's (holder, budget, nonce) of a redeemed voucher struct."""
    return v[0], v[2], v[4]


@pytest.fixture
def everyone(residents, pool, museum):
    return [r.address for r in residents] + [str(pool), str(museum)]


# ---------------------------------------------------------------- pass expiry
@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_pass_expiry_boundary(cp, roles, sport, pool, alice, sign):
    until = latest_time() + 50
    cp.renewPasses([alice], until, {"from": roles.registrar})
    v0, s0 = sign(alice, pool, sport, 10, nonce=0, deadline=until + 100)
    v1, s1 = sign(alice, pool, sport, 10, nonce=1, deadline=until + 100)
    next_block_at(until)
    cp.redeemRefundable(v0, s0, v0[3], 0, {"from": pool})  # the last valid second
    next_block_at(until + 1)
    refused(lambda: cp.redeemRefundable(v1, s1, v1[3], 0, {"from": pool}), Reason.PassExpired, alice, pool, sport)
    refused(lambda: cp.safeTransferFrom(alice, pool, sport, 1, b"", {"from": alice}), Reason.PassExpired, alice, pool, sport)
    refused(lambda: cp.refund(*of(v0), 10, {"from": pool}), Reason.PassExpired, pool, alice, sport)
    assert cp.checkVoucher(v1, pool, s1, v1[3]) == Reason.PassExpired
    # The yearly review renews it: everything works again.
    cp.renewPasses([alice], latest_time() + 365 * DAY, {"from": roles.registrar})
    cp.redeemRefundable(v1, s1, v1[3], 0, {"from": pool})
    cp.refund(*of(v0), 10, {"from": pool})


# ---------------------------------------------------------------- suspended and revoked passes
def test_suspended_pass_neither_spends_nor_receives_until_reinstated(cp, roles, sport, pool, alice, sign, everyone):
    v, s = sign(alice, pool, sport, 100, nonce=0)
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    cp.suspendPass(alice, {"from": roles.registrar})
    v1, s1 = sign(alice, pool, sport, 100, nonce=1)
    refused(lambda: cp.redeemRefundable(v1, s1, v1[3], 0, {"from": pool}), Reason.PassSuspended, alice, pool, sport)
    refused(lambda: cp.refund(*of(v), 100, {"from": pool}), Reason.PassSuspended, pool, alice, sport)
    refused(lambda: cp.issue(keccak(text="s"), sport, [alice], [1], {"from": roles.issuer}), Reason.PassSuspended, ZERO, alice, sport)
    assert cp.balanceOf(alice, sport) == CREDIT - 100  # the credit is frozen, not lost
    cp.reinstatePass(alice, {"from": roles.registrar})
    cp.redeemRefundable(v1, s1, v1[3], 0, {"from": pool})
    cp.refund(*of(v), 100, {"from": pool})
    assert_conserved(cp, sport, everyone)


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_revoked_pass_is_dead_and_its_credit_is_reclaimed_after_the_end(cp, roles, sport, pool, alice, sign, everyone, deployment):
    cp.revokePass(alice, {"from": roles.registrar})
    v, s = sign(alice, pool, sport, 100)
    refused(lambda: cp.redeemRefundable(v, s, v[3], 0, {"from": pool}), Reason.PassRevoked, alice, pool, sport)
    assert_reverts_with(lambda: cp.reclaim(sport, [alice], {"from": roles.budget}), "BudgetNotEnded(uint256,uint40)", sport, deployment.end)
    next_block_at(deployment.end + 1)
    tx = cp.reclaim(sport, [alice], {"from": roles.budget})
    assert tx.events["Reclaimed"].values() == [sport, 1, CREDIT]
    assert cp.balanceOf(alice, sport) == 0
    assert_conserved(cp, sport, everyone)


# ---------------------------------------------------------------- migration (lost phone)
@pytest.fixture
def new_phone():
    return accounts.add(keccak(text="citypass-test-new-phone"))


def test_migration_moves_all_budgets_and_kills_the_old_key(cp, roles, sport, culture, pool, museum, alice, new_phone, sign, everyone):
    old_voucher = sign(alice, pool, sport, 100, nonce=0)
    culture_voucher = sign(alice, museum, culture, 300, nonce=5)
    cp.redeemRefundable(*culture_voucher, culture_voucher[0][3], 0, {"from": museum})
    cp.migratePass(alice, new_phone, cp.budgets(), {"from": roles.registrar})
    assert [cp.balanceOf(new_phone, b) for b in (sport, culture)] == [CREDIT, CREDIT - 300]
    # The old key's vouchers fail with PassMigrated (signed before or after the move).
    assert cp.checkVoucher(old_voucher[0], pool, old_voucher[1], 100) == Reason.PassMigrated
    refused(lambda: cp.redeemRefundable(*old_voucher, old_voucher[0][3], 0, {"from": pool}), Reason.PassMigrated, alice, pool, sport)
    # The new key starts with fresh nonces: nonce 0 is free again for it.
    v, s = sign(new_phone, pool, sport, 100, nonce=0)
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    # A refund of the old phone's redemption goes to the new address.
    tx = cp.refund(*of(culture_voucher[0]), 300, {"from": museum})
    assert tx.events["Refunded"].values() == [new_phone, museum, culture, 300, 5]
    assert cp.balanceOf(new_phone, culture) == CREDIT and cp.balanceOf(alice, culture) == 0
    for b in (sport, culture):
        assert_conserved(cp, b, everyone + [new_phone.address])


def test_migration_during_pause_is_refused_when_credit_must_move(cp, roles, alice, new_phone, sport):
    cp.pause({"from": roles.pauser})
    refused(lambda: cp.migratePass(alice, new_phone, cp.budgets(), {"from": roles.registrar}), Reason.Paused, alice, new_phone, sport)
    cp.unpause({"from": roles.pauser})
    cp.migratePass(alice, new_phone, cp.budgets(), {"from": roles.registrar})


def test_migration_includes_ended_budgets(cp, roles, alice, new_phone):
    now = latest_time()
    b = cp.createBudget(0, now - DAY, now + 10, 1_000, "short", {"from": roles.budget}).return_value
    cp.issue(keccak(text="short"), b, [alice], [500], {"from": roles.issuer})
    mine_at(now + 11)
    cp.migratePass(alice, new_phone, cp.budgets(), {"from": roles.registrar})
    assert cp.balanceOf(new_phone, b) == 500  # so the reclaim finds it at the new address


# ---------------------------------------------------------------- refund
EXCEEDS = "RefundExceedsRedemption(address,uint256,uint256,uint256,uint256)"


def test_refund_in_parts_up_to_the_redeemed_amount(cp, sport, pool, alice, sign, everyone):
    v, s = sign(alice, pool, sport, 2_000, nonce=7)
    cp.redeemRefundable(v, s, 1_000, 0, {"from": pool})  # the chain stores 1,000, not the voucher's 2,000
    tx = cp.refund(*of(v), 400, {"from": pool})
    assert tx.events["Refunded"].values() == [alice, pool, sport, 400, 7]
    ts = tx.events["TransferSingle"]
    assert (ts["operator"], ts["from"], ts["to"], ts["id"], ts["value"]) == (pool, pool, alice, sport, 400)
    assert cp.balanceOf(alice, sport) == CREDIT - 600 and cp.balanceOf(pool, sport) == 600
    assert tuple(cp.refundableOf(*of(v))) == (pool, 600)
    cp.refund(*of(v), 600, {"from": pool})  # the rest
    assert tuple(cp.refundableOf(*of(v))) == (pool, 0)
    assert_reverts_with(lambda: cp.refund(*of(v), 1, {"from": pool}), EXCEEDS, alice, sport, 7, 0, 1)
    assert_conserved(cp, sport, everyone)


def test_refund_is_one_allowance_whatever_form_the_signature_had(cp, sport, pool, alice, sign):
    """The 64- and 65-byte forms, or a re-signed voucher with another deadline: the refund is
    keyed by (holder, budget, nonce), so one redemption has one allowance (v1 keyed it by digest)."""
    v, s = sign(alice, pool, sport, 100, nonce=3, compact=True)
    cp.redeemRefundable(v, s, 100, 0, {"from": pool})
    cp.refund(*of(v), 60, {"from": pool})
    resigned, _ = sign(alice, pool, sport, 100, nonce=3, deadline=v[5] + 999)
    assert_reverts_with(lambda: cp.refund(*of(resigned), 41, {"from": pool}), EXCEEDS, alice, sport, 3, 40, 41)


def test_refund_after_the_voucher_deadline(cp, sport, pool, alice, sign):
    """A voucher's deadline limits its redemption, not the refund that may come days later."""
    v, s = sign(alice, pool, sport, 100, deadline=latest_time() + 60)
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    mine_at(latest_time() + 2 * DAY)
    cp.refund(*of(v), 100, {"from": pool})
    assert cp.balanceOf(alice, sport) == CREDIT


def test_refund_of_a_cold_nonce_redemption(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100, nonce=1_000)
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    cp.refund(*of(v), 100, {"from": pool})
    assert cp.balanceOf(alice, sport) == CREDIT


def test_refund_needs_a_refundable_redemption(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100, nonce=1)
    assert_reverts_with(lambda: cp.refund(*of(v), 10, {"from": pool}),
                        "UnknownRedemption(address,uint256,uint256)", alice, sport, 1)
    cold, cold_sig = sign(alice, pool, sport, 100, nonce=129)
    cp.redeem(cold, cold_sig, 100, 0, {"from": pool})  # an ordinary scan: not refundable
    assert_reverts_with(lambda: cp.refund(*of(cold), 10, {"from": pool}),
                        "UnknownRedemption(address,uint256,uint256)", alice, sport, 129)
    assert tuple(cp.refundableOf(*of(cold))) == (ZERO, 0)


def test_refund_zero_or_more_than_held(cp, roles, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100)
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    assert_reverts_with(lambda: cp.refund(*of(v), 0, {"from": pool}), "ZeroAmount()")
    cp.settle(pool, [sport], [60], ref("paid out"), {"from": roles.treasurer})
    assert_reverts_with(lambda: cp.refund(*of(v), 50, {"from": pool}),
                        "ERC1155InsufficientBalance(address,uint256,uint256,uint256)", pool, 40, 50, sport)


def test_refund_only_by_the_provider_that_redeemed(cp, roles, sport, pool, museum, alice, sign):
    club = accounts.add(keccak(text="citypass-test-club"))
    cp.addProvider(club, 1, 0, "Test provider", {"from": roles.providers})
    v, s = sign(alice, None, sport, 100)
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    for caller in (club, museum, alice, roles.treasurer):
        assert_reverts_with(lambda: cp.refund(*of(v), 50, {"from": caller}),
                            "NotTheRedeemingProvider(address,uint256,uint256,address)", alice, sport, 0, pool)


def test_a_second_voucher_with_a_used_nonce_refunds_nothing_more(cp, sport, museum, alice, bob, sign):
    """The v1 limit (a resident and a provider signing a second, larger voucher with a used
    nonce and having it 'refunded') is closed: the chain stored what the redemption debited."""
    culture = cp.budgets()[1]
    paid = sign(alice, museum, culture, 100, nonce=6)
    cp.redeemRefundable(*paid, 100, 0, {"from": museum})
    cp.redeem(*sign(bob, museum, culture, 6_000), 6_000, 0, {"from": museum})  # the museum holds bob's credit too
    cp.refund(*of(paid[0]), 100, {"from": museum})
    never_redeemed = sign(alice, museum, culture, 5_000, nonce=6)  # same nonce, 50 euro
    assert_reverts_with(lambda: cp.refund(*of(never_redeemed[0]), 5_000, {"from": museum}), EXCEEDS,
                        alice, culture, 6, 0, 5_000)
    assert cp.balanceOf(alice, culture) == CREDIT  # issued - spent + own refunds, never more


# ---------------------------------------------------------------- reclaim
@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_reclaim_only_after_the_end_and_only_holders(cp, roles, sport, pool, alice, bob, residents, sign, everyone, deployment):
    cp.redeemRefundable(*sign(alice, pool, sport, 1_000), 1_000, 0, {"from": pool})
    holders = [r.address for r in residents]  # includes the outsider (nothing to reclaim)
    assert_reverts_with(lambda: cp.reclaim(sport, holders, {"from": roles.budget}), "BudgetNotEnded(uint256,uint40)", sport, deployment.end)
    next_block_at(deployment.end)
    assert_reverts_with(lambda: cp.reclaim(sport, holders, {"from": roles.budget}), "BudgetNotEnded(uint256,uint40)", sport, deployment.end)
    next_block_at(deployment.end + 1)
    tx = cp.reclaim(sport, holders + [str(pool)], {"from": roles.budget})
    assert tx.events["Reclaimed"].values() == [sport, 4, 4 * CREDIT - 1_000]
    assert [e["from"] for e in tx.events["TransferSingle"]] == holders[:4]
    assert cp.balanceOf(pool, sport) == 1_000  # provider credit stays payable
    assert cp.budgetTotals(sport)[3] == 4 * CREDIT - 1_000
    assert_conserved(cp, sport, everyone)
    # Idempotent: a second run finds nothing and changes nothing.
    tx = cp.reclaim(sport, holders, {"from": roles.budget})
    assert tx.events["Reclaimed"].values() == [sport, 0, 0]
    assert cp.budgetTotals(sport)[3] == 4 * CREDIT - 1_000
    # The provider is still settled afterwards.
    cp.settle(pool, [sport], [1_000], ref("after reclaim"), {"from": roles.treasurer})
    assert cp.outstanding(sport) == 0
    assert_conserved(cp, sport, everyone)


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_reclaim_in_parts(cp, roles, sport, residents, deployment, everyone):
    next_block_at(deployment.end + 1)
    cp.reclaim(sport, [residents[0]], {"from": roles.budget})
    cp.reclaim(sport, [residents[1], residents[0], residents[2]], {"from": roles.budget})
    assert cp.budgetTotals(sport)[3] == 3 * CREDIT
    assert_conserved(cp, sport, everyone)


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_reclaim_migrated_pass_at_its_new_address(cp, roles, sport, alice, new_phone, deployment):
    cp.migratePass(alice, new_phone, cp.budgets(), {"from": roles.registrar})
    next_block_at(deployment.end + 1)
    tx = cp.reclaim(sport, [alice, new_phone], {"from": roles.budget})
    assert tx.events["Reclaimed"].values() == [sport, 1, CREDIT]


def test_reclaim_unknown_budget_and_roles(cp, roles, sport, alice):
    assert_reverts_with(lambda: cp.reclaim(sport + 1, [alice], {"from": roles.budget}), "UnknownBudget(uint256)", sport + 1)
    for who in ("admin", "providers", "registrar", "issuer", "treasurer", "pauser", "stranger"):
        caller = getattr(roles, who)
        missing_role(lambda: cp.reclaim(sport, [alice], {"from": caller}), caller, cp.BUDGET_MANAGER_ROLE())


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_reclaim_with_nothing_to_burn_is_still_refused_early(cp, roles, sport, deployment):
    """An empty reclaim before the end or while paused is refused, not recorded."""
    assert_reverts_with(lambda: cp.reclaim(sport, [], {"from": roles.budget}), "BudgetNotEnded(uint256,uint40)",
                        sport, deployment.end)
    next_block_at(deployment.end + 1)
    cp.pause({"from": roles.pauser})
    assert_reverts_with(lambda: cp.reclaim(sport, [], {"from": roles.budget}), "SystemPaused()")


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_reclaim_during_pause(cp, roles, sport, alice, deployment):
    next_block_at(deployment.end + 1)
    cp.pause({"from": roles.pauser})
    assert_reverts_with(lambda: cp.reclaim(sport, [alice], {"from": roles.budget}), "SystemPaused()")
    cp.unpause({"from": roles.pauser})
    cp.reclaim(sport, [alice], {"from": roles.budget})


# ---------------------------------------------------------------- settlement
def test_settle(cp, roles, sport, culture, pool, museum, alice, bob, sign, everyone):
    cp.redeemRefundable(*sign(alice, museum, culture, 700), 700, 0, {"from": museum})
    cp.redeemRefundable(*sign(bob, museum, culture, 300), 300, 0, {"from": museum})
    tx = cp.settle(museum, [culture], [600], ref("march"), {"from": roles.treasurer})
    assert tx.events["Settled"].values() == [museum, culture, refhash("march"), 600]
    assert tx.events["SettlementReference"].values() == [refhash("march"), ref("march")]
    ts = tx.events["TransferSingle"]
    assert (ts["operator"], ts["from"], ts["to"], ts["id"], ts["value"]) == (roles.treasurer, museum, ZERO, culture, 600)
    assert cp.referenceSettled(refhash("march"))
    assert cp.budgetTotals(culture)[2] == 600 and cp.outstanding(culture) == 2 * 4 * CREDIT // 2 - 600
    assert cp.balanceOf(museum, culture) == 400
    assert_conserved(cp, culture, everyone)


def test_settle_several_budgets_under_one_reference(cp, roles, sport, pool, alice, sign, everyone):
    cp.redeemRefundable(*sign(alice, pool, sport, 1_000), 1_000, 0, {"from": pool})
    tx = cp.settle(pool, [sport, sport], [300, 700], ref("two lines"), {"from": roles.treasurer})
    assert [e["amount"] for e in tx.events["Settled"]] == [300, 700]
    assert cp.balanceOf(pool, sport) == 0 and cp.budgetTotals(sport)[2] == 1_000
    assert_conserved(cp, sport, everyone)


def test_settlement_reference_can_never_be_reused(cp, roles, sport, culture, pool, museum, alice, sign):
    cp.redeemRefundable(*sign(alice, pool, sport, 1_000), 1_000, 0, {"from": pool})
    cp.redeemRefundable(*sign(alice, museum, culture, 1_000), 1_000, 0, {"from": museum})
    cp.settle(pool, [sport], [100], ref("once"), {"from": roles.treasurer})
    err = "ReferenceAlreadySettled(bytes32)"
    # Not for the same provider, not for another provider, not for another budget.
    assert_reverts_with(lambda: cp.settle(pool, [sport], [100], ref("once"), {"from": roles.treasurer}), err, refhash("once"))
    assert_reverts_with(lambda: cp.settle(museum, [culture], [100], ref("once"), {"from": roles.treasurer}), err, refhash("once"))
    assert cp.budgetTotals(sport)[2] == 100 and cp.budgetTotals(culture)[2] == 0


def test_failed_settlement_leaves_the_reference_usable(cp, roles, sport, pool, alice, sign):
    cp.redeemRefundable(*sign(alice, pool, sport, 100), 100, 0, {"from": pool})
    assert_reverts_with(lambda: cp.settle(pool, [sport], [101], ref("retry"), {"from": roles.treasurer}),
                        "ERC1155InsufficientBalance(address,uint256,uint256,uint256)", pool, 100, 101, sport)
    assert not cp.referenceSettled(refhash("retry"))
    cp.settle(pool, [sport], [100], ref("retry"), {"from": roles.treasurer})


def test_settle_errors(cp, roles, sport, pool, alice, sign):
    cp.redeemRefundable(*sign(alice, pool, sport, 100), 100, 0, {"from": pool})
    t = {"from": roles.treasurer}
    assert_reverts_with(lambda: cp.settle(alice, [sport], [1], ref("e"), t), "UnknownProvider(address)", alice)
    assert_reverts_with(lambda: cp.settle(pool, [sport], [1, 2], ref("e"), t), "LengthMismatch(uint256,uint256)", 1, 2)
    assert_reverts_with(lambda: cp.settle(pool, [sport], [0], ref("e"), t), "ZeroAmount()")
    assert_reverts_with(lambda: cp.settle(pool, [sport + 1], [1], ref("e"), t), "UnknownBudget(uint256)", sport + 1)
    for who in ("admin", "budget", "providers", "registrar", "issuer", "pauser", "stranger"):
        caller = getattr(roles, who)
        missing_role(lambda: cp.settle(pool, [sport], [1], ref("e"), {"from": caller}), caller, cp.TREASURER_ROLE())
    missing_role(lambda: cp.settle(pool, [sport], [1], ref("e"), {"from": pool}), pool, cp.TREASURER_ROLE())


@pytest.mark.parametrize("status", [SUSPENDED, REMOVED])
def test_stopped_provider_is_still_settled(cp, roles, sport, pool, alice, sign, status):
    cp.redeemRefundable(*sign(alice, pool, sport, 100), 100, 0, {"from": pool})
    cp.setProviderStatus(pool, status, {"from": roles.providers})
    cp.settle(pool, [sport], [100], ref("stopped"), {"from": roles.treasurer})
    assert cp.balanceOf(pool, sport) == 0


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_settle_after_the_budget_ended(cp, roles, sport, pool, alice, sign, deployment):
    cp.redeemRefundable(*sign(alice, pool, sport, 100), 100, 0, {"from": pool})
    next_block_at(deployment.end + 100)
    cp.settle(pool, [sport], [100], ref("late"), {"from": roles.treasurer})


def test_settle_with_no_lines_is_refused(cp, roles, pool):
    """An empty settlement would use up the payment reference without paying or logging anything."""
    assert_reverts_with(lambda: cp.settle(pool, [], [], ref("empty"), {"from": roles.treasurer}), "EmptySettlement()")
    assert not cp.referenceSettled(refhash("empty"))


# ---------------------------------------------------------------- pause
def test_pause_and_unpause(cp, roles, pool, museum):
    tx = cp.pause({"from": roles.pauser})
    assert tx.events["PauseChanged"].values() == [True, roles.pauser]
    assert cp.paused()  # one flag: the provider records are not touched (O(1), issue 12)
    assert tx.gas_used < 50_000
    assert_reverts_with(lambda: cp.pause({"from": roles.pauser}), "PauseUnchanged(bool)", True)
    tx = cp.unpause({"from": roles.pauser})
    assert tx.events["PauseChanged"].values() == [False, roles.pauser]
    assert not cp.paused()
    assert_reverts_with(lambda: cp.unpause({"from": roles.pauser}), "PauseUnchanged(bool)", False)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("fn", ["pause", "unpause"])
def test_pause_needs_pauser(cp, roles, fn, pool, alice):
    if fn == "unpause":
        cp.pause({"from": roles.pauser})
    for caller in [getattr(roles, w) for w in ("admin", "budget", "providers", "registrar", "issuer", "treasurer", "stranger")] + [pool, alice]:
        missing_role(lambda: getattr(cp, fn)({"from": caller}), caller, cp.PAUSER_ROLE())


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_pause_blocks_everything_that_moves_credit(cp, roles, sport, culture, pool, museum, alice, bob, sign, deployment):
    paid = sign(alice, pool, sport, 500, nonce=0)
    cp.redeemRefundable(*paid, paid[0][3], 0, {"from": pool})
    cp.pause({"from": roles.pauser})
    v, s = sign(alice, pool, sport, 100, nonce=1)
    assert cp.checkVoucher(v, pool, s, v[3]) == Reason.Paused
    assert_reverts_with(lambda: cp.issue(keccak(text="p"), sport, [alice], [1], {"from": roles.issuer}), "SystemPaused()")
    refused(lambda: cp.redeemRefundable(v, s, v[3], 0, {"from": pool}), Reason.Paused, alice, pool, sport)
    refused(lambda: cp.safeTransferFrom(alice, museum, culture, 1, b"", {"from": alice}), Reason.Paused, alice, museum, culture)
    refused(lambda: cp.safeBatchTransferFrom(alice, pool, [sport], [1], b"", {"from": alice}), Reason.Paused, alice, pool, sport)
    refused(lambda: cp.refund(*of(paid[0]), 100, {"from": pool}), Reason.Paused, pool, alice, sport)
    refused(lambda: cp.settle(pool, [sport], [100], ref("paused"), {"from": roles.treasurer}), Reason.Paused, pool, ZERO, sport)
    assert not cp.referenceSettled(refhash("paused"))
    next_block_at(deployment.end + 1)
    assert_reverts_with(lambda: cp.reclaim(sport, [bob], {"from": roles.budget}), "SystemPaused()")
    cp.unpause({"from": roles.pauser})
    cp.settle(pool, [sport], [100], ref("paused"), {"from": roles.treasurer})
    cp.reclaim(sport, [bob], {"from": roles.budget})


def test_unpause_restores_payments(cp, roles, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100)
    cp.pause({"from": roles.pauser})
    cp.unpause({"from": roles.pauser})
    cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
    cp.refund(*of(v), 100, {"from": pool})


def test_provider_added_during_pause_is_paused_too(cp, roles, sport, alice):
    club = accounts.add(keccak(text="citypass-test-paused-club"))
    cp.pause({"from": roles.pauser})
    cp.addProvider(club, 1, 0, "Test provider", {"from": roles.providers})
    v, s = sign_for(cp, alice.address, alice.private_key, club, sport, 100)
    assert cp.checkVoucher(v, club, s, v[3]) == Reason.Paused
    refused(lambda: cp.safeTransferFrom(alice, club, sport, 1, b"", {"from": alice}), Reason.Paused, alice, club, sport)
    cp.unpause({"from": roles.pauser})
    cp.redeemRefundable(v, s, v[3], 0, {"from": club})


def test_passes_and_providers_can_be_managed_during_pause(cp, roles, alice, pool):
    """Pause stops credit, not administration (a lost phone with no credit can still move)."""
    cp.pause({"from": roles.pauser})
    cp.suspendPass(alice, {"from": roles.registrar})
    cp.reinstatePass(alice, {"from": roles.registrar})
    cp.setProviderStatus(pool, SUSPENDED, {"from": roles.providers})
    cp.enrollPasses([Account.from_key(keccak(text="paused-enrol")).address], latest_time() + DAY, {"from": roles.registrar})
