"""The event index: every CityPass event of one deployment in SQLite under the work directory,
kept up to date incrementally and safe against reorgs.

Reports, the dashboard and histories read it instead of re-scanning the chain per request.

    idx = EventIndex.open(deployment)     # <workdir>/index/<chain id>-<contract>.sqlite
    idx.sync()                            # reads new blocks; rolls back first if the chain reorged
    idx.records(party="0x...")            # decoded EventRecords (citypass.events), chain order
    idx.activity(party="0x...")           # citypass.events.Activity of those records

How it stays right:
- Logs are read with the fast decoder of citypass.events, in block ranges, from the block
  after the last one indexed (the *tip*) to the chain's head.
- The index stores the hash of its tip, of every chunk's last block and of every block that
  has CityPass logs. Before it reads on, it checks the tip's hash against the chain. On a
  mismatch (a reorg, or a dev chain rolled back) it looks for the highest stored block whose
  hash the chain still has: that block is a common ancestor. Everything above it is deleted
  and read again. If no stored block matches, the index starts again from scratch.
- A chunk is kept only if its last block's hash did not change while its logs were read (a
  block hash commits to all its ancestors) and the tip it extends is still on the chain: so a
  reorg in the middle of a read never leaves a mix of two forks.
- `rebuild()` deletes everything and reads the chain again; the file can also simply be deleted.
- `aggregates` (citypass/index_aggregates.py) keeps the report's running totals in the same
  file, written in the same transactions as the events (and recomputed on a rollback).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from citypass import events as E
from citypass.errors import CityPassError
from citypass.index_aggregates import Aggregates

SCHEMA_VERSION = 1
INDEX_DIR = "index"
DEFAULT_CHUNK = 2_000  # blocks per eth_getLogs call
ANCESTOR_BATCH = 64  # stored block hashes compared with the chain per request
MAX_RETRIES = 5  # a chunk read again after the chain moved under it
# Records every partial activity needs for its joins: who is a provider, which passes moved.
CONTEXT_EVENTS = ("ProviderRegistered", "ProviderNamed", "PassMigrated", "BudgetCreated", "BudgetCapChanged",
                  "CategoryDefined")


class EventIndexError(CityPassError):
    """The index cannot be read or brought up to date; the message says why."""


@dataclass(frozen=True)
class SyncResult:
    from_block: int  # first block read (tip + 1 before the sync, after any rollback)
    to_block: int  # the new tip
    events: int  # events added
    rolled_back_to: int | None  # the common ancestor, if a reorg was found
    rebuilt: bool = False  # no common ancestor: started again from scratch


def index_path(workdir: Path | str, chain_id: int, contract: str) -> Path:
    return Path(workdir) / INDEX_DIR / f"{chain_id}-{contract.lower()}.sqlite"


class EventIndex:
    """The index of one deployment (see the module docstring). Thread-safe: one lock around
    every use of the connection."""

    def __init__(self, dep: Any, path: Path | str, *, chunk: int = DEFAULT_CHUNK):
        self.dep = dep
        self.path = Path(path)
        self.chunk = max(1, int(chunk))
        self.decoder = E.EventDecoder(dep.contract.abi)
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._create()
            self.aggregates = Aggregates(self.db, self._lock)  # running totals (citypass/index_aggregates.py)
        except sqlite3.DatabaseError as exc:
            raise EventIndexError(f"the event index {self.path} cannot be opened ({exc}): delete it to rebuild") from exc
        self._check_meta()
        self._check_aggregates()

    @classmethod
    def open(cls, dep: Any, workdir: Path | str | None = None, **kw: Any) -> "EventIndex":
        workdir = Path(workdir) if workdir is not None else Path(dep.chain.workdir)
        return cls(dep, index_path(workdir, dep.chain.chain_id, dep.address), **kw)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ------------------------------------------------------------------ schema
    def _create(self) -> None:
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS events (
                block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL,
                tx_index INTEGER NOT NULL, timestamp INTEGER NOT NULL, name TEXT NOT NULL,
                args TEXT NOT NULL, PRIMARY KEY (block, log_index));
            CREATE INDEX IF NOT EXISTS events_tx ON events (tx_hash);
            CREATE INDEX IF NOT EXISTS events_name ON events (name, block);
            CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
            CREATE TABLE IF NOT EXISTS parties (
                address TEXT NOT NULL, block INTEGER NOT NULL, log_index INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS parties_address ON parties (address, block);
            CREATE INDEX IF NOT EXISTS parties_block ON parties (block);
            """
        )

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    def _check_meta(self) -> None:
        with self._lock:
            expected = {"schema": str(SCHEMA_VERSION), "chain_id": str(self.dep.chain.chain_id),
                        "contract": self.dep.address.lower()}
            stored = {k: self._meta(k) for k in expected}
            if all(v is None for v in stored.values()):
                self.db.execute("BEGIN")
                for k, v in expected.items():
                    self._set_meta(k, v)
                self._set_meta("start", self.start_block)
                self.db.execute("COMMIT")
            elif stored != expected:
                # Another schema or deployment: this file is only a cache, so start it again.
                self._reset()

    def _check_aggregates(self) -> None:
        """Totals written by another version (or none, or deleted): recompute them from the events."""
        with self._lock:
            if not self.aggregates.current:
                self.db.execute("BEGIN")
                try:
                    self.aggregates.recompute(self.records(), self.tip)
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise

    @property
    def start_block(self) -> int:
        return E.deployment_block(self.dep)

    # ------------------------------------------------------------------ state
    @property
    def tip(self) -> int | None:
        """The last block indexed, or None before the first sync."""
        with self._lock:
            value = self._meta("tip")
            return int(value) if value is not None else None

    def stored_hash(self, number: int) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
            return row[0] if row else None

    def count(self, name: str | None = None) -> int:
        with self._lock:
            if name is None:
                return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            return int(self.db.execute("SELECT COUNT(*) FROM events WHERE name = ?", (name,)).fetchone()[0])

    # ------------------------------------------------------------------ chain access
    def _rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return self.dep.chain.rpc_batch(calls)

    def _chain_hashes(self, numbers: Sequence[int]) -> dict[int, str | None]:
        """The chain's hash of each block number (None where it has no such block)."""
        out: dict[int, str | None] = {}
        for i in range(0, len(numbers), ANCESTOR_BATCH):
            part = list(numbers[i:i + ANCESTOR_BATCH])
            blocks = self._rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])
            for n, block in zip(part, blocks):
                out[n] = block["hash"].lower() if isinstance(block, dict) and block.get("hash") else None
        return out

    def _head(self) -> int:
        return int(self._rpc_batch([("eth_blockNumber", [])])[0], 16)

    # ------------------------------------------------------------------ sync
    def sync(self, to_block: int | None = None) -> SyncResult:
        """Brings the index up to `to_block` (default: the chain's head), rolling back first if
        the chain no longer has the indexed tip."""
        with self._lock:
            rolled_back: int | None = None
            rebuilt = False
            tip = self.tip
            if tip is not None:
                ancestor = self._common_ancestor(tip)
                if ancestor != tip:
                    if ancestor is None:
                        self._reset()
                        rebuilt = True
                        tip = None
                    else:
                        self._rollback(ancestor)
                        tip = ancestor
                    rolled_back = ancestor
            head = self._head() if to_block is None else int(to_block)
            first = self.start_block if tip is None else tip + 1
            added = 0
            lo = first
            retries = 0
            while lo <= head:
                hi = min(head, lo + self.chunk - 1)
                chunk = self._read_chunk(lo, hi, tip)
                if chunk is None:  # the chain moved under the read: check the tip again
                    retries += 1
                    if retries > MAX_RETRIES:
                        raise EventIndexError(f"the chain kept reorganising while blocks {lo}..{hi} were read; try again")
                    if tip is not None:
                        ancestor = self._common_ancestor(tip)
                        if ancestor != tip:
                            if ancestor is None:
                                self._reset()
                                rebuilt, tip = True, None
                            else:
                                self._rollback(ancestor)
                                tip = ancestor
                            rolled_back = ancestor
                            lo = self.start_block if tip is None else tip + 1
                    head = self._head() if to_block is None else min(int(to_block), self._head())
                    continue
                hashes, logs = chunk
                added += self._store(lo, hi, hashes, logs)
                tip = hi
                lo = hi + 1
            return SyncResult(first, tip if tip is not None else first - 1, added, rolled_back, rebuilt)

    def _common_ancestor(self, tip: int) -> int | None:
        """`tip` if the chain still has it, else the highest stored block the chain still has
        (None if there is none: start again)."""
        if self._chain_hashes([tip]).get(tip) == self.stored_hash(tip):
            return tip
        rows = self.db.execute("SELECT number, hash FROM blocks WHERE number < ? ORDER BY number DESC", (tip,))
        stored = rows.fetchall()
        for i in range(0, len(stored), ANCESTOR_BATCH):
            part = stored[i:i + ANCESTOR_BATCH]
            chain = self._chain_hashes([n for n, _ in part])
            for n, h in part:
                if chain.get(n) == h:
                    return n
        return None

    def _read_chunk(self, lo: int, hi: int, tip: int | None
                    ) -> tuple[dict[int, str], list[dict[str, Any]]] | None:
        """The logs of [lo, hi] and the block hashes to store, or None if the chain changed
        meanwhile: the hash of `hi` must be the same before and after the logs were read (a
        block hash commits to all its ancestors, so nothing at or below `hi` changed), the
        tip it extends must still be on the chain, and every log must name its block by the
        hash the chain had (the log blocks' hashes are stored as the logs give them)."""
        before = self._chain_hashes([hi]).get(hi)
        if before is None:
            return None  # the head went down (a rollback) since we asked for it
        logs: list[dict[str, Any]] = []
        for part in E.iter_log_chunks(self.dep.chain.w3, self.dep.address, lo, hi, self.chunk):
            logs.extend(part)
        now = self._chain_hashes([hi] if tip is None else [hi, tip])
        if now.get(hi) != before:
            return None
        if tip is not None and now.get(tip) != self.stored_hash(tip):
            return None
        hashes = {hi: before}
        for log in logs:
            number, block_hash = int(log["blockNumber"], 16), str(log.get("blockHash", "")).lower()
            if hashes.setdefault(number, block_hash) != block_hash or not block_hash:
                return None  # two hashes for one block: logs of two forks
        return hashes, logs

    def _store(self, lo: int, hi: int, hashes: dict[int, str], logs: list[dict[str, Any]]) -> int:
        missing = {int(log["blockNumber"], 16) for log in logs if not log.get("blockTimestamp")}
        times: dict[int, int] = {}
        if missing:
            numbers = sorted(missing)
            blocks = self._rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
            times = {n: int(b["timestamp"], 16) for n, b in zip(numbers, blocks)}
        records = []
        for log in logs:
            ts = log.get("blockTimestamp")
            record = self.decoder.decode(log, int(ts, 16) if ts else times[int(log["blockNumber"], 16)])
            if record is not None:
                records.append(record)
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", sorted(hashes.items()))
            self.db.executemany(
                "INSERT OR REPLACE INTO events (block, log_index, tx_hash, tx_index, timestamp, name, args) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.block, r.log_index, r.tx_hash.lower(), r.tx_index, r.timestamp, r.name,
                  json.dumps(r.args, separators=(",", ":"))) for r in records])
            self.db.executemany(
                "INSERT INTO parties (address, block, log_index) VALUES (?, ?, ?)",
                [(a, r.block, r.log_index) for r in records for a in _addresses(r.args)])
            self.aggregates.apply(records, lo, hi)
            self._set_meta("tip", hi)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            self.aggregates.forget_context()
            raise
        return len(records)

    def _rollback(self, ancestor: int) -> None:
        """Deletes everything above block `ancestor` (kept)."""
        self.db.execute("BEGIN")
        for table, column in (("events", "block"), ("parties", "block"), ("blocks", "number")):
            self.db.execute(f"DELETE FROM {table} WHERE {column} > ?", (ancestor,))  # noqa: S608 - fixed names
        self._set_meta("tip", ancestor)
        self.aggregates.recompute(self.records(), ancestor)
        self.db.execute("COMMIT")

    def _reset(self) -> None:
        self.db.execute("BEGIN")
        for table in ("events", "parties", "blocks", "meta"):
            self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        self._set_meta("schema", SCHEMA_VERSION)
        self._set_meta("chain_id", self.dep.chain.chain_id)
        self._set_meta("contract", self.dep.address.lower())
        self._set_meta("start", self.start_block)
        self.aggregates.clear()
        self.db.execute("COMMIT")

    def rebuild(self) -> SyncResult:
        """Forgets everything and reads the chain again from the deployment block."""
        with self._lock:
            self._reset()
            result = self.sync()
            return SyncResult(result.from_block, result.to_block, result.events, None, True)

    # ------------------------------------------------------------------ queries
    def records(self, *, party: str | None = None, names: Iterable[str] | None = None,
                since: int | None = None, until: int | None = None, whole_transactions: bool = True
                ) -> list[E.EventRecord]:
        """Indexed events in chain order. `party`: only transactions with an event naming this
        address (with every event of those transactions, so joins work, when
        `whole_transactions`); `names`: only these events; `since`/`until`: block time,
        `since` inclusive, `until` exclusive."""
        where, params = [], []  # type: ignore[var-annotated]
        if party is not None:
            sub = "SELECT e.tx_hash FROM parties p JOIN events e ON e.block = p.block AND e.log_index = p.log_index " \
                  "WHERE p.address = ?"
            if whole_transactions:
                where.append(f"tx_hash IN ({sub})")
            else:
                where.append("(block, log_index) IN (SELECT block, log_index FROM parties WHERE address = ?)")
            params.append(party.lower())
        if names is not None:
            wanted = list(names)
            where.append(f"name IN ({','.join('?' * len(wanted))})" if wanted else "0")
            params.extend(wanted)
        if since is not None:
            where.append("timestamp >= ?")
            params.append(int(since))
        if until is not None:
            where.append("timestamp < ?")
            params.append(int(until))
        sql = "SELECT block, timestamp, tx_hash, tx_index, log_index, name, args FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY block, log_index"
        with self._lock:
            rows = self.db.execute(sql, params).fetchall()
        return [E.EventRecord(block=b, timestamp=t, tx_hash=h, tx_index=ti, log_index=li, name=n, args=json.loads(a))
                for b, t, h, ti, li, n, a in rows]

    def activity(self, *, party: str | None = None, since: int | None = None, until: int | None = None) -> E.Activity:
        """citypass.events.activity of the records of `party` (and time range), with the
        context records (providers, migrations, budgets, categories) its joins need."""
        records = self.records(party=party, since=since, until=until)
        if party is not None or since is not None or until is not None:
            seen = {(r.block, r.log_index) for r in records}
            records += [r for r in self.records(names=CONTEXT_EVENTS) if (r.block, r.log_index) not in seen]
        return E.activity(records)


def _addresses(args: dict[str, Any]) -> set[str]:
    """Every address an event names (lower case), for the per-party lookup."""
    out = set()
    for value in args.values():
        if isinstance(value, str) and len(value) == 42 and value.startswith("0x") and value != E.ZERO_ADDRESS:
            try:
                int(value, 16)
            except ValueError:
                continue
            out.add(value.lower())
    return out


__all__ = ["EventIndex", "EventIndexError", "SyncResult", "index_path"]
