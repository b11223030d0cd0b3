"""The resident's pass app (/pass/) in a phone-sized Chromium: a 390x844 viewport with touch and
isMobile, one browser context per phone (its own IndexedDB, like a separate device), every
request the page makes recorded (so a test can show the key and the PIN never leave), QR codes
read back from the screen with zxing-cpp, axe-core and a screenshot for every state.

Fixtures: `open_phone` (a new phone with the app open). Import it into a test module with
`from passkit import open_phone  # noqa: F401`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from eth_account import Account

from tillkit import SHOTS, WebServer

PHONE = {"width": 390, "height": 844}
PIN = "48151"  # a test PIN (five digits, no run)
BACKUP_PASSWORD = "correct horse battery"


def read_qr_png(png: bytes) -> str:
    """The text of the one QR code in a screenshot (zxing-cpp, independent of the page's encoder)."""
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    codes = [c for c in zxingcpp.read_barcodes(image) if c.format == zxingcpp.BarcodeFormat.QRCode and c.valid]
    assert len(codes) == 1, f"expected one QR code on the screen, found {len(codes)}"
    return codes[0].text


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: str


@dataclass
class Phone:
    """One phone: a browser context with the pass app."""

    server: WebServer
    context: Any
    page: Any
    axe_js: str
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    downloads: Path | None = None

    def _record(self, request: Any) -> None:
        try:
            body = request.post_data or ""
        except Exception:  # noqa: BLE001 - a binary body: keep its bytes as text
            body = repr(request.post_data_buffer)
        self.requests.append(Request(request.method, request.url, dict(request.headers), body))

    def open(self, hash_: str = "") -> "Phone":
        self.page.goto(self.server.base + "/pass/" + hash_)
        self.page.wait_for_selector("body[data-ready='1']")
        return self

    def reload(self) -> None:
        self.page.reload()
        self.page.wait_for_selector("body[data-ready='1']")

    def screen(self) -> str:
        return self.page.get_attribute("body", "data-screen") or ""

    def wait_screen(self, name: str) -> None:
        self.page.wait_for_selector(f"body[data-screen='{name}']")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    # -- the resident's steps
    def first_run(self, pin: str = PIN, button: str = "#start-new") -> str:
        """Welcome -> a new key -> PIN twice -> "Mijn pas"; returns the address shown as text."""
        self.wait_screen("welcome")
        self.page.tap(button)
        self.wait_screen("setpin")
        self.page.fill("#pin-new", pin)
        self.page.fill("#pin-repeat", pin)
        self.page.tap("#setpin-save")
        self.wait_screen("address")
        self.page.wait_for_function("() => document.getElementById('address-qr').width > 0")
        self.page.wait_for_function("() => Number(document.body.dataset.refreshed || 0) > 0")  # the pass's status
        return self.page.get_attribute("#address-value", "data-address")

    def unlock(self, pin: str = PIN) -> None:
        self.wait_screen("unlock")
        before = int(self.page.evaluate("() => Number(document.body.dataset.unlocks || 0)"))
        self.page.fill("#pin", pin)
        if self.page.get_attribute("#unlock-go", "aria-disabled") == "true":
            self.page.press("#pin", "Enter")  # locked out: the button says so, the resident tries anyway
        else:
            self.page.tap("#unlock-go")
        self.page.wait_for_function(f"() => Number(document.body.dataset.unlocks || 0) > {before}")

    def refresh(self) -> None:
        before = int(self.page.evaluate("() => Number(document.body.dataset.refreshed || 0)"))
        self.page.tap("#refresh")
        self.page.wait_for_function(f"() => Number(document.body.dataset.refreshed || 0) > {before}")

    def go(self, screen: str) -> None:
        self.page.tap(f"#nav-{screen}")
        self.wait_screen(screen)

    def show_pass(self, pin: str | None = PIN) -> str:
        """Press "Pas tonen" (PIN if asked) and read the drawn pass QR back from the screen."""
        before = int(self.page.evaluate("() => Number(document.body.dataset.qrDrawn || 0)"))
        self.page.tap("#show-pass")
        if pin is not None and self.screen() == "unlock":
            self.unlock(pin)
        self.wait_screen("show")
        self.page.wait_for_function(f"() => Number(document.body.dataset.qrDrawn || 0) > {before}")
        return self.qr("#pass-qr")

    def qr(self, selector: str) -> str:
        return read_qr_png(self.page.locator(selector).screenshot())

    def qr_png(self, selector: str, path: Path) -> Path:
        path.write_bytes(self.page.locator(selector).screenshot())
        return path

    # -- every state
    def state(self, name: str) -> Path:
        """axe-core (WCAG 2.1 AA) finds nothing; then a full-page screenshot at phone size."""
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa']})).violations"
            ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))")
        assert violations == [], f"{name}: axe-core found {violations}"
        assert self.errors == [], self.errors
        foreign = [r.url for r in self.requests
                   if urlsplit(r.url).scheme not in ("data", "blob")
                   and f"{urlsplit(r.url).scheme}://{urlsplit(r.url).netloc}" != self.server.base]
        assert foreign == [], f"requests to other origins: {foreign}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"pass-{name}-{PHONE['width']}x{PHONE['height']}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def leaks(self, *secrets: str) -> list[str]:
        """Requests whose URL, headers or body contain any of `secrets` (case-insensitive)."""
        found = []
        for r in self.requests:
            blob = (r.url + json.dumps(r.headers) + r.body).lower()
            for s in secrets:
                if s and s.lower() in blob:
                    found.append(f"{r.method} {r.url} carries {s[:6]}…")
        return found

    def close(self) -> None:
        self.context.close()


