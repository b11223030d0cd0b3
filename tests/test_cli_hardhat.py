"""The CLI's end-to-end suite on Hardhat's node (npm `hardhat` 2.29.1, its EDR engine), a
third node implementation beside Anvil and Ganache: deploy, budget, provider, issuance from
CSV, its re-run, a pass QR, `voucher show`, the redemption, the replay refused, the
settlement. `make test` runs it with two residents; `make fuzz` (CITYPASS_LONG=1) with 40
residents in 8 batches and 24 pipelined redemptions. The incompatibilities found are in the
README ("Three node implementations")."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from citypass import contract as C
from citypass import keys, node, redemption, tx, wallet
from citypass.chain import connect
from citypass.contract import open_deployment
from tests.cli_flow import cli_flow
from tests.ops_helpers import synthetic_account
from tests.test_cli_admin import DEV, fast_keystores, isolation  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "toolchain" / "hardhat"  # hardhat.config.js: `module.exports = {};`
LONG = bool(os.environ.get("CITYPASS_LONG"))
RESIDENTS, BATCH, SCANS = (40, 5, 24) if LONG else (2, None, 4)


@pytest.fixture(scope="module")
def hardhat(tmp_path_factory):
    binary = ROOT / "node_modules" / ".bin" / "hardhat"
    assert binary.exists(), "hardhat missing: run `make setup`"
    port = node.free_port()
    log = tmp_path_factory.mktemp("hardhat") / "hardhat.log"
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true", "DO_NOT_TRACK": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "node", "--hostname", "127.0.0.1", "--port", str(port)],
                                cwd=CONFIG_DIR, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while node.rpc_alive(url) is None:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_the_cli_flow_on_hardhat(hardhat, tmp_path):
    chain = connect(hardhat, workdir=tmp_path)
    assert chain.client.startswith("HardhatNetwork/2.29.1/@nomicfoundation/edr/") and chain.chain_id == 31337
    assert chain.is_local_dev  # dev keys allowed, no confirmations by default
    flow = cli_flow(hardhat, tmp_path, residents=RESIDENTS, batch_size=BATCH, label="hardhat")
    assert flow.chain_id == 31337
    dep = open_deployment(chain, workdir=tmp_path)
    pause = dep.contract.functions.pause()
    assert tx.access_list(chain, DEV[6], pause) is None  # EDR 0.3.8 lacks eth_createAccessList: none, no error
    assert tx._automine(chain) is True  # asked as hardhat_getAutomine (no anvil_getAutomine)

    # pipelined redemptions from one wallet (send_many in a JSON-RPC batch)
    budget = C.find_budget(dep, "#1").id
    people = [synthetic_account(f"hardhat-{i}") for i in range(RESIDENTS)]
    scans = [redemption.Scan(wallet.pass_qr(dep, people[k % len(people)], budgets=[budget], max_amount=200,
                                            nonces={budget: 5 + k // len(people)}, force=True).for_budget(budget),
                             100 + k, 0) for k in range(SCANS)]
    pool = keys.dev_account(7)
    start = int(chain.rpc("eth_getTransactionCount", [pool.address, "latest"]), 16)
    results = redemption.redeem_many(dep, pool, scans)
    assert all(isinstance(r, redemption.Redemption) for r in results), results
    assert [int(chain.rpc("eth_getTransactionByHash", [r.tx_hash])["nonce"], 16) for r in results] == \
        list(range(start, start + SCANS))


def test_a_pipelined_batch_on_hardhat_automine(hardhat, tmp_path):
    """Hardhat handles a JSON-RPC batch's items side by side and refuses, on automine, a nonce
    ahead of the mined one: 100 transfers in one batch still all go, in nonce order, once each."""
    chain = connect(hardhat, workdir=tmp_path)
    sender = keys.dev_account(3)
    to = synthetic_account("hardhat-sink").address
    start = int(chain.rpc("eth_getTransactionCount", [sender.address, "latest"]), 16)
    receipts = tx.send_many(chain, sender, [tx.Transfer(to)] * 100, value=1, gas=21_000)
    assert all(r.status == 1 for r in receipts)
    nonces = [int(chain.rpc("eth_getTransactionByHash", ["0x" + bytes(r.transactionHash).hex()])["nonce"], 16)
              for r in receipts]
    assert nonces == list(range(start, start + 100))
    assert chain.w3.eth.get_balance(to) == 100
