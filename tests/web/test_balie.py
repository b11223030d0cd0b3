"""The desk (/balie/) in a real browser, signed in with the registrar's wallet: enrol from the
pass app's address QR (the webcam), with credit from a running issuance, look a pass up, a lost
phone (migrate: the old pass QR stops working at the till), suspend/reinstate/revoke with a
reason, the register's import/export and the admin's access log, and wrong roles refused."""

from __future__ import annotations

import time

import media
import pytest
from backofficekit import address_of, address_qr, office, officer_wallet_js, pass_number  # noqa: F401
from passes import Entry, pass_qr
from tillkit import CAMERA, POOL, resident

from citypass import keys


def _deployment(server):
    d = server.api("deployment")
    return d["chain_id"], d["contract"]


def scan_into(o, button: str, field: str, text: str) -> None:
    media.write_y4m(CAMERA, text)
    o.page.click(button)
    o.page.wait_for_function(f"() => document.getElementById('{field}').value.startsWith('0x')", timeout=20_000)


def enrol(o, number: str, who, chain_id: int, shot: str | None = None, scan: bool = True) -> None:
    """Enrol at the desk: the address from the webcam (scan) or typed (tests about other things)."""
    o.page.fill("#enrol-number", number)
    if scan:
        scan_into(o, "#enrol-scan", "enrol-address", address_qr(who.address, chain_id))
    else:
        o.page.fill("#enrol-address", who.address)
    assert o.page.input_value("#enrol-address") == who.address
    if shot:
        o.state(shot)
    o.page.click("#enrol-button")
    o.wait_status("#enrol-status", number)


def test_enrol_from_the_address_qr_then_look_it_up(office, server, world):
    chain_id, _ = _deployment(server)
    o = office("REGISTRAR", "/balie/", sign_in=False)
    assert "Inloggen" in o.page.inner_text("#signin")
    o.state("balie-1-signin")
    o.sign_in()
    assert address_of("REGISTRAR") in o.page.inner_text("#officer-text")
    assert "registrar" in o.page.inner_text("#officer-text")
    assert o.page.is_hidden("#log")  # the access log is the admin's
    o.state("balie-2-signed-in")
    who, number = resident("desk-enrol"), pass_number()
    enrol(o, number, who, chain_id, shot="balie-3-address-scanned")
    assert world.cli("pass", "show", who.address)["status"] == "active"
    text = o.page.inner_text("#pass")
    assert who.address in text and "ingeschreven" in text
    o.state("balie-4-enrolled")
    o.page.fill("#find-number", number.lower())  # typed in lower case: the same number
    o.page.click("#find-form button[type=submit]")
    o.page.wait_for_function(f"() => document.getElementById('pass-heading').textContent.includes('{number}')")
    o.page.fill("#find-number", "SP-0000001")
    o.page.click("#find-form button[type=submit]")
    o.page.wait_for_selector("#find-status.bo-warn")
    assert "staat niet in het register" in o.page.inner_text("#find-status")
    o.state("balie-5-not-found")
    o.page.click("#lang")  # English one click away
    assert "is not in the register" in o.page.inner_text("#find-status") or "Look up a pass" in o.page.inner_text("#find")
    assert "Enrol a new pass" in o.page.inner_text("#enrol")
    o.state("balie-6-english")
    o.page.click("#lang")
    assert "Nieuwe pas inschrijven" in o.page.inner_text("#enrol")


def test_a_qr_that_is_no_address_is_refused(office, server):
    o = office("REGISTRAR", "/balie/")
    media.write_y4m(CAMERA, "https://example.org/no-address")
    o.page.click("#enrol-scan")
    o.page.wait_for_function("() => document.getElementById('scan-status').textContent.includes('geen adres-QR')",
                             timeout=20_000)
    assert o.page.input_value("#enrol-address") == ""
    o.state("balie-7-not-an-address-qr")
    o.page.click("#enrol-scan")  # camera off


@pytest.fixture
def registrar_issues(world):
    """The registrar also holds the issuer role for this test (the desk credits at enrolment)."""
    world.cli("--from", "dev:0", "role", "grant", "issuer", address_of("REGISTRAR"))
    yield
    world.cli("--from", "dev:0", "role", "revoke", "issuer", address_of("REGISTRAR"))