def new_phone(browser: Any, server: WebServer, axe_js: str, downloads: Path) -> Phone:
    context = browser.new_context(viewport=PHONE, screen=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
                                  locale="nl-NL", timezone_id="Europe/Amsterdam", service_workers="allow",
                                  accept_downloads=True)
    context.add_init_script(script=axe_js)
    page = context.new_page()
    phone = Phone(server, context, page, axe_js, downloads=downloads)
    context.on("request", phone._record)  # the page's requests and its service worker's
    page.on("pageerror", lambda e: phone.errors.append(f"page error: {e}"))
    page.on("console", lambda m: phone.errors.append(f"CSP: {m.text}")
            if ("Content Security Policy" in m.text or "Refused to" in m.text) else None)
    page.set_default_timeout(20_000)
    return phone


@pytest.fixture
def open_phone(browser, server, axe_js, tmp_path) -> Iterator[Callable[..., Phone]]:
    opened: list[Phone] = []

    def _open(hash_: str = "") -> Phone:
        phone = new_phone(browser, server, axe_js, tmp_path)
        opened.append(phone)
        return phone.open(hash_)

    yield _open
    for phone in opened:
        phone.close()


def enrol_and_credit(world: Any, address_or_qr: str, sport: str = "40.00", culture: str = "15.00") -> None:
    """The registrar enrols what the desk scanned (address QR text or picture); the issuer credits it."""
    world.count += 1
    out = world.cli("pass", "enroll", address_or_qr, "--valid-until", world.until)
    holder = out["enrolled"][0]
    for serial, euros in (("1", sport), ("2", culture)):
        if euros:
            rows = world.workdir / f"pass-issue-{world.count}-{serial}.csv"
            rows.write_text(f"holder,amount\n{holder},{euros}\n")
            world.cli("issue", str(rows), "--budget", serial)


def keystore_key(path: Path, password: str = BACKUP_PASSWORD) -> tuple[str, str]:
    """(address, private key hex) of a downloaded backup, decrypted by eth-account."""
    data = json.loads(path.read_text())
    key = Account.decrypt(data, password)
    return Account.from_key(key).address, bytes(key).hex()
