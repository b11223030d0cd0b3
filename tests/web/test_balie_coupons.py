"""A coupon sheet made in the browser at the desk (issue 16), for a resident without a
smartphone: the page makes a fresh key in its own memory, enrols and credits the key's address
(the registrar's wallet signs), signs the planned coupons, the server checks them against the
same plan (coupons.sheet_from_codes) and draws the A4 PDF, the page offers it and wipes the key.

The test watches every request (URL and body) and every storage write (localStorage,
sessionStorage, IndexedDB, document.cookie) and the cookies the browser keeps, and checks that
the key (found by watching crypto.getRandomValues) never leaves the page and that no keystore is
sent or stored; the key's buffer is zeros afterwards. Then it decodes the printed PDF's QR codes
(PDFium + zxing-cpp, as tests/test_coupons.py) and pays one coupon at the till through the fake
camera (as tests/web/test_till_coupon.py)."""

from __future__ import annotations

import pytest
from backofficekit import address_of, office, officer_wallet_js, pass_number  # noqa: F401
from eth_account import Account
from tillkit import CAMERA, POOL

from citypass import coupons as K
from citypass import passqr

pytestmark = pytest.mark.v2

# In the page before any script: record every 32-byte random buffer (the key is one of them; the
# buffer itself is kept to check it is wiped) and every storage write, in page memory only.
WATCH_JS = r"""
(() => {
  const hex = (a) => Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  const w = (window.__watch = { randoms: [], buffers: [], writes: [] });
  const grv = Crypto.prototype.getRandomValues;
  Crypto.prototype.getRandomValues = function (a) {
    const r = grv.call(this, a);
    if (a && a.byteLength === 32) {
      const bytes = new Uint8Array(a.buffer, a.byteOffset, 32);
      w.randoms.push(hex(bytes));
      w.buffers.push(bytes);
    }
    return r;
  };
  const setItem = Storage.prototype.setItem;
  Storage.prototype.setItem = function (k, v) {
    w.writes.push({ kind: this === window.localStorage ? "localStorage" : "sessionStorage", key: String(k), value: String(v) });
    return setItem.call(this, k, v);
  };
  const text = (v) => {
    try {
      return JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : ArrayBuffer.isView(x) ? hex(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)) : x));
    } catch { return String(v); }
  };
  for (const m of ["put", "add"]) {
    const orig = IDBObjectStore.prototype[m];
    IDBObjectStore.prototype[m] = function (v, k) {
      w.writes.push({ kind: "indexedDB", key: String(k), value: text(v) });
      return orig.call(this, v, k);
    };
  }
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, "cookie");
  Object.defineProperty(Document.prototype, "cookie", {
    configurable: true,
    get() { return cookie.get.call(this); },
    set(v) { w.writes.push({ kind: "cookie", key: "", value: String(v) }); cookie.set.call(this, v); },
  });
})();
"""
KEYSTORE_MARKS = ('"ciphertext"', '"kdfparams"', '"cipherparams"', '"crypto"', "pbkdf2", "scrypt")


@pytest.fixture
def registrar_issues(world):
    """The registrar also holds the issuer role (making a sheet enrols and credits)."""
    world.cli("--from", "dev:0", "role", "grant", "issuer", address_of("REGISTRAR"))
    yield
    world.cli("--from", "dev:0", "role", "revoke", "issuer", address_of("REGISTRAR"))


def _balance(server, holder: str, budget: int) -> int:
    found = [b["left_cents"] for b in server.api("balances", {"holder": holder})["balances"] if int(b["budget"]) == budget]
    return found[0] if found else 0


def _read_sheet(path):
    import pypdfium2 as pdfium
    import zxingcpp

    doc = pdfium.PdfDocument(str(path))
    page = doc[0].render(scale=200 / 72).to_pil().convert("L")
    words = doc[0].get_textpage().get_text_range()
    found = []
    for code in zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode):
        if code.format != zxingcpp.BarcodeFormat.QRCode or not code.valid:
            continue
        p = code.position
        xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
        ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
        found.append((passqr.decode(code.text), code.text, (min(xs), min(ys), max(xs), max(ys))))
    found.sort(key=lambda f: f[0].entries[0].nonce)
    return page, words, found, len(doc)


