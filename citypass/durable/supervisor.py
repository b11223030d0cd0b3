"""The supervisor: the one owner of a work directory's embedded chain.

    python -m citypass.durable.supervisor --workdir DIR --port N [--gas-limit N]

It runs Anvil on a private loopback port (no `--state`: Anvil never writes a file) and
serves CityPass's JSON-RPC endpoint on `--port`, which every client uses. What it promises:
once the endpoint has handed out a receipt, the transaction and its block survive a SIGKILL
of Anvil, of the supervisor, of the client or of all at once.

- `eth_sendRawTransaction`: the signed bytes are journaled (fsync) before Anvil sees them.
- A receipt is handed out only after every block up to its block is journaled (number,
  timestamp, transaction hashes; fsync).
- Other writes (balances, time, mining mode, base fee, dropped transactions) are journaled
  in order, after the blocks mined before them. `evm_revert`/`anvil_reset`/`anvil_loadState`
  are followed by a snapshot (they undo history a journal cannot express).
- `eth_sendTransaction` and impersonation are refused: sign locally.
- Snapshots: `anvil_dumpState` under an exclusive lock (a consistent point), then temp
  file + fsync + rename; the previous snapshot and its journal are kept.
- Start: the newest snapshot that loads (else the one before), then each journal from it
  on, block by block: the same signed bytes at the block's original timestamp, so hashes,
  nonces and outcomes (deadlines, budget ends, admin delay) are those reported. Then the
  clock offset (time moved on a dev chain) and the mining mode come back, and what was
  sent but never mined is sent again (the unconfirmed tail).
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from citypass.durable import store

SNAPSHOT_INTERVAL = float(os.environ.get("CITYPASS_SNAPSHOT_INTERVAL", "30"))  # seconds, if anything changed
SNAPSHOT_ENTRIES = int(os.environ.get("CITYPASS_SNAPSHOT_ENTRIES", "20000"))  # journal lines: snapshot sooner
# A snapshot of a big state takes seconds (and stalls writes while Anvil dumps it): wait at
# least this many times as long as the last one took, so saving costs at most ~1/20 of the
# time. The journal keeps everything in between; snapshots only bound the replay at start.
SNAPSHOT_DUTY = 20.0
ANVIL_START_TIMEOUT = 300.0  # a big state takes a while to load
NODE_FILE = "node.json"
ANVIL_PID_FILE = "anvil.pid"
OWNER_LOCK = "supervisor.lock"

REFUSED = {"eth_sendTransaction", "eth_sign", "eth_signTransaction", "eth_signTypedData_v4",
           "anvil_impersonateAccount", "anvil_autoImpersonateAccount", "hardhat_impersonateAccount",
           "anvil_stopImpersonatingAccount", "anvil_setRpcUrl", "anvil_dumpState"}
REPLAYED = {"anvil_setBalance", "anvil_setCode", "anvil_setNonce", "anvil_setStorageAt", "anvil_addBalance",
            "anvil_setNextBlockBaseFeePerGas", "anvil_setCoinbase", "evm_setBlockGasLimit", "anvil_setMinGasPrice",
            "hardhat_setBalance", "hardhat_setCode", "hardhat_setNonce", "hardhat_setStorageAt"}
DROPS = {"anvil_dropTransaction", "anvil_dropAllTransactions", "anvil_removePoolTransactions"}
TIME = {"evm_increaseTime", "evm_setNextBlockTimestamp", "evm_setTime", "anvil_setTime", "evm_mine", "anvil_mine",
        "anvil_setBlockTimestampInterval", "anvil_removeBlockTimestampInterval", "anvil_mine_detailed",
        "evm_mine_detailed"}
MODE = {"evm_setAutomine", "evm_setIntervalMining", "anvil_setAutomine", "anvil_setIntervalMining"}
CHECKPOINT = {"evm_revert", "anvil_revert", "anvil_reset", "anvil_loadState", "anvil_rollback"}
WRITES = REPLAYED | DROPS | TIME | MODE | CHECKPOINT
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z0-9_]+)"')
_BLOCK_NUMBER = re.compile(rb'"blockNumber"\s*:\s*"(0x[0-9a-fA-F]+)"')
_SPECIAL = {m.encode() for m in WRITES | REFUSED | {"eth_sendRawTransaction", "citypass_snapshot", "citypass_status"}}


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} supervisor: {msg}", file=sys.stderr, flush=True)


def fault(point: str, _seen: dict[str, int] = {}) -> None:  # noqa: B006 (a counter per process)
    """CITYPASS_NODE_FAULT=<point>:<n>: SIGKILL this supervisor the n-th time it reaches
    `point` (crash tests): snapshot-dump, snapshot-write, snapshot-rename, journal-switch,
    replay."""
    spec = os.environ.get("CITYPASS_NODE_FAULT")
    if not spec:
        return
    name, _, nth = spec.rpartition(":")
    _seen[point] = _seen.get(point, 0) + 1
    if name == point and _seen[point] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)


class RWLock:
    """Many sends at once, or one write that must see the chain still."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def shared(self) -> "_Held":
        return _Held(self, False)

    def exclusive(self) -> "_Held":
        return _Held(self, True)

    def acquire(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                while self._writer or self._readers:
                    self._cond.wait()
                self._writer = True
            else:
                while self._writer:
                    self._cond.wait()
                self._readers += 1

    def release(self, exclusive: bool) -> None:
        with self._cond:
            if exclusive:
                self._writer = False
            else:
                self._readers -= 1
            self._cond.notify_all()


class _Held:
    def __init__(self, lock: RWLock, exclusive: bool):
        self.lock, self.exclusive = lock, exclusive

    def __enter__(self) -> None:
        self.lock.acquire(self.exclusive)

    def __exit__(self, *exc: Any) -> None:
        self.lock.release(self.exclusive)


class Anvil:
    """The private node: a child that dies with the supervisor (PR_SET_PDEATHSIG)."""

    def __init__(self, binary: str, port: int, gas_limit: int, log_file: Path, load: Path | None,
                 genesis_ts: int | None):
        self.port = port
        cmd = [binary, "--host", "127.0.0.1", "--port", str(port), "--gas-limit", str(gas_limit),
               "--accounts", "10", "--quiet"]
        if load is not None:
            cmd += ["--load-state", str(load)]
        elif genesis_ts is not None:
            cmd += ["--timestamp", str(genesis_ts)]
        self.out = open(log_file, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self._local = threading.local()

    def conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        return c

    def post(self, body: bytes) -> bytes:
        for attempt in (0, 1):
            c = self.conn()
            try:
                c.request("POST", "/", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                return r.read()
            except (http.client.HTTPException, OSError):
                c.close()
                self._local.conn = None
                if attempt or self.proc.poll() is not None:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, params: list[Any] | None = None) -> Any:
        """One call; raises RuntimeError with the node's message on an error answer."""
        answer = json.loads(self.post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                   "params": params or []}).encode()))
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not calls:
            return []
        body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                           for i, (m, p) in enumerate(calls)]).encode()
        by_id = {a.get("id"): a for a in json.loads(self.post(body))}
        return [by_id.get(i, {}).get("result") for i in range(len(calls))]

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.call("eth_chainId")
                return True
            except (OSError, http.client.HTTPException, ValueError, RuntimeError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Supervisor:
    def __init__(self, workdir: Path, port: int, gas_limit: int, binary: str):
        self.workdir = workdir
        self.folder = store.chain_dir(workdir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port, self.gas_limit, self.binary = port, gas_limit, binary
        self.lock = RWLock()
        self.record_lock = threading.Lock()
        self.snapshot_lock = threading.Lock()
        self.anvil: Anvil | None = None
        self.journal: store.Journal | None = None
        self.gen = 0
        self.last_recorded = -1  # highest block number journaled (or in the loaded snapshot)
        self.unmined: dict[str, str] = {}  # hash -> raw: journaled, not yet seen in a block
        self.clock = 0.0  # chain time minus wall time (time moved on a dev chain)
        self.mode: dict[str, Any] = {"automine": True, "interval": 0}
        self.last_snapshot = time.monotonic()
        self.snapshot_wait = SNAPSHOT_INTERVAL
        self.changes = 0  # journal entries since the last snapshot
        self.stopping = threading.Event()
        # Where the endpoint's time goes (citypass_status; bench/durability.py reads it).
        self.timing: dict[str, float] = dict.fromkeys(
            ("requests", "request_s", "reads", "read_forward_s", "sends", "send_journal_s", "send_forward_s",
             "receipt_record_s", "records", "snapshots", "snapshot_s", "snapshot_stall_s", "fsyncs_closed",
             "fsync_s_closed"), 0.0)
        self._timing_lock = threading.Lock()

    def _count(self, **add: float) -> None:
        with self._timing_lock:
            for k, v in add.items():
                self.timing[k] += v

    # ------------------------------------------------------------------ start and replay
    def start(self) -> None:
        for tmp in self.folder.glob("*.tmp"):
            tmp.unlink()  # a save that never finished: the previous snapshot is still there
        tried = []
        for gen in store.snapshots(self.folder):
            path = store.snap_path(self.folder, gen)
            try:
                meta = store.read_meta(path)
            except ValueError as exc:
                tried.append(str(exc))
                continue
            began = time.monotonic()
            anvil = self._anvil(load=path)
            # until the first snapshot is timed: a dump takes about as long as a load
            self.snapshot_wait = max(SNAPSHOT_INTERVAL, SNAPSHOT_DUTY * (time.monotonic() - began))
            if anvil is None:
                tried.append(f"{path.name}: Anvil refused to load it")
                continue
            self.anvil, self.gen = anvil, gen
            self.clock = float(meta.get("clock", 0))
            self.mode = meta.get("mode", self.mode)
            self.unmined = dict(meta.get("unmined", {}))
            log(f"loaded {path.name} (block {self._head()})")
            break
        if self.anvil is None:
            journals = store.journals(self.folder)
            if journals and journals[0] != 0:
                raise SystemExit(f"no snapshot of {self.folder} loads ({'; '.join(tried)}) and the journal "
                                 f"from genesis is gone: restore a backup with `citypass node restore FILE`")
            genesis = None
            if journals:
                first = next(store.read_journal(store.journal_path(self.folder, 0)), {})
                genesis = first.get("genesis")
            self.anvil = self._anvil(load=None, genesis_ts=genesis)
            if self.anvil is None:
                raise SystemExit("Anvil did not start: see the log")
            self.gen = 0
            if not journals:
                self.journal = store.Journal(store.journal_path(self.folder, 0))
                block0 = self.anvil.call("eth_getBlockByNumber", ["0x0", False])
                self.journal.append({"t": "head", "gen": 0, "genesis": int(block0["timestamp"], 16)})
        self.last_recorded = self._head()
        replayed = self._replay([g for g in store.journals(self.folder) if g >= self.gen])
        if self.journal is None:
            self.journal = store.Journal(store.journal_path(self.folder, self.gen))
        self.record_blocks()  # blocks the resent tail made (the replay set last_recorded before it)
        if replayed:
            self.snapshot()  # a fresh snapshot: the next start replays nothing
        self.last_snapshot = time.monotonic()


    def _anvil(self, load: Path | None, genesis_ts: int | None = None) -> Anvil | None:
        a = Anvil(self.binary, _free_port(), self.gas_limit, self.workdir / "anvil.log", load, genesis_ts)
        (self.workdir / ANVIL_PID_FILE).write_text(str(a.proc.pid))
        if a.wait_ready(ANVIL_START_TIMEOUT):
            return a
        a.stop()
        return None

    def _head(self) -> int:
        return int(self.anvil.call("eth_blockNumber"), 16)

    def _replay(self, gens: list[int]) -> int:
        """Replays the journals `gens` (in order) onto the loaded chain; returns the number of
        blocks mined."""
        a = self.anvil
        raws: dict[str, str] = dict(self.unmined)
        dropped: set[str] = set()
        mined = 0
        a.call("evm_setAutomine", [False])
        a.call("evm_setIntervalMining", [0])
        # Anvil dates its clock at the load, and refuses to mine before it: back to the head
        # block's own time, so each replayed block can have its original timestamp.
        latest = a.call("eth_getBlockByNumber", ["latest", False])
        a.call("evm_setTime", [int(latest["timestamp"], 16)])
        for gen in gens:
            for e in store.read_journal(store.journal_path(self.folder, gen)):
                kind = e.get("t")
                if kind == "tx":
                    raws[e["h"]] = e["raw"]
                    dropped.discard(e["h"])
                elif kind == "b":
                    n = int(e["n"])
                    if n <= self._head():
                        continue  # already in the snapshot
                    fault("replay")
                    for h in e["h"]:
                        if h not in raws:
                            log(f"replay: block {n} has transaction {h} the journal lacks")
                            continue
                        try:
                            a.call("eth_sendRawTransaction", [raws[h]])
                        except RuntimeError as exc:
                            log(f"replay: block {n}: {exc}")
                    try:  # at its original time (equal to its parent's is allowed here)
                        a.call("evm_mine", [{"timestamp": int(e["ts"])}])
                    except RuntimeError as exc:
                        log(f"replay: block {n} at {e['ts']}: {exc}")
                        a.call("evm_mine")
                    mined += 1
                    block = a.call("eth_getBlockByNumber", ["latest", False])
                    if int(block["number"], 16) != n or [h.lower() for h in block["transactions"]] != e["h"]:
                        log(f"replay: block {n} came out as block {int(block['number'], 16)} with "
                            f"{len(block['transactions'])} of its {len(e['h'])} transactions in its order")
                elif kind == "rpc":
                    if e["m"] in REPLAYED:
                        try:
                            a.call(e["m"], e["p"])
                        except RuntimeError as exc:
                            log(f"replay: {exc}")
                    elif e["m"] == "anvil_dropTransaction" and e["p"]:
                        dropped.add(str(e["p"][0]).lower())
                    elif e["m"] in DROPS:
                        dropped.update(raws)
                elif kind == "clock":
                    self.clock = float(e["v"])
                elif kind == "mode":
                    self.mode = e["v"]
        self._set_clock()
        # What the journal's blocks hold is in; blocks the tail makes now are journaled by
        # start() (record_blocks), like any other.
        self.last_recorded = self._head()
        a.call("evm_setAutomine", [bool(self.mode.get("automine", True))])
        tail = [h for h in raws if h not in dropped]
        if tail:  # sent, never reported mined: send again what the chain has not got
            receipts = a.batch([("eth_getTransactionReceipt", [h]) for h in tail])
            for h, r in zip(tail, receipts):
                if r is None:
                    try:
                        a.call("eth_sendRawTransaction", [raws[h]])
                        self.unmined[h] = raws[h]
                    except RuntimeError as exc:
                        log(f"replay: unconfirmed {h} not taken again: {exc}")
        if self.mode.get("interval"):
            a.call("evm_setIntervalMining", [int(self.mode["interval"])])
        if mined:
            log(f"replayed {mined} blocks up to block {self._head()}")
        return mined

    def _set_clock(self) -> None:
        """The chain's clock as it was: wall time plus the offset time moves gave it, never
        before the latest block."""
        latest = self.anvil.call("eth_getBlockByNumber", ["latest", False])
        target = max(int(time.time() + self.clock), int(latest["timestamp"], 16))
        self.anvil.call("evm_setTime", [target])

    def _clock_now(self) -> float:
        pending = self.anvil.call("eth_getBlockByNumber", ["pending", False])
        return int(pending["timestamp"], 16) - time.time()

    # ------------------------------------------------------------------ journal
    def record_blocks(self, up_to: int | None = None) -> None:
        """Journals every block mined since the last one journaled (fsync)."""
        with self.record_lock:
            if up_to is None:
                up_to = self._head()
            if up_to <= self.last_recorded:
                return
            numbers = list(range(self.last_recorded + 1, up_to + 1))
            entries = []
            for start in range(0, len(numbers), 200):
                part = numbers[start:start + 200]
                for n, b in zip(part, self.anvil.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])):
                    if b is None:
                        raise RuntimeError(f"block {n} vanished while journaling it")
                    hashes = [h.lower() for h in b["transactions"]]
                    entries.append({"t": "b", "n": n, "ts": int(b["timestamp"], 16), "h": hashes})
                    for h in hashes:
                        self.unmined.pop(h, None)
            self.journal.append(*entries)
            self.changes += len(entries)
            self.last_recorded = up_to
            self._count(records=1)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, locked: bool = False) -> Path:
        """A consistent snapshot, written atomically; old files beyond the previous one go."""
        began = time.monotonic()
        if not locked:  # lock order: the chain first, then the snapshot files (no deadlock)
            self.lock.acquire(True)
        with self.snapshot_lock:
            try:
                # Anvil mines in the background after it took a transaction: let it finish,
                # so the dump is not taken halfway through a block (state ahead of blocks).
                for _ in range(3):
                    self._settle()
                    before = self._head()
                    if self.journal is not None:
                        self.record_blocks(before)
                    fault("snapshot-dump")
                    dump = self.anvil.call("anvil_dumpState")
                    if self._head() == before:
                        break
                clock = self._clock_now()
                meta = {"gen": self.gen + 1, "clock": clock, "mode": self.mode, "unmined": dict(self.unmined),
                        "saved": time.time()}
                new_gen = self.gen + 1
                fault("journal-switch")
                journal = store.Journal(store.journal_path(self.folder, new_gen))
                journal.append({"t": "head", "gen": new_gen},
                               *({"t": "tx", "h": h, "raw": r} for h, r in self.unmined.items()),
                               {"t": "clock", "v": clock}, {"t": "mode", "v": self.mode})
                old, self.journal, self.gen = self.journal, journal, new_gen
                if old is not None:
                    old.close()
                    self._count(fsyncs_closed=old.fsyncs, fsync_s_closed=old.fsync_seconds)
                self.changes = 0
            finally:
                self._count(snapshot_stall_s=time.monotonic() - began)
                if not locked:
                    self.lock.release(True)
                    locked = True  # released: not again
            path = store.snap_path(self.folder, new_gen)
            store.write_atomic(path, store.state_from_dump(dump, meta), fault)
            for g in store.snapshots(self.folder):
                if g < new_gen - 1:
                    store.snap_path(self.folder, g).unlink(missing_ok=True)
            for g in store.journals(self.folder):
                if g < new_gen - 1:
                    store.journal_path(self.folder, g).unlink(missing_ok=True)
            self.last_snapshot = time.monotonic()
            self.snapshot_wait = max(SNAPSHOT_INTERVAL, SNAPSHOT_DUTY * (self.last_snapshot - began))
            self._count(snapshots=1, snapshot_s=self.last_snapshot - began)
            return path

    def _settle(self, timeout: float = 5.0) -> None:
        """Waits (automine) until Anvil's pool is empty: every transaction taken is mined."""
        if not self.mode.get("automine", True):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.anvil.call("txpool_status")
            if int(status.get("pending", "0x0"), 16) == 0:
                return
            time.sleep(0.005)

    def snapshot_loop(self) -> None:
        while not self.stopping.wait(min(1.0, SNAPSHOT_INTERVAL)):
            due = time.monotonic() - self.last_snapshot >= self.snapshot_wait
            # Not at block 0: Anvil makes a new block 0 (dated at load) from such a state, and
            # block 1 could not be replayed at its own time; journal 0 keeps the genesis time.
            if self.changes and (due or self.changes >= SNAPSHOT_ENTRIES) and self.last_recorded > 0:
                try:
                    self.snapshot()
                except Exception:  # noqa: BLE001 (logged; the journal still holds everything)
                    log("snapshot failed:\n" + traceback.format_exc())

    # ------------------------------------------------------------------ the endpoint
    def handle(self, body: bytes) -> bytes:
        began = time.perf_counter()
        try:
            return self._handle(body)
        finally:
            self._count(requests=1, request_s=time.perf_counter() - began)

    def _handle(self, body: bytes) -> bytes:
        methods_seen = set(_METHOD.findall(body))
        if methods_seen and not methods_seen & _SPECIAL and b"\\u" not in body:
            # Reads only (the common case): forwarded without parsing the request in Python.
            began = time.perf_counter()
            out = self.anvil.post(body)
            self._count(reads=1, read_forward_s=time.perf_counter() - began)
            if b"eth_getTransactionReceipt" in methods_seen:
                self._receipts_seen(out)
            return out
        try:
            request = json.loads(body)
        except ValueError:
            return _error(None, -32700, "parse error")
        items = request if isinstance(request, list) else [request]
        if not items or not all(isinstance(i, dict) for i in items):
            return _error(None, -32600, "invalid request")
        methods = {i.get("method") for i in items}
        if methods & REFUSED:
            return _answers(request, [_err(i, -32601, f"{i.get('method')} is not served by CityPass's endpoint: "
                                                     "sign locally and use eth_sendRawTransaction")
                                      if i.get("method") in REFUSED else None for i in items], self, items)
        if methods & (WRITES | {"citypass_snapshot", "citypass_status"}):
            return _answers(request, [self._one(i) for i in items], self, items)
        return self._forward(body, items, request)

    def _forward(self, body: bytes, items: list[dict[str, Any]], request: Any) -> bytes:
        sends = [i for i in items if i.get("method") == "eth_sendRawTransaction"]
        with self.lock.shared():
            if sends:
                began = time.perf_counter()
                entries = []
                for i in sends:
                    raw = str((i.get("params") or [""])[0])
                    h = _tx_hash(raw)
                    if h:
                        entries.append({"t": "tx", "h": h, "raw": raw})
                        self.unmined[h] = raw
                self.journal.append(*entries)
                self.changes += len(entries)
                forwarded = time.perf_counter()
                self._count(sends=len(sends), send_journal_s=forwarded - began)
            out = self.anvil.post(body)
            if sends:
                self._count(send_forward_s=time.perf_counter() - forwarded)
            if sends:  # a refused transaction is never mined: do not carry it along
                answers = json.loads(out)
                by_id = {a.get("id"): a for a in (answers if isinstance(answers, list) else [answers])
                         if isinstance(a, dict)}
                for e, i in zip(entries, sends):
                    if "error" in by_id.get(i.get("id"), {}) and "already" not in str(by_id[i.get("id")]["error"]):
                        self.unmined.pop(e["h"], None)
        if any(i.get("method") == "eth_getTransactionReceipt" for i in items):
            self._receipts_seen(out)
        return out

    def _receipts_seen(self, out: bytes) -> None:
        """A receipt is about to be handed out: journal its block (and all before) first."""
        numbers = _BLOCK_NUMBER.findall(out)
        if numbers:
            highest = max(int(n, 16) for n in numbers)
            if highest > self.last_recorded:
                began = time.perf_counter()
                with self.lock.shared():
                    self.record_blocks(highest)
                self._count(receipt_record_s=time.perf_counter() - began)

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        method, params = item.get("method"), item.get("params") or []
        if method == "citypass_snapshot":
            return {"jsonrpc": "2.0", "id": item.get("id"), "result": str(self.snapshot())}
        if method == "citypass_status":
            return {"jsonrpc": "2.0", "id": item.get("id"), "result": {
                "gen": self.gen, "block": self.last_recorded, "anvil_port": self.anvil.port,
                "anvil_pid": self.anvil.proc.pid, "journal": str(self.journal.path), "clock": self.clock,
                "timing": dict(self.timing), "fsyncs": self.journal.fsyncs + self.timing["fsyncs_closed"],
                "fsync_s": self.journal.fsync_seconds + self.timing["fsync_s_closed"],
                "journal_entries": self.journal.entries}}
        if method not in WRITES:
            return json.loads(self._forward(json.dumps(item).encode(), [item], item))
        with self.lock.exclusive():
            self.record_blocks()
            if method in MODE:
                mode = dict(self.mode)
                if method.endswith("setAutomine"):
                    mode["automine"] = bool(params[0]) if params else True
                else:
                    mode["interval"] = int(params[0]) if params else 0
                    if mode["interval"]:
                        mode["automine"] = False
                entry = {"t": "mode", "v": mode}
            else:
                entry = {"t": "rpc", "m": method, "p": params}
            if method not in CHECKPOINT:
                self.journal.append(entry)
                self.changes += 1
            answer = json.loads(self.anvil.post(json.dumps(item).encode()))
            if "error" not in answer:
                if method in MODE:
                    self.mode = entry["v"]
                if method in CHECKPOINT:
                    self.unmined.clear()
                    self.last_recorded = self._head()
                    self.snapshot(locked=True)
                else:
                    self.record_blocks()
                    if method in TIME:
                        self.clock = self._clock_now()
                        self.journal.append({"t": "clock", "v": self.clock})
            return answer

    # ------------------------------------------------------------------ run
    def serve(self) -> None:
        sup = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out apart: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    out = sup.handle(body)
                except Exception as exc:  # noqa: BLE001 (the client gets an error, the log the trace)
                    log("request failed:\n" + traceback.format_exc())
                    out = _error(None, -32603, f"CityPass endpoint: {exc.__class__.__name__}: {exc}")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        threading.Thread(target=self.snapshot_loop, daemon=True).start()
        threading.Thread(target=self._watch_anvil, daemon=True).start()
        info = {"pid": os.getpid(), "port": self.port, "rpc_url": f"http://127.0.0.1:{self.port}",
                "state_file": str(self.folder), "log_file": str(self.workdir / "anvil.log"), "binary": self.binary,
                "started": time.time(), "anvil_pid": self.anvil.proc.pid, "anvil_port": self.anvil.port,
                "durable": True}
        tmp = self.workdir / (NODE_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, self.workdir / NODE_FILE)
        log(f"serving {info['rpc_url']} (Anvil pid {self.anvil.proc.pid} on port {self.anvil.port})")
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        self.stopping.wait()
        server.shutdown()
        try:
            if self.changes and self._head() > 0:
                self.snapshot()
        finally:
            self.anvil.stop()
            (self.workdir / NODE_FILE).unlink(missing_ok=True)
            log("stopped cleanly")

    def _watch_anvil(self) -> None:
        self.anvil.proc.wait()
        if not self.stopping.is_set():
            log(f"Anvil exited ({self.anvil.proc.returncode}): the supervisor stops; the next command restarts both")
            os._exit(1)


