"""The embedded chain: a local Anvil owned by one supervisor process per work directory.

Successive `citypass` commands must see the same chain, so the first one starts the
supervisor (citypass/durable/supervisor.py) in the background (its own session, so it
outlives the command); it records pid and port in `<workdir>/node.json` and later commands
attach to it. The supervisor runs Anvil on a private port and serves the JSON-RPC endpoint
everyone uses (CLI, library, scripts, browser wallets). It journals every signed
transaction before Anvil sees it and every mined block before a receipt is handed out, and
writes atomic snapshots: once a command reported success, a kill -9 of anything loses
nothing (tests/test_durable.py). `persist=False` starts a bare throwaway Anvil instead
(benchmarks).
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
from typing import Any, Iterator

import requests

from citypass.errors import CityPassError, UsageError

NODE_FILE = "node.json"
STATE_FILE = "anvil-state.json"  # persist=False nodes only; a durable node keeps <workdir>/chain/
LOG_FILE = "anvil.log"
LOCK_FILE = "node.lock"
PORT_FILE = "node.port"  # the durable endpoint's port, reused by the next start if free
STATE_INTERVAL = 5  # no effect any more (Anvil's own --state dumps are gone); kept for older callers
GAS_LIMIT = 30_000_000
START_TIMEOUT = 20.0
SUPERVISOR_START_TIMEOUT = 600.0  # loading a big snapshot and replaying the journal take a while

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
    anvil_pid: int | None = None  # durable nodes: the private Anvil behind the endpoint
    anvil_port: int | None = None
    durable: bool = False


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
    persist=True: the durable node (supervisor + journal + snapshots). persist=False: a
    throwaway Anvil without any persistence (benchmarks)."""
    workdir = Path(workdir).resolve()
    with _locked(workdir):
        info = node_status(workdir)
        if info is not None:
            return info, False
        binary = find_anvil()
        log = workdir / LOG_FILE
        if persist:
            # The endpoint keeps its port across restarts when it can (a Brownie network or a
            # wallet set to the URL stays valid after a crash); else a free one.
            remembered = None if port else _remembered_port(workdir)
            if remembered:
                try:
                    return _start_supervisor(workdir, binary, remembered, gas_limit, log), True
                except CityPassError:
                    if _remembered_port(workdir) is not None:
                        raise  # the port is free: it failed for another reason (see the log)
                    # taken in between by someone else: a free port
            info = _start_supervisor(workdir, binary, port or free_port(), gas_limit, log)
            (workdir / PORT_FILE).write_text(f"{info.port}\n")
            return info, True
        port = port or free_port()
        cmd = [
            binary, "--host", "127.0.0.1", "--port", str(port),
            "--gas-limit", str(gas_limit), "--accounts", "10",
            "--quiet",  # errors still reach the log; a line per block would grow it by ~25 kB per tx
        ]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command, and a Ctrl-C at the prompt
            )
        info = NodeInfo(proc.pid, port, f"http://127.0.0.1:{port}", "", str(log), binary, time.time())
        deadline = time.monotonic() + START_TIMEOUT
        while rpc_alive(info.rpc_url, timeout=0.5) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                raise CityPassError(f"the embedded Anvil node did not start (see {log}): {_tail(log)}")
            time.sleep(0.05)
        (workdir / NODE_FILE).write_text(json.dumps(asdict(info), indent=2))
        return info, True


def _remembered_port(workdir: Path) -> int | None:
    """The endpoint's port of the previous start, if nobody listens on it now."""
    try:
        port = int((workdir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the endpoint binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    return " / ".join(lines)


def _start_supervisor(workdir: Path, binary: str, port: int, gas_limit: int, log: Path) -> NodeInfo:
    """Starts the supervisor and waits until it serves (it may first replay its journal)."""
    (workdir / NODE_FILE).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "citypass.durable.supervisor", "--workdir", str(workdir), "--port", str(port),
           "--gas-limit", str(gas_limit), "--anvil", binary]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=str(workdir))
    deadline = time.monotonic() + SUPERVISOR_START_TIMEOUT
    while True:
        info = _read_info(workdir)
        if info is not None and info.pid == proc.pid and rpc_alive(info.rpc_url, timeout=2) is not None:
            return info
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise CityPassError(f"the embedded node did not start (see {log}): {_tail(log)}")
        time.sleep(0.05)


