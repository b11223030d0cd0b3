"""Paper coupon sheets (`citypass coupons`, citypass/coupons.py): the planning rules (face
values, one unused nonce per coupon, deadline = the budget's end, totals never above the
credit), the check number, the PDF rendered to an image with every QR decoded by zxing-cpp,
and on the embedded Anvil: four-eyes enrol and credit, exactly once on a re-run, the key never
written anywhere, a failure after the PDF that a re-run finishes, a lost sheet whose coupons
die at migration, a sheet for credit an issuance gave, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from citypass import budget_id, passqr, redemption, wallet
from citypass import coupons as K
from citypass import voucher as V
from citypass.errors import ROLE_IDS
from citypass.reasons import Reason
from tests.ops_helpers import cli, enrol_and_credit, make_world, synthetic_account

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
END = 1_798_761_599  # 2026-12-31 23:59:59 UTC
SPORT = budget_id.encode(1, 0, 1_767_225_600, END)
CULTURE = budget_id.encode(2, 1, 1_767_225_600, END)
SHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


# ------------------------------------------------------------------ the rules, without a chain
@pytest.mark.parametrize("credit, expected", [
    (5_000, [1000, 1000, 1000, 500, 500, 500, 500]),  # €10 coupons until €20 is left, then €5 ones
    (2_000, [500, 500, 500, 500]),
    (1_250, [500, 500, 250]),  # the last cents on one coupon
    (300, [300]),
    (1, [1]),
    (15_000, [1000] * 13 + [500] * 4),
])
def test_face_values_add_up_to_the_credit_small_ones_kept(credit, expected):
    assert K.amounts_for(credit) == expected
    assert sum(expected) == credit


def test_face_values_with_other_denominations():
    assert K.amounts_for(10_000, (2000, 1000, 500)) == [2000] * 3 + [1000] * 2 + [500] * 4
    assert K.amounts_for(10_000, (500, 2000, 1000)) == K.amounts_for(10_000, (2000, 1000, 500))  # any order
    assert K.amounts_for(1_000, (300,)) == [300, 300, 300, 100]
    for credit in range(1, 20_000, 37):
        values = K.amounts_for(credit, (1000, 500, 200))
        assert sum(values) == credit and values == sorted(values, reverse=True)


def test_plan_one_unused_nonce_per_coupon_deadline_the_budgets_end():
    plan = K.plan_sheet({SPORT: 5_000, CULTURE: 1_250}, used_nonces={SPORT: {0, 2, 3}})
    sport = [c for c in plan.coupons if c.budget == SPORT]
    culture = [c for c in plan.coupons if c.budget == CULTURE]
    assert [c.nonce for c in sport] == [1, 4, 5, 6, 7, 8, 9]  # the used ones skipped
    assert [c.nonce for c in culture] == [0, 1, 2]  # nonces are counted per budget
    assert {c.deadline for c in plan.coupons} == {END}
    assert plan.total_for(SPORT) == 5_000 and plan.total_for(CULTURE) == 1_250 and plan.total == 6_250
    assert len({(c.budget, c.nonce) for c in plan.coupons}) == len(plan.coupons)
    assert json.loads(json.dumps(plan.to_json()))["total_cents"] == 6_250


@pytest.mark.parametrize("call, message", [
    (lambda: K.plan_sheet({}), "nothing to put on a sheet"),
    (lambda: K.plan_sheet({SPORT: 0}), "a sheet needs more than 0"),
    (lambda: K.plan_sheet({SPORT: 50_000}), "would need 52 coupons, more than the 40 a sheet holds: use larger denominations"),
    (lambda: K.plan_sheet({SPORT: 5_000}, now=END + 1), "budget #1 ended on 2026-12-31"),
    (lambda: K.plan_sheet({12345: 5_000}), "is not a CityPass budget id"),
    (lambda: K.amounts_for(5_000, (1000, 1000)), "an amount is listed twice"),
    (lambda: K.amounts_for(5_000, (20_000,)), "€200.00 is more than €100.00"),
    (lambda: K.amounts_for(5_000, ()), "give 1 to 6 amounts"),
    (lambda: K.parse_denominations("10,,5"), "give euro amounts separated by commas"),
    (lambda: K.parse_denominations("10,abc"), "'abc'"),
    (lambda: K.parse_denominations("10,0"), "must be more than 0"),
])
def test_bad_plans_are_refused_with_the_reason(call, message):
    with pytest.raises(K.CouponError) as err:
        call()
    assert message in str(err.value)


def test_denominations_are_euros():
    assert K.parse_denominations("10,5,2.50") == (1000, 500, 250)


def test_check_number_and_what_makes_a_coupon():
    plan = K.plan_sheet({SPORT: 1_500})
    sheet = K.sign_with_fresh_key(plan, CHAIN_ID, CONTRACT)
    for c in sheet.coupons:
        digest = V.digest(c.qr.voucher(c.qr.entries[0]), CHAIN_ID, CONTRACT)
        assert c.check == f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"
        assert len(c.check) == 6 and c.check.isdigit()
        assert K.is_coupon(passqr.decode(c.text))
    assert len({c.check for c in sheet.coupons}) == len(sheet.coupons)
    assert K.show_check_number("048291") == "048 291"
    # a phone's pass QR (24 hours) is no coupon; nor two vouchers, nor one made out to a provider
    key = Account.from_key(keccak(text="citypass-coupon-test-phone"))
    phone = passqr.sign_pass(key, CHAIN_ID, CONTRACT, [(SPORT, 1_000, 0)], 1_767_300_000)
    assert not K.is_coupon(phone)
    assert not K.is_coupon(passqr.sign_pass(key, CHAIN_ID, CONTRACT, [(SPORT, 1_000, 0), (CULTURE, 500, 0)], END))
    assert not K.is_coupon(passqr.coupon(key, CHAIN_ID, CONTRACT, SPORT, 1_000, 0, END,
                                         provider="0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
    assert K.is_coupon(passqr.coupon(key, CHAIN_ID, CONTRACT, SPORT, 1_000, 0, END))


def test_a_sheet_signed_elsewhere_is_checked_against_its_plan():
    """The desk's page signs in the browser and hands over only the codes: the library checks
    each against the plan before it draws the sheet."""
    plan = K.plan_sheet({SPORT: 2_000, CULTURE: 500})
    signed = K.sign_with_fresh_key(plan, CHAIN_ID, CONTRACT)
    codes = [c.text for c in signed.coupons]
    again = K.sheet_from_codes(plan, codes, CHAIN_ID, CONTRACT)
    assert again.holder == signed.holder and [c.check for c in again.coupons] == [c.check for c in signed.coupons]
    other = K.sign_with_fresh_key(plan, CHAIN_ID, CONTRACT)
    with pytest.raises(K.CouponError, match="coupon 2: signed by .* one sheet, one key"):
        K.sheet_from_codes(plan, [codes[0], other.coupons[1].text] + codes[2:], CHAIN_ID, CONTRACT)
    with pytest.raises(K.CouponError, match="coupon 1: not the planned coupon"):
        K.sheet_from_codes(plan, [codes[1], codes[0]] + codes[2:], CHAIN_ID, CONTRACT)
    with pytest.raises(K.CouponError, match="4 signed coupons for a plan of 5"):
        K.sheet_from_codes(plan, codes[:4], CHAIN_ID, CONTRACT)
    with pytest.raises(K.CouponError, match="coupon 1: signed for chain 31337"):
        K.sheet_from_codes(plan, codes, 1, CONTRACT)
    forged = passqr.PassQR(CHAIN_ID, CONTRACT, signed.holder, END, passqr.ANY_PROVIDER,
                           (passqr.Entry(SPORT, 500, 0, other.coupons[0].qr.entries[0].signature),))
    with pytest.raises(K.CouponError, match="coupon 1: its signature is not the holder's"):
        K.sheet_from_codes(plan, [forged.encode()] + codes[1:], CHAIN_ID, CONTRACT)


def _sheet_pdf(credits: dict[int, int], path: Path) -> tuple[K.Sheet, bytes]:
    plan = K.plan_sheet(credits)
    sheet = K.sign_with_fresh_key(plan, CHAIN_ID, CONTRACT)
    info = K.SheetInfo("new", CHAIN_ID, CONTRACT, sheet.holder, dict(credits), None, "", END, len(plan.coupons))
    data = K.render_pdf(sheet, info, {SPORT: "Sport 2026", CULTURE: "Cultuur 2026"}, {0: "sport", 1: "cultuur"})
    path.write_bytes(data)
    return sheet, data


def test_the_pdf_as_printed_every_qr_decodes_to_a_valid_coupon(tmp_path):
    """Render the A4 PDF to pixels (PDFium), decode every QR on every page with zxing-cpp, and
    check each one is a coupon of this sheet: signed by its holder, its own nonce, the sum of
    them not above the credit; the printed words name each coupon's amount and check number."""
    import pypdfium2 as pdfium
    import zxingcpp

    credits = {SPORT: 15_000, CULTURE: 1_250}
    sheet, data = _sheet_pdf(credits, tmp_path / "sheet.pdf")
    assert data.startswith(b"%PDF") and sheet.holder.encode() in data  # the plan in the metadata
    assert K.render_pdf(sheet, K.read_sheet_info(tmp_path / "sheet.pdf")) != b""
    doc = pdfium.PdfDocument(str(tmp_path / "sheet.pdf"))
    assert len(doc) == 3  # 8 coupons on the first page (under the instructions), 10 on the next ones
    decoded, words = [], ""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i in range(len(doc)):
        page = doc[i]
        w, h = page.get_size()
        assert (round(w), round(h)) == (595, 842)  # A4 in points
        image = page.render(scale=150 / 72).to_pil()
        if i == 0:
            image.save(SHOTS / "coupons-sheet-page1.png")
        decoded += [c.text for c in zxingcpp.read_barcodes(image.convert("L"))
                    if c.format == zxingcpp.BarcodeFormat.QRCode and c.valid]
        words += page.get_textpage().get_text_range()
    assert sorted(decoded) == sorted(c.text for c in sheet.coupons)
    seen = set()
    for text in decoded:
        pq = passqr.decode(text)
        assert K.is_coupon(pq) and pq.holder == sheet.holder and pq.chain_id == CHAIN_ID
        assert passqr.verify(pq) == [(pq.entries[0].budget, None)]
        seen.add((pq.entries[0].budget, pq.entries[0].nonce))
    assert len(seen) == len(decoded) == 20
    for b, cents in credits.items():
        assert sum(passqr.decode(t).entries[0].max_amount for t in decoded if passqr.decode(t).entries[0].budget == b) <= cents
    for c in sheet.coupons:
        assert K.show_check_number(c.check) in words
    for needed in ("€10,00", "€5,00", "€2,50", "Sport 2026", "Cultuur 2026", "Geldig tot en met", "31 december 2026",
                   "Controlenummer", "één keer te gebruiken", "balie van de gemeente", "Bon 20 van 20"):
        assert needed in words, needed


