"""The private pass register (citypass/register.py): links with their history, every read
logged, CSV import all-or-nothing with line and field, export, and the file kept private."""

from __future__ import annotations

import stat

import pytest
from eth_account import Account
from eth_utils import keccak

from citypass.register import Register, RegisterError, RegisterImportError, normalize_number

OFFICER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def addr(label: str) -> str:
    return Account.from_key(keccak(text=f"citypass-register-test-{label}")).address


@pytest.fixture(autouse=True)
def isolation():
    """No chain needed."""


@pytest.fixture
def reg(tmp_path):
    r = Register.open(tmp_path)
    yield r
    r.close()


def test_the_file_is_private_to_its_owner(reg, tmp_path):
    path = tmp_path / "register" / "register.sqlite"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_enrol_migrate_revoke_keep_the_history(reg):
    a, b = addr("a"), addr("b")
    reg.enrol("sp-100234", a, OFFICER, "0x01")
    reg.migrate("SP-100234", b, OFFICER, "0x02")
    reg.set_status("SP-100234", "suspend", "card_lost", OFFICER)
    reg.set_status("SP-100234", "revoke", "moved_away", OFFICER)
    e = reg.find("SP-100234", OFFICER)
    assert (e.address, e.status) == (b, "revoked")
    assert [c.kind for c in e.history] == ["enrolled", "migrated", "suspended", "revoked"]
    assert e.history[1].old_address == a and e.history[3].reason == "moved_away"
    assert reg.find_address(a, OFFICER).number == "SP-100234"  # an old address still finds its pass
    with pytest.raises(RegisterError, match="revoked"):
        reg.set_status("SP-100234", "reinstate", "review_passed", OFFICER)


def test_a_number_or_address_is_linked_once(reg):
    reg.enrol("SP-1001", addr("c"), OFFICER)
    with pytest.raises(RegisterError) as info:
        reg.enrol("SP-1001", addr("d"), OFFICER)
    assert info.value.field == "number"
    with pytest.raises(RegisterError) as info:
        reg.enrol("SP-1002", addr("c"), OFFICER)
    assert info.value.field == "address"
    reg.migrate("SP-1001", addr("e"), OFFICER)
    with pytest.raises(RegisterError):  # an old address never comes back as another pass
        reg.enrol("SP-1003", addr("c"), OFFICER)


def test_reasons_come_from_the_list(reg):
    reg.enrol("SP-2001", addr("f"), OFFICER)
    with pytest.raises(RegisterError) as info:
        reg.set_status("SP-2001", "suspend", "he looked suspicious", OFFICER)
    assert info.value.field == "reason"


def test_bad_numbers_and_addresses_are_refused():
    for bad in ("", "12", "SP 1001", "x" * 30, "SP_1001", "-SP1"):
        with pytest.raises(RegisterError):
            normalize_number(bad)
    assert normalize_number(" sp-1001 ") == "SP-1001"
    r = Register.__new__(Register)
    with pytest.raises(RegisterError, match="checksum"):
        Register.enrol(r, "SP-1001", addr("g").lower(), OFFICER)


def test_every_read_is_logged_with_the_officer(reg):
    reg.enrol("SP-3001", addr("h"), OFFICER)
    reg.find("SP-3001", OFFICER)
    reg.find("SP-9999", "0x0000000000000000000000000000000000000001")
    reg.export_csv(OFFICER)
    log = reg.lookups()
    assert [(x.action, x.number, x.found) for x in log] == [("export", None, True), ("find", "SP-9999", False),
                                                          ("find", "SP-3001", True)]
    assert log[1].officer.endswith("0001") and all(x.time > 0 for x in log)


def test_import_is_all_or_nothing_with_line_and_field(reg):
    a = addr("i")
    bad = ("pass_number,address,status\n"
           f"SP-4001,{a},active\n"
           f"SP-4002,{a.lower()},active\n"        # line 3: no checksum
           f"SP 4003,{addr('j')},active\n"        # line 4: bad number
           f"SP-4004,{addr('k')},lost\n"          # line 5: bad status
           f"SP-4001,{addr('l')}\n"               # line 6: two fields
           f"SP-4001,{addr('m')},active\n")       # line 7: number twice
    with pytest.raises(RegisterImportError) as info:
        reg.import_csv(bad, OFFICER)
    got = [(p.line, p.field) for p in info.value.problems]
    assert got == [(3, "address"), (4, "pass_number"), (5, "status"), (6, "line"), (7, "pass_number")]
    assert reg.count() == 0
    with pytest.raises(RegisterImportError) as info:
        reg.import_csv("number,address\n", OFFICER)
    assert info.value.problems[0].line == 1
    good = f"pass_number,address\nSP-4001,{a}\nsp-4002,{addr('n')}\n"
    assert reg.import_csv(good, OFFICER) == 2
    with pytest.raises(RegisterImportError) as info:  # the same again: already there
        reg.import_csv(good, OFFICER)
    assert [(p.line, p.field) for p in info.value.problems] == [(2, "pass_number"), (3, "pass_number")]


def test_export_then_import_round_trips(reg, tmp_path):
    reg.enrol("SP-5001", addr("o"), OFFICER)
    reg.enrol("SP-5002", addr("p"), OFFICER)
    reg.set_status("SP-5002", "suspend", "eligibility_review", OFFICER)
    text = reg.export_csv(OFFICER)
    assert text.splitlines()[0] == "pass_number,address,status,since"
    other = Register(tmp_path / "other.sqlite")
    rows = "\n".join(",".join(line.split(",")[:3]) for line in text.splitlines())
    assert other.import_csv(rows, OFFICER) == 2
    assert other.find("SP-5002", OFFICER).status == "suspended"
    other.close()
