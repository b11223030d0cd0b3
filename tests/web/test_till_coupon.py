"""A paper coupon at the till, in Chromium: a sheet made by `citypass coupons new`, its PDF
rendered to pixels, one coupon cut out of the picture and shown to the fake camera; the till
says it is a paper coupon, shows its face value and the same check number as printed, warns
before charging less than the face value (the rest stays on the pass, only the desk can put it
on a new sheet), pays once the clerk confirms, and refuses the coupon the second time."""

from __future__ import annotations

from pathlib import Path

import pytest

from citypass import coupons as K
from citypass import node, passqr
from tillkit import CAMERA, POOL

pytestmark = pytest.mark.v2

WARNING_NL = "Deze bon is €10,00; het restant blijft op de pas en is alleen aan de balie op een nieuw vel te krijgen"
WARNING_EN = "This coupon is €10.00; the rest stays on the pass and can only be had on a new sheet at the municipal desk"


def _balance(server, holder: str, budget: int) -> int:
    found = [b["left_cents"] for b in server.api("balances", {"holder": holder})["balances"] if int(b["budget"]) == budget]
    return found[0] if found else 0


@pytest.fixture(scope="module")
def sheet(world, tmp_path_factory):
    """A €25 sheet of Sport 2026 (five €5 coupons: €10 ones only while more than €20 is left),
    rendered to a page picture; each coupon's QR found on the picture by zxing-cpp."""
    import pypdfium2 as pdfium
    import zxingcpp

    folder = tmp_path_factory.mktemp("coupon-sheet")
    pdf = folder / "sheet.pdf"
    made = world.cli("coupons", "new", "--budget", "1", "--amount", "25", "--out", str(pdf))
    page = pdfium.PdfDocument(str(pdf))[0].render(scale=200 / 72).to_pil().convert("L")
    words = pdfium.PdfDocument(str(pdf))[0].get_textpage().get_text_range()
    found = []
    for code in zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode):
        p = code.position
        xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
        ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
        found.append((passqr.decode(code.text), code.text, (min(xs), min(ys), max(xs), max(ys))))
    found.sort(key=lambda f: (-f[0].entries[0].max_amount, f[0].entries[0].nonce))
    assert [f[0].entries[0].max_amount for f in found] == [500] * 5  # €25: four €5 for the last €20, and one more
    return {"holder": made["pass"], "page": page, "coupons": found, "words": words, "pdf": pdf}


@pytest.fixture(scope="module")
def tens(world, tmp_path_factory):
    """A €40 sheet: €10 coupons (two) and €5 ones; the first €10 coupon is the one the tests use."""
    import pypdfium2 as pdfium
    import zxingcpp

    folder = tmp_path_factory.mktemp("coupon-sheet-10")
    pdf = folder / "sheet.pdf"
    made = world.cli("coupons", "new", "--budget", "1", "--amount", "40", "--out", str(pdf))
    doc = pdfium.PdfDocument(str(pdf))
    page = doc[0].render(scale=200 / 72).to_pil().convert("L")
    found = []
    for code in zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode):
        p = code.position
        xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
        ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
        found.append((passqr.decode(code.text), code.text, (min(xs), min(ys), max(xs), max(ys))))
    found.sort(key=lambda f: (-f[0].entries[0].max_amount, f[0].entries[0].nonce))
    assert [f[0].entries[0].max_amount for f in found] == [1000, 1000, 500, 500, 500, 500]
    return {"holder": made["pass"], "page": page, "coupons": found, "words": doc[0].get_textpage().get_text_range()}


