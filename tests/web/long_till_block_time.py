"""The long version of tests/web/test_till_block_time.py (its docstring says what the till must
do on 2-second blocks), for `make networks-long` (CITYPASS_LONG=1: four residents and a paper
coupon sheet in the module's world): four payments in a row and a paper coupon, a wallet that
fails after sending, and a reorganisation while the till counts confirmations. The file name
does not start with test_, so `make test` does not collect it; networks-long names it."""

from __future__ import annotations

import pytest

from passes import Entry, pass_qr
from test_till_block_time import (  # noqa: F401  (the module's fixtures and helpers)
    CONFIRMATIONS, LAST_SENT, LONG, WATCH, anvil, chain, pay_and_follow, paid_deep_enough, scan, server,
    stages, world,
)

from tests.network_helpers import rpc

pytestmark = pytest.mark.v2

if not LONG:
    raise RuntimeError("long_till_block_time.py needs CITYPASS_LONG=1 (make networks-long): its world has four residents and a sheet")

IN_A_ROW = [(1, 0, "5,00", 500), (1, 1, "7,25", 725), (2, 0, "5,00", 500), (2, 1, "7,25", 725)]


def test_a_wallet_that_fails_after_sending_is_looked_up_as_deep_as_asked(open_till, world, chain, server):
    """No hash from the wallet: the till finds the payment through the voucher's nonce and says
    "Betaald" only once that is 2 blocks deep too."""
    who = world.people[2]
    code = pass_qr(who, server.api("deployment")["chain_id"], chain.contract, [Entry(world.sport, 5_000, 7)], chain.now() + 600)
    till = open_till("failAfterSend")
    till.connect()
    till.type_code(code)
    till.page.evaluate(WATCH)
    before = chain.balance(who.address, world.sport)
    till.amount("2,00")
    chain.next_block()
    till.page.click("#pay")
    till.page.wait_for_selector("#pay-status >> text=Even nakijken", timeout=10_000)
    assert till.page.is_disabled("#pay")
    till.page.wait_for_selector("#paid", timeout=30_000)
    head = chain.head()
    mined = [int(e["blockNumber"], 16) for e in chain.redemptions(who.address)]
    assert head - max(mined) >= CONFIRMATIONS, (head, mined)
    assert chain.balance(who.address, world.sport) == before - 200
    till.state("till-blocktime-looked-up-paid")


# ------------------------------------------------------------------ more payments, a paper coupon
def test_payments_in_a_row_and_a_paper_coupon(open_till, world, chain, server):
    chain_id = server.api("deployment")["chain_id"]
    for person, nonce, euros, cents in IN_A_ROW:
        who = world.people[person]
        code = pass_qr(who, chain_id, chain.contract, [Entry(world.sport, 5_000, nonce)], chain.now() + 600)
        till = scan(open_till, world, chain, code, camera=(person + nonce) % 2 == 0)
        pay_and_follow(till, world, chain, who.address, euros, cents)
        till.close()
    pq, text = world.sheet["codes"][0]  # a paper coupon, charged at its face value
    face = pq.entries[0].max_amount
    till = scan(open_till, world, chain, text, camera=False)
    assert till.page.is_visible("#coupon-face")
    pay_and_follow(till, world, chain, pq.holder, f"{face // 100},{face % 100:02d}", face)
    till.state("till-blocktime-coupon-paid")


# ------------------------------------------------------------------ a reorganisation while counting
@pytest.mark.parametrize("comes_back", [True, False], ids=["re-included", "gone"])
def test_a_reorg_while_counting_sends_the_till_back_to_waiting(open_till, world, chain, server, comes_back):
    who = world.people[3]
    nonce = 0 if comes_back else 1
    before = chain.balance(who.address, world.sport)
    code = pass_qr(who, server.api("deployment")["chain_id"], chain.contract, [Entry(world.sport, 5_000, nonce)],
                   chain.now() + 600)
    till = scan(open_till, world, chain, code, camera=False)
    till.amount("3,00")
    chain.next_block()
    till.page.click("#pay")
    till.page.wait_for_selector("#waiting[data-stage='confirming']", timeout=10_000)
    chain.pause()
    try:
        tx = till.page.evaluate(LAST_SENT)
        raw = rpc(chain.url, "eth_getRawTransactionByHash", [tx])
        mined = int(rpc(chain.url, "eth_getTransactionReceipt", [tx])["blockNumber"], 16)
        rpc(chain.url, "anvil_reorg", [chain.head() - mined + 1, []])  # its block replaced by an empty one
        assert rpc(chain.url, "eth_getTransactionReceipt", [tx]) is None
        till.page.wait_for_selector("#waiting[data-stage='pending']", timeout=10_000)
        assert till.page.is_disabled("#pay") and not till.page.is_visible("#paid")
        if comes_back:
            assert rpc(chain.url, "eth_sendRawTransaction", [raw]) == tx  # the same signed bytes, again
    finally:
        chain.resume()
    seen_before = stages(till)
    assert "paid" not in seen_before and seen_before[-1] == "pending:", seen_before
    if comes_back:
        paid_deep_enough(till, chain)
        assert chain.balance(who.address, world.sport) == before - 300
        assert len([e for e in chain.redemptions(who.address) if e["transactionHash"] == tx]) == 1
    else:
        till.page.wait_for_selector("#pay-status >> text=niet doorgegaan", timeout=40_000)
        assert "er is niets afgeschreven" in till.text("#pay-status")
        assert chain.balance(who.address, world.sport) == before
        assert not [e for e in chain.redemptions(who.address) if e["transactionHash"] == tx]
        assert not till.page.is_disabled("#pay")
    assert "paid" not in stages(till)[:-1], stages(till)  # never "Betaald" and then taken back
    till.state(f"till-blocktime-reorg-{'paid' if comes_back else 'not-paid'}")

