"""Redemption: `redeem`, `redeemBatch` and the till's pre-check `checkVoucher`."""

from __future__ import annotations

import pytest

from citypass.reasons import Reason
from tests.revert_helpers import (assert_conserved, assert_reverts_with, latest_time, next_block_at,
                                  refused)

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

CREDIT = 10_000


def batch_args(batch, amounts=None, co_payments=None):
    """redeemBatch's four lists for [(voucher, signature), ...]; amounts default to each maxAmount."""
    return ([b[0] for b in batch], [b[1] for b in batch], amounts or [b[0][3] for b in batch],
            co_payments or [0] * len(batch))


def test_redeem_moves_credit_and_records_co_payment(cp, sport, pool, alice, sign, residents, museum):
    v, s = sign(alice, pool, sport, 2_000, nonce=3)
    assert cp.checkVoucher(v, pool, s, 1_250) == Reason.Ok
    tx = cp.redeem(v, s, 1_250, 750, {"from": pool})  # the till typed 12.50 of a 20.00 limit
    assert cp.balanceOf(alice, sport) == CREDIT - 1_250
    assert cp.balanceOf(pool, sport) == 1_250
    ts = tx.events["TransferSingle"]
    assert (ts["operator"], ts["from"], ts["to"], ts["id"], ts["value"]) == (pool, alice, pool, sport, 1_250)
    assert tx.events["Redeemed"].values() == [alice, 3, 750]
    assert cp.isNonceUsed(alice, sport, 3) and not cp.isNonceUsed(alice, sport, 2)
    assert cp.hotNonces(alice, sport) == 1 << 3
    assert_conserved(cp, sport, [r.address for r in residents] + [pool, museum])


def test_redeem_whole_balance(cp, culture, museum, alice, sign):
    v, s = sign(alice, museum, culture, CREDIT)
    cp.redeem(v, s, v[3], 0, {"from": museum})
    assert cp.balanceOf(alice, culture) == 0 and cp.balanceOf(museum, culture) == CREDIT


def test_redeem_more_than_balance(cp, culture, museum, alice, sign):
    v, s = sign(alice, museum, culture, CREDIT + 1)
    assert cp.checkVoucher(v, museum, s, CREDIT + 1) == Reason.InsufficientCredit
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": museum}), Reason.InsufficientCredit, alice, museum, culture)


def test_redeem_zero_amount(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100)
    refused(lambda: cp.redeem(v, s, 0, 0, {"from": pool}), Reason.ZeroAmount, alice, pool, sport)


def test_redeem_up_to_the_voucher_limit(cp, sport, pool, alice, sign):
    """The till types any amount from 1 to maxAmount; one redemption uses the nonce up."""
    v, s = sign(alice, pool, sport, 1_000, nonce=2)
    assert cp.checkVoucher(v, pool, s, 1_001) == Reason.AboveVoucherLimit
    refused(lambda: cp.redeem(v, s, 1_001, 0, {"from": pool}), Reason.AboveVoucherLimit, alice, pool, sport)
    cp.redeem(v, s, 1, 0, {"from": pool})
    refused(lambda: cp.redeem(v, s, 999, 0, {"from": pool}), Reason.NonceUsed, alice, pool, sport)
    assert cp.balanceOf(alice, sport) == CREDIT - 1


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_redeem_expired_voucher(cp, sport, pool, alice, sign):
    deadline = latest_time() + 20
    v, s = sign(alice, pool, sport, 100, deadline=deadline)
    next_block_at(deadline + 1)
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), Reason.VoucherExpired, alice, pool, sport)


def test_redeem_replay(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100, nonce=9)
    cp.redeem(v, s, v[3], 0, {"from": pool})
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), Reason.NonceUsed, alice, pool, sport)
    assert cp.balanceOf(alice, sport) == CREDIT - 100