def node_stop(workdir: Path | str = ".citypass", *, timeout: float = 120.0) -> NodeInfo | None:
    """Stops the embedded node cleanly (a durable node writes a last snapshot). None if not running."""
    workdir = Path(workdir).resolve()
    with _locked(workdir):
        info = _read_info(workdir)
        if info is None or not _pid_alive(info.pid):
            (workdir / NODE_FILE).unlink(missing_ok=True)
            if info is not None:
                _reap(info.pid)
            return None
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(info.pid):
            if time.monotonic() > deadline:
                os.kill(info.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        _reap(info.pid)
        if info.anvil_pid and _pid_alive(info.anvil_pid):  # it dies with its supervisor; make sure
            os.kill(info.anvil_pid, signal.SIGKILL)
        (workdir / NODE_FILE).unlink(missing_ok=True)
        return info


def _reap(pid: int) -> None:
    try:  # reap it if it was our own child (tests start and stop in one process)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ------------------------------------------------------------------ backup, restore, time
def _control(info: NodeInfo, method: str, timeout: float = 600) -> Any:
    r = requests.post(info.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=timeout)
    answer = r.json()
    if "error" in answer:
        raise CityPassError(f"the embedded node refused {method}: {answer['error'].get('message')}")
    return answer["result"]


def node_backup(workdir: Path | str, target: Path | str) -> Path:
    """Writes a consistent snapshot of the running durable node to `target` (atomically)."""
    from citypass.durable import store

    workdir, target = Path(workdir).resolve(), Path(target)
    info = node_status(workdir)
    if info is None or not info.durable:
        raise CityPassError(f"the embedded node of {workdir} is not running: `citypass node start` first "
                            "(a stopped node's newest snapshot is in its chain/ folder)")
    if target.is_dir():
        raise UsageError(f"backup file {target} is a folder: give a file name")
    snap = Path(_control(info, "citypass_snapshot"))
    target.parent.mkdir(parents=True, exist_ok=True)
    store.write_atomic(target, snap.read_bytes())
    return target


def node_restore(workdir: Path | str, source: Path | str) -> Path:
    """Replaces the embedded chain of `workdir` with the backup `source` (stopping the node
    first and starting it again). The chain files it replaces are moved aside, not deleted;
    returns that folder."""
    from citypass.durable import store

    workdir, source = Path(workdir).resolve(), Path(source)
    if not source.is_file():
        raise UsageError(f"backup file {source} does not exist")
    try:
        meta = store.read_meta(source)
    except ValueError as exc:
        raise CityPassError(f"cannot restore: {exc}") from None
    node_stop(workdir)
    folder = store.chain_dir(workdir)
    aside = workdir / f"chain-before-restore-{time.strftime('%Y%m%dT%H%M%S')}"
    if folder.exists():
        folder.rename(aside)
    folder.mkdir(parents=True)
    gen = max(int(meta.get("gen", 1)), 1)
    store.write_atomic(store.snap_path(folder, gen), source.read_bytes())
    node_start(workdir)
    return aside


_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str) -> int:
    """'31d', '12h', '1d12h', '90m', '3600' (seconds) -> seconds."""
    s = str(text).strip().lower()
    if s.isdigit():
        return int(s)
    total, number = 0, ""
    for ch in s:
        if ch.isdigit():
            number += ch
        elif ch in _UNITS and number:
            total += int(number) * _UNITS[ch]
            number = ""
        else:
            raise UsageError(f"duration {text!r}: use a number with d, h, m or s (e.g. 31d, 12h, 1d12h)")
    if number or total <= 0:
        raise UsageError(f"duration {text!r}: use a number with d, h, m or s (e.g. 31d, 12h, 1d12h)")
    return total
