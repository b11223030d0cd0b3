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
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from click.testing import CliRunner  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_utils import keccak  # noqa: E402

from citypass import node  # noqa: E402
from citypass.cli import main  # noqa: E402
import media  # noqa: E402
from tillkit import BUILD, CAMERA, CHROMIUM, MUSEUM, POOL, POOL_KEY, ROOT, SHOTS, SIZES  # noqa: E402,F401


def pytest_configure(config):
    config.addinivalue_line("markers", "v2: needs contract v2 (CP2 pass QRs, spending-limit vouchers)")


@pytest.fixture(autouse=True)
def isolation():
    """The browser tests run on their own embedded node, not Brownie's."""


def resident(label: str) -> Any:
    """A synthetic resident's key (derived from a label; nobody real)."""
    return Account.from_key(keccak(text=f"citypass-till-test-{label}"))


def cli(workdir: Path, *args: str) -> Any:
    runner = CliRunner(mix_stderr=False, env={"CITYPASS_RPC": None, "CITYPASS_FROM": None,
                                              "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None})
    result = runner.invoke(main, ["--workdir", str(workdir), "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, f"citypass {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


class World:
    """Two budgets (sport, culture), the pool and the museum as providers, residents on demand."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.count = 0
        cli(workdir, "node", "start")
        cli(workdir, "deploy")
        cli(workdir, "category", "define", "0", "sport")
        cli(workdir, "category", "define", "1", "culture")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 300 * 86_400))
        self.sport = int(cli(workdir, "budget", "create", "--category", "sport", "--valid-from", today,
                             "--valid-until", self.until, "--cap", "100000", "--name", "Sport 2026")["id"])
        self.culture = int(cli(workdir, "budget", "create", "--category", "culture", "--valid-from", today,
                               "--valid-until", self.until, "--cap", "100000", "--name", "Cultuur 2026")["id"])
        cli(workdir, "provider", "add", POOL, "--categories", "sport", "--max", "50")
        cli(workdir, "provider", "add", MUSEUM, "--categories", "culture")

    def cli(self, *args: str) -> Any:
        return cli(self.workdir, *args)

    def new_resident(self, label: str, sport: str = "25.00", culture: str = "10.00") -> Any:
        """Enrol a fresh synthetic resident and credit both budgets."""
        self.count += 1
        who = resident(f"{label}-{self.count}")
        self.cli("pass", "enroll", who.address, "--valid-until", self.until)
        for serial, euros in (("1", sport), ("2", culture)):
            if euros:
                rows = self.workdir / f"issue-{self.count}-{serial}.csv"
                rows.write_text(f"holder,amount\n{who.address},{euros}\n")
                self.cli("issue", str(rows), "--budget", serial)
        return who


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("citypass-till"))
    yield w
    node.node_stop(w.workdir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    """`citypass web` as a clerk's municipality would run it, on a free loopback port."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        BUILD.mkdir(parents=True, exist_ok=True)
        self.log = open(BUILD / "server.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citypass", "--workdir", str(workdir), "web", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"citypass web exited with {self.proc.returncode}; see {BUILD / 'server.log'}")
            try:
                if requests.post(self.base + "/api/deployment", json={}, timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("citypass web did not answer within 60 s")

    def api(self, name: str, body: Any = None) -> Any:
        r = requests.post(f"{self.base}/api/{name}", json=body or {}, timeout=30)
        assert r.ok, f"/api/{name}: {r.status_code} {r.text[:300]}"
        return r.json()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def server(world) -> Iterator[WebServer]:
    s = WebServer(world.workdir)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def wallet_js() -> str:
    """The stand-in wallet bundled (it imports viem's local account)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / "wallet.js"
    subprocess.run([str(ROOT / "node_modules/.bin/esbuild"), str(ROOT / "tests/web/wallet.js"), "--bundle",
                    "--format=iife", "--log-level=warning", f"--outfile={out}"], check=True, cwd=ROOT)
    return out.read_text()


@pytest.fixture(scope="session")
def axe_js() -> str:
    return (ROOT / "node_modules/axe-core/axe.min.js").read_text()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    BUILD.mkdir(parents=True, exist_ok=True)
    media.write_blank_y4m(CAMERA)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={CAMERA}",
        ])
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
        self.page.fill("#amount", euros)
        if co:
            self.page.fill("#co-payment", co)
        self.page.wait_for_function("() => document.getElementById('precheck').textContent && "
                                    "!document.getElementById('precheck').textContent.includes('…')")

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