def test_enrol_with_credit_from_a_running_issuance(office, server, world, registrar_issues):
    chain_id, _ = _deployment(server)
    o = office("REGISTRAR", "/balie/")
    assert o.page.is_hidden("#enrol-credit-note")
    who, number = resident("desk-credit"), pass_number()
    o.page.fill("#enrol-number", number)
    o.page.fill("#enrol-address", who.address)  # typed or pasted works too
    o.page.check("#enrol-credit")
    o.page.select_option("#enrol-budget", str(world.sport))
    o.page.fill("#enrol-amount", "12,50")
    o.page.fill("#enrol-tranche", "desk-2026")
    o.state("balie-8-enrol-with-credit")
    o.page.click("#enrol-button")
    o.wait_status("#enrol-status", "€\xa012,50")
    balances = server.api("balances", {"holder": who.address})["balances"]
    assert [(int(b["budget"]), b["left_cents"]) for b in balances] == [(world.sport, 1250)]
    o.state("balie-9-enrolled-with-credit")


def test_lost_phone_moves_the_pass_and_the_old_qr_dies_at_the_till(office, open_till, server, world):
    chain_id, contract = _deployment(server)
    o = office("REGISTRAR", "/balie/")
    old, new, number = resident("desk-lost-old"), resident("desk-lost-new"), pass_number()
    enrol(o, number, old, chain_id, scan=False)  # the new phone's address is scanned below
    rows = world.workdir / "desk-lost.csv"
    rows.write_text(f"holder,amount\n{old.address},20.00\n")
    world.cli("issue", str(rows), "--budget", "1", "--tranche", "desk-lost")
    old_qr = pass_qr(old, chain_id, contract, [Entry(world.sport, 1_000, 7)], int(time.time()) + 3600)
    till = open_till("ok")
    till.type_code(old_qr)
    assert "overgezet" not in till.text("#verdict")  # before: the old phone pays

    o.page.fill("#find-number", number)
    o.page.click("#find-form button[type=submit]")
    o.page.wait_for_selector("#pass:not([hidden])")
    assert "oude QR-codes en coupons van deze pas niet meer" in o.page.inner_text("#migrate-form")
    scan_into(o, "#migrate-scan", "migrate-address", address_qr(new.address, chain_id))
    o.state("balie-10-lost-phone")
    o.page.click("#migrate-button")
    text = o.wait_status("#pass-status", "overgezet", "werken niet meer")
    assert "bo-done" in o.page.get_attribute("#pass-status", "class")
    assert new.address in o.page.inner_text("#pass-facts")
    assert "overgezet" in o.page.inner_text("#history")
    o.state("balie-11-moved")
    assert world.cli("pass", "show", old.address)["status"] == "migrated"
    credit = server.api("balances", {"holder": new.address})["balances"]
    assert [b["left_cents"] for b in credit] == [2000]
    till.type_code(old_qr)  # the old phone's QR again, after the move
    assert "Deze pas is overgezet naar een nieuwe telefoon" in till.text("#verdict")
    till.state("balie-12-old-qr-at-the-till")
    assert text


def test_suspend_reinstate_revoke_with_a_reason(office, server, world):
    chain_id, _ = _deployment(server)
    o = office("REGISTRAR", "/balie/")
    who, number = resident("desk-status"), pass_number()
    enrol(o, number, who, chain_id, scan=False)
    o.page.select_option("#status-action", "suspend")
    o.page.click("#status-button")  # no reason picked: refused before anything is sent
    o.wait_status("#pass-status", "Kies een reden")
    assert o.sent() == [o.sent()[0]]  # only the enrolment went out
    o.page.select_option("#status-reason", "eligibility_review")
    o.page.click("#status-button")
    o.wait_status("#pass-status", "geblokkeerd")
    assert world.cli("pass", "show", who.address)["status"] == "suspended"
    o.state("balie-13-suspended")
    o.page.select_option("#status-action", "reinstate")
    o.page.select_option("#status-reason", "review_passed")
    o.page.click("#status-button")
    o.wait_status("#pass-status", "actief")
    o.page.select_option("#status-action", "revoke")
    assert o.page.is_visible("#revoke-warning")
    o.page.select_option("#status-reason", "moved_away")
    o.state("balie-14-revoke-chosen")
    o.page.click("#status-button")
    o.wait_status("#pass-status", "ingetrokken")
    assert world.cli("pass", "show", who.address)["status"] == "revoked"
    history = o.page.inner_text("#history")
    for word in ("geblokkeerd", "herbeoordeling recht", "gedeblokkeerd", "ingetrokken", "verhuisd uit de gemeente"):
        assert word in history
    assert o.page.is_hidden("#status-form") and o.page.is_hidden("#migrate-form")
    o.state("balie-15-revoked")