def test_redeem_by_someone_else_than_the_named_provider(cp, sport, pool, museum, alice, sign, roles):
    v, s = sign(alice, pool, sport, 100)
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": museum}), Reason.WrongProvider, alice, museum, sport)
    for caller in (roles.stranger, alice):  # not a provider at all: that is said first
        refused(lambda: cp.redeem(v, s, v[3], 0, {"from": caller}), Reason.NotAProvider, alice, caller, sport)


def test_redeem_self_signed_voucher_by_non_provider(cp, sport, alice, bob, sign):
    """A voucher naming a non-provider is signed correctly but the credit move is refused,
    with the code checkVoucher gives (v1 said TransferNotAllowed here)."""
    v, s = sign(alice, bob, sport, 100)
    assert cp.checkVoucher(v, bob, s, 100) == Reason.NotAProvider
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": bob}), Reason.NotAProvider, alice, bob, sport)


def test_redeem_provider_limit_boundary(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 5_000, nonce=1)
    cp.redeem(v, s, v[3], 0, {"from": pool})
    v, s = sign(alice, pool, sport, 5_001, nonce=2)
    assert cp.checkVoucher(v, pool, s, 5_001) == Reason.AboveProviderLimit
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), Reason.AboveProviderLimit, alice, pool, sport)


def test_redeem_wrong_category(cp, sport, museum, alice, sign):
    v, s = sign(alice, museum, sport, 100)
    assert cp.checkVoucher(v, museum, s, 100) == Reason.CategoryNotApproved
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": museum}), Reason.CategoryNotApproved, alice, museum, sport)


def test_redeem_failed_voucher_keeps_its_nonce_free(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 5_001, nonce=4)
    with pytest.raises(Exception):
        cp.redeem(v, s, v[3], 0, {"from": pool})
    assert not cp.isNonceUsed(alice, sport, 4)
    v, s = sign(alice, pool, sport, 5_000, nonce=4)
    cp.redeem(v, s, v[3], 0, {"from": pool})


# ---------------------------------------------------------------- batch
def test_redeem_batch_skips_bad_vouchers(cp, sport, pool, alice, bob, sign, roles):
    good1 = sign(alice, pool, sport, 100, nonce=0)
    good2 = sign(bob, pool, sport, 200, nonce=0)
    used = sign(alice, pool, sport, 300, nonce=1)
    cp.redeem(*used, 300, 0, {"from": pool})
    bad_sig = (sign(alice, pool, sport, 100, nonce=2)[0], good2[1])
    too_much = sign(bob, pool, sport, 6_000, nonce=1)
    cp.suspendPass(bob, {"from": roles.registrar})
    suspended = sign(bob, pool, sport, 100, nonce=2)
    cp.reinstatePass(bob, {"from": roles.registrar})
    cp.suspendPass(bob, {"from": roles.registrar})  # bob's vouchers are now all refused
    batch = [good1, used, bad_sig, too_much, suspended, good1]
    tx = cp.redeemBatch(*batch_args(batch), {"from": pool})
    assert tx.return_value == 1
    skipped = [e.values() for e in tx.events["VoucherSkipped"]]
    assert skipped == [
        [alice, sport, 1, Reason.NonceUsed],
        [alice, sport, 2, Reason.BadSignature],
        [bob, sport, 1, Reason.PassSuspended],
        [bob, sport, 2, Reason.PassSuspended],
        [alice, sport, 0, Reason.NonceUsed],  # the same voucher twice in one batch
    ]
    assert tx.events["Redeemed"].values() == [alice, 0, 0]
    assert cp.balanceOf(alice, sport) == CREDIT - 400 and cp.balanceOf(pool, sport) == 400
    assert not cp.isNonceUsed(bob, sport, 1) and not cp.isNonceUsed(alice, sport, 2)


