"""The pass app's harder days, on a phone-sized Chromium: wrong PINs (a lock-out that grows and
survives a reload, the key kept), a new phone and the desk's migration (the old phone's QR then
refused at the till), a backup decrypted by eth-account and restored on another phone, and a
refused pass that says who to call."""

from __future__ import annotations

import re

import pytest

from passkit import BACKUP_PASSWORD, PIN, enrol_and_credit, keystore_key, open_phone  # noqa: F401

from citypass import passqr
from citypass.reasons import Reason

pytestmark = pytest.mark.v2


def failures(phone) -> int:
    return int(phone.page.get_attribute("body", "data-pin-failures") or 0)


def lock_wait(phone) -> int:
    return int(phone.page.get_attribute("body", "data-lock-wait") or 0)


def test_wrong_pins_lock_out_longer_each_time_and_never_wipe_the_key(open_phone):
    phone = open_phone()
    phone.context.clock.install()
    phone.reload()
    address = phone.first_run(PIN)
    phone.reload()
    phone.page.goto(phone.server.base + "/pass/#show")
    phone.page.wait_for_selector("body[data-ready='1']")
    phone.wait_screen("unlock")
    for n in (1, 2):
        phone.unlock("99999")
        assert failures(phone) == n and lock_wait(phone) == 0
        assert "klopt niet" in phone.text("#unlock-error")
    phone.unlock("99998")
    assert failures(phone) == 3 and 25 <= lock_wait(phone) <= 30
    assert re.search(r"Wacht (nog )?(30|29|28|27|26|25) seconden", phone.text("#unlock-error"))
    phone.state("unlock-locked")
    phone.unlock(PIN)  # the right PIN during the lock-out is not even tried
    assert phone.screen() == "unlock" and "Wacht nog" in phone.text("#unlock-error")
    phone.reload()  # a reload does not lift the lock-out
    phone.wait_screen("unlock")
    phone.page.wait_for_function("() => Number(document.body.dataset.lockWait) > 0")
    phone.context.clock.fast_forward("00:31")
    phone.unlock("99997")
    assert failures(phone) == 4 and 55 <= lock_wait(phone) <= 60  # the wait doubles
    assert re.search(r"Wacht (nog )?(60|59|58|57|56|55) seconden", phone.text("#unlock-error"))
    phone.context.clock.fast_forward("01:01")
    phone.unlock(PIN)
    phone.wait_screen("show")  # the key is still there, the count starts again
    assert failures(phone) == 0
    assert phone.page.get_attribute("#address-value", "data-address") in (None, address)
    vault = phone.page.evaluate("""() => new Promise((ok) => { const r = indexedDB.open('citypass-pass');
        r.onsuccess = () => { const g = r.result.transaction('kv').objectStore('kv').get('vault');
        g.onsuccess = () => ok(g.result); }; })""")
    assert vault["address"] == address and vault["kdf"] == "PBKDF2-SHA256" and vault["iterations"] >= 300_000


def test_new_phone_migration_kills_the_old_phones_code(open_phone, open_till, world, server, tmp_path):
    old = open_phone()
    old_address = old.first_run(PIN)
    png = old.qr_png("#address-qr", tmp_path / "old-address.png")
    enrol_and_credit(world, str(png), sport="30.00", culture="")  # the desk enrols a photo of the code
    old.go("home")
    old.refresh()
    old_code = old.show_pass(PIN)
    assert passqr.decode(old_code).holder == old_address

    new = open_phone()
    new.wait_screen("welcome")
    new.page.tap("#start-phone")
    new.wait_screen("setpin")
    assert "nieuwe pas" in new.text("#setpin-phone")
    new.state("new-phone-pin")
    new.page.fill("#pin-new", "20417")
    new.page.fill("#pin-repeat", "20417")
    new.page.tap("#setpin-save")
    new.wait_screen("address")
    new.page.wait_for_function("() => document.getElementById('address-qr').width > 0")
    assert "zetten uw tegoed over" in new.text("#address-text")
    new_address = new.page.get_attribute("#address-value", "data-address")
    assert new_address != old_address
    new.state("new-phone-address")

    world.cli("pass", "migrate", old_address, new.qr("#address-qr"))  # the registrar scans the new phone

    till = open_till("ok")
    till.connect()
    till.type_code(old_code)
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "PassMigrated"

    new.go("home")
    new.refresh()
    assert "Nog €30,00" in new.text(f"#balances li[data-budget='{world.sport}']")
    new_code = new.show_pass("20417")
    assert passqr.decode(new_code).holder == new_address
    till.type_code(new_code)
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "Ok"
    new.page.tap("#show-done")
    new.go("history")
    new.page.wait_for_selector("#history-list li[data-kind='migrated_in']")
    assert "Overgezet van uw oude telefoon" in new.text("#history-list")
    assert new.page.locator("#history-list li[data-kind='issued']").count() == 1  # the old phone's credit too
    new.state("new-phone-history")

    old.page.tap("#show-done")
    old.refresh()
    assert "overgezet naar een nieuwe telefoon" in old.text("#pass-state")
    assert not old.page.is_visible("#show-pass")
    old.state("old-phone-migrated")


