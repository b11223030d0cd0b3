"""The back office in a real browser: a stand-in wallet per role (tests/web/backoffice_wallet.js,
signing with the Anvil dev key of that role), the desk and finance pages opened and signed in,
the pass app's address QR (EIP-681 `ethereum:<address>@<chainId>`) played by the fake camera,
axe-core and a 1280x800 screenshot of every state.

Test modules import the fixtures they use from here (`from backofficekit import office`)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

from citypass import keys
from tillkit import BUILD, ROOT, SHOTS

# contract.dev_roles(): each municipal role its own dev account; dev:9 holds nothing
ROLE_INDEX = {"ADMIN": 0, "BUDGET_MANAGER": 1, "PROVIDER_MANAGER": 2, "REGISTRAR": 3, "ISSUER": 4, "TREASURER": 5,
              "PAUSER": 6, "NOBODY": 9}
DESK = (1280, 800)
_numbers = itertools.count(int.from_bytes(os.urandom(2), "big") * 10)


def key_of(role: str) -> str:
    return "0x" + bytes(keys.dev_account(ROLE_INDEX[role]).key).hex()


def address_of(role: str) -> str:
    return keys.dev_account(ROLE_INDEX[role]).address


def pass_number() -> str:
    """A fresh synthetic pass number (nobody's)."""
    return f"SP-{next(_numbers):07d}"


def address_qr(address: str, chain_id: int) -> str:
    """The pass app's address QR text (agreed with the pass app: EIP-681)."""
    return f"ethereum:{address}@{chain_id}"


def bundle_officer_wallet() -> str:
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / "officer-wallet.js"
    subprocess.run([str(ROOT / "node_modules/.bin/esbuild"), str(ROOT / "tests/web/backoffice_wallet.js"), "--bundle",
                    "--format=iife", "--log-level=warning", f"--outfile={out}"], check=True, cwd=ROOT)
    return out.read_text()


class Office:
    """One browser context (a desk's computer) with an officer's wallet, on /balie/ or /financien/."""

    def __init__(self, browser: Any, server: Any, wallet_js: str, axe_js: str, role: str | None):
        self.server = server
        self.context = browser.new_context(viewport={"width": DESK[0], "height": DESK[1]}, locale="nl-NL",
                                           timezone_id="Europe/Amsterdam", accept_downloads=True)
        self.context.grant_permissions(["camera"], origin=server.base)
        self.context.add_init_script(script=axe_js)
        self.chain_id = server.api("deployment")["chain_id"]
        if role is not None:
            cfg = {"key": key_of(role), "chainId": self.chain_id}
            self.context.add_init_script(script=f"window.__officerWallet = {json.dumps(cfg)};\n{wallet_js}")
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"CSP: {m.text}") if "Content Security Policy" in m.text else None)
        self.page.on("request", self._request)
        self.page.set_default_timeout(20_000)

    def _request(self, request: Any) -> None:
        url = urlsplit(request.url)
        if url.scheme not in ("data", "blob") and f"{url.scheme}://{url.netloc}" != self.server.base:
            self.foreign.append(request.url)

    def open(self, path: str) -> "Office":
        self.page.goto(self.server.base + path)
        self.page.wait_for_selector("body[data-ready='1']")
        return self

    def sign_in(self) -> None:
        self.page.click("#signin-button")
        self.page.wait_for_selector("body[data-signed-in='1']")

    def sent(self) -> list[str]:
        """Hashes of every transaction this officer's wallet sent so far."""
        return self.page.evaluate("() => (window.__officerWalletLog || []).filter(x => x.sent).map(x => x.sent)")

    def wait_status(self, selector: str, *texts: str, timeout: int = 30_000) -> str:
        """Waits until the status box shows a final sentence (done or error), returns its text."""
        self.page.wait_for_function(
            "([sel]) => { const b = document.querySelector(sel); return b && !b.hidden && "
            "(b.classList.contains('bo-done') || b.classList.contains('bo-error')); }", arg=[selector], timeout=timeout)
        text = self.page.inner_text(selector)
        for t in texts:
            assert t in text, f"{selector}: expected {t!r} in {text!r}"
        return text

    def state(self, name: str) -> Path:
        """axe-core (WCAG 2.1 AA) finds nothing; a full-page screenshot at 1280x800."""
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa']})).violations"
            ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))")
        assert violations == [], f"{name}: axe-core found {violations}"
        assert self.errors == [], self.errors
        assert self.foreign == [], f"requests to other origins: {self.foreign}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}-{DESK[0]}x{DESK[1]}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="session")
def officer_wallet_js() -> str:
    return bundle_officer_wallet()


@pytest.fixture
def office(browser, server, officer_wallet_js, axe_js) -> Iterator[Callable[..., Office]]:
    """office(role, path, sign_in=True) -> an Office with that role's wallet, signed in."""
    opened: list[Office] = []

    def _open(role: str | None, path: str, sign_in: bool = True) -> Office:
        o = Office(browser, server, officer_wallet_js, axe_js, role)
        opened.append(o)
        o.open(path)
        if sign_in:
            o.sign_in()
        return o

    yield _open
    for o in opened:
        o.close()


def session_for(server: Any, role: str, page: str = "balie") -> requests.Session:
    """A requests session signed in as `role` through the real SIWE routes (for API-level tests)."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from citypass.web.siwe import message_text

    s = requests.Session()
    host = urlsplit(server.base).netloc
    n = s.post(f"{server.base}/api/backoffice/nonce", json={}).json()
    who = keys.dev_account(ROLE_INDEX[role])
    text = message_text(domain=host, address=who.address, uri=server.base + f"/{page}/", chain_id=n["chain_id"],
                        nonce=n["nonce"], issued_at=n["issued_at"], expiration_time=n["expiration_time"])
    sig = "0x" + bytes(Account.sign_message(encode_defunct(text=text), who.key).signature).hex()
    r = s.post(f"{server.base}/api/backoffice/signin", json={"page": page, "message": text, "signature": sig})
    s.signin_status = r.status_code  # type: ignore[attr-defined]
    s.signin_body = r.json()  # type: ignore[attr-defined]
    return s
