"""Many single redemptions from one wallet, sent back to back (redemption.redeem_many), and
the sending path under it: receipts formatted like web3's, stalled local mining recovered."""

from __future__ import annotations

import pytest
from web3._utils.method_formatters import receipt_formatter
from web3.datastructures import AttributeDict

from citypass import passqr, redemption, tx
from citypass import voucher as V
from citypass.clock import next_block_time
from citypass.reasons import Reason
from tests.ops_helpers import World, enrol_and_credit, make_world, synthetic_account


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("redeem-many"))


@pytest.fixture(scope="module")
def residents(world: World):
    people = [synthetic_account(f"many-resident-{i}") for i in range(12)]
    enrol_and_credit(world, people, world.sport, 2_000, "redeem-many-sport")
    return people


@pytest.fixture
def w(world, residents):
    yield from world.rolled_back()


def _voucher(w: World, person, max_amount: int, nonce: int, provider=None) -> V.SignedVoucher:
    provider = provider.address if provider else passqr.ANY_PROVIDER
    v = V.Voucher(person.address, provider, w.sport, max_amount, nonce, next_block_time(w.chain) + 3_600)
    return V.sign(v, person.key, w.chain.chain_id, w.dep.address)


def _scans(vouchers, amount: int) -> list[redemption.Scan]:
    return [redemption.Scan(v, amount) for v in vouchers]


def test_redeems_each_voucher_once_and_refuses_the_rest_with_reasons(w, residents):
    good = _scans([_voucher(w, p, 2_000, 0) for p in residents[:8]], 500)
    replay_in_list = good[0]  # the same voucher twice in one list: only the first may go
    # the 64-byte (EIP-2098) form of one signature is the same voucher: duplicates are found by
    # holder, budget and nonce, never by signature bytes
    compact = redemption.Scan(V.SignedVoucher(good[1].signed.voucher, passqr.to_compact(good[1].signed.signature),
                                              w.chain.chain_id, w.dep.address), 500)
    too_much = redemption.Scan(_voucher(w, residents[8], 3_000, 0), 3_000)  # holds 20 euro
    other_provider = redemption.Scan(_voucher(w, residents[9], 100, 0, provider=w.museum), 100)
    above_limit = redemption.Scan(_voucher(w, residents[10], 100, 0), 101)
    before = [w.f.balanceOf(p.address, w.sport).call() for p in residents]
    pool_before = w.f.balanceOf(w.pool.address, w.sport).call()

    outcomes = redemption.redeem_many(w.dep, w.pool, good + [replay_in_list, compact, too_much, other_provider,
                                                             above_limit])

    assert [type(o).__name__ for o in outcomes] == ["Redemption"] * 8 + ["VoucherRefused"] * 5
    assert outcomes[8].reason == Reason.NonceUsed and outcomes[9].reason == Reason.NonceUsed
    assert outcomes[10].reason == Reason.InsufficientCredit
    assert outcomes[11].reason == Reason.WrongProvider and "made out to provider" in str(outcomes[11])
    assert outcomes[12].reason == Reason.AboveVoucherLimit
    after = [w.f.balanceOf(p.address, w.sport).call() for p in residents]
    assert [b - a for a, b in zip(after, before)] == [500] * 8 + [0] * 4
    assert w.f.balanceOf(w.pool.address, w.sport).call() - pool_before == 8 * 500
    assert len({o.tx_hash for o in outcomes[:8]}) == 8
    for o in outcomes[:8]:
        assert w.f.isNonceUsed(o.voucher.holder, w.sport, 0).call()


def test_receipt_logs_are_formatted_like_web3s(w, residents):
    receipt = tx.send(w.chain, w.pool, w.f.redeem(*_args(_voucher(w, residents[0], 100, 5)), 100, 0))
    raw = w.chain.rpc("eth_getTransactionReceipt", ["0x" + bytes(receipt.transactionHash).hex()])
    assert len(raw["logs"]) >= 2
    assert tx._format_receipt(raw) == AttributeDict.recursive(receipt_formatter(raw))


def test_pending_transactions_on_a_stalled_local_miner_are_mined(w, residents):
    """Anvil's automine can leave ready transactions in its pool (foundry-rs/foundry#10122):
    with automine off the transactions stay pending until the client nudges the miner."""
    w.chain.rpc("evm_setAutomine", [False])
    try:
        outcomes = redemption.redeem_many(w.dep, w.pool, _scans([_voucher(w, p, 100, 7) for p in residents[:3]], 100))
    finally:
        w.chain.rpc("evm_setAutomine", [True])
    assert all(isinstance(o, redemption.Redemption) for o in outcomes)
    assert w.chain.rpc("txpool_status")["pending"] == "0x0"


def _args(s: V.SignedVoucher) -> tuple:
    return s.voucher.contract_args(), V.compact_signature(s)