def test_backup_decrypts_with_eth_account_and_restores_on_another_phone(open_phone, world):
    first = open_phone()
    address = first.first_run(PIN)
    enrol_and_credit(world, address, sport="12.00", culture="")
    first.go("more")
    first.state("more")
    first.page.fill("#backup-password", "short")
    first.page.fill("#backup-repeat", "short")
    first.page.tap("#backup-save")
    assert "minstens 10 tekens" in first.text("#backup-status")
    first.page.fill("#backup-password", BACKUP_PASSWORD)
    first.page.fill("#backup-repeat", BACKUP_PASSWORD)
    with first.page.expect_download() as dl:
        first.page.tap("#backup-save")
    path = first.downloads / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.name.startswith("stadspas-backup-")
    backup_address, _ = keystore_key(path)
    assert backup_address == address
    assert "opgeslagen" in first.text("#backup-status")
    first.state("backup-saved")

    second = open_phone()
    second.wait_screen("welcome")
    second.page.tap("#start-restore")
    second.wait_screen("restore")
    second.page.set_input_files("#restore-file", str(path))
    second.page.fill("#restore-password", "not the password")
    second.page.tap("#restore-form button[type=submit]")
    second.page.wait_for_function("() => document.getElementById('restore-error').textContent.includes('klopt niet')")
    second.state("restore-wrong-password")
    second.page.fill("#restore-password", BACKUP_PASSWORD)
    second.page.tap("#restore-form button[type=submit]")
    second.wait_screen("setpin")
    second.page.fill("#pin-new", "62830")
    second.page.fill("#pin-repeat", "62830")
    second.page.tap("#setpin-save")
    second.wait_screen("home")
    second.page.wait_for_selector(f"#balances li[data-budget='{world.sport}']")
    assert "Nog €12,00" in second.text("#balances")
    second.go("address")
    assert second.page.get_attribute("#address-value", "data-address") == address
    second.go("home")
    assert passqr.decode(second.show_pass("62830")).holder == address


def test_a_refused_pass_says_who_to_call_and_every_reason_is_explained(open_phone, world, server):
    phone = open_phone()
    address = phone.first_run(PIN)
    enrol_and_credit(world, address, sport="5.00", culture="")
    world.cli("pass", "suspend", address)
    phone.go("home")
    phone.refresh()
    banner = phone.text("#pass-state")
    assert "tijdelijk geblokkeerd" in banner and "14\u00a0050" in banner
    assert not phone.page.is_visible("#show-pass")
    phone.state("home-suspended")
    phone.page.tap("#lang")
    assert "suspended" in phone.text("#pass-state") and "14\u00a0050" in phone.text("#pass-state")
    phone.page.tap("#lang")
    world.cli("pass", "reinstate", address)

    phone.go("more")
    explained = phone.page.eval_on_selector_all("#reasons dt", "els => els.map(e => e.dataset.reason)")
    assert sorted(explained) == sorted(r.name for r in Reason if r not in (Reason.Ok, Reason.BudgetNotEnded))
    till_titles = server.api("messages", {"lang": "nl"})["reasons"]
    for name in explained:  # the resident sees the words the till shows
        assert f"“{till_titles[name]['title']}”" in phone.text(f"#reasons dt[data-reason='{name}']")
    assert "14\u00a0050" in phone.text("#reasons")

    # the resident's per-scan limit: at most the municipality's, and the pass QR carries it
    assert phone.page.input_value("#limit") == "150,00"  # the municipality's default (settings.py)
    phone.page.fill("#limit", "151,00")
    phone.page.tap("#limit-form button[type=submit]")
    assert "tussen €0,01 en €150,00" in phone.text("#limit-status")
    phone.page.fill("#limit", "3,00")
    phone.page.tap("#limit-form button[type=submit]")
    phone.page.wait_for_function("() => document.getElementById('limit-status').textContent.includes('Opgeslagen')")
    assert "maximaal €3,00 per betaling" in phone.text("#limit-status")
    phone.state("more-limit-saved")
    phone.go("home")
    phone.refresh()
    pq = passqr.decode(phone.show_pass(PIN))
    assert [(e.budget, e.max_amount) for e in pq.entries] == [(world.sport, 300)]
    assert "tot €3,00 per betaling" in phone.text("#show-budgets")
