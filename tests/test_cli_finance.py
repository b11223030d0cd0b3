"""Finance through the `citypass` command: refund, reclaim after the budget ended, settle
(and a payment reference used twice), the audit CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest

from citypass import finance, redemption, wallet
from tests.ops_helpers import SPORT, World, enrol_and_credit, make_world, synthetic_account
from tests.ops_helpers import cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("cli-finance"))


@pytest.fixture(scope="module")
def residents(world: World):
    people = [synthetic_account(f"finance-resident-{i}") for i in range(4)]
    enrol_and_credit(world, people, world.sport, 10_000, "cli-finance-sport")
    return people


@pytest.fixture
def w(world, residents):
    snap = world.snapshot()
    yield world
    world.revert(snap)


def pay(w: World, resident, cents: int, budget: int | None = None, provider=None) -> int:
    """The resident pays `cents` at the pool (library path); returns the voucher nonce."""
    provider = provider or w.pool
    signed = wallet.sign_voucher(w.dep, resident, budget or w.sport, cents, provider.address)
    redemption.redeem(w.dep, provider, signed)
    return signed.voucher.nonce


def test_refund(w, residents):
    alice = residents[0]
    nonce = pay(w, alice, 2_000)
    r = cli(w, "--json", "--from", "dev:8", "refund", "--holder", alice.address, "--budget", "1",
            "--amount", "5.00", "--nonce", str(nonce))
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["refunded"] == "5.00"
    assert w.f.balanceOf(alice.address, w.sport).call() == 10_000 - 2_000 + 500
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 1_500
    # no such redemption / more than the provider holds: refused before sending
    r = cli(w, "--from", "dev:8", "refund", "--holder", alice.address, "--budget", "1", "--amount", "1", "--nonce", "9")
    assert r.exit_code == 1 and "made no redemption with nonce 9" in r.stderr
    r = cli(w, "--from", "dev:8", "refund", "--holder", alice.address, "--budget", "1", "--amount", "15.01",
            "--nonce", str(nonce))
    assert r.exit_code == 1 and "less than the €15.01 to refund" in r.stderr
    r = cli(w, "refund", "--holder", alice.address, "--budget", "1", "--amount", "1", "--nonce", str(nonce))
    assert r.exit_code == 2 and "--from" in r.stderr


def test_settle_and_reference_reuse(w, residents):
    pay(w, residents[0], 3_000)
    pay(w, residents[1], 1_234)
    r = cli(w, "--json", "settle", "--provider", w.pool.address, "--reference", "inv-2026  0001")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["total"] == "42.34" and out["reference"] == "INV-2026 0001"
    assert out["reference_hash"] == "0x" + finance.reference_hash("INV-2026 0001").hex()
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 0
    assert w.f.budgetTotals(w.sport).call()[2] == 4_234  # settled counter

    pay(w, residents[2], 100)
    before = w.chain.w3.eth.get_transaction_count(w.treasurer.address)
    r = cli(w, "settle", "--provider", w.pool.address, "--reference", " INV-2026 0001 ")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1].startswith("error: payment reference 'INV-2026 0001' was already used")
    assert "was paid €42.34 under it" in r.stderr and "nothing was sent" in r.stderr
    assert w.chain.w3.eth.get_transaction_count(w.treasurer.address) == before
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 100


def test_settle_refuses_nothing_to_pay_and_unknown_provider(w, residents):
    r = cli(w, "settle", "--provider", w.museum.address, "--reference", "X-1")
    assert r.exit_code == 1 and "holds no credit" in r.stderr
    r = cli(w, "settle", "--provider", residents[0].address, "--reference", "X-2")
    assert r.exit_code == 1 and "not a registered provider" in r.stderr


def test_reclaim_after_the_budget_ended(w, residents):
    # a short budget that ends within the hour, so time travel does not end the others
    now = w.chain.now()
    w.send(w.budget_manager, w.f.createBudget(SPORT, now - 10, now + 3_600, 1_000_000, "Short"))
    short = w.f.budgets().call()[-1]
    w.send(w.issuer, w.f.issue(b"\x33" * 32, short, [r.address for r in residents], [1_000, 2_000, 3_000, 4_000]))
    pay(w, residents[0], 1_000, short)  # spent all: nothing to reclaim from her
    pay(w, residents[1], 500, short)
    moved = synthetic_account("finance-new-phone")
    w.send(w.issuer, w.f.migratePass(residents[3].address, moved.address))  # credit followed the pass

    r = cli(w, "reclaim", "--budget", "#3")
    assert r.exit_code == 1 and "can be reclaimed after that" in r.stderr

    w.chain.advance_time(3_700)
    r = cli(w, "--json", "reclaim", "--budget", "3", "--batch-size", "2")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["holders"], out["reclaimed"], len(out["transactions"])) == (3, "85.00", 2)
    held = w.f.balanceOfBatch([x.address for x in residents] + [moved.address, w.pool.address], [short] * 6).call()
    assert held == [0, 0, 0, 0, 0, 1_500]  # the provider's credit stays payable
    assert w.f.budgetTotals(short).call()[3] == 8_500  # reclaimed counter

    again = cli(w, "--json", "reclaim", "--budget", "3")
    assert again.exit_code == 0 and json.loads(again.stdout)["holders"] == 0
    assert "nothing left to reclaim" in again.stderr


def test_audit_csv(w, residents, tmp_path):
    pay(w, residents[0], 700)
    cli(w, "settle", "--provider", w.pool.address, "--reference", "AUDIT-1")
    out = tmp_path / "audit.csv"
    r = cli(w, "audit", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    logs = w.chain.w3.eth.get_logs({"address": w.dep.address, "fromBlock": 0, "toBlock": "latest"})
    assert len(rows) == len(logs) and f"{len(logs)} events" in r.stderr
    assert list(rows[0])[:5] == ["block", "time", "tx_hash", "log_index", "event"]
    names = [x["event"] for x in rows]
    for expected in ("BudgetCreated", "ProviderRegistered", "BatchIssued", "Redeemed", "Settled", "TransferSingle"):
        assert expected in names
    settled = next(x for x in rows if x["event"] == "Settled")
    assert settled["provider"] == w.pool.address and json.loads(settled["args"])["amount"] == 700
    assert int(json.loads(next(x for x in rows if x["event"] == "BatchIssued")["args"])["budget"]) == w.sport
    assert [int(x["block"]) for x in rows] == sorted(int(x["block"]) for x in rows)
    # to stdout as well
    piped = cli(w, "audit")
    assert list(csv.DictReader(io.StringIO(piped.stdout))) == rows
