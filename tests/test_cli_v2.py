"""Commands contract v2 adds or changes, end to end on the embedded Anvil: provider names
(`provider add --name`, `provider rename`, shown in lists), `pass migrate` in bounded calls
(default: every budget the old pass holds credit in), and the municipality's settings."""

from __future__ import annotations

import json

import pytest

from citypass import contract as C
from citypass import passqr
from tests.ops_helpers import World, enrol_and_credit, make_world, synthetic_account
from tests.ops_helpers import cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("cli-v2"))


@pytest.fixture
def w(world):
    yield from world.rolled_back()




def test_provider_names_are_public_and_on_chain(w):
    newcomer = synthetic_account("v2-provider").address
    help_text = cli(w, "provider", "add", "--help").stdout
    assert "personal data" in " ".join(help_text.split()) and "Muziekles, Oosterpoort" in help_text
    r = cli(w, "--json", "provider", "add", newcomer, "--categories", "1", "--name", "  Muziekles,   Oosterpoort ")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "Muziekles, Oosterpoort"
    assert C.provider_names(w.dep)[newcomer] == "Muziekles, Oosterpoort"
    r = cli(w, "--json", "provider", "rename", newcomer, "Muziekschool Noord")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "Muziekschool Noord"
    listed = {p["address"]: p["name"] for p in json.loads(cli(w, "--json", "provider", "list").stdout)}
    assert listed == {w.pool.address: "Swimming pool test", w.museum.address: "Museum test",
                      newcomer: "Muziekschool Noord"}
    table = cli(w, "provider", "list").stdout
    assert "NAME" in table.splitlines()[0] and "Muziekschool Noord" in table


def test_provider_name_rules(w):
    someone = synthetic_account("v2-provider-2").address
    r = cli(w, "provider", "add", someone, "--categories", "1")
    assert r.exit_code == 2 and "--name" in r.stderr
    r = cli(w, "provider", "add", someone, "--categories", "1", "--name", "x" * 65)
    assert r.exit_code == 2 and "65 bytes of UTF-8; a provider's name has 1 to 64" in r.stderr
    r = cli(w, "provider", "add", someone, "--categories", "1", "--name", "   ")
    assert r.exit_code == 2 and "0 bytes" in r.stderr
    r = cli(w, "provider", "rename", someone, "Nobody")
    assert r.exit_code == 1 and f"{someone} is not a registered provider" in r.stderr


def test_pass_migrate_moves_every_budget_with_credit_in_bounded_calls(w, monkeypatch):
    old, new = synthetic_account("v2-lost-phone"), synthetic_account("v2-new-phone")
    enrol_and_credit(w, [old], w.sport, 3_000, "v2-migrate-sport")
    w.send(w.issuer, w.f.issue(b"\x09" * 32, w.culture, [old.address], [2_000]))
    monkeypatch.setattr(C, "MIGRATE_BUDGETS_PER_CALL", 1)  # one budget per transaction
    before = w.chain.w3.eth.get_transaction_count(w.issuer.address)
    r = cli(w, "--json", "pass", "migrate", old.address, new.address)
    assert r.exit_code == 0, r.stderr
    assert w.chain.w3.eth.get_transaction_count(w.issuer.address) - before == 2  # migratePass, then migrateBalances
    assert w.f.balanceOfBatch([new.address] * 2, [w.sport, w.culture]).call() == [3_000, 2_000]
    assert w.f.balanceOfBatch([old.address] * 2, [w.sport, w.culture]).call() == [0, 0]
    assert "moved 1 more budget(s)" in r.stderr
    # credit that still reaches the old address later (a refund) follows with another run
    again = cli(w, "pass", "migrate", old.address, new.address)
    assert again.exit_code == 0 and "holds no credit left to move" in again.stderr
    other = synthetic_account("v2-third-phone")
    r = cli(w, "pass", "migrate", old.address, other.address)
    assert r.exit_code == 1 and f"moved to {new.address} already, not to {other.address}" in r.stderr


def test_pass_migrate_of_chosen_budgets(w):
    old, new = synthetic_account("v2-lost-phone-2"), synthetic_account("v2-new-phone-2")
    enrol_and_credit(w, [old], w.sport, 3_000, "v2-migrate-sport-2")
    w.send(w.issuer, w.f.issue(b"\x0a" * 32, w.culture, [old.address], [2_000]))
    assert cli(w, "pass", "migrate", old.address, new.address, "--budget", "1").exit_code == 0
    assert w.f.balanceOfBatch([new.address] * 2, [w.sport, w.culture]).call() == [3_000, 0]
    assert cli(w, "pass", "migrate", old.address, new.address, "--budget", "2").exit_code == 0
    assert w.f.balanceOfBatch([new.address] * 2, [w.sport, w.culture]).call() == [3_000, 2_000]


def test_settings_show_and_set(w):
    shown = json.loads(cli(w, "--json", "settings", "show").stdout)
    assert shown == {"pass_qr_ttl_seconds": 86_400, "scan_limit_cents": 15_000}
    r = cli(w, "--json", "settings", "set", "--scan-limit", "25.50")
    assert r.exit_code == 0, r.stderr
    try:
        assert json.loads(r.stdout)["scan_limit_cents"] == 2_550
        person = synthetic_account("v2-settings")
        enrol_and_credit(w, [person], w.sport, 10_000, "v2-settings-sport")
        from citypass import keys

        keys.create_keystore(w.workdir, "v2-settings", person.key, password="synthetic-test-password")
        text = cli(w, "voucher", "sign", "--key", "v2-settings",
                   env={"CITYPASS_PASSWORD": "synthetic-test-password"}).stdout.strip()
        assert passqr.decode(text).entries[0].max_amount == 2_550  # min(balance, the per-scan limit)
    finally:
        (w.workdir / "settings.json").unlink()
    assert cli(w, "settings", "set").exit_code == 2


def test_paper_coupons_are_pass_qrs_valid_until_the_budgets_end(w):
    from citypass import budget_id, redemption, wallet

    person = synthetic_account("v2-coupon-sheet")  # the desk's key, made in memory for the sheet
    enrol_and_credit(w, [person], w.sport, 5_000, "v2-coupons")
    sheet = [wallet.paper_coupon(w.dep, person, w.sport, 2_000, nonce=n) for n in range(2)]
    for n, coupon in enumerate(sheet):
        back = passqr.decode(coupon.encode())
        assert len(back.entries) == 1 and back.provider == passqr.ANY_PROVIDER
        assert back.deadline == budget_id.decode(w.sport).valid_until and back.entries[0].nonce == n
    for coupon in sheet:
        redemption.redeem(w.dep, w.pool, coupon.vouchers()[0], 2_000)
    assert w.f.balanceOf(person.address, w.sport).call() == 1_000
    with pytest.raises(redemption.VoucherRefused, match="already used"):
        redemption.redeem(w.dep, w.pool, sheet[0].vouchers()[0], 1)