def test_redeem_batch_with_hot_and_cold_nonces(cp, sport, pool, alice, sign):
    cold_used = sign(alice, pool, sport, 100, nonce=500)
    cp.redeem(*cold_used, 100, 0, {"from": pool})
    batch = [sign(alice, pool, sport, 10, nonce=n) for n in (0, 127, 128, 500, 129)]
    tx = cp.redeemBatch(*batch_args(batch), {"from": pool})
    assert tx.return_value == 4
    assert tx.events["VoucherSkipped"].values() == [alice, sport, 500, Reason.NonceUsed]
    assert [e["nonce"] for e in tx.events["Redeemed"]] == [0, 127, 128, 129]
    assert all(cp.isNonceUsed(alice, sport, n) for n in (0, 127, 128, 129, 500))


def test_redeem_batch_all_good(cp, sport, culture, pool, museum, residents, sign):
    batch = [sign(r, museum, culture, 1_000 + i, nonce=i) for i, r in enumerate(residents[:4])]
    tx = cp.redeemBatch(*batch_args(batch), {"from": museum})
    assert tx.return_value == 4 and "VoucherSkipped" not in tx.events
    assert [e["nonce"] for e in tx.events["Redeemed"]] == [0, 1, 2, 3]
    assert cp.balanceOf(museum, culture) == sum(1_000 + i for i in range(4))


def test_redeem_batch_spends_down_balance_in_order(cp, culture, museum, alice, sign):
    """The second voucher is checked against the balance the first one left."""
    batch = [sign(alice, museum, culture, 6_000, nonce=0), sign(alice, museum, culture, 6_000, nonce=1)]
    tx = cp.redeemBatch(*batch_args(batch), {"from": museum})
    assert tx.return_value == 1
    assert tx.events["VoucherSkipped"].values() == [alice, culture, 1, Reason.InsufficientCredit]


def test_redeem_batch_by_non_provider_redeems_nothing(cp, sport, pool, alice, sign, roles):
    v, s = sign(alice, roles.stranger, sport, 100)
    tx = cp.redeemBatch([v], [s], [100], [0], {"from": roles.stranger})
    assert tx.return_value == 0
    assert tx.events["VoucherSkipped"].values() == [alice, sport, 0, Reason.NotAProvider]


def test_redeem_batch_length_mismatch(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100)
    assert_reverts_with(lambda: cp.redeemBatch([v], [s, s], [1], [0], {"from": pool}), "LengthMismatch(uint256,uint256)", 1, 2)
    assert_reverts_with(lambda: cp.redeemBatch([v], [s], [1, 1], [0], {"from": pool}), "LengthMismatch(uint256,uint256)", 1, 2)
    assert_reverts_with(lambda: cp.redeemBatch([v], [s], [1], [], {"from": pool}), "LengthMismatch(uint256,uint256)", 1, 0)


def test_redeem_batch_empty(cp, pool):
    assert cp.redeemBatch([], [], [], [], {"from": pool}).return_value == 0


def test_redeem_batch_while_paused_skips_everything(cp, sport, pool, alice, sign, roles):
    v, s = sign(alice, pool, sport, 100)
    cp.pause({"from": roles.pauser})
    tx = cp.redeemBatch([v], [s], [100], [0], {"from": pool})
    assert tx.return_value == 0 and tx.events["VoucherSkipped"].values() == [alice, sport, 0, Reason.Paused]
    cp.unpause({"from": roles.pauser})
    assert cp.redeemBatch([v], [s], [100], [0], {"from": pool}).return_value == 1


def test_redeem_batch_takes_the_typed_amounts_and_co_payments(cp, sport, pool, alice, bob, sign):
    batch = [sign(alice, None, sport, 2_000, nonce=5), sign(bob, pool, sport, 2_000, nonce=5)]
    tx = cp.redeemBatch(*batch_args(batch, [700, 2_001], [300, 0]), {"from": pool})
    assert tx.return_value == 1
    assert tx.events["Redeemed"].values() == [alice, 5, 300]
    assert tx.events["VoucherSkipped"].values() == [bob, sport, 5, Reason.AboveVoucherLimit]
    assert cp.balanceOf(alice, sport) == CREDIT - 700
