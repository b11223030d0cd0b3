"""A node with limits (tests/rpc_proxy.py in front of a plain Anvil): it refuses large
eth_getLogs ranges, rate-limits with HTTP 429, and drops connections in the middle of a
batch of transactions. CityPass must only slow down, with a clear message, and never lose
or double a write."""

from __future__ import annotations

import time

import pytest

from citypass import events as E
from citypass import keys, rpc_limits, tx
from citypass.chain import connect
from citypass.contract import open_deployment
from citypass.errors import CityPassError
from citypass.index import EventIndex
from tests.network_helpers import Anvil, citypass, rpc
from tests.rpc_proxy import RpcProxy
from tests.web_helpers import DEV, make_world, resident


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
    w = make_world(tmp_path_factory.mktemp("citypass-limits"), rpc=anvil.url)
    granted = citypass(w.workdir, anvil.url, "role", "grant", "registrar", DEV[4])  # the issuer enrols as it credits
    assert granted.returncode == 0, granted.stderr
    for _ in range(30):  # some history to read in ranges
        rpc(anvil.url, "evm_mine")
    return w


@pytest.fixture
def proxy(anvil):
    with RpcProxy(anvil.url) as p:
        yield p


def keyed(records):
    return [(r.block, r.log_index, r.tx_hash.lower(), r.name) for r in records]


def test_large_log_ranges_are_split(world, proxy):
    proxy.max_log_range = 7
    E._range_limits.clear()
    chain = connect(proxy.url, workdir=world.workdir)
    dep = open_deployment(chain, world.dep.address, world.workdir)
    through_proxy = E.fetch_events(dep)
    assert keyed(through_proxy) == keyed(E.fetch_events(world.dep)) and len(through_proxy) > 10
    assert proxy.refused_ranges > 0
    refused = proxy.refused_ranges
    idx = EventIndex(dep, world.workdir / "limited-index.sqlite")  # 2,000 blocks a chunk: refused, split
    idx.sync()
    assert keyed(idx.records()) == keyed(through_proxy)
    assert proxy.refused_ranges - refused <= 3  # the range it took is remembered, not found again per chunk
    idx.close()


def test_a_cli_issuance_through_a_range_limited_node(world, proxy, tmp_path):
    proxy.max_log_range = 20  # the chain has ~70 blocks: every read is split
    E._range_limits.clear()
    carol, dave = resident("limits-carol").address, resident("limits-dave").address
    listing = tmp_path / "limited.csv"
    listing.write_text(f"holder,amount\n{carol},3.00\n{dave},4.00\n")
    first = citypass(world.workdir, proxy.url, "issue", str(listing), "--budget", "1")
    assert first.returncode == 0, first.stderr
    again = citypass(world.workdir, proxy.url, "issue", str(listing), "--budget", "1")
    assert again.returncode == 0 and "nothing to send" in again.stderr  # the earlier batch found in split ranges
    assert proxy.refused_ranges > 0
    assert world.dep.contract.functions.balanceOf(carol, world.sport).call() == 300


def test_http_429_waits_with_a_clear_message(world, proxy):
    proxy.retry_after = "1"
    proxy.rate_limit(2)
    started = time.monotonic()
    result = citypass(world.workdir, proxy.url, "--json", "budget", "list")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2.0 and proxy.limited == 2
    assert result.stderr.count("is rate-limiting (HTTP 429): waiting 1 s, then asking again") == 2


def test_http_429_for_too_long_is_one_clear_error(world, proxy, monkeypatch):
    monkeypatch.setattr(rpc_limits, "RATE_LIMIT_PATIENCE", 2.5)
    proxy.retry_after = None  # no Retry-After: back-off 1, 2, ...
    chain = connect(proxy.url, workdir=world.workdir)
    said: list[str] = []
    chain.notify = said.append
    proxy.rate_limit(100)
    with pytest.raises(CityPassError, match=r"kept refusing requests with HTTP 429 \(rate limited\)"):
        chain.rpc("eth_blockNumber")
    assert said == [f"the node at {proxy.url}/ is rate-limiting (HTTP 429): waiting 1 s, then asking again"] or \
        said == [f"the node at {proxy.url} is rate-limiting (HTTP 429): waiting 1 s, then asking again"]
    proxy.rate_limit(0)


@pytest.mark.parametrize("before", [False, True], ids=["after-the-node-got-it", "before-the-node-got-it"])
def test_a_connection_dropped_mid_batch_loses_and_doubles_nothing(world, proxy, before):
    """Twelve pipelined transfers in one JSON-RPC batch; the connection drops with the batch
    (after the node took it, or before): each transfer is mined exactly once."""
    chain = connect(proxy.url, workdir=world.workdir)
    said: list[str] = []
    chain.notify = said.append
    sender = keys.dev_account(9)
    to = resident(f"limits-drop-{before}").address
    start = int(rpc(proxy.upstream, "eth_getTransactionCount", [sender.address, "latest"]), 16)
    proxy.drop("eth_sendRawTransaction", before=before)
    receipts = tx.send_many(chain, sender, [tx.Transfer(to)] * 12, value=1_000, gas=21_000)
    assert len({r.transactionHash for r in receipts}) == 12 and all(r.status == 1 for r in receipts)
    assert int(rpc(proxy.upstream, "eth_getTransactionCount", [sender.address, "latest"]), 16) == start + 12
    assert int(rpc(proxy.upstream, "eth_getBalance", [to, "latest"]), 16) == 12 * 1_000  # not 24, not 0
    assert proxy.dropped == 1
    assert any("dropped before the answer came" in s and "taken at most once" in s for s in said)


def test_a_cli_issuance_survives_dropped_connections(world, proxy, tmp_path):
    """`citypass issue` in three batches; the first batch's send and a receipt poll lose their
    connections: every resident is credited exactly once, and a re-run sends nothing."""
    people = [resident(f"limits-batch-{i}").address for i in range(6)]
    listing = tmp_path / "batches.csv"
    listing.write_text("holder,amount\n" + "".join(f"{p},2.00\n" for p in people))
    proxy.drop("eth_sendRawTransaction")
    proxy.drop("eth_getTransactionReceipt")
    result = citypass(world.workdir, proxy.url, "issue", str(listing), "--budget", "2", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert proxy.dropped == 2 and "dropped before the answer came" in result.stderr
    f = world.dep.contract.functions
    assert [f.balanceOf(p, world.culture).call() for p in people] == [200] * 6
    again = citypass(world.workdir, proxy.url, "issue", str(listing), "--budget", "2", "--batch-size", "2")
    assert again.returncode == 0 and "nothing to send" in again.stderr


def test_a_refused_connection_still_fails_at_once():
    from tests.network_helpers import free_port

    started = time.monotonic()
    with pytest.raises(CityPassError, match="connection refused"):
        connect(f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 3  # not retried: nobody listens there
