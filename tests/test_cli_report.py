"""`citypass report`: the municipal report from the chain's events, through the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from citypass import finance, redemption, wallet
from tests.ops_helpers import World, cli, enrol_and_credit, make_world, synthetic_account


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("cli-report"))


def test_report_reconciles_and_writes_its_files(world: World, tmp_path):
    people = [synthetic_account(f"report-resident-{i}") for i in range(3)]
    enrol_and_credit(world, people, world.sport, 4_000, "cli-report-sport")
    for person, cents in zip(people[:2], (1_250, 700)):
        pq = wallet.pass_qr(world.dep, person)
        redemption.redeem(world.dep, world.pool, redemption.pick(world.dep, pq, world.pool.address), cents)
    finance.settle(world.dep, world.treasurer, world.pool.address, "inv-2026 77")
    finance.correct(world.dep, world.issuer, people[2].address, world.sport, 500, "CASE-9")

    out = tmp_path / "report"
    r = cli(world, "--json", "report", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert (out / "index.html").is_file() and data["html"].endswith("index.html")
    assert "Sport test: issued €120.00" in r.stderr  # the reconciliation lines go to stderr
    with open(out / "budgets.csv") as f:
        rows = list(csv.DictReader(f))
    sport = next(row for row in rows if row["name"] == "Sport test")
    assert sport["issued_eur"] == "120.00" and sport["redeemed_eur"] == "19.50"
    assert sport["held_by_residents_eur"] == "95.50" and sport["residents_who_spent"] == "2"
    assert sport["corrected_eur"] == "5.00" and sport["settled_eur"] == "19.50"
    assert "corrected €5.00" in r.stderr
    with open(out / "providers.csv") as f:
        pool = next(row for row in csv.DictReader(f) if row["address"] == world.pool.address)
    ref = "0x" + finance.reference_hash("INV-2026 77").hex()
    # the provider's name from the chain, the reference text the treasurer typed next to its hash
    assert pool["provider"] == "Swimming pool test" and pool["payment_references"] == f"INV-2026 77 ({ref[:10]}…)"
    assert "INV-2026 77 (0x" in (out / "index.html").read_text()


def test_report_to_a_folder_that_cannot_be_made_is_one_clear_line(world: World, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = cli(world, "report", "--out", str(blocker / "report"))
    assert r.exit_code == 1 and "cannot write the report" in r.stderr and "Traceback" not in r.stderr