def test_a_coupon_sheet_made_in_the_browser_key_never_leaves_and_a_coupon_pays(
        office, open_till, server, world, registrar_issues, tmp_path):
    from test_till_coupon import camera_shows

    d = server.api("deployment")
    o = office("REGISTRAR", "/balie/", sign_in=False)
    o.context.add_init_script(script=WATCH_JS)
    requests: list[tuple[str, str]] = []
    o.page.on("request", lambda r: requests.append((r.url, (r.post_data_buffer or b"").decode("latin-1"))))
    o.open("/balie/")
    o.page.click("#lang")  # English and back: two localStorage writes the watch must see
    o.page.click("#lang")
    o.sign_in()
    assert o.page.is_visible("#sheet-form") and o.page.is_hidden("#sheet-note")
    number = pass_number()
    o.page.fill("#sheet-number", number)
    o.page.select_option("#sheet-budget", str(world.sport))
    o.page.fill("#sheet-amount", "20,00")
    o.state("balie-coupons-1-form")
    sent_before = len(o.sent())
    o.page.click("#sheet-button")
    text = o.wait_status("#sheet-status", number, "€\xa020,00", "4 bonnen", "sleutel is vergeten", timeout=60_000)
    assert "bo-done" in o.page.get_attribute("#sheet-status", "class"), text
    assert len(o.sent()) == sent_before + 1  # one transaction: enrollAndIssue
    assert o.page.is_visible("#sheet-ready")
    o.state("balie-coupons-2-ready")

    with o.page.expect_download() as info:
        o.page.click("#sheet-download")
    pdf = tmp_path / "sheet.pdf"
    info.value.save_as(str(pdf))
    assert info.value.suggested_filename == f"citypass-bonnen-{number}.pdf"

    # the key: the one 32-byte random whose address is the sheet's holder
    watch = o.page.evaluate("() => ({randoms: window.__watch.randoms, writes: window.__watch.writes})")
    sheet_info = K.read_sheet_info(pdf)
    holder = sheet_info.holder
    keys = [k for k in watch["randoms"] if Account.from_key(bytes.fromhex(k)).address == holder]
    assert len(keys) == 1, "the sheet's key was not made by the page's crypto.getRandomValues"
    key = keys[0]
    index = watch["randoms"].index(key)
    assert o.page.evaluate(f"() => Array.from(window.__watch.buffers[{index}]).every((b) => b === 0)"), \
        "the key's buffer was not overwritten"
    assert world.cli("pass", "show", holder)["status"] == "active"

    # the key never left the page: no request URL or body, no storage write, no cookie holds it
    needles = [key.lower(), key.upper(), "0x" + key.lower()]
    assert requests, "no requests were watched"
    posted = [r for r in requests if "/api/backoffice/desk/sheet/pdf" in r[0]]
    assert len(posted) == 1 and "CP2:" in posted[0][1]  # the watch sees the bodies (the signed coupons)
    for url, body in requests:
        for n in needles:
            assert n not in url and n not in body.lower() and n not in body, f"the key was sent to {url}"
        for mark in KEYSTORE_MARKS:
            assert mark not in body.lower(), f"a keystore-like body ({mark}) was sent to {url}"
    assert [w["kind"] for w in watch["writes"]][:2] == ["localStorage"] * 2, "the storage watch saw nothing"
    for w in watch["writes"]:
        blob = (w["key"] + " " + w["value"]).lower()
        assert key.lower() not in blob, f"the key was written to {w['kind']}"
        assert not any(m in blob for m in KEYSTORE_MARKS), f"a keystore was written to {w['kind']}"
    for c in o.context.cookies():
        assert key.lower() not in (c["name"] + c["value"]).lower()
    stored = o.page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert key.lower() not in stored.lower()

    # the printed sheet: the library's plan, every QR a valid coupon of this holder
    assert sheet_info.kind == "new" and sheet_info.credits == {world.sport: 2000}
    assert sheet_info.chain_id == d["chain_id"] and sheet_info.contract == d["contract"]
    page, words, found, pages = _read_sheet(pdf)
    plan = K.plan_sheet({world.sport: 2000})
    assert pages == 1 and len(found) == len(plan.coupons) == 4
    for (pq, _, _), planned in zip(found, plan.coupons):
        assert K.is_coupon(pq) and pq.holder == holder
        assert (pq.entries[0].max_amount, pq.entries[0].nonce) == (planned.amount, planned.nonce)
        assert passqr.verify(pq)[0][1] is None
        assert K.show_check_number(K.coupon_check_number(pq)) in words
        assert K.show_check_number(K.coupon_check_number(pq)) in o.page.inner_text("#sheet-checks")
    # the register links the number to the sheet's pass
    assert holder in o.page.inner_text("#pass-facts") and number in o.page.inner_text("#pass-heading")
    assert _balance(server, holder, world.sport) == 2000

    # one coupon paid at the till, through the fake camera
    pq, code, box = found[0]
    camera_shows(page, box, CAMERA)
    till = open_till("ok")
    till.connect()
    till.page.click("#camera")
    till.page.wait_for_selector("#coupon-face", timeout=20_000)
    till.page.click("#camera")
    assert till.text("#coupon-face") == "Bon van €5,00"
    assert till.page.get_attribute("#coupon-check", "data-check") == K.show_check_number(K.coupon_check_number(pq))
    pool_before = _balance(server, POOL, world.sport)
    till.amount("5,00")
    till.page.click("#pay")
    till.page.wait_for_selector("#paid", timeout=20_000)
    assert _balance(server, holder, world.sport) == 1500
    assert _balance(server, POOL, world.sport) == pool_before + 500
    till.state("balie-coupons-3-paid-at-the-till")
    till.page.click("#next")
    till.type_code(code)  # the same coupon again: used
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "NonceUsed"

    o.page.click("#lang")
    assert "Coupon sheet for a resident without a smartphone" in o.page.inner_text("#sheet")
    assert f"Done: pass {number} is enrolled with €20.00 on 4 coupons" in o.page.inner_text("#sheet-status")
    assert f"The sheet of pass {number}" in o.page.inner_text("#sheet-ready")
    o.state("balie-coupons-4-english")