def test_the_pdf_is_the_same_for_the_same_sheet(tmp_path):
    sheet, data = _sheet_pdf({SPORT: 2_000}, tmp_path / "a.pdf")
    info = K.read_sheet_info(tmp_path / "a.pdf")
    again = K.render_pdf(sheet, info, {SPORT: "Sport 2026", CULTURE: "Cultuur 2026"}, {0: "sport", 1: "cultuur"})
    assert again == data
    (tmp_path / "other.pdf").write_bytes(b"%PDF-1.4 not a sheet")
    with pytest.raises(K.CouponError, match="is not a CityPass coupon sheet"):
        K.read_sheet_info(tmp_path / "other.pdf")


# ------------------------------------------------------------------ on the chain
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("coupons"))


@pytest.fixture
def w(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield from world.rolled_back()


@pytest.fixture
def keys_made(monkeypatch):
    """Every fresh key the command makes (copied before it is wiped), to look for it on disk."""
    made: list[bytes] = []
    original = K._fresh_key

    def spy() -> bytearray:
        key = original()
        made.append(bytes(key))
        return key

    monkeypatch.setattr(K, "_fresh_key", spy)
    return made


def _second_registrar(w) -> Account:
    """dev:4 gets the registrar role, so enrolling and crediting are two people (four eyes)."""
    from citypass import keys

    registrar = keys.load_account("dev:4", w.chain)
    w.send(w.admin, w.f.grantRole(ROLE_IDS["REGISTRAR"], registrar.address))
    return registrar


def _files_written_since(start: float, roots: list[Path]) -> list[Path]:
    out = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                p = Path(folder) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if st.st_mtime >= start - 1 and p.is_file() and st.st_size < 200_000_000:
                    out.append(p)
    return out


def _holding(paths: list[Path], key: bytes) -> list[Path]:
    forms = [key.hex().encode(), key.hex().upper().encode(), key]
    found = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if any(f in data for f in forms):
            found.append(p)
    return found


def test_new_sheet_four_eyes_once_and_the_key_never_on_disk(w, tmp_path, keys_made):
    registrar = _second_registrar(w)
    start = time.time()
    r = cli(w, "--json", "coupons", "new", "--budget", "1", "--amount", "50", "--out", "sheet.pdf",
            "--registrar", "dev:4", "--issuer", "dev:3")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    holder = out["pass"]
    assert out["sheet"] == "sheet.pdf" and out["coupons"] == 7 and out["total_cents"] == 5_000
    assert len(keys_made) == 1 and Account.from_key(keys_made[0]).address == holder
    # enrolled by the registrar, credited by the issuer: two accounts
    enrolled = w.dep.contract.events.PassEnrolled().get_logs(from_block=0, argument_filters={"holder": holder})
    assert len(enrolled) == 1
    assert w.chain.w3.eth.get_transaction(enrolled[0].transactionHash)["from"] == registrar.address
    issued = [e for e in w.dep.contract.events.TransferSingle().get_logs(from_block=0) if e.args.to == holder]
    assert len(issued) == 1 and w.chain.w3.eth.get_transaction(issued[0].transactionHash)["from"] == w.issuer.address
    assert w.f.balanceOf(holder, w.sport).call() == 5_000
    # the key is nowhere on disk: not in the sheet, the work directory (journal, snapshots), the
    # current folder or the temporary folder
    written = _files_written_since(start, [w.workdir, tmp_path, Path(tempfile.gettempdir())])
    assert Path("sheet.pdf").resolve() in [p.resolve() for p in written]
    assert _holding(written, keys_made[0]) == []
    canary = tmp_path / "canary.txt"  # the search itself finds a key where there is one
    canary.write_text("key " + keys_made[0].hex().upper())
    assert _holding(_files_written_since(start, [tmp_path]), keys_made[0]) == [canary]
    # a re-run of the same command credits nobody twice and makes no new key
    sent = {a: w.chain.w3.eth.get_transaction_count(a) for a in (registrar.address, w.issuer.address)}
    again = cli(w, "--json", "coupons", "new", "--budget", "1", "--amount", "50", "--out", "sheet.pdf",
                "--registrar", "dev:4", "--issuer", "dev:3")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["finished_before"] is True and "nothing was sent" in again.stderr
    assert {a: w.chain.w3.eth.get_transaction_count(a) for a in sent} == sent
    assert len(keys_made) == 1 and w.f.balanceOf(holder, w.sport).call() == 5_000
    other = cli(w, "coupons", "new", "--budget", "1", "--amount", "60", "--out", "sheet.pdf")
    assert other.exit_code == 1 and "not of €60.00 of budget #1; nothing was sent" in other.stderr
    # the plain output: the pass address and the sheet, nothing else
    plain = cli(w, "coupons", "new", "--budget", "1", "--amount", "50", "--out", "sheet.pdf")
    assert plain.stdout.split() == ["pass:", holder, "sheet:", "sheet.pdf"]


def test_a_failure_after_the_pdf_is_finished_by_a_rerun(w, keys_made, monkeypatch):
    from citypass import issuance
    from citypass.errors import CityPassError

    # the roles are checked before anything is signed
    r = cli(w, "coupons", "new", "--budget", "1", "--amount", "20", "--out", "half.pdf", "--issuer", "dev:5")
    assert r.exit_code == 1 and "lacks the ISSUER role" in r.stderr and keys_made == [] and not Path("half.pdf").exists()

    def node_gone(*_a, **_k):
        raise CityPassError("lost the connection to the node (did it stop?)")

    with monkeypatch.context() as m:
        m.setattr(issuance, "execute", node_gone)  # the credit fails after the PDF and the enrolment
        r = cli(w, "coupons", "new", "--budget", "1", "--amount", "20", "--out", "half.pdf")
    assert r.exit_code == 1
    assert "crediting €20.00 to the pass" in r.stderr and "lost the connection to the node" in r.stderr
    assert "The sheet half.pdf (pass" in r.stderr and "is written, but its coupons are not usable" in r.stderr
    assert "Run the same command again (same --out): it finishes the sheet and never credits it twice" in r.stderr
    holder = K.read_sheet_info("half.pdf").holder
    assert w.f.balanceOf(holder, w.sport).call() == 0 and w.f.passOf(holder).call()[0] == 1  # enrolled, no credit
    fixed = cli(w, "--json", "coupons", "new", "--budget", "1", "--amount", "20", "--out", "half.pdf")
    assert fixed.exit_code == 0, fixed.stderr
    assert json.loads(fixed.stdout)["pass"] == holder  # the same sheet, no new key
    assert w.f.balanceOf(holder, w.sport).call() == 2_000
    assert cli(w, "coupons", "new", "--budget", "1", "--amount", "20", "--out", "half.pdf").exit_code == 0
    assert w.f.balanceOf(holder, w.sport).call() == 2_000


def test_a_sheet_that_cannot_be_written_sends_nothing(w, monkeypatch):
    before = w.chain.w3.eth.block_number

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(K.os, "replace", disk_full)
    r = cli(w, "coupons", "new", "--budget", "1", "--amount", "20", "--out", "full.pdf")
    assert r.exit_code == 1
    assert "cannot write the sheet to full.pdf: No space left on device; nothing was sent" in r.stderr
    assert w.chain.w3.eth.block_number == before and not Path("full.pdf").exists()
    assert not list(Path(".").glob(".full.pdf*"))


def test_bad_input_is_refused_before_anything_is_signed(w, tmp_path, keys_made):
    before = w.chain.w3.eth.block_number
    cases = [
        (["--budget", "1", "--amount", "12,50", "--out", "a.pdf"], 2, "--amount: '12,50' is not an amount in euros"),
        (["--budget", "1", "--amount", "0", "--out", "a.pdf"], 2, "--amount: must be more than 0"),
        (["--budget", "9", "--amount", "5", "--out", "a.pdf"], 1, "budget 9 does not exist"),
        (["--budget", "1", "--amount", "5", "--out", "a.txt"], 1, "give a file name ending in .pdf"),
        (["--budget", "1", "--amount", "5", "--out", "nowhere/a.pdf"], 1, "the folder nowhere does not exist"),
        (["--budget", "1", "--amount", "500", "--out", "a.pdf"], 1, "would need 52 coupons"),
        (["--budget", "1", "--amount", "5", "--out", "a.pdf", "--denominations", "10,10"], 1, "listed twice"),
        (["--budget", "1", "--amount", "200000", "--out", "a.pdf", "--denominations", "100"], 1, "above its cap"),
    ]
    for args, code, message in cases:
        r = cli(w, "coupons", "new", *args)
        assert (r.exit_code, message in r.stderr) == (code, True), (args, r.stderr)
    Path("taken.pdf").write_text("my own notes")
    r = cli(w, "coupons", "new", "--budget", "1", "--amount", "5", "--out", "taken.pdf")
    assert r.exit_code == 1 and "taken.pdf: exists, and is not a CityPass coupon sheet" in r.stderr
    assert Path("taken.pdf").read_text() == "my own notes"
    assert keys_made == [] and w.chain.w3.eth.block_number == before and not Path("a.pdf").exists()
    r = cli(w, "coupons", "replace", synthetic_account("coupon-nobody").address, "--out", "b.pdf")
    assert r.exit_code == 1 and "no pass was enrolled at this address" in r.stderr
    held = synthetic_account("coupon-suspended")
    enrol_and_credit(w, [held], w.sport, 1_000, "coupon-suspended")
    assert cli(w, "pass", "suspend", held.address).exit_code == 0
    r = cli(w, "coupons", "replace", held.address, "--out", "b.pdf")
    assert r.exit_code == 1 and "is suspended: a sheet for it would be refused at every till; reinstate it" in r.stderr
    r = cli(w, "coupons", "replace", "gone.pdf", "--out", "b.pdf")
    assert r.exit_code == 2 and "gone.pdf: no such file" in r.stderr
    assert keys_made == [] and not Path("b.pdf").exists()


_READ: dict[tuple[str, float], list[passqr.PassQR]] = {}


def _coupon(path: str, index: int) -> passqr.PassQR:
    """Coupon `index` of a sheet (largest first), as a till reads it: from the rendered pages."""
    import pypdfium2 as pdfium
    import zxingcpp

    key = (str(Path(path).resolve()), Path(path).stat().st_mtime)
    if key not in _READ:
        doc = pdfium.PdfDocument(path)
        texts = []
        for i in range(len(doc)):
            texts += [c.text for c in zxingcpp.read_barcodes(doc[i].render(scale=120 / 72).to_pil().convert("L"),
                                                        formats=zxingcpp.BarcodeFormat.QRCode)]
        _READ[key] = sorted((passqr.decode(t) for t in texts), key=lambda q: (-q.entries[0].max_amount, q.entries[0].nonce))
    return _READ[key][index]


def test_a_lost_sheet_dies_at_migration_and_the_new_sheet_has_what_was_left(w, keys_made):
    assert cli(w, "coupons", "new", "--budget", "1", "--amount", "30", "--out", "first.pdf").exit_code == 0
    old = K.read_sheet_info("first.pdf").holder
    ten = _coupon("first.pdf", 0)
    five = _coupon("first.pdf", 1)
    assert ten.entries[0].max_amount == 1_000 and five.entries[0].max_amount == 500
    redemption.redeem(w.dep, w.pool, ten.signed(ten.entries[0]), 750)  # €7.50 of a €10 coupon: it is used up
    assert w.f.balanceOf(old, w.sport).call() == 2_250
    refused = redemption.explain(w.dep, ten.signed(ten.entries[0]), w.pool.address, 100)
    assert refused.reason == Reason.NonceUsed
    r = cli(w, "--json", "coupons", "replace", old, "--out", "second.pdf")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    new = out["pass"]
    assert new != old and out["from_pass"] == old and out["total_cents"] == 2_250  # what was left, the €2.50 too
    assert "the old sheet's coupons and the old QR codes stop working" in r.stderr
    assert w.f.balanceOf(new, w.sport).call() == 2_250 and w.f.balanceOf(old, w.sport).call() == 0
    # every coupon of the old sheet is refused now
    with pytest.raises(redemption.VoucherRefused) as err:
        redemption.redeem(w.dep, w.pool, five.signed(five.entries[0]), 500)
    assert err.value.reason == Reason.PassMigrated
    fresh = _coupon("second.pdf", 0)
    assert fresh.holder == new and K.is_coupon(fresh)
    assert fresh.entries[0].max_amount == 500  # €22.50 left: four €5 coupons and one of €2.50
    redemption.redeem(w.dep, w.pool, fresh.signed(fresh.entries[0]), 500)
    assert w.f.balanceOf(new, w.sport).call() == 1_750
    # re-running the replacement sends nothing; replacing the dead pass points to the live one
    again = cli(w, "--json", "coupons", "replace", old, "--out", "second.pdf")
    assert again.exit_code == 0 and json.loads(again.stdout)["finished_before"] is True
    dead = cli(w, "coupons", "replace", old, "--out", "third.pdf")
    assert dead.exit_code == 1 and f"was migrated to {new} already" in dead.stderr
    assert f"citypass coupons replace {new}" in dead.stderr
    assert len(keys_made) == 2


def test_pass_migrate_kills_every_coupon_of_a_sheet(w):
    assert cli(w, "coupons", "new", "--budget", "1", "--amount", "15", "--out", "lost.pdf").exit_code == 0
    info = K.read_sheet_info("lost.pdf")
    phone = synthetic_account("coupon-new-phone")
    assert cli(w, "pass", "migrate", info.holder, phone.address).exit_code == 0
    for i in range(info.coupons):
        q = _coupon("lost.pdf", i)
        assert redemption.explain(w.dep, q.signed(q.entries[0]), w.pool.address, 100).reason == Reason.PassMigrated
    assert w.f.balanceOf(phone.address, w.sport).call() == 1_500
    r = cli(w, "coupons", "new", "--budget", "1", "--amount", "15", "--out", "lost.pdf")
    assert r.exit_code == 1 and "its coupons no longer work; nothing was sent" in r.stderr


def test_a_sheet_for_credit_an_issuance_gave(w, tmp_path):
    """The issuer credited a pass from a CSV (exactly once per budget, tranche and holder);
    the desk moves that credit onto a sheet, and the issuance stays done."""
    resident = synthetic_account("coupon-csv-row")
    enrol_and_credit(w, [resident], w.sport, 4_000, "coupon-csv")
    w.send(w.issuer, w.f.issue(keccak(text="coupon-csv-culture"), w.culture, [resident.address], [1_000]))
    rows = tmp_path / "sport.csv"
    rows.write_text(f"holder,amount\n{resident.address},25.00\n")
    assert cli(w, "issue", str(rows), "--budget", "1", "--tranche", "2026-q1").exit_code == 0
    r = cli(w, "--json", "coupons", "replace", resident.address, "--out", "paper.pdf", "--denominations", "10,5")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    new = out["pass"]
    assert {b["serial"]: b["sheet_cents"] for b in out["budgets"]} == {1: 6_500, 2: 1_000}
    assert w.f.balanceOfBatch([new] * 2, [w.sport, w.culture]).call() == [6_500, 1_000]
    assert K.read_sheet_info("paper.pdf").coupons == out["coupons"] == 9 + 2
    rerun = cli(w, "issue", str(rows), "--budget", "1", "--tranche", "2026-q1")  # the issuance follows the migration
    assert rerun.exit_code == 0 and "nothing to send" in rerun.stderr
    assert w.f.balanceOf(new, w.sport).call() == 6_500


def test_a_coupon_is_the_pass_qr_format_the_cli_reads(w, tmp_path):
    assert cli(w, "coupons", "new", "--budget", "1", "--amount", "10", "--out", "one.pdf").exit_code == 0
    q = _coupon("one.pdf", 0)
    png = wallet.write_qr(q.encode(), tmp_path / "coupon.png")
    shown = cli(w, "--json", "voucher", "show", str(png), "--provider", w.pool.address, "--amount", "4.00")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    data = data[0] if isinstance(data, list) else data
    assert data["ok"] is True and data["deadline"] == budget_id.decode(w.sport).valid_until
