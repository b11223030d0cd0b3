"""Journal and snapshot files of one work directory (see citypass/durable/__init__.py).

Nothing here talks to a node: the supervisor (citypass/durable/supervisor.py) does.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
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
    """An append-only file of JSON lines; `append` returns once the lines are on disk."""

    def __init__(self, path: Path):
        self.path = path
        new = not path.exists()
        self._f = open(path, "ab")
        self._lock = threading.Lock()
        self.entries = 0
        if new:
            fsync_dir(path.parent)

    def append(self, *entries: dict[str, Any]) -> None:
        if not entries:
            return
        data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)
        with self._lock:
            self._f.write(data)
            self._f.flush()
            os.fsync(self._f.fileno())
            self.entries += len(entries)

    def close(self) -> None:
        with self._lock:
            self._f.close()


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
