"""Finance through the `citypass` command: refund (of a redeemed voucher, by its own
provider only, partial refunds up to the voucher's amount), reclaim after the budget ended,
settle (and a payment reference used twice), the audit CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest

from citypass import finance, redemption, wallet
from citypass import voucher as V
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


def pay(w: World, resident, cents: int, budget: int | None = None, provider=None) -> V.SignedVoucher:
    """The resident pays `cents` at the pool (library path); returns the redeemed voucher,
    which the provider keeps for a refund."""
    provider = provider or w.pool
    signed = wallet.sign_voucher(w.dep, resident, budget or w.sport, cents, provider.address)
    redemption.redeem(w.dep, provider, signed)
    return signed


def digest_of(w: World, signed: V.SignedVoucher) -> bytes:
    return V.digest(signed.voucher, w.chain.chain_id, w.dep.address)


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


def test_refund(w, residents):
    alice = residents[0]
    signed = pay(w, alice, 2_000)
    r = cli(w, "--json", "--from", "dev:8", "refund", signed.encode(), "--amount", "5.00")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["refunded"], out["holder"], out["to"], out["budget"], out["nonce"]) == (
        "5.00", alice.address, alice.address, 1, signed.voucher.nonce)
    assert out["voucher_digest"] == "0x" + digest_of(w, signed).hex()
    assert (out["voucher_amount"], out["refunded_total"], out["left_to_refund"]) == ("20.00", "5.00", "15.00")
    assert w.f.refunded(digest_of(w, signed)).call() == 500
    assert w.f.balanceOf(alice.address, w.sport).call() == 10_000 - 2_000 + 500
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 1_500
    assert "€15.00 of this voucher's €20.00 left to refund" in r.stderr


def test_refund_from_the_qr_code_defaults_to_what_is_left(w, residents, tmp_path):
    """Without --amount the rest of the voucher goes back; without --from, on a local dev
    chain, the dev account the voucher names signs (as for redeem)."""
    bob = residents[1]
    signed = pay(w, bob, 1_234)
    png = wallet.write_qr(signed.encode(), tmp_path / "kept.png")
    assert cli(w, "--from", "dev:8", "refund", str(png), "--amount", "2.34").exit_code == 0
    r = cli(w, "--json", "refund", str(png))
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["refunded"], out["refunded_total"], out["left_to_refund"]) == ("10.00", "12.34", "0.00")
    assert w.f.balanceOf(bob.address, w.sport).call() == 10_000
    err = refused_before_sending(w, w.pool, "refund", str(png))
    assert "was redeemed for €12.34 and all of it was refunded already" in err


def test_two_partial_refunds_add_up_to_the_voucher_and_a_third_is_refused(w, residents):
    alice = residents[0]
    signed = pay(w, alice, 2_000)
    for amount in ("12.00", "8.00"):
        r = cli(w, "--from", "dev:8", "refund", signed.encode(), "--amount", amount)
        assert r.exit_code == 0, r.stderr
    assert w.f.refunded(digest_of(w, signed)).call() == 2_000
    assert w.f.balanceOf(alice.address, w.sport).call() == 10_000
    err = refused_before_sending(w, w.pool, "--from", "dev:8", "refund", signed.encode(), "--amount", "0.01")
    assert "was redeemed for €20.00; €20.00 of it was refunded already, so at most €0.00 can be refunded, not €0.01" in err
    # The chain itself refuses it too, with its own sentence (library checks bypassed).
    with pytest.raises(CityPassError, match=r"was redeemed for €20.00; refunds of it would total €20.01"):
        w.send(w.pool, w.f.refund(signed.voucher.contract_args(), V.compact_signature(signed), 1))


def test_refund_above_the_voucher_amount_is_refused(w, residents):
    signed = pay(w, residents[2], 2_000)
    pay(w, residents[3], 3_000)  # the pool holds enough credit: only the voucher's amount limits
    err = refused_before_sending(w, w.pool, "--from", "dev:8", "refund", signed.encode(), "--amount", "20.01")
    assert "was redeemed for €20.00; at most €20.00 can be refunded, not €20.01" in err
    assert w.f.refunded(digest_of(w, signed)).call() == 0


def test_another_provider_cannot_refund(w, residents):
    signed = pay(w, residents[0], 2_000)
    err = refused_before_sending(w, w.museum, "--from", "dev:9", "refund", signed.encode(), "--amount", "1")
    assert f"this voucher was made out to provider {w.pool.address}: only that provider can refund it" in err
    assert w.museum.address in err
    # Sent anyway (library checks bypassed), the chain refuses it: the signature names the pool.
    with pytest.raises(CityPassError, match="signature is not valid"):
        w.send(w.museum, w.f.refund(signed.voucher.contract_args(), V.compact_signature(signed), 100))


def test_refund_of_an_unredeemed_voucher_is_refused(w, residents):
    alice = residents[0]
    signed = wallet.sign_voucher(w.dep, alice, w.sport, 2_000, w.pool.address)  # shown, never scanned
    pay(w, residents[1], 3_000)  # the pool holds credit to refund from
    err = refused_before_sending(w, w.pool, "--from", "dev:8", "refund", signed.encode(), "--amount", "1")
    assert f"(nonce {signed.voucher.nonce} of {alice.address}, budget #1) was never redeemed" in err
    with pytest.raises(CityPassError, match=f"made no redemption with nonce {signed.voucher.nonce} in budget #1"):
        w.send(w.pool, w.f.refund(signed.voucher.contract_args(), V.compact_signature(signed), 100))


def test_refund_of_settled_credit_and_usage(w, residents):
    signed = pay(w, residents[0], 2_000)
    finance.settle(w.dep, w.treasurer, w.pool.address, "REFUND-AFTER-SETTLE")
    err = refused_before_sending(w, w.pool, "--from", "dev:8", "refund", signed.encode(), "--amount", "1")
    assert "this provider holds €0.00 of budget #1, less than the €1.00 to refund" in err
    r = cli(w, "refund", "not-a-voucher")
    assert r.exit_code == 1 and "neither a voucher payload" in r.stderr
    r = cli(w, "refund", signed.encode(), "--amount", "0")
    assert r.exit_code == 2 and "--amount" in r.stderr
    r = cli(w, "refund")
    assert r.exit_code == 2 and "VOUCHER" in r.stderr


def test_refund_follows_a_migrated_pass(w, residents):
    alice = residents[0]
    signed = pay(w, alice, 2_000)
    new_phone = synthetic_account("finance-refund-new-phone")
    w.send(w.issuer, w.f.migratePass(alice.address, new_phone.address))
    r = cli(w, "--json", "--from", "dev:8", "refund", signed.encode())
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["holder"], out["to"], out["refunded"]) == (alice.address, new_phone.address, "20.00")
    assert w.f.balanceOf(new_phone.address, w.sport).call() == 10_000


def test_empty_settlement_is_refused_by_the_chain(w):
    with pytest.raises(CityPassError, match="a settlement needs at least one budget and amount"):
        w.send(w.treasurer, w.f.settle(w.pool.address, [], [], b"\x44" * 32))


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
    for expected in ("BudgetCreated", "ProviderRegistered", "BatchIssued", "Redeemed", "Settled", "TransferSingle"):
        assert expected in names
    settled = next(x for x in rows if x["event"] == "Settled")
    assert settled["provider"] == w.pool.address and json.loads(settled["args"])["amount"] == 700
    assert int(json.loads(next(x for x in rows if x["event"] == "BatchIssued")["args"])["budget"]) == w.sport
    assert [int(x["block"]) for x in rows] == sorted(int(x["block"]) for x in rows)
    # to stdout as well
    piped = cli(w, "audit")
    assert list(csv.DictReader(io.StringIO(piped.stdout))) == rows
