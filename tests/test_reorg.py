"""Reorgs on a plain Anvil through --rpc (anvil_reorg), after CityPass has seen its
transaction mined, for an issuance batch, a settlement, a redemption (the library path the
till's server uses) and an enrolment. In each case, with `--confirmations 3`:

- the command is not done while its transaction is mined but less than 3 blocks deep;
- a reorg that takes the transaction out before then is followed (the same signed bytes
  offered again, never signed anew) and the command reports it done once it is 3 deep;
- a reorg deeper than 3 after it was reported is detected: the next command says which
  transaction left its block, and a re-run finishes it exactly once;
- the event index rolls back and follows the new chain, and the report's and the
  dashboard's figures agree with the chain afterwards.

Not the embedded durable chain: its journal would replay a reorged-away transaction, which
is right for crashes, not for reorgs (tests/test_reorg_embedded.py: a restart is no reorg)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from citypass import events as E
from citypass import keys, passqr, redemption, report, reported
from citypass.chain import connect
from citypass.contract import open_deployment
from citypass.index import EventIndex
from citypass.web.api import Service
from citypass.web.dashboard_data import DashboardState
from tests.network_helpers import Anvil, Miner, citypass, rpc, wait_until
from tests.web_helpers import DEV, POOL, make_world, pass_qr, redeem, resident

N = 3  # --confirmations in these tests


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
    return make_world(tmp_path_factory.mktemp("citypass-reorg"), rpc=anvil.url)


def contract_tx_after(url: str, contract: str, after: int) -> tuple[str, int] | None:
    """(hash, block) of the first transaction to `contract` in a block above `after`."""
    head = int(rpc(url, "eth_blockNumber"), 16)
    for n in range(after + 1, head + 1):
        for t in rpc(url, "eth_getBlockByNumber", [hex(n), True])["transactions"]:
            if (t.get("to") or "").lower() == contract.lower():
                return t["hash"], n
    return None


def receipt(url: str, tx: str) -> dict | None:
    return rpc(url, "eth_getTransactionReceipt", [tx])


def pooled_tx(url: str, contract: str) -> bool:
    pending = rpc(url, "txpool_content")["pending"]
    return any((t.get("to") or "").lower() == contract.lower() for txs in pending.values() for t in txs.values())


def follow_a_shallow_reorg(anvil, world, finished) -> tuple[str, int]:
    """Holds block production until the command's transaction waits in the pool, mines it and
    one block on top (so it is mined, 1 deep, and the command has seen it: it polls every
    20 ms), checks the command is not done yet, then reorganises those blocks away
    (anvil_reorg) and lets blocks come again. Returns (tx hash, the block it was first in)."""
    url, contract = anvil.url, world.dep.address
    MINER.pause()
    head0 = anvil.head()
    wait_until("the command's transaction in the pool", lambda: pooled_tx(url, contract), timeout=120)
    rpc(url, "evm_mine")
    rpc(url, "evm_mine")
    tx, block = contract_tx_after(url, contract, head0)
    wait_until("the command to see its receipt", lambda: time.sleep(1.5) or True)
    assert not finished(), "reported done before its transaction was 3 blocks deep"
    rpc(url, "anvil_reorg", [anvil.head() - block + 1, []])  # its block and the one above: replaced, empty
    assert receipt(url, tx) is None
    MINER.resume()
    return tx, block


MINER: Miner  # the running miner of the test (set by `mining`)


@pytest.fixture
def mining(anvil):
    global MINER
    with Miner(anvil.url, interval=0.25) as miner:
        MINER = miner
        yield miner


def deep_reorg(anvil, tx: str) -> None:
    """A reorg deeper than N after the command reported `tx` done: its block and all above
    replaced by as many empty blocks."""
    r = receipt(anvil.url, tx)
    assert r is not None and anvil.head() - int(r["blockNumber"], 16) >= N  # it was reported N deep
    MINER.pause()
    rpc(anvil.url, "anvil_reorg", [anvil.head() - int(r["blockNumber"], 16) + 1, []])
    assert receipt(anvil.url, tx) is None
    MINER.resume()


def check_index_and_figures(world, index: EventIndex, expect_rollback: bool) -> None:
    """The index follows the chain (after a rollback to the common ancestor), and the
    report's and the dashboard's figures agree with the chain."""
    result = index.sync()
    assert (result.rolled_back_to is not None) == expect_rollback, result
    assert not result.rebuilt
    full = E.fetch_events(world.dep)
    assert [(r.block, r.log_index, r.tx_hash.lower()) for r in index.records()] == \
        [(r.block, r.log_index, r.tx_hash.lower()) for r in full]
    summary = report.summarize(index.activity())
    assert report.verify_against_chain(summary, world.dep.contract)  # raises on any gap
    service = Service(world.dep.chain, world.dep, index)
    snap, tip = DashboardState(service).snapshot(checked=True)
    assert snap.ok, [c.text for c in snap.checks if not c.ok]
    on_chain = sum(world.dep.contract.functions.budgetTotals(b.budget).call()[1] for b in summary.budgets)
    assert sum(b.issued for b in snap.summary.budgets) == on_chain == sum(b.issued for b in summary.budgets)


@pytest.fixture
def index(world, tmp_path):
    idx = EventIndex(world.dep, tmp_path / "index.sqlite", chunk=4)
    idx.sync()
    yield idx
    idx.close()


def run_through_reorgs(anvil, world, index, args: list[str]) -> tuple[str, str]:
    """The CLI command `args` with --confirmations N through a shallow reorg, then a deep
    one, then its re-run. Returns (the re-run's stderr, its stdout)."""
    proc = citypass(world.workdir, anvil.url, "--confirmations", str(N), "--json", *args, wait=False)
    tx, _ = follow_a_shallow_reorg(anvil, world, lambda: proc.poll() is not None)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "the chain reorganised" in err and "nothing is signed again" in err
    assert receipt(anvil.url, tx) is not None  # the same signed transaction, mined again
    check_index_and_figures(world, index, expect_rollback=False)  # the index never saw the dropped fork
    deep_reorg(anvil, tx)
    again = citypass(world.workdir, anvil.url, "--confirmations", str(N), "--json", *args)
    assert again.returncode == 0, again.stderr
    assert f"the chain reorganised deeper than {N} confirmation(s): transaction {tx}" in again.stderr
    check_index_and_figures(world, index, expect_rollback=True)
    return again.stderr, again.stdout


def test_an_issuance_batch(anvil, world, index, mining, tmp_path):
    alice = world.alice.address
    listing = tmp_path / "reorg-credit.csv"
    listing.write_text(f"holder,amount\n{alice},7.00\n")
    f = world.dep.contract.functions
    before = f.balanceOf(alice, world.sport).call()
    args = ["issue", str(listing), "--budget", "1", "--tranche", "reorg"]
    run_through_reorgs(anvil, world, index, args)
    assert f.balanceOf(alice, world.sport).call() == before + 700  # exactly once
    third = citypass(world.workdir, anvil.url, "--confirmations", str(N), *args)
    assert third.returncode == 0 and "nothing to send" in third.stderr
    assert f.balanceOf(alice, world.sport).call() == before + 700


def test_an_enrolment(anvil, world, index, mining):
    carol = resident("reorg-carol").address
    f = world.dep.contract.functions
    until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 200 * 86_400))
    run_through_reorgs(anvil, world, index, ["pass", "enroll", carol, "--valid-until", until])
    assert f.passOf(carol).call()[0] == 1  # active, once (a second enrolment would revert)
    assert len([e for e in E.fetch_events(world.dep, names=["PassesEnrolled", "PassEnrolled"])
                if carol in json.dumps(e.args)]) == 1


