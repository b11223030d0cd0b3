"""What the tests of real-network behaviour share (reorgs, RPC limits, fees, block times):
a plain Anvil started here (never the embedded durable chain, whose journal would replay a
reorged-away transaction), a miner thread that makes blocks at a steady pace (like an L2's
sequencer) and can be paused, and the `citypass` CLI run as its own process.

Synthetic residents only; Anvil's public dev keys only (a local chain)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                           timeout=30).json()
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Anvil:
    """A plain Anvil on a free port (`args` added to its command line)."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([shutil.which("anvil") or "anvil", "--port", str(self.port), "--quiet",
                                      "--accounts", "10", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                rpc(self.url, "eth_chainId")
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("anvil did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def head(self) -> int:
        return int(rpc(self.url, "eth_blockNumber"), 16)


class Miner(threading.Thread):
    """Turns Anvil's automine off and mines one block every `interval` seconds until stopped
    (automine back on). `paused()` holds block production (e.g. while a test reorganises)."""

    def __init__(self, url: str, interval: float = 0.3):
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self._halt = threading.Event()
        self._run = threading.Event()
        self._run.set()
        self._idle = threading.Lock()

    def __enter__(self) -> "Miner":
        rpc(self.url, "evm_setAutomine", [False])
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._halt.set()
        self._run.set()
        self.join(10)
        rpc(self.url, "evm_setAutomine", [True])

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._run.wait()
            with self._idle:
                if not self._halt.is_set():
                    rpc(self.url, "evm_mine")

    def pause(self) -> None:
        self._run.clear()
        with self._idle:  # a block being mined now is finished first
            pass

    def resume(self) -> None:
        self._run.set()


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def citypass(workdir: Path, url: str, *args: str, wait: bool = True, timeout: float = 300) -> Any:
    """`citypass --workdir W --rpc URL ARGS...`: run in this process (click's runner, as a
    user's shell would see it: exit code, stdout, stderr) when `wait`, else started as its
    own process (`python -m citypass`) and the running Popen returned."""
    if wait:
        from click.testing import CliRunner

        from citypass.cli import main

        runner = CliRunner(mix_stderr=False, env={"CITYPASS_RPC": None, "CITYPASS_FROM": None,
                                                  "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None,
                                                  "CITYPASS_MAX_FEE": None})
        result = runner.invoke(main, ["--workdir", str(workdir), "--rpc", url, *args], catch_exceptions=False)
        return Finished(result.exit_code, result.stdout, result.stderr)
    cmd = [sys.executable, "-m", "citypass", "--workdir", str(workdir), "--rpc", url, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)


def wait_until(what: str, predicate: Any, timeout: float = 60, pause: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"timed out waiting for {what}")


def nonce(url: str, address: str) -> int:
    return int(rpc(url, "eth_getTransactionCount", [address, "latest"]), 16)