def test_a_sheet_is_refused_before_anything_is_signed_or_sent(office, server, world, registrar_issues):
    o = office("REGISTRAR", "/balie/")
    o.page.fill("#sheet-number", pass_number())
    o.page.select_option("#sheet-budget", str(world.sport))
    o.page.fill("#sheet-amount", "20,00")
    o.page.fill("#sheet-denominations", "500")  # more than a coupon may be worth
    sent = o.sent()
    o.page.click("#sheet-button")
    o.wait_status("#sheet-status", "ten hoogste € 100 per bon", "Er is niets gemaakt en niets verstuurd")
    assert "bo-error" in o.page.get_attribute("#sheet-status", "class")
    assert o.sent() == sent and o.page.is_hidden("#sheet-ready")
    o.state("balie-coupons-5-refused")


def test_codes_that_are_not_the_plan_are_refused_by_the_server(server, world, registrar_issues):
    from backofficekit import session_for

    s = session_for(server, "REGISTRAR")
    ask = {"budget": str(world.sport), "amount_cents": 1000, "denominations": "10,5"}
    planned = s.post(f"{server.base}/api/backoffice/desk/sheet/plan", json=ask).json()
    assert [c["amount_cents"] for c in planned["plan"]["coupons"]] == [500, 500]
    d = server.api("deployment")
    key = Account.create().key
    codes = [passqr.coupon(key, d["chain_id"], d["contract"], world.sport, 500, n, c["deadline"]).encode()
             for n, c in zip((0, 5), planned["plan"]["coupons"])]  # the second one's nonce is not the plan's
    r = s.post(f"{server.base}/api/backoffice/desk/sheet/pdf", json={**ask, "codes": codes})
    assert r.status_code == 400 and "coupon 2: not the planned coupon" in r.json()["error"]["message"]
    good = [passqr.coupon(key, d["chain_id"], d["contract"], world.sport, 500, c["nonce"], c["deadline"]).encode()
            for c in planned["plan"]["coupons"]]
    r = s.post(f"{server.base}/api/backoffice/desk/sheet/pdf", json={**ask, "codes": good})
    assert r.status_code == 200 and r.json()["coupons"] == 2
    other = session_for(server, "TREASURER", "financien")
    assert other.post(f"{server.base}/api/backoffice/desk/sheet/plan", json=ask).status_code in (401, 403)
