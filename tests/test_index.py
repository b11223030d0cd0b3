"""The event index (citypass/index.py) on a plain Anvil started here: it reads every event
once, follows new blocks, rolls back to the common ancestor on a reorg (anvil_reorg,
anvil_rollback, a reverted snapshot, a reorg in the middle of a read) and reads again,
and a rebuild from scratch gives the same records as a full scan of the chain."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import requests

from citypass import events as E
from citypass import index as I
from citypass.chain import connect
from citypass.index import EventIndex
from tests.web_helpers import MUSEUM, POOL, free_port, make_world, redeem


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own Anvil, not Brownie's."""


@pytest.fixture(scope="module")
def anvil():
    port = free_port()
    proc = subprocess.Popen([shutil.which("anvil"), "--port", str(port), "--quiet", "--accounts", "10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def world(anvil, tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("citypass-index"), rpc=anvil)


@pytest.fixture
def index(world, tmp_path):
    idx = EventIndex(world.dep, tmp_path / "index.sqlite", chunk=3)  # small chunks: many chunk borders
    yield idx
    idx.close()


@pytest.fixture
def snapshot(world):
    """Each test leaves the chain as it found it."""
    chain = world.dep.chain
    snap = chain.rpc("evm_snapshot")
    yield
    chain.rpc("evm_revert", [snap])


def rows(records) -> list[tuple]:
    return [(r.block, r.log_index, r.tx_hash.lower(), r.name, r.timestamp, r.args) for r in records]


def full_scan(world) -> list[tuple]:
    return rows(E.fetch_events(world.dep))


def head(world) -> int:
    return world.dep.chain.w3.eth.block_number


def mine(world, n: int) -> None:
    for _ in range(n):
        world.dep.chain.rpc("evm_mine")


def test_sync_reads_every_event_once_and_follows(world, index, snapshot):
    first = index.sync()
    assert first.from_block == world.dep.block and first.to_block == head(world) and first.rolled_back_to is None
    assert rows(index.records()) == full_scan(world) and first.events == len(full_scan(world)) > 10
    assert index.sync().events == 0  # nothing new: nothing read twice
    r = redeem(world, world.alice, world.sport, 500)
    mine(world, 4)
    follow = index.sync()
    assert follow.from_block == first.to_block + 1 and follow.events == 2  # TransferSingle + Redeemed
    assert rows(index.records()) == full_scan(world)
    assert [x.tx_hash for x in index.activity().redemptions] == [r.tx_hash.lower()]


def test_a_reorg_rolls_back_to_the_common_ancestor(world, index, snapshot):
    chain = world.dep.chain
    index.sync()
    before = head(world)
    snap = chain.rpc("evm_snapshot")
    gone = redeem(world, world.alice, world.sport, 700)
    mine(world, 2)
    index.sync()
    assert index.count("Redeemed") == 1 and index.tip == before + 3
    # The other fork: the redemption never happened; a museum visit instead, and a longer chain.
    chain.rpc("evm_revert", [snap])
    mine(world, 1)
    other = redeem(world, world.bob, world.culture, 200, MUSEUM)
    mine(world, 3)
    result = index.sync()
    assert result.rolled_back_to is not None and result.rolled_back_to <= before and not result.rebuilt
    assert rows(index.records()) == full_scan(world)
    txs = {x.tx_hash for x in index.activity().redemptions}
    assert other.tx_hash.lower() in txs and gone.tx_hash.lower() not in txs
    assert index.stored_hash(index.tip) == chain.rpc("eth_getBlockByNumber", [hex(index.tip), False])["hash"]


def test_anvil_reorg_at_the_same_height(world, index):  # (Anvil drops its snapshots on a reorg)
    redeem(world, world.alice, world.sport, 100)
    index.sync()
    tip = index.tip
    world.dep.chain.rpc("anvil_reorg", [2, []])  # the last two blocks replaced, the redemption dropped
    assert head(world) == tip
    result = index.sync()
    assert result.rolled_back_to is not None and result.rolled_back_to < tip
    assert rows(index.records()) == full_scan(world)
    assert index.count("Redeemed") == len([r for r in full_scan(world) if r[3] == "Redeemed"])


def test_anvil_rollback_to_a_lower_head(world, index):
    redeem(world, world.alice, world.sport, 100)
    mine(world, 2)
    index.sync()
    world.dep.chain.rpc("anvil_rollback", [3])  # head goes down by three blocks (the redemption with it)
    result = index.sync()
    assert result.rolled_back_to is not None and index.tip == head(world)
    assert index.count("Redeemed") == 0 and rows(index.records()) == full_scan(world)
    redeem(world, world.bob, world.sport, 300)  # and it follows the chain from there
    index.sync()
    assert index.count("Redeemed") == 1 and rows(index.records()) == full_scan(world)


def test_a_reorg_in_the_middle_of_a_read(world, index, snapshot, monkeypatch):
    """The chain reorganises between the read of a chunk's logs and the check of its hashes:
    the chunk is thrown away and read again, so no mix of two forks is ever stored."""
    chain = world.dep.chain
    index.sync()
    redeemed = index.count("Redeemed")
    snap = chain.rpc("evm_snapshot")
    gone = redeem(world, world.alice, world.sport, 900)
    mine(world, 1)
    real = E.iter_log_chunks
    fired = []

    def reorg_while_reading(*args, **kw):
        for part in real(*args, **kw):
            if not fired and any(int(log["blockNumber"], 16) > (index.tip or 0) for log in part):
                fired.append(True)
                chain.rpc("evm_revert", [snap])  # the redemption's fork disappears...
                mine(world, 3)  # ...for a longer one without it
            yield part  # the stale logs of the old fork

    monkeypatch.setattr(I.E, "iter_log_chunks", reorg_while_reading)
    index.sync()
    assert fired and index.count("Redeemed") == redeemed
    assert gone.tx_hash.lower() not in {r.tx_hash for r in index.records()}
    assert rows(index.records()) == full_scan(world)


def test_rebuild_gives_the_same_records(world, index, snapshot):
    redeem(world, world.alice, world.sport, 250)
    index.sync()
    incremental = rows(index.records())
    result = index.rebuild()
    assert result.rebuilt and rows(index.records()) == incremental == full_scan(world)


def test_reopened_index_carries_on(world, tmp_path, snapshot):
    path = tmp_path / "again.sqlite"
    idx = EventIndex(world.dep, path)
    idx.sync()
    tip, count = idx.tip, idx.count()
    idx.close()
    redeem(world, world.bob, world.sport, 100)
    again = EventIndex(world.dep, path)
    assert again.tip == tip and again.count() == count
    assert again.sync().events == 2 and rows(again.records()) == full_scan(world)
    again.close()


def test_another_deployment_starts_a_fresh_index(world, tmp_path):
    path = tmp_path / "other.sqlite"
    idx = EventIndex(world.dep, path)
    idx.sync()
    idx.db.execute("UPDATE meta SET value = '0xdead' WHERE key = 'contract'")
    idx.close()
    fresh = EventIndex(world.dep, path)
    assert fresh.tip is None and fresh.count() == 0
    fresh.sync()
    assert rows(fresh.records()) == full_scan(world)
    fresh.close()


def test_party_queries_join_whole_transactions(world, index, snapshot):
    r = redeem(world, world.alice, world.sport, 400)
    index.sync()
    mine_only = index.records(party=world.alice.address)
    assert {x.name for x in mine_only} >= {"TransferSingle", "Redeemed", "PassEnrolled"}
    assert all(world.alice.address in x.args.values() or x.tx_hash in {y.tx_hash for y in mine_only
               if world.alice.address in y.args.values()} for x in mine_only)
    act = index.activity(party=POOL)
    expected = [x.tx_hash for x in E.activity(E.fetch_events(world.dep)).redemptions if x.provider == POOL]
    assert [x.tx_hash for x in act.redemptions if x.provider == POOL] == [h.lower() for h in expected]
    assert r.tx_hash.lower() in {x.tx_hash for x in act.redemptions}
    bobs = [x for x in full_scan(world) if x[3] == "Redeemed" and x[5]["holder"] == world.bob.address]
    assert rows(index.records(party=world.bob.address, names=["Redeemed"])) == bobs
    late = index.records(since=10**12)
    assert late == []


def test_open_puts_the_file_under_the_workdir(world):
    idx = EventIndex.open(world.dep, world.workdir)
    assert idx.path == world.workdir / "index" / f"31337-{world.dep.address.lower()}.sqlite"
    idx.close()


def test_a_corrupt_file_is_a_clear_error(world, tmp_path):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(I.EventIndexError, match="delete it to rebuild"):
        EventIndex(world.dep, path)


def test_connect_again(anvil):
    assert connect(anvil).chain_id == 31337
