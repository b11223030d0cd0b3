"""The CLI's end-to-end flow on any node through --rpc (the Ganache pass's steps, shared by the
Hardhat and the 2-second-block tests): deploy, a budget, a named provider, issuance from a CSV
file and its re-run (exactly once), a resident's pass QR, `voucher show`, the redemption of an
amount of it, the replay refused, and the settlement of the provider.

Synthetic residents only; Anvil/Hardhat's public dev keys only (local chains)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citypass import keys, passqr
from tests.ops_helpers import synthetic_account
from tests.test_cli_admin import DEV, PASSWORD, POOL, data, run


@dataclass
class FlowResult:
    chain_id: int
    issue_stderr: str
    issued_batches: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)  # every command's stderr, in order


def cli_flow(url: str, workdir: Path, *, residents: int = 2, batch_size: int | None = None,
             issue_args: tuple[str, ...] = (), label: str = "flow") -> FlowResult:
    said: list[str] = []

    def cli(*args: str, code: int = 0) -> Any:
        result = run(workdir, "--rpc", url, *args, code=code)
        said.append(result.stderr)
        return result

    deployed = data(cli("--json", "deploy"))
    today = dt.datetime.now(dt.timezone.utc).date()
    budget = data(cli("--json", "budget", "create", "--category", "0", "--valid-from", today.isoformat(),
                      "--valid-until", (today + dt.timedelta(days=365)).isoformat(), "--cap", "100000",
                      "--name", "Sport"))
    assert budget["serial"] == 1
    added = data(cli("--json", "provider", "add", POOL, "--categories", "0", "--max", "20", "--name", f"Pool {label}"))
    assert (added["status"], added["name"]) == ("active", f"Pool {label}")
    cli("role", "grant", "registrar", DEV[4])  # the issuer enrols new residents as it credits them

    people = [synthetic_account(f"{label}-{i}") for i in range(residents)]
    alice = people[0]
    listing = workdir / "sport.csv"
    listing.write_text("holder,amount\n" + "".join(f"{p.address},{25 + i}.50\n" for i, p in enumerate(people)))
    sizing = ("--batch-size", str(batch_size)) if batch_size else ()
    issued = cli(*issue_args, "--json", "issue", str(listing), "--budget", "#1", *sizing)
    sent = data(issued)["sent"]
    assert all(s["tx"] for s in sent) and data(issued)["reconciliation"]["ok"] is True
    again = cli("issue", str(listing), "--budget", "#1", *sizing)  # exactly once
    assert "everything in this file was issued before: nothing to send" in again.stderr

    keys.create_keystore(workdir, "alice", alice.key, password=PASSWORD)
    payload = cli("voucher", "sign", "--key", "alice", "--budget", "#1").stdout.strip()
    assert passqr.decode(payload).chain_id == deployed["chain_id"]
    shown = data(cli("--json", "voucher", "show", payload, "--provider", POOL, "--amount", "12.50"))
    assert shown["ok"] is True, shown
    redeemed = data(cli("--json", "--from", "dev:7", "redeem", payload, "--amount", "12.50"))
    assert redeemed["gas_used"] > 0
    assert data(cli("--json", "balance", "--provider", POOL))["total"] == "12.50"
    replay = cli("--from", "dev:7", "redeem", payload, "--amount", "1", code=1)
    assert replay.stderr.startswith("error: ") and "used" in replay.stderr
    settled = data(cli("--json", "settle", "--provider", POOL, "--reference", f"PAY-{label}-1"))
    assert settled["total"] == "12.50"
    assert data(cli("--json", "balance", "--provider", POOL))["total"] == "0.00"
    twice = cli("settle", "--provider", POOL, "--reference", f"PAY-{label}-1", code=1)
    assert "already used" in twice.stderr
    return FlowResult(deployed["chain_id"], issued.stderr, sent, said)
