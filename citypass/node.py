"""The embedded chain: a local Anvil whose state persists in the work directory.

Successive `citypass` commands must see the same chain, so the first one starts Anvil in
the background (its own session, so it outlives the command) and records pid and port in
`<workdir>/node.json`; later commands attach to it. Anvil dumps its state to
`<workdir>/anvil-state.json` every few seconds and on a clean stop, and loads it on start,
so even a killed node loses at most the last seconds. Those can hold transactions a command
already saw mined: after such a restart, re-run the command (issuance and settlement are
idempotent: tests/test_faults.py kills the node mid-issuance and checks the re-run).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import requests

from citypass.errors import CityPassError

NODE_FILE = "node.json"
STATE_FILE = "anvil-state.json"
LOG_FILE = "anvil.log"
LOCK_FILE = "node.lock"
STATE_INTERVAL = 5  # seconds between state dumps: what a crash can lose at most (each dump
# rewrites the whole state file, so not much more often)
GAS_LIMIT = 30_000_000
START_TIMEOUT = 20.0

# The project root, for node_modules/.bin/anvil when the package runs from a checkout.
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class NodeInfo:
    pid: int
    port: int
    rpc_url: str
    state_file: str
    log_file: str
    binary: str
    started: float


def find_anvil() -> str:
    """The anvil binary: PATH, then the project's node_modules, then the npm platform package."""
    found = shutil.which("anvil")
    if found:
        return found
    # The venv's bin (make setup links the native binary there), then the native binary
    # inside the npm package (no node wrapper in between), then the npm wrapper itself.
    candidates = [Path(sys.executable).parent / "anvil"]
    for root in (_PROJECT_ROOT, Path.cwd()):
        candidates += sorted((root / "node_modules" / "@foundry-rs").glob("anvil-linux-*/bin/anvil"))
    candidates += [root / "node_modules" / ".bin" / "anvil" for root in (_PROJECT_ROOT, Path.cwd())]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise CityPassError("Anvil not found: run `make setup` or pass --rpc URL")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it; never 8545)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc_alive(url: str, timeout: float = 1.0) -> int | None:
    """The chain id the node at `url` answers with, or None if nothing answers."""
    try:
        r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout)
        return int(r.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child that exited) still "exists": check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@contextmanager
def _locked(workdir: Path) -> Iterator[None]:
    """Serialises start/stop, so two commands started together don't start two nodes."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_info(workdir: Path) -> NodeInfo | None:
    try:
        return NodeInfo(**json.loads((workdir / NODE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def node_status(workdir: Path | str = ".citypass") -> NodeInfo | None:
    """The running embedded node of `workdir`, or None (a stale record is removed)."""
    workdir = Path(workdir)
    info = _read_info(workdir)
    if info is None:
        return None
    if _pid_alive(info.pid) and rpc_alive(info.rpc_url) is not None:
        return info
    return None


def node_start(workdir: Path | str = ".citypass", *, port: int | None = None,
               persist: bool = True, gas_limit: int = GAS_LIMIT) -> tuple[NodeInfo, bool]:
    """Starts the embedded node unless it runs already. Returns (info, started_now).
    persist=False: a throwaway chain without state dumps (benchmarks: each dump rewrites the
    whole state and stalls the node, which grows with the state)."""
    workdir = Path(workdir).resolve()
    with _locked(workdir):
        info = node_status(workdir)
        if info is not None:
            return info, False
        binary = find_anvil()
        port = port or free_port()
        state, log = workdir / STATE_FILE, workdir / LOG_FILE
        cmd = [
            binary, "--host", "127.0.0.1", "--port", str(port),
            *(["--state", str(state), "--state-interval", str(STATE_INTERVAL)] if persist else []),
            "--gas-limit", str(gas_limit), "--accounts", "10",
            "--quiet",  # errors still reach the log; a line per block would grow it by ~25 kB per tx
        ]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command, and a Ctrl-C at the prompt
            )
        info = NodeInfo(proc.pid, port, f"http://127.0.0.1:{port}", str(state), str(log), binary, time.time())
        deadline = time.monotonic() + START_TIMEOUT
        while rpc_alive(info.rpc_url, timeout=0.5) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
                raise CityPassError(f"the embedded Anvil node did not start (see {log}): {' / '.join(tail)}")
            time.sleep(0.05)
        (workdir / NODE_FILE).write_text(json.dumps(asdict(info), indent=2))
        return info, True


def node_stop(workdir: Path | str = ".citypass", *, timeout: float = 10.0) -> NodeInfo | None:
    """Stops the embedded node cleanly (Anvil dumps its state on SIGTERM). None if not running."""
    workdir = Path(workdir).resolve()
    with _locked(workdir):
        info = _read_info(workdir)
        if info is None or not _pid_alive(info.pid):
            (workdir / NODE_FILE).unlink(missing_ok=True)
            return None
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(info.pid):
            if time.monotonic() > deadline:
                os.kill(info.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        try:  # reap it if it was our own child (tests start and stop in one process)
            os.waitpid(info.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        (workdir / NODE_FILE).unlink(missing_ok=True)
        return info