def test_register_import_export_and_the_admins_log(office, server, tmp_path):
    o = office("REGISTRAR", "/balie/")
    a, b = resident("import-a").address, resident("import-b").address
    n1, n2 = pass_number(), pass_number()
    bad = tmp_path / "register-bad.csv"
    bad.write_text(f"pass_number,address\n{n1},{a}\n{n2},{b.lower()}\nSP 12,{b}\n")
    o.page.set_input_files("#import-file", str(bad))
    o.page.click("#import-button")
    o.wait_status("#register-status", "Niet geïmporteerd", "Er is niets opgeslagen")
    problems = o.page.inner_text("#import-problems")
    assert "3\tadres (address)" in problems and "4\tpasnummer (pass_number)" in problems
    o.state("balie-16-import-refused")
    good = tmp_path / "register-good.csv"
    good.write_text(f"pass_number,address\n{n1},{a}\n{n2},{b}\n")
    o.page.set_input_files("#import-file", str(good))
    o.page.click("#import-button")
    o.wait_status("#register-status", "2 pas(sen) geïmporteerd")
    with o.page.expect_download() as info:
        o.page.click("#export-button")
    exported = (tmp_path / "export.csv")
    info.value.save_as(str(exported))
    lines = exported.read_text().splitlines()
    assert lines[0] == "pass_number,address,status,since"
    assert any(line.startswith(f"{n1},{a},active,") for line in lines)
    o.state("balie-17-imported")
    o.page.fill("#find-number", n2)
    o.page.click("#find-form button[type=submit]")
    o.page.wait_for_selector("#pass:not([hidden])")

    admin = office("ADMIN", "/balie/")
    assert admin.page.is_hidden("#desk")  # the admin supervises: the log, not the desk's work
    log = admin.page.inner_text("#log-rows")
    registrar = address_of("REGISTRAR")
    assert registrar in log and n2 in log and "register geëxporteerd" in log and "register geïmporteerd" in log
    admin.state("balie-18-access-log")


def test_a_wallet_without_the_role_is_refused(office):
    o = office("TREASURER", "/balie/", sign_in=False)
    o.page.click("#signin-button")
    o.page.wait_for_selector("#signin-status.bo-error")
    text = o.page.inner_text("#signin-status")
    assert "Uw rol mag dit niet" in text and "registrar" in text
    assert o.page.is_hidden("#desk") and o.page.is_visible("#signin")
    o.state("balie-19-wrong-role")
    stranger = office("NOBODY", "/financien/", sign_in=False)
    stranger.page.click("#signin-button")
    stranger.page.wait_for_selector("#signin-status.bo-error")
    assert keys.dev_account(9).address in stranger.page.inner_text("#signin-status")


def test_enrol_refusals_say_what_to_do_and_send_nothing(office, server):
    chain_id, _ = _deployment(server)
    o = office("REGISTRAR", "/balie/")
    first, number = resident("desk-refusal"), pass_number()
    enrol(o, number, first, chain_id, scan=False)
    sent = o.sent()
    for typed_number, address, sentence in (
        (number, resident("desk-refusal-2").address, "staat al in het register"),
        (pass_number(), first.address, "hoort al bij een pas in het register"),
        (pass_number(), POOL, "al een pas of een aanbieder"),
        (pass_number(), resident("desk-refusal-3").address.lower(), "geen geldig adres"),
        ("SP 12", resident("desk-refusal-4").address, "geen pasnummer"),
    ):
        o.page.fill("#enrol-number", typed_number)
        o.page.fill("#enrol-address", address)
        o.page.click("#enrol-button")
        o.wait_status("#enrol-status", sentence)
        assert "bo-error" in o.page.get_attribute("#enrol-status", "class")
    assert o.sent() == sent  # nothing went to the wallet
    o.state("balie-20-enrol-refused")
