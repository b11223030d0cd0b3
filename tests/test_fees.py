"""Fees on an EIP-1559 chain (a plain Anvil): `--max-fee ETH` caps what one command may pay in
fees. A send whose worst case (every gas limit used at the highest fee it offers) would go
above it is refused before anything is signed, and the message says what it would cost; a
command of several transactions counts them together; a replacement of a transaction that
waits below a spiking base fee (the existing replace-at-nonce) must fit the cap too."""

from __future__ import annotations

import threading
import time

import pytest

from citypass import keys, tx
from citypass.chain import connect
from citypass.errors import CityPassError
from tests.network_helpers import Anvil, citypass, nonce, rpc, wait_until
from tests.web_helpers import DEV, make_world, resident

GWEI = 10**9


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own Anvil, not Brownie's."""


@pytest.fixture(scope="module")
def anvil():
    node = Anvil()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def world(anvil, tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("citypass-fees"), rpc=anvil.url)


def spike(anvil, gwei: int) -> None:
    rpc(anvil.url, "anvil_setNextBlockBaseFeePerGas", [hex(gwei * GWEI)])
    rpc(anvil.url, "evm_mine")


def test_a_command_under_its_cap_is_sent(anvil, world):
    result = citypass(world.workdir, anvil.url, "--max-fee", "0.01", "category", "define", "6", "dance")
    assert result.returncode == 0, result.stderr


def test_a_fee_spike_above_the_cap_is_refused_and_says_what_it_would_cost(anvil, world):
    budget_manager = DEV[1]
    before = nonce(anvil.url, budget_manager)
    spike(anvil, 2_000)  # 2,000 gwei base fee
    result = citypass(world.workdir, anvil.url, "--max-fee", "0.01", "category", "define", "7", "film")
    assert result.returncode == 1
    err = result.stderr
    assert "would cost up to" in err and "ETH in fees" in err and "above the --max-fee of 0.010000 ETH" in err
    assert "the base fee is 2000.000 gwei now" in err or "the base fee is 1" in err  # it decays a little per block
    assert "nothing more was sent" in err
    assert nonce(anvil.url, budget_manager) == before  # nothing signed and sent
    again = citypass(world.workdir, anvil.url, "--max-fee", "1", "category", "define", "7", "film")
    assert again.returncode == 0, again.stderr  # a higher cap: sent


def test_the_cap_counts_every_transaction_of_a_command(anvil, world):
    chain = connect(anvil.url, workdir=world.workdir, max_fee=10**18)
    sender, to = keys.dev_account(9), resident("fees-to").address
    for _ in range(2):
        tx.send(chain, sender, tx.Transfer(to), value=1, gas=21_000)
    spent = chain.fee_spent
    assert spent > 0
    fee = tx.fees(chain)
    chain.max_fee = spent + 21_000 * fee["maxFeePerGas"] // 2  # half of what a third would cost at worst
    before = nonce(anvil.url, sender.address)
    with pytest.raises(CityPassError, match=r"sending 1 transaction\(s\) would cost up to .* of which .* is spent already"):
        tx.send(chain, sender, tx.Transfer(to), value=1, gas=21_000)
    assert nonce(anvil.url, sender.address) == before


def test_bad_max_fee_is_a_usage_error(world, anvil):
    result = citypass(world.workdir, anvil.url, "--max-fee", "lots", "category", "list")
    assert result.returncode == 2 and "--max-fee must be an amount of ETH such as 0.05, not 'lots'" in result.stderr


def _send_in_thread(chain, sender, fn):
    result: dict = {}

    def run():
        try:
            result["receipt"] = tx.send(chain, sender, fn, gas=21_000, value=1)
        except CityPassError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _waiting_tx(anvil, address):
    for _ in range(200):
        pool = rpc(anvil.url, "txpool_content")["pending"].get(address) or \
            rpc(anvil.url, "txpool_content")["pending"].get(address.lower()) or {}
        if pool:
            return next(iter(pool.values()))
        time.sleep(0.02)
    raise AssertionError("nothing in the pool")


@pytest.mark.parametrize("capped", [False, True], ids=["replaced-at-its-nonce", "replacement-above-the-cap"])
def test_a_transaction_below_a_spiking_base_fee(anvil, world, monkeypatch, capped):
    monkeypatch.setattr(tx, "STUCK_AFTER", 0.3)
    sender = keys.dev_account(9 if capped else 6)
    chain = connect(anvil.url, workdir=world.workdir)
    if capped:
        chain.max_fee = 21_000 * tx.fees(chain)["maxFeePerGas"] * 105 // 100  # the first price fits, a bump does not
    before = nonce(anvil.url, sender.address)
    rpc(anvil.url, "evm_setAutomine", [False])
    try:
        thread, result = _send_in_thread(chain, sender, tx.Transfer(resident("fees-spike").address))
        sent = _waiting_tx(anvil, sender.address)
        spike(anvil, int(sent["maxFeePerGas"], 16) * 10 // GWEI + 1)  # the base fee jumps above its offer
        assert rpc(anvil.url, "eth_getTransactionReceipt", [sent["hash"]]) is None
        time.sleep(1.0)
        rpc(anvil.url, "evm_mine")
        thread.join(30)
    finally:
        rpc(anvil.url, "evm_setAutomine", [True])
    if capped:
        assert "error" in result and "replacing it at" in str(result["error"]) and "more than the --max-fee" in str(result["error"])
        assert nonce(anvil.url, sender.address) == before  # not replaced, not mined
        rpc(anvil.url, "anvil_dropAllTransactions")
    else:
        assert "receipt" in result, result
        mined = rpc(anvil.url, "eth_getTransactionByHash", ["0x" + bytes(result["receipt"]["transactionHash"]).hex()])
        assert mined["hash"] != sent["hash"] and mined["nonce"] == sent["nonce"]
        assert nonce(anvil.url, sender.address) == before + 1


def test_a_replacement_of_a_transaction_mined_meanwhile_is_no_error(anvil, world):
    """_unstick looks a waiting transaction up, then replaces or re-offers it; when it is mined
    in between, the node answers "nonce too low". That is no failure: the receipt of the
    transaction already sent is what the waiting finds."""
    sender = keys.dev_account(7)
    chain = connect(anvil.url, workdir=world.workdir)
    fee = tx.fees(chain)
    call = tx._call_params(tx.Transfer(resident("fees-meanwhile").address), sender.address, 1)
    n = nonce(anvil.url, sender.address)
    raw = tx._sign(sender, chain, call, 21_000, n, fee)
    pending = tx._Pending(call, 21_000, n, fee, [raw], [rpc(anvil.url, "eth_sendRawTransaction", ["0x" + raw.hex()])])
    wait_until("the transfer mined", lambda: rpc(anvil.url, "eth_getTransactionReceipt", [pending.hashes[0]]) is not None)
    tx._replace(chain, sender, pending, {k: v * 2 for k, v in fee.items()})  # the replacement comes too late
    assert len(pending.hashes) == len(pending.raws) == 1  # nothing new is waited for
    assert tx._broadcast(chain, raw, already_ok=True) is None  # the re-offer of the mined bytes: "nonce too low"
    assert [r["status"] for r in tx._wait_receipts(chain, sender, [pending], 10)] == ["0x1"]
