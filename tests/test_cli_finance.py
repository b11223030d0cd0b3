"""Finance through the `citypass` command: refund (of a payment marked refundable, by its
own provider only, partial refunds up to what it debited), reclaim after the budget ended,
settle (the reference text on chain, and a reference used twice), correct, the audit CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest

from citypass import finance, keys, redemption, wallet
from citypass.errors import CityPassError
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
    yield from world.rolled_back()


def pay(w: World, resident, cents: int, budget: int | None = None, provider=None, *,
        refundable: bool = False) -> redemption.Redemption:
    """The resident's pass QR pays `cents` at the pool (library path)."""
    provider = provider or w.pool
    pq = wallet.pass_qr(w.dep, resident, budgets=[budget or w.sport])
    return redemption.redeem(w.dep, provider, pq.vouchers()[0], cents, 0, refundable)


def sent_by(w: World, account) -> int:
    return w.chain.w3.eth.get_transaction_count(account.address)


def refused_before_sending(w: World, account, *args: str) -> str:
    """Runs `citypass ARGS`, which must fail with one `error:` line and send nothing from
    `account`; returns stderr."""
    before = sent_by(w, account)
    r = cli(w, *args)
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert r.stderr.splitlines()[-1].startswith("error: ")
    assert sent_by(w, account) == before, "a refused refund must not be sent"
    return r.stderr


def refund_args(who, paid: redemption.Redemption, *more: str) -> list[str]:
    return ["refund", who.address, "--budget", "1", "--nonce", str(paid.voucher.nonce), *more]


def test_refund(w, residents):
    alice = residents[0]
    paid = pay(w, alice, 2_000, refundable=True)
    r = cli(w, "--json", "--from", "dev:8", *refund_args(alice, paid, "--amount", "5.00"))
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["refunded"], out["refunded_cents"], out["holder"], out["to"], out["budget"], out["nonce"]) == (
        "5.00", 500, alice.address, alice.address, 1, paid.voucher.nonce)
    assert (out["left_to_refund"], out["left_to_refund_cents"]) == ("15.00", 1_500)
    assert w.f.refundableOf(alice.address, w.sport, paid.voucher.nonce).call() == [w.pool.address, 1_500]
    assert w.f.balanceOf(alice.address, w.sport).call() == 10_000 - 2_000 + 500
    assert "€15.00 of this redemption left to refund" in r.stderr


def test_refund_defaults_to_what_is_left_and_a_third_is_refused(w, residents):
    """Without --amount the rest goes back; without --from, on a local dev chain, the dev
    account of the provider that made the redemption signs."""
    alice = residents[0]
    paid = pay(w, alice, 1_234, refundable=True)
    assert cli(w, "--from", "dev:8", *refund_args(alice, paid, "--amount", "2.34")).exit_code == 0
    r = cli(w, "--json", *refund_args(alice, paid))
    assert r.exit_code == 0, r.stderr
    assert (json.loads(r.stdout)["refunded"], json.loads(r.stdout)["left_to_refund"]) == ("10.00", "0.00")
    err = refused_before_sending(w, w.pool, *refund_args(alice, paid))
    assert "all of the redemption" in err and "was refunded already" in err
    err = refused_before_sending(w, w.pool, "--from", "dev:8", *refund_args(alice, paid, "--amount", "0.01"))
    assert "at most €0.00 of the redemption" in err and "not €0.01" in err


def test_refund_above_the_redemption_is_refused(w, residents):
    paid = pay(w, residents[0], 2_000, refundable=True)
    pay(w, residents[3], 3_000)  # the pool holds enough credit: only the stored redemption limits
    err = refused_before_sending(w, w.pool, "--from", "dev:8", *refund_args(residents[0], paid, "--amount", "20.01"))
    assert "at most €20.00 of the redemption" in err and "not €20.01" in err
    with pytest.raises(CityPassError):  # and the chain refuses it too
        w.send(w.pool, w.f.refund(residents[0].address, w.sport, paid.voucher.nonce, 2_001))


def test_an_ordinary_payment_cannot_be_refunded(w, residents):
    """v1's Medium finding: refunds were not tied to what was redeemed. In v2 only a payment
    marked refundable when it was made can be refunded."""
    paid = pay(w, residents[0], 2_000)  # an ordinary scan
    err = refused_before_sending(w, w.pool, "--from", "dev:8", *refund_args(residents[0], paid, "--amount", "1"))
    assert "it was redeemed as an ordinary payment" in err and "marked refundable when they were made" in err
    with pytest.raises(CityPassError):
        w.send(w.pool, w.f.refund(residents[0].address, w.sport, paid.voucher.nonce, 100))


def test_another_provider_cannot_refund(w, residents):
    alice = residents[0]
    paid = pay(w, alice, 2_000, refundable=True)
    err = refused_before_sending(w, w.museum, "--from", "dev:9", *refund_args(alice, paid, "--amount", "1"))
    assert f"was made by provider {w.pool.address}; only that provider can refund it" in err
    with pytest.raises(CityPassError):
        w.send(w.museum, w.f.refund(alice.address, w.sport, paid.voucher.nonce, 100))


def test_refund_of_an_unredeemed_voucher_is_refused(w, residents):
    alice = residents[0]
    pay(w, residents[1], 3_000)  # the pool holds credit to refund from
    err = refused_before_sending(w, w.pool, "--from", "dev:8", "refund", alice.address, "--budget", "1",
                                 "--nonce", "5", "--amount", "1")
    assert f"(nonce 5 of {alice.address}, budget #1): it was never redeemed" in err


