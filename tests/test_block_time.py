"""The CLI's end-to-end flow on Anvil with `--block-time 2` (no automine), as on an L2:
progress shows while a command waits, nothing times out too early, and pipelined sends keep
their order. `make test` runs it with two residents in two batches and 4 pipelined
redemptions; `make fuzz` (CITYPASS_LONG=1) with 40 residents in 8 batches and 24."""

from __future__ import annotations

import os

import pytest

from citypass import contract as C
from citypass import keys, redemption, tx, wallet
from citypass.chain import connect
from citypass.contract import open_deployment
from tests.cli_flow import cli_flow
from tests.network_helpers import Anvil, rpc
from tests.ops_helpers import synthetic_account
from tests.test_cli_admin import fast_keystores, isolation  # noqa: F401

LONG = bool(os.environ.get("CITYPASS_LONG"))
RESIDENTS, BATCH, SCANS = (40, 5, 24) if LONG else (2, 1, 4)


@pytest.fixture(scope="module")
def anvil():
    node = Anvil("--block-time", "2")
    yield node
    node.stop()


def test_the_cli_flow_at_2_second_blocks(anvil, tmp_path):
    assert rpc(anvil.url, "anvil_getAutomine") is False
    flow = cli_flow(anvil.url, tmp_path, residents=RESIDENTS, batch_size=BATCH, label="blocktime",
                    issue_args=("--confirmations", "2"))
    # progress while waiting: the confirmations of each batch take two 2-second blocks
    assert "waiting for 2 confirmation(s): block" in flow.issue_stderr
    # the batches went out one after another and were mined in that order
    chain = connect(anvil.url, workdir=tmp_path)
    mined = [chain.rpc("eth_getTransactionReceipt", [s["tx"]]) for s in flow.issued_batches]
    order = [(int(r["blockNumber"], 16), int(r["transactionIndex"], 16)) for r in mined]
    assert len(mined) == -(-RESIDENTS // BATCH) and order == sorted(order) and len(set(order)) == len(order)
    assert all(int(r["status"], 16) == 1 for r in mined)

    # pipelined sends (redeem_many: one wallet, back to back, without waiting between them)
    dep = open_deployment(chain, workdir=tmp_path)
    budget = C.find_budget(dep, "#1").id
    people = [synthetic_account(f"blocktime-{i}") for i in range(RESIDENTS)]
    scans = []
    for k in range(SCANS):
        holder = people[k % len(people)]
        signed = wallet.pass_qr(dep, holder, budgets=[budget], max_amount=200, nonces={budget: 5 + k // len(people)},
                                force=True).for_budget(budget)
        scans.append(redemption.Scan(signed, 100 + k, 0))
    said: list[str] = []
    chain.notify = said.append
    pool = keys.dev_account(7)
    start = int(chain.rpc("eth_getTransactionCount", [pool.address, "latest"]), 16)
    results = redemption.redeem_many(dep, pool, scans)
    assert all(isinstance(r, redemption.Redemption) for r in results), results
    txs = [chain.rpc("eth_getTransactionByHash", [r.tx_hash]) for r in results]
    assert [int(t["nonce"], 16) for t in txs] == list(range(start, start + SCANS))  # in the order given
    receipts = [chain.rpc("eth_getTransactionReceipt", [r.tx_hash]) for r in results]
    where = [(int(r["blockNumber"], 16), int(r["transactionIndex"], 16)) for r in receipts]
    assert where == sorted(where)
    assert [r.amount for r in results] == [100 + k for k in range(SCANS)]
    assert tx.RECEIPT_TIMEOUT >= 120 and tx.STUCK_AFTER >= 10 * 2  # far above a 2-second block

