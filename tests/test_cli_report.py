"""`citypass report`: the municipal report from the chain's events, through the CLI."""

from __future__ import annotations

import csv
import json

import pytest

from citypass import redemption, wallet
from tests.ops_helpers import World, cli, enrol_and_credit, make_world, synthetic_account


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("cli-report"))


def test_report_reconciles_and_writes_its_files(world: World, tmp_path):
    people = [synthetic_account(f"report-resident-{i}") for i in range(3)]
    enrol_and_credit(world, people, world.sport, 4_000, "cli-report-sport")
    for person, cents in zip(people[:2], (1_250, 700)):
        redemption.redeem(world.dep, world.pool, wallet.sign_voucher(world.dep, person, world.sport, cents, world.pool.address))

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
    assert sport["held_by_residents_eur"] == "100.50" and sport["residents_who_spent"] == "2"


def test_report_to_a_folder_that_cannot_be_made_is_one_clear_line(world: World, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = cli(world, "report", "--out", str(blocker / "report"))
    assert r.exit_code == 1 and "cannot write the report" in r.stderr and "Traceback" not in r.stderr
