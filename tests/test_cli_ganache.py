"""The whole `citypass` flow on Ganache through --rpc: deploy, budget, provider, issuance from
CSV (Ganache has no eth_createAccessList: the batches go without an access list), a resident's
pass QR (contract v2) and the redemption of an amount of it at the provider; voucher show
judges at the next block's time through a node without eth_call time overrides. Runs in the Anvil pass of `make test`
(it starts its own Ganache); tests/test_cli_admin.py covers the admin errors on Ganache."""

from __future__ import annotations

import datetime as dt

from citypass import contract, keys, tx
from citypass import passqr
from citypass.chain import connect
from tests.test_cli_admin import DEV, PASSWORD, POOL, data, fast_keystores, ganache, isolation, run  # noqa: F401
from tests.ops_helpers import synthetic_account


def test_deploy_issue_sign_redeem_on_ganache(ganache, tmp_path):
    def cli(*args: str, code: int = 0):
        return run(tmp_path, "--rpc", ganache, *args, code=code)

    assert data(cli("--json", "deploy"))["chain_id"] == 1337
    chain = connect(ganache)
    pause = contract.open_deployment(chain, workdir=tmp_path).contract.functions.pause()
    assert tx.access_list(chain, DEV[6], pause) is None  # Ganache lacks eth_createAccessList: none, no error
    today = dt.datetime.now(dt.timezone.utc).date()
    budget = data(cli("--json", "budget", "create", "--category", "0", "--valid-from", today.isoformat(),
                      "--valid-until", (today + dt.timedelta(days=365)).isoformat(), "--cap", "1000", "--name", "Sport"))
    assert budget["serial"] == 1
    added = data(cli("--json", "provider", "add", POOL, "--categories", "0", "--max", "20", "--name", "Pool on Ganache"))
    assert (added["status"], added["name"]) == ("active", "Pool on Ganache")

    alice, bob = synthetic_account("ganache-alice"), synthetic_account("ganache-bob")
    cli("role", "grant", "registrar", DEV[4])  # the issuer enrols new residents as it credits them
    listing = tmp_path / "sport.csv"
    listing.write_text(f"holder,amount\n{alice.address},100\n{bob.address},25.50\n")
    cli("issue", str(listing), "--budget", "#1")
    again = cli("issue", str(listing), "--budget", "#1")  # exactly once, on this chain too
    assert "everything in this file was issued before: nothing to send" in again.stderr

    keys.create_keystore(tmp_path, "alice", alice.key, password=PASSWORD)
    payload = cli("voucher", "sign", "--key", "alice", "--budget", "#1").stdout.strip()
    assert passqr.decode(payload).chain_id == 1337  # the EIP-712 domain of Ganache's chain
    shown = data(cli("--json", "voucher", "show", payload, "--provider", POOL, "--amount", "12.50"))
    assert shown["ok"] is True
    redeemed = data(cli("--json", "--from", "dev:7", "redeem", payload, "--amount", "12.50"))
    assert redeemed["gas_used"] > 0
    assert data(cli("--json", "balance", "--provider", POOL))["total"] == "12.50"
    replay = cli("--from", "dev:7", "redeem", payload, "--amount", "1", code=1)
    assert replay.stderr.startswith("error: ") and "used" in replay.stderr