def camera_shows(page, box: tuple[float, float, float, float], path: Path = CAMERA) -> Path:
    """The fake camera films one coupon's QR code cut out of the printed page (with its quiet
    zone and a bit of the coupon around it), as a phone or webcam held over it would."""
    from PIL import Image

    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    margin = side * 0.25
    crop = page.crop((int(x0 - margin), int(y0 - margin), int(x1 + margin), int(y1 + margin)))
    width, height = 640, 480
    scale = min(width / crop.width, height / crop.height) * 0.9
    crop = crop.resize((int(crop.width * scale), int(crop.height * scale)), Image.LANCZOS)
    frame = Image.new("L", (width, height), 255)
    frame.paste(crop, ((width - crop.width) // 2, (height - crop.height) // 2))
    luma = bytes(16 + v * 219 // 255 for v in frame.tobytes())  # video levels
    chroma = b"\x80" * ((width // 2) * (height // 2))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        f.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def test_a_coupon_from_the_printed_sheet_paid_at_the_till_with_the_warning(open_till, world, server, tens):
    pq, text, box = tens["coupons"][0]
    check = K.show_check_number(K.coupon_check_number(pq))
    assert check in tens["words"]  # printed on the sheet
    camera_shows(tens["page"], box)
    before = _balance(server, tens["holder"], world.sport)
    till = open_till("ok")
    till.connect()
    till.page.click("#camera")
    till.page.wait_for_selector("#coupon-face", timeout=20_000)
    till.page.click("#camera")  # camera off: the verdict stays
    entry = till.page.locator(f"#entries li[data-budget='{world.sport}']")
    assert entry.get_attribute("data-reason") == "Ok"
    assert "Sport 2026 · papieren bon" in entry.inner_text()
    assert till.text("#coupon-face") == "Bon van €10,00"
    assert till.page.get_attribute("#coupon-check", "data-check") == check  # the till's number is the printed one
    assert check in till.text("#coupon-check") and "Eén keer te gebruiken" in entry.inner_text()
    till.state("till-coupon-scanned")
    # charging less than the face value: the warning as the clerk types, then a question before paying
    till.amount("7,50")
    # a paper coupon's key is destroyed: a refund could never be spent, so none is offered
    assert till.page.is_hidden("#refundable") and not till.page.is_checked("#refundable")
    assert WARNING_NL in till.text("#precheck") and "€2,50 blijft op de pas" in till.text("#precheck")
    till.state("till-coupon-below-face")
    till.page.click("#pay")
    till.page.wait_for_selector("#coupon-ask")
    assert WARNING_NL in till.text("#coupon-ask") and till.page.is_visible("#coupon-confirm")
    assert WARNING_NL not in till.text("#precheck")  # said once, in the question
    assert "Toch €7,50 afrekenen" in till.text("#coupon-confirm")
    till.page.wait_for_timeout(500)
    assert not till.page.is_visible("#paid")  # nothing was asked of the wallet yet
    assert server.api("nonces", {"holder": pq.holder, "items": [{"budget": str(world.sport), "nonce": pq.entries[0].nonce}]}
                      )["items"][0]["used"] is False
    assert _balance(server, tens["holder"], world.sport) == before
    till.state("till-coupon-confirm")
    till.page.click("#coupon-confirm")
    till.page.wait_for_selector("#paid", timeout=20_000)
    assert "€7,50 van Sport 2026" in till.text("#pay-status")
    assert _balance(server, tens["holder"], world.sport) == before - 750
    assert _balance(server, POOL, world.sport) >= 750
    till.state("till-coupon-paid")
    # the same coupon again: used, whatever was left of its face value
    till.page.click("#next")
    till.type_code(text)
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "NonceUsed"
    assert till.page.get_attribute("#coupon-check", "data-check") == check
    # headed as used, not as if the coupon were never valid here
    assert "Deze bon is al gebruikt." in till.text("#verdict-status") and "kan hier niet" not in till.text("#verdict-status")
    assert "Deze bon is al gebruikt" in till.text("#entries") and "andere bon van het vel" in till.text("#entries")
    till.state("till-coupon-used")


def test_the_warning_in_english_and_none_at_the_face_value(open_till, world, tens):
    pq, text, _ = tens["coupons"][1]
    till = open_till("ok")
    till.connect()
    till.type_code(text)
    till.amount("10,00")  # the whole coupon: no warning, no question
    assert "In orde: €10,00" in till.text("#precheck") and "restant" not in till.text("#precheck")
    till.page.click("#lang")  # the English messages may still be loading: wait until they are in
    till.page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert till.text("#coupon-face") == "Coupon of €10.00"
    till.amount("4.00")
    assert WARNING_EN in till.text("#precheck") and "€6.00 stays on the pass" in till.text("#precheck")
    till.page.click("#pay")
    till.page.wait_for_selector("#coupon-ask")
    assert "Charge €4.00 anyway" in till.text("#coupon-confirm")
    till.page.click("#coupon-change")  # back to the amount, nothing paid
    assert till.page.evaluate("document.activeElement.id") == "amount"
    assert WARNING_EN in till.text("#precheck") and till.page.locator("#coupon-ask").count() == 0
    assert not till.page.is_visible("#paid")
    till.state("till-coupon-warning-en")


def test_a_phone_pass_qr_is_no_coupon(open_till, world, sheet):
    """The five €5 coupons of a €25 sheet each read as coupons; a phone's 24-hour QR does not."""
    from passes import Entry, pass_qr

    till = open_till("ok")
    till.connect()
    pq, text, _ = sheet["coupons"][4]
    till.type_code(text)
    assert till.text("#coupon-face") == "Bon van €5,00"
    assert K.show_check_number(K.coupon_check_number(pq)) in sheet["words"]
    till.page.click("#next")
    who = world.new_resident("coupon-phone")
    d = till.server.api("deployment")
    till.type_code(pass_qr(who, d["chain_id"], d["contract"], [Entry(world.sport, 1_000, 0)], d["time"] + 86_400))
    assert till.page.locator("#coupon-face").count() == 0
    assert "papieren bon" not in till.text("#entries")


def test_a_coupon_of_a_replaced_sheet_is_refused_with_the_desk_as_next_step(open_till, world, tmp_path):
    import pypdfium2 as pdfium
    import zxingcpp

    made = world.cli("coupons", "new", "--budget", "1", "--amount", "5", "--out", str(tmp_path / "lost.pdf"))
    page = pdfium.PdfDocument(str(tmp_path / "lost.pdf"))[0].render(scale=150 / 72).to_pil().convert("L")
    (code,) = [c.text for c in zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)]
    replaced = world.cli("coupons", "replace", made["pass"], "--out", str(tmp_path / "new.pdf"))
    assert replaced["from_pass"] == made["pass"] and replaced["total_cents"] == 500
    till = open_till("ok")
    till.connect()
    till.type_code(code)
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "PassMigrated"
    assert "Dit vel is vervangen of als kwijt gemeld" in till.text("#entries")
    assert "balie van de gemeente" in till.text("#entries")
    till.state("till-coupon-sheet-replaced")


def test_offline_the_till_still_knows_a_coupon_and_warns(open_till, world, sheet):
    """Offline the till reads the coupon from the code itself: the same check number (its own
    copy of the rule, tested against the library's here), the warning and the question."""
    pq, text, _ = sheet["coupons"][3]
    till = open_till("ok")
    till.connect()  # online first: the till keeps the deployment, budgets and provider
    till.context.set_offline(True)
    till.type_code(text)
    assert till.page.is_visible("#offline-banner")
    assert till.text("#coupon-face") == "Bon van €5,00"
    assert till.page.get_attribute("#coupon-check", "data-check") == K.show_check_number(K.coupon_check_number(pq))
    till.amount("2,00")
    assert "Deze bon is €5,00; het restant blijft op de pas" in till.text("#precheck")
    till.page.click("#pay")
    till.page.wait_for_selector("#coupon-ask")
    till.state("till-coupon-offline-ask")
    till.page.click("#coupon-confirm")
    till.page.wait_for_selector("#pay-status >> text=In de wachtrij")
    assert till.page.locator("#queue-list li").count() == 1
    till.state("till-coupon-offline-queued")