def _tx_hash(raw: str) -> str | None:
    from eth_utils import keccak

    try:
        return "0x" + keccak(bytes.fromhex(raw[2:] if raw.startswith("0x") else raw)).hex()
    except ValueError:
        return None


def _err(item: dict[str, Any], code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": item.get("id"), "error": {"code": code, "message": message}}


def _error(id_: Any, code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}).encode()


def _answers(request: Any, given: list[Any], sup: Supervisor, items: list[dict[str, Any]]) -> bytes:
    out = [g if g is not None else sup._one(i) for g, i in zip(given, items)]
    return json.dumps(out if isinstance(request, list) else out[0]).encode()


def _kill_orphan(workdir: Path) -> None:
    """An Anvil left by a supervisor that was killed before PR_SET_PDEATHSIG could act."""
    try:
        pid = int((workdir / ANVIL_PID_FILE).read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"anvil" in f.read():
                os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    import fcntl

    parser = argparse.ArgumentParser(prog="python -m citypass.durable.supervisor")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--gas-limit", type=int, default=30_000_000)
    parser.add_argument("--anvil", required=True)
    a = parser.parse_args(argv)
    workdir = a.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    owner = open(workdir / OWNER_LOCK, "w")
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another supervisor owns {workdir}")
        return 3
    _kill_orphan(workdir)
    sup = Supervisor(workdir, a.port, a.gas_limit, a.anvil)
    sup.start()
    sup.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
