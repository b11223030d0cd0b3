"""The till in a real browser: Debian's Chromium driven by Playwright for Python, against
`citypass web` started as a subprocess on an embedded Anvil in a temporary work directory.

- A stand-in provider wallet (tests/web/wallet.js, bundled here with esbuild) is injected as an
  init script: EIP-6963 + window.ethereum, signing locally, sending raw transactions through the
  server's /rpc.
- The fake camera plays build/test-web/camera.y4m, which a test rewrites with a pass QR before
  turning the camera on.
- axe-core is injected as an init script too (the page's CSP allows no inline script), and every
  state a test reaches is checked for WCAG 2.1 AA violations and photographed at three sizes into
  build/screenshots/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from citypass import node  # noqa: E402
import media  # noqa: E402
from tillkit import (BUILD, CAMERA, CHROMIUM, POOL_KEY, ROOT, SHOTS, SIZES, WebServer, World,  # noqa: E402
                     bundle_wallet, chromium_args)


def pytest_configure(config):
    config.addinivalue_line("markers", "v2: needs contract v2 (CP2 pass QRs, spending-limit vouchers)")


@pytest.fixture(autouse=True)
def isolation():
    """The browser tests run on their own embedded node, not Brownie's."""


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("citypass-till"))
    yield w
    node.node_stop(w.workdir)


@pytest.fixture(scope="session")
def server(world) -> Iterator[WebServer]:
    s = WebServer(world.workdir)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def wallet_js() -> str:
    return bundle_wallet()


@pytest.fixture(scope="session")
def axe_js() -> str:
    return (ROOT / "node_modules/axe-core/axe.min.js").read_text()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    BUILD.mkdir(parents=True, exist_ok=True)
    media.write_blank_y4m(CAMERA)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args())
        yield b
        b.close()


class Till:
    """One browser context (fresh storage, like a new device) with the till open."""

    def __init__(self, browser, server: WebServer, wallet_js: str, axe_js: str, *, mode: str | None, key: str,
                 viewport: tuple[int, int], name: str = "Test Wallet", offline_service_worker: bool = False):
        self.server = server
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                           locale="nl-NL", timezone_id="Europe/Amsterdam",
                                           service_workers="allow" if offline_service_worker else "block")
        self.context.grant_permissions(["camera"], origin=server.base)
        self.context.add_init_script(script=axe_js)
        if mode is not None:
            chain_id = server.api("deployment")["chain_id"]
            cfg = {"key": key, "chainId": chain_id, "rpcPath": "/rpc", "mode": mode, "name": name}
            self.context.add_init_script(script=f"window.__standInWallet = {json.dumps(cfg)};\n{wallet_js}")
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", self._console)
        self.page.on("request", self._request)
        self.page.set_default_timeout(15_000)

    def _console(self, msg: Any) -> None:
        if "Content Security Policy" in msg.text or "Refused to" in msg.text:
            self.errors.append(f"CSP: {msg.text}")

    def _request(self, request: Any) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob"):
            return
        if f"{url.scheme}://{url.netloc}" != self.server.base:
            self.foreign.append(request.url)

    def open(self, path: str = "/till/") -> "Till":
        self.page.goto(self.server.base + path)
        if path.startswith("/till/") and not path.endswith(".html"):
            self.page.wait_for_selector("body[data-ready='1']")
        return self

    # -- acting as the clerk
    def connect(self) -> None:
        """Press "Wallet koppelen" and wait for the provider's details."""
        self.page.click("#wallet-buttons button")
        self.page.wait_for_selector("#provider-info:not([hidden])")

    def type_code(self, text: str) -> None:
        before = int(self.page.evaluate("document.body.dataset.verdicts || 0"))
        self.page.fill("#typed", text)
        self.page.click("#typed-form button[type=submit]")
        self.page.wait_for_function(f"() => Number(document.body.dataset.verdicts || 0) > {before}")

    def amount(self, euros: str, co: str = "") -> None:
        """Type the amount (and co-payment) and wait for the pre-check of exactly that."""
        before = int(self.page.evaluate("() => Number(document.body.dataset.prechecks || 0)"))
        self.page.fill("#amount", euros)
        if co:
            self.page.fill("#co-payment", co)
        self.page.wait_for_function(f"() => Number(document.body.dataset.prechecks || 0) > {before}")
        self.page.wait_for_function("() => !document.getElementById('precheck').textContent.includes('…')")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    # -- checking every state
    def state(self, name: str) -> list[Path]:
        """axe-core (WCAG 2.1 AA) finds nothing, then screenshots at desk, tablet and phone size."""
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa']})).violations"
            ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))")
        assert violations == [], f"{name}: axe-core found {violations}"
        assert self.errors == [], self.errors
        assert self.foreign == [], f"requests to other origins: {self.foreign}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        original = self.page.viewport_size
        paths = []
        for w, h in SIZES:
            self.page.set_viewport_size({"width": w, "height": h})
            path = SHOTS / f"{name}-{w}x{h}.png"
            self.page.screenshot(path=str(path), full_page=True)
            paths.append(path)
        self.page.set_viewport_size(original)
        return paths

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_till(browser, server, wallet_js, axe_js) -> Iterator[Callable[..., Till]]:
    opened: list[Till] = []

    def _open(mode: str | None = "ok", key: str = POOL_KEY, viewport: tuple[int, int] = SIZES[0], path: str = "/till/",
              **kw: Any) -> Till:
        till = Till(browser, server, wallet_js, axe_js, mode=mode, key=key, viewport=viewport, **kw)
        opened.append(till)
        return till.open(path)

    yield _open
    for till in opened:
        till.close()


