"""Constants the browser tests share (keys, paths, sizes): the Anvil dev accounts that are the
providers, and where the fake camera's video and the screenshots go."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner
from eth_account import Account
from eth_utils import keccak

from citypass import keys
from citypass.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEV = [keys.dev_account(i).address for i in range(10)]
POOL, MUSEUM = DEV[7], DEV[8]  # sport at most 50 euros a payment; culture, no limit
CHROMIUM = os.environ.get("CITYPASS_CHROMIUM", "/usr/bin/chromium")
BUILD = ROOT / "build" / "test-web"
SHOTS = ROOT / "build" / "screenshots"
SIZES = [(1280, 800), (768, 1024), (390, 844)]
CAMERA = BUILD / "camera.y4m"

POOL_KEY = "0x" + bytes(keys.dev_account(DEV.index(POOL)).key).hex()
MUSEUM_KEY = "0x" + bytes(keys.dev_account(DEV.index(MUSEUM)).key).hex()
STRANGER_KEY = "0x" + bytes(keys.dev_account(9).key).hex()  # a dev account that is no provider


def resident(label: str) -> Any:
    """A synthetic resident's key (derived from a label; nobody real)."""
    return Account.from_key(keccak(text=f"citypass-till-test-{label}"))


def cli(workdir: Path, *args: str, rpc: str | None = None) -> Any:
    """`citypass --workdir W [--rpc URL] --json ARGS...` in this process; its JSON answer."""
    runner = CliRunner(mix_stderr=False, env={"CITYPASS_RPC": None, "CITYPASS_FROM": None,
                                              "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None})
    chain = ("--rpc", rpc) if rpc else ()
    result = runner.invoke(main, ["--workdir", str(workdir), *chain, "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, f"citypass {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


def cli_help(workdir: Path, *args: str) -> str:
    return CliRunner().invoke(main, ["--workdir", str(workdir), *args, "--help"]).output


class World:
    """Two budgets (sport, culture), the pool and the museum as providers, residents on demand;
    on the embedded chain of `workdir`, or on the node at `rpc` (e.g. a plain Anvil with a block time)."""

    def __init__(self, workdir: Path, rpc: str | None = None):
        self.workdir = workdir
        self.rpc = rpc
        self.count = 0
        if rpc is None:
            self.cli("node", "start")
        self.cli("deploy")
        self.cli("category", "define", "0", "sport")
        self.cli("category", "define", "1", "culture")
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.until = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 300 * 86_400))
        self.sport = int(self.cli("budget", "create", "--category", "sport", "--valid-from", today,
                                  "--valid-until", self.until, "--cap", "100000", "--name", "Sport 2026")["id"])
        self.culture = int(self.cli("budget", "create", "--category", "culture", "--valid-from", today,
                                    "--valid-until", self.until, "--cap", "100000", "--name", "Cultuur 2026")["id"])
        # contract v2 gives providers a public name (`--name`); v1 had none
        named = "--name" in cli_help(workdir, "provider", "add")
        self.cli("provider", "add", POOL, "--categories", "sport", "--max", "50",
                 *(("--name", "Zwembad De Wetering") if named else ()))
        self.cli("provider", "add", MUSEUM, "--categories", "culture",
                 *(("--name", "Museum aan de Gracht") if named else ()))

    def cli(self, *args: str) -> Any:
        return cli(self.workdir, *args, rpc=self.rpc)

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    """`citypass web` as a clerk's municipality would run it, on a free loopback port: on the
    embedded chain of `workdir`, or on the node at `rpc`, with `--confirmations N` if given."""

    def __init__(self, workdir: Path, rpc: str | None = None, confirmations: int | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        BUILD.mkdir(parents=True, exist_ok=True)
        self.log = open(BUILD / "server.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}
        chain = (("--rpc", rpc) if rpc else ()) + (("--confirmations", str(confirmations)) if confirmations is not None else ())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citypass", "--workdir", str(workdir), *chain, "web", "--port", str(self.port)],
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


def bundle_wallet() -> str:
    """The stand-in wallet (tests/web/wallet.js, which imports viem's local account), bundled."""
    BUILD.mkdir(parents=True, exist_ok=True)
    out = BUILD / "wallet.js"
    subprocess.run([str(ROOT / "node_modules/.bin/esbuild"), str(ROOT / "tests/web/wallet.js"), "--bundle",
                    "--format=iife", "--log-level=warning", f"--outfile={out}"], check=True, cwd=ROOT)
    return out.read_text()


def chromium_args(camera: Path = CAMERA) -> list[str]:
    """Headless Debian Chromium on a closed network, with the fake camera playing `camera`."""
    return ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"]