def test_a_settlement(anvil, world, index, mining):
    MINER.pause()
    rpc(anvil.url, "evm_setAutomine", [True])
    redeem(world, world.bob, world.sport, 300)
    rpc(anvil.url, "evm_setAutomine", [False])
    MINER.resume()
    f = world.dep.contract.functions
    held = f.balanceOf(POOL, world.sport).call()
    assert held >= 300
    settled_before = f.budgetTotals(world.sport).call()[2]
    run_through_reorgs(anvil, world, index, ["settle", "--provider", POOL, "--reference", "REORG-2026-001"])
    assert f.balanceOf(POOL, world.sport).call() == 0
    assert f.budgetTotals(world.sport).call()[2] == settled_before + held  # paid once
    refs = [e for e in E.fetch_events(world.dep, names=["Settled"])]
    assert len([e for e in refs if e.tx_hash]) == len({e.tx_hash for e in refs})


def test_a_redemption_through_the_library(anvil, world, index, mining):
    """redemption.redeem, which the till's server path and `citypass redeem` use, on a chain
    connected with confirmations=N (the library parameter)."""
    chain = connect(anvil.url, workdir=world.workdir, confirmations=N)
    dep = open_deployment(chain, world.dep.address, world.workdir)
    signed = pass_qr(world, world.alice, world.culture, 250).for_budget(world.culture)
    museum = keys.dev_account(DEV.index(DEV[8]))
    f = world.dep.contract.functions
    before = f.balanceOf(world.alice.address, world.culture).call()
    done: list = []
    errors: list = []

    def pay():
        try:
            done.append(redemption.redeem(dep, museum, signed, 250))
        except Exception as exc:  # noqa: BLE001 - the test says what failed
            errors.append(exc)

    worker = threading.Thread(target=pay)
    worker.start()
    tx, _ = follow_a_shallow_reorg(anvil, world, lambda: bool(done or errors))
    worker.join(120)
    assert not errors and done, errors
    assert done[0].tx_hash.lower() == tx.lower()  # the same signed transaction, mined again
    check_index_and_figures(world, index, expect_rollback=False)
    deep_reorg(anvil, tx)
    found = reported.check(chain, say=False)
    assert [r.tx_hash for r in found] == [tx] and found[0].now_block is None and found[0].confirmations == N
    assert "deeper than 3 confirmation(s)" in found[0].sentence()
    assert reported.check(chain, say=False) == []  # said once
    redemption.redeem(dep, museum, signed, 250)  # the re-run: the voucher's nonce is free again on this chain
    with pytest.raises(Exception, match="already used"):
        redemption.redeem(dep, museum, signed, 250)
    assert f.balanceOf(world.alice.address, world.culture).call() == before - 250  # once
    check_index_and_figures(world, index, expect_rollback=True)


def test_confirmations_on_an_automining_dev_chain(anvil, world, tmp_path):
    """On a dev chain that mines only for transactions, --confirmations N mines the N blocks
    on top itself (else it would wait for ever), and the command reports once they are there."""
    head = anvil.head()
    result = citypass(world.workdir, anvil.url, "--confirmations", "2", "--json", "category", "define", "5", "music")
    assert result.returncode == 0, result.stderr
    tx, block = contract_tx_after(anvil.url, world.dep.address, head)
    assert anvil.head() >= block + 2
