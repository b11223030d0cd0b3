"""The resident's pass app on a phone-sized Chromium (390x844, touch, isMobile), end to end:
first run with a PIN, the address QR read off the screen and enrolled and credited through the
CLI, balances, the pass QR scanned by the till through the fake camera and paid, the history,
the nonce rule, offline showing, and every request the page made checked for the key and PIN."""

from __future__ import annotations

import pytest

import media
from passkit import BACKUP_PASSWORD, PIN, enrol_and_credit, keystore_key, open_phone  # noqa: F401
from tillkit import CAMERA

from citypass import passqr
from citypass.address import parse_address_qr

pytestmark = pytest.mark.v2


def test_first_run_enrol_show_pay_history_offline(open_phone, open_till, world, server):
    phone = open_phone()
    phone.state("welcome")
    phone.page.tap("#start-new")
    phone.wait_screen("setpin")
    phone.state("pin-choose")
    phone.page.fill("#pin-new", "12345")  # a run: refused
    phone.page.fill("#pin-repeat", "12345")
    phone.page.tap("#setpin-save")
    assert "te makkelijk" in phone.text("#setpin-error")
    phone.page.fill("#pin-new", PIN)
    phone.page.fill("#pin-repeat", PIN + "0")
    phone.page.tap("#setpin-save")
    assert "niet gelijk" in phone.text("#setpin-error")
    phone.state("pin-mismatch")
    phone.page.tap("#setpin-back")
    address = phone.first_run(PIN)

    # "Mijn pas": the address QR, as the back office scans it, and the same address as text
    qr_text = phone.qr("#address-qr")
    chain_id = server.api("deployment")["chain_id"]
    assert qr_text == f"ethereum:{address}@{chain_id}"
    assert parse_address_qr(qr_text) == (address, chain_id)
    assert "Nog niet aangemeld" in phone.text("#address-status")
    phone.state("address-not-enrolled")

    # the desk enrols the text it scanned; the issuer credits it
    enrol_and_credit(world, qr_text, sport="40.00", culture="15.00")
    phone.go("home")
    phone.refresh()
    cards = phone.page.locator("#balances li")
    assert cards.count() == 2
    sport = phone.text(f"#balances li[data-budget='{world.sport}']")
    assert "Sport 2026" in sport and "Nog €40,00" in sport and "sport" in sport and "Geldig tot" in sport
    assert "Nog €15,00" in phone.text(f"#balances li[data-budget='{world.culture}']")
    assert phone.page.is_visible("#show-pass"), phone.page.evaluate("() => document.body.innerHTML.length")
    phone.state("home-balances")

    # show the pass: PIN asked (a reload ended the unlock window), one voucher per budget
    phone.reload()
    phone.page.tap("#show-pass")
    phone.wait_screen("unlock")
    phone.state("unlock")
    phone.unlock(PIN)
    phone.wait_screen("show")
    phone.page.wait_for_function("() => Number(document.body.dataset.qrDrawn || 0) > 0")
    first = phone.qr("#pass-qr")
    pq = passqr.decode(first)
    assert pq.holder == address and pq.provider == passqr.ANY_PROVIDER
    assert sorted(e.budget for e in pq.entries) == sorted([world.sport, world.culture])
    assert {e.budget: e.max_amount for e in pq.entries} == {world.sport: 4000, world.culture: 1500}
    assert all(problem is None for _, problem in passqr.verify(pq))
    assert 86_000 <= pq.deadline - server.api("deployment")["time"] <= 86_500  # 24 h
    phone.state("show-pass")

    # a refresh keeps each budget's nonce (no nonce used up by looking at the pass)
    phone.page.tap("#show-done")
    phone.wait_screen("home")
    again = passqr.decode(phone.show_pass(PIN))
    assert {e.budget: e.nonce for e in again.entries} == {e.budget: e.nonce for e in pq.entries}

    # the till scans the phone's screen through the fake camera and takes €12,50 of sport
    media.write_y4m(CAMERA, phone.qr("#pass-qr"))
    drawn = int(phone.page.get_attribute("body", "data-qr-drawn"))
    till = open_till("ok")
    till.connect()
    till.page.click("#camera")
    till.page.wait_for_selector("#entries li", timeout=20_000)
    till.page.click("#camera")
    till.amount("12,50")
    till.page.click("#pay")
    till.page.wait_for_selector("#paid", timeout=20_000)
    assert "Betaald" in till.text("#pay-status")

    # the phone sees its nonce used: a "paid" note, a new code with a new sport nonce
    phone.page.wait_for_selector("#show-paid:not([hidden])", timeout=40_000)
    assert "€12,50 bij Zwembad De Wetering" in phone.text("#show-paid")
    assert int(phone.page.get_attribute("body", "data-qr-drawn")) > drawn
    after = passqr.decode(phone.qr("#pass-qr"))
    nonces_before = {e.budget: e.nonce for e in pq.entries}
    nonces_after = {e.budget: e.nonce for e in after.entries}
    assert nonces_after[world.sport] != nonces_before[world.sport]
    assert nonces_after[world.culture] == nonces_before[world.culture]
    assert {e.budget: e.max_amount for e in after.entries}[world.sport] == 2750
    phone.state("show-paid")

    # the history: the payment with the provider's name, and the credit received
    phone.page.tap("#show-done")
    phone.go("history")
    phone.page.wait_for_selector("#history-list li[data-kind='redemption']")
    paid = phone.text("#history-list li[data-kind='redemption']")
    assert "Betaald bij Zwembad De Wetering" in paid and "−€12,50" in paid and "Sport 2026" in paid
    assert phone.page.locator("#history-list li[data-kind='issued']").count() == 2
    phone.state("history")
    phone.page.tap("#lang")
    assert "Paid at Zwembad De Wetering" in phone.text("#history-list li[data-kind='redemption']")
    phone.state("history-en")
    phone.page.tap("#lang")

    # offline: the app reloads from its service worker and shows the pass with the last balances
    phone.page.wait_for_function("async () => !!(await navigator.serviceWorker.ready).active")
    phone.context.set_offline(True)
    phone.go("home")
    phone.reload()
    phone.page.wait_for_selector("#offline-banner:not([hidden])")
    assert "Geen verbinding" in phone.text("#offline-banner")
    assert "Nog €27,50" in phone.text(f"#balances li[data-budget='{world.sport}']")
    phone.state("home-offline")
    offline = passqr.decode(phone.show_pass(PIN))
    assert {e.budget: e.nonce for e in offline.entries} == nonces_after  # never a nonce seen used
    assert "Geen verbinding" in phone.text("#show-notes")
    phone.state("show-offline")
    phone.context.set_offline(False)

    # nothing the page sent carried the PIN or the key (the key read back from a backup)
    phone.page.tap("#show-done")
    phone.go("more")
    phone.page.fill("#backup-password", BACKUP_PASSWORD)
    phone.page.fill("#backup-repeat", BACKUP_PASSWORD)
    with phone.page.expect_download() as dl:
        phone.page.tap("#backup-save")
    backup = phone.downloads / "backup.json"
    dl.value.save_as(backup)
    backup_address, key = keystore_key(backup)
    assert backup_address == address
    assert len(phone.requests) > 10
    assert phone.leaks(PIN, key, "0x" + key, BACKUP_PASSWORD) == []
    # and nothing the app keeps holds the key or the PIN in the clear
    kept = phone.page.evaluate("""async () => {
        const db = await new Promise((ok) => { const r = indexedDB.open('citypass-pass'); r.onsuccess = () => ok(r.result); });
        const all = await new Promise((ok) => { const q = db.transaction('kv').objectStore('kv').getAll(); q.onsuccess = () => ok(q.result); });
        return JSON.stringify(all) + JSON.stringify({...localStorage});
    }""")
    assert address in kept and key.lower() not in kept.lower() and PIN not in kept
    assert any("/api/pass/history" in r.url for r in phone.requests)
