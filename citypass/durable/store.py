"""Journal and snapshot files of one work directory (see citypass/durable/__init__.py).

Nothing here talks to a node: the supervisor (citypass/durable/supervisor.py) does.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator

CHAIN_DIR = "chain"
_SNAP = re.compile(r"^snap-(\d{8})\.json$")
_JOURNAL = re.compile(r"^journal-(\d{8})\.jsonl$")
META_KEY = "citypass"  # Anvil ignores keys it does not know in a state file


def chain_dir(workdir: Path | str) -> Path:
    return Path(workdir) / CHAIN_DIR


def snap_path(folder: Path, gen: int) -> Path:
    return folder / f"snap-{gen:08d}.json"


def journal_path(folder: Path, gen: int) -> Path:
    return folder / f"journal-{gen:08d}.jsonl"


def snapshots(folder: Path) -> list[int]:
    """Generations with a snapshot file, newest first."""
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)) for p in folder.iterdir() if (m := _SNAP.match(p.name))), reverse=True)


def journals(folder: Path) -> list[int]:
    """Generations with a journal, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _JOURNAL.match(p.name)))


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, fault: Any = None) -> None:
    """Writes `data` to `path` so that a crash leaves either the old file or the new one:
    temp file, fsync, rename, fsync of the folder. `fault(point)` is the crash-test hook."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        half = len(data) // 2
        f.write(data[:half])
        if fault:
            fault("snapshot-write")
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    if fault:
        fault("snapshot-rename")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def state_from_dump(hex_dump: str, meta: dict[str, Any]) -> bytes:
    """anvil_dumpState's answer (hex of gzipped JSON) as a file `--load-state` reads, with
    CityPass's own facts (generation, clock offset, mining mode) under META_KEY."""
    raw = bytes.fromhex(hex_dump[2:] if hex_dump.startswith("0x") else hex_dump)
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).rstrip()
    if not (text.startswith(b"{") and text.endswith(b"}")):
        raise ValueError("anvil_dumpState did not answer with a JSON object")
    # Spliced in rather than parsed and written again: a big state is tens of MB.
    return text[:-1] + b',"' + META_KEY.encode() + b'":' + json.dumps(meta, separators=(",", ":")).encode() + b"}"


def read_meta(path: Path) -> dict[str, Any]:
    """The CityPass facts of a snapshot file; ValueError if it is not a whole snapshot."""
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable snapshot ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(state, dict) or "accounts" not in state or "block" not in state:
        raise ValueError(f"{path} is not an Anvil state snapshot (no accounts/block)")
    return dict(state.get(META_KEY) or {})


class Journal:
    """An append-only file of JSON lines; `append` returns once the lines are on disk.

    Group commit: appends from many threads at once share one fsync. Each append writes its
    lines (one os.write, in order) and then waits for an fsync that began after its write;
    whoever finds none running does it for everyone written so far, and all it covered
    return when it ends. A lone writer pays one fsync per append; N writers at once about
    two in all."""

    def __init__(self, path: Path):
        self.path = path
        new = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._write_lock = threading.Lock()
        self._synced_cond = threading.Condition()
        self._syncing = False  # one fsync at a time; who comes meanwhile waits for it
        self._written = 0  # appends written (to the page cache)
        self._synced = 0  # appends known to be on disk
        self.entries = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        if new:
            fsync_dir(path.parent)

    def append(self, *entries: dict[str, Any]) -> None:
        if not entries:
            return
        data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)
        with self._write_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            self._written += 1
            mine = self._written
            self.entries += len(entries)
        with self._synced_cond:
            while self._synced < mine:
                if self._syncing:  # an fsync is under way: wait for it (it may cover this write)
                    self._synced_cond.wait()
                    continue
                self._syncing = True
                upto = self._written  # every append counted here is written: this fsync covers it
                self._synced_cond.release()
                try:
                    began = time.perf_counter()
                    os.fsync(self._fd)
                    spent = time.perf_counter() - began
                finally:
                    self._synced_cond.acquire()
                    self._syncing = False
                    self._synced_cond.notify_all()
                self.fsync_seconds += spent
                self.fsyncs += 1
                self._synced = max(self._synced, upto)

    def close(self) -> None:
        with self._write_lock, self._synced_cond:
            os.close(self._fd)


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of a journal; a torn last line (a crash mid-write, never fsynced, so never
    reported) is skipped."""
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return
            try:
                yield json.loads(line)
            except ValueError:
                return