def test_refund_of_settled_credit_and_usage(w, residents):
    paid = pay(w, residents[0], 2_000, refundable=True)
    finance.settle(w.dep, w.treasurer, w.pool.address, "REFUND-AFTER-SETTLE")
    err = refused_before_sending(w, w.pool, "--from", "dev:8", *refund_args(residents[0], paid, "--amount", "1"))
    assert "this provider holds €0.00 of budget #1, less than the €1.00 to refund" in err
    r = cli(w, "refund", "not-an-address", "--budget", "1", "--nonce", "0")
    assert r.exit_code == 2
    r = cli(w, *refund_args(residents[0], paid, "--amount", "0"))
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    r = cli(w, "refund", residents[0].address)
    assert r.exit_code == 2 and "--budget" in r.stderr


def test_refund_follows_a_migrated_pass(w, residents):
    alice = residents[0]
    paid = pay(w, alice, 2_000, refundable=True)
    new_phone = synthetic_account("finance-refund-new-phone")
    w.send(w.issuer, w.f.migratePass(alice.address, new_phone.address, [w.sport]))
    r = cli(w, "--json", "--from", "dev:8", *refund_args(alice, paid))
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["holder"], out["to"], out["refunded"]) == (alice.address, new_phone.address, "20.00")
    assert w.f.balanceOf(new_phone.address, w.sport).call() == 10_000


def test_empty_settlement_is_refused_by_the_chain(w):
    with pytest.raises(CityPassError, match="a settlement needs at least one budget and amount"):
        w.send(w.treasurer, w.f.settle(w.pool.address, [], [], "EMPTY-1"))


def test_settle_and_reference_reuse(w, residents):
    pay(w, residents[0], 3_000)
    pay(w, residents[1], 1_234)
    r = cli(w, "--json", "settle", "--provider", w.pool.address, "--reference", "inv-2026  0001")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["total"], out["total_cents"], out["reference"]) == ("42.34", 4_234, "INV-2026 0001")
    assert out["reference_hash"] == "0x" + finance.reference_hash("INV-2026 0001").hex()
    # the chain keeps the text the treasurer typed (normalised), checkable against its hash
    assert finance.reference_texts(w.dep) == {out["reference_hash"]: "INV-2026 0001"}
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
    w.send(w.issuer, w.f.migratePass(residents[3].address, moved.address, [short]))  # credit followed the pass

    r = cli(w, "reclaim", "--budget", "#3")
    assert r.exit_code == 1 and "can be reclaimed after that" in r.stderr
    # refused first: no progress bar before the refusal, only the one error line
    assert "reclaiming budget" not in r.stderr and "━" not in r.stderr, r.stderr

    w.chain.advance_time(3_700)
    r = cli(w, "--json", "reclaim", "--budget", "3", "--batch-size", "2")
    assert r.exit_code == 0, r.stderr
    assert "reclaiming budget #3" in r.stderr  # the bar, once there is work
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
    for expected in ("BudgetCreated", "ProviderRegistered", "ProviderNamed", "BatchIssued", "Redeemed",
                     "SettlementReference", "Settled", "TransferSingle"):
        assert expected in names
    # the audit carries the providers' public names and the reference text the treasurer typed
    assert {(x["provider"], x["name"]) for x in rows if x["event"] == "ProviderNamed"} >= {(w.pool.address, "Swimming pool test")}
    assert [x["referenceText"] for x in rows if x["event"] == "SettlementReference"][-1] == "AUDIT-1"
    settled = next(x for x in rows if x["event"] == "Settled")
    assert settled["provider"] == w.pool.address and json.loads(settled["args"])["amount"] == 700
    assert int(json.loads(next(x for x in rows if x["event"] == "BatchIssued")["args"])["budget"]) == w.sport
    assert [int(x["block"]) for x in rows] == sorted(int(x["block"]) for x in rows)
    # to stdout as well
    piped = cli(w, "audit")
    assert list(csv.DictReader(io.StringIO(piped.stdout))) == rows


def test_correct_takes_back_unspent_credit(w, residents):
    alice = residents[0]
    r = cli(w, "--json", "correct", alice.address, "--budget", "1", "--amount", "25", "--reference", " CASE-2026  17 ")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["corrected"], out["corrected_cents"], out["left"], out["reference"]) == ("25.00", 2_500, "75.00", "CASE-2026 17")
    assert w.f.balanceOf(alice.address, w.sport).call() == 7_500
    assert w.f.budgetTotals(w.sport).call()[4] == 2_500  # the corrected counter
    err = refused_before_sending(w, w.issuer, "correct", alice.address, "--budget", "1", "--amount", "75.01",
                                 "--reference", "CASE-2026-18")
    assert "holds €75.00 of budget #1, less than the €75.01 to take back" in err
    w.send(keys.load_account("dev:6", w.chain), w.f.pause())  # the world's pauser
    err = refused_before_sending(w, w.issuer, "correct", alice.address, "--budget", "1", "--amount", "1",
                                 "--reference", "CASE-2026-19")
    assert "paused" in err
    r = cli(w, "correct", alice.address, "--budget", "1", "--amount", "1", "--reference", "   ")
    assert r.exit_code == 1 and "reference is empty" in r.stderr
