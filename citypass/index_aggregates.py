"""Running totals of the event index: the report's figures kept up to date as blocks come in.

The dashboard must answer in milliseconds at 50,000 residents and 100,000 redemptions, and a
new block must cost time in proportion to that block, not to the history. So the event index
(`citypass.index`) calls this module from its own hooks, inside the same SQLite transaction
that stores (or rolls back) the event rows, and the tables below always describe exactly the
events the index holds:

- `agg_budget`: per budget, every total of `report.BudgetLine` (issued, spent, refunded,
  settled, reclaimed, corrected, co-payments, counts, residents credited / who spent) and
  what all addresses hold together;
- `agg_provider`, `agg_week`: the report's ProviderLine and WeekLine totals;
- `agg_balance`: every (budget, address) balance replayed from the events, with the block
  that last changed it and the block at which the chain last agreed with it;
- `agg_resident`: which passes (by their first address: migrations followed back) were
  credited / spent per budget and in any budget;
- `agg_paid`, `agg_finding`, `agg_problem`: what the refund audit and the per-transaction
  checks (BatchIssued and Reclaimed totals) need, and what they found.

A chunk of new events is classified by `citypass.events.activity` itself (with the context
records that classification needs: provider registrations and pass migrations), and each
move is counted as `citypass.report.summarize` counts it; `summary()` then builds a
`report.Summary` from the tables, so the dashboard's figures and checks come out of the
report's own code and equal `citypass report` for the same events (the tests compare them
with a from-scratch summary after random event sequences and rollbacks).

On a rollback (a reorg) the totals are recomputed from the events that remain, in the same
transaction: rare, and correct by construction. The chain check (`verify_against_chain`)
reads O(budgets + providers) values plus the balances changed since the last check, instead
of every balance.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from citypass import events as E
from citypass import report
from citypass.errors import CityPassError

VERSION = "2"  # 2: the count of balances kept (a COUNT(*) of agg_balance reads every row)
# Records that the classification of a later chunk's moves depends on.
CLASSIFY_CONTEXT = ("ProviderRegistered", "PassMigrated")
# Records the summary needs besides the totals: budgets' terms, names, providers, migrations.
SUMMARY_CONTEXT = ("ProviderRegistered", "ProviderNamed", "PassMigrated", "BudgetCreated", "BudgetCapChanged",
                   "CategoryDefined")
ANY = ""  # agg_resident's budget for "in any budget"
BATCH, RECLAIM = 0, 1  # agg_problem kinds, in the report's order

_BUDGET_COLUMNS = ("issued", "redeemed", "refunded", "settled", "reclaimed", "corrected", "co_payments",
                   "redemptions", "refunds", "held", "credited", "spent")
_PROVIDER_COLUMNS = ("redemptions", "redeemed", "refunds", "refunded", "co_payments", "settled")
_WEEK_COLUMNS = ("redemptions", "redeemed", "refunded", "co_payments")


@dataclass
class IndexedSummary(report.Summary):
    """A report.Summary built from the running totals. `balances` holds only the balances
    below zero (all `reconcile` looks at); the rest of the summary is the report's."""

    resident_counts: tuple[int, int] = (0, 0)
    transaction_problems: list[str] = field(default_factory=list)
    refund_lines: list[str] = field(default_factory=list)
    balance_count: int = 0  # (budget, address) pairs the events ever touched
    unchecked: int = 0  # of them, changed since the chain last agreed with them
    block: int = 0  # the index's tip these totals describe
    events: int = 0
    error: str | None = None  # the events could not be classified (shown as a failed check)

    def residents(self) -> tuple[int, int]:
        return self.resident_counts


class AggregateError(CityPassError):
    """The running totals cannot describe the indexed events (an unexplained transfer)."""


class Aggregates:
    """The running totals in the index's SQLite connection `db`. Every method that writes is
    called by the index inside its own transaction (apply, clear, recompute) or takes the
    index's lock and opens one (mark_verified)."""

    def __init__(self, db: sqlite3.Connection, lock: Any):
        self.db = db
        self.lock = lock
        self._context: list[E.EventRecord] | None = None  # CLASSIFY_CONTEXT records, chain order
        self._create()

    # ------------------------------------------------------------------ schema
    def _create(self) -> None:
        self.db.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS agg_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS agg_budget (budget TEXT PRIMARY KEY,
                {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _BUDGET_COLUMNS)});
            CREATE TABLE IF NOT EXISTS agg_provider (provider TEXT NOT NULL, budget TEXT NOT NULL,
                {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _PROVIDER_COLUMNS)},
                PRIMARY KEY (provider, budget));
            CREATE TABLE IF NOT EXISTS agg_week (week TEXT NOT NULL, budget TEXT NOT NULL,
                {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _WEEK_COLUMNS)},
                PRIMARY KEY (week, budget));
            CREATE TABLE IF NOT EXISTS agg_balance (budget TEXT NOT NULL, address TEXT NOT NULL,
                amount INTEGER NOT NULL, first INTEGER NOT NULL, changed INTEGER NOT NULL,
                verified INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (budget, address));
            CREATE INDEX IF NOT EXISTS agg_balance_negative ON agg_balance (amount) WHERE amount < 0;
            CREATE INDEX IF NOT EXISTS agg_balance_first ON agg_balance (first);
            CREATE INDEX IF NOT EXISTS agg_balance_unchecked ON agg_balance (changed) WHERE changed > verified;
            CREATE TABLE IF NOT EXISTS agg_resident (origin TEXT NOT NULL, budget TEXT NOT NULL,
                credited INTEGER NOT NULL DEFAULT 0, spent INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (origin, budget));
            CREATE TABLE IF NOT EXISTS agg_paid (holder TEXT NOT NULL, provider TEXT NOT NULL, budget TEXT NOT NULL,
                nonce TEXT NOT NULL, amount INTEGER NOT NULL, refundable INTEGER NOT NULL,
                refunded INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (holder, provider, budget, nonce));
            CREATE TABLE IF NOT EXISTS agg_finding (seq INTEGER PRIMARY KEY AUTOINCREMENT, block INTEGER NOT NULL,
                text TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS agg_problem (seq INTEGER PRIMARY KEY AUTOINCREMENT, block INTEGER NOT NULL,
                kind INTEGER NOT NULL, text TEXT NOT NULL);
            """
        )

    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM agg_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _int(self, key: str) -> int:
        return int(self._meta(key, "0") or 0)

    def _set(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO agg_meta (key, value) VALUES (?, ?)", (key, str(value)))

    def summary_events(self) -> int:
        """How many events the totals describe (every indexed event)."""
        return self._int("events")

    @property
    def current(self) -> bool:
        """The tables were written by this version (else the index recomputes them)."""
        return self._meta("version") == VERSION

    # ------------------------------------------------------------------ the index's hooks
    def clear(self) -> None:
        """Forgets every total (inside the caller's transaction)."""
        for table in ("agg_meta", "agg_budget", "agg_provider", "agg_week", "agg_balance", "agg_resident",
                      "agg_paid", "agg_finding", "agg_problem"):
            self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        self._set("version", VERSION)
        self._context = None

    def recompute(self, records: Sequence[E.EventRecord], tip: int | None) -> None:
        """The totals of exactly `records` (every event the index holds), from scratch."""
        self.clear()
        ordered = sorted(records, key=lambda r: r.position)
        # in slices of whole blocks, so no slice is much larger than a sync's chunk
        start = 0
        while start < len(ordered):
            end = min(len(ordered), start + 20_000)
            while end < len(ordered) and ordered[end].block == ordered[end - 1].block:
                end += 1
            part = ordered[start:end]
            self.apply(part, part[0].block, part[-1].block)
            start = end
        if tip is not None:
            self._set("tip", tip)

    def apply(self, records: Sequence[E.EventRecord], lo: int, hi: int) -> None:
        """Adds the events of blocks lo..hi (whole transactions, chain order) to the totals."""
        done = self._meta("tip")
        if done is not None and int(done) >= lo:  # another connection stored these blocks already
            records = [r for r in records if r.block > int(done)]
        self._set("tip", max(hi, int(done)) if done is not None else hi)
        if not records:
            return
        self._set("events", self._int("events") + len(records))
        if self._meta("error") is not None:
            return  # the totals stopped at an unexplained move; a rebuild recomputes them
        context = self._classify_context(records[0].position)
        try:
            act = E.activity([*context, *records])
        except CityPassError as exc:
            self._set("error", f"the indexed events cannot be read into a report: {exc}")
            return
        self._context.extend(r for r in records if r.name in CLASSIFY_CONTEXT)  # type: ignore[union-attr]
        _Chunk(self, act, records, hi).apply()

    def _classify_context(self, before: tuple[int, int]) -> list[E.EventRecord]:
        """The CLASSIFY_CONTEXT records before `before` (the first of a chunk: a block's start).
        Loaded once from the events table (blocks before the chunk's), then extended by apply."""
        if self._context is None:
            rows = self.db.execute(
                f"SELECT block, timestamp, tx_hash, tx_index, log_index, name, args FROM events WHERE name IN "
                f"({','.join('?' * len(CLASSIFY_CONTEXT))}) AND block < ? ORDER BY block, log_index",
                (*CLASSIFY_CONTEXT, before[0])).fetchall()
            self._context = [_record(row) for row in rows]
        return [r for r in self._context if r.position < before]

    def forget_context(self) -> None:
        self._context = None

    # ------------------------------------------------------------------ reading
    def summary(self, context: Sequence[E.EventRecord], provider_names: dict[str, str] | None = None
                ) -> IndexedSummary:
        """The report's Summary of the indexed events, from the totals. `context`: the
        SUMMARY_CONTEXT records (budgets' terms, names, providers, migrations). Call under
        the index's lock, so the totals and the context describe the same events."""
        act = E.activity(context)
        known = {**act.provider_names, **(provider_names or {})}
        names = {p: known.get(p) or report._short(p) for p in act.providers}
        lines = report.budget_lines(act)
        for row in self.db.execute(f"SELECT budget, {', '.join(_BUDGET_COLUMNS)} FROM agg_budget"):
            budget = int(row[0])
            if budget not in lines:
                lines[budget] = report.unknown_budget_line(act, budget)
            b = lines[budget]
            values = dict(zip(_BUDGET_COLUMNS, row[1:]))
            for name in ("issued", "redeemed", "refunded", "settled", "reclaimed", "corrected", "co_payments",
                         "redemptions", "refunds"):
                setattr(b, name, values[name])
            b.residents_credited, b.residents_who_spent = values["credited"], values["spent"]
            b.held_by_residents = values["held"]  # less what the providers hold, below
        provs: dict[tuple[str, int], report.ProviderLine] = {}

        def pline(provider: str, budget: int) -> report.ProviderLine:
            if (provider, budget) not in provs:
                provs[(provider, budget)] = report.ProviderLine(provider, names.get(provider, report._short(provider)),
                                                                budget, lines[budget].name)
            return provs[(provider, budget)]

        for row in self.db.execute(f"SELECT provider, budget, {', '.join(_PROVIDER_COLUMNS)} FROM agg_provider "
                                   "ORDER BY rowid"):
            p = pline(row[0], int(row[1]))
            for name, value in zip(_PROVIDER_COLUMNS, row[2:]):
                setattr(p, name, value)
        # What the providers hold (the final provider list, as summarize decides it).
        keys = [(str(budget), provider) for budget in lines for provider in act.providers]
        for budget_text, provider in keys:
            got = self.db.execute("SELECT amount FROM agg_balance WHERE budget = ? AND address = ?",
                                  (budget_text, provider)).fetchone()
            if got is None:
                continue
            budget, amount = int(budget_text), got[0]
            lines[budget].held_by_providers += amount
            lines[budget].held_by_residents -= amount
            if amount:
                pline(provider, budget).unsettled += amount
        weeks = []
        for row in self.db.execute(f"SELECT week, budget, {', '.join(_WEEK_COLUMNS)} FROM agg_week"):
            b = lines[int(row[1])]
            w = report.WeekLine(row[0], b.budget, b.name, b.category_name)
            for name, value in zip(_WEEK_COLUMNS, row[2:]):
                setattr(w, name, value)
            weeks.append(w)
        negative = {(int(b), a): amount for b, a, amount in self.db.execute(
            "SELECT budget, address, amount FROM agg_balance WHERE amount < 0 ORDER BY rowid")}
        problems = [t for (t,) in self.db.execute("SELECT text FROM agg_problem ORDER BY kind, seq")]
        findings = [t for (t,) in self.db.execute("SELECT text FROM agg_finding ORDER BY seq")]
        balance_count = self._int("balances")
        unchecked = int(self.db.execute("SELECT COUNT(*) FROM agg_balance WHERE changed > verified").fetchone()[0])
        return IndexedSummary(
            budgets=sorted(lines.values(), key=lambda b: b.budget >> 128),
            providers=sorted(provs.values(), key=lambda p: (p.name, p.budget >> 128)),
            weeks=sorted(weeks, key=lambda w: (w.week, w.budget >> 128)),
            activity=act, provider_names=names, balances=negative,
            resident_counts=(self._int("credited"), self._int("spent")),
            transaction_problems=problems,
            refund_lines=report.refund_lines(findings, self._int("refunds"), self._int("marked")),
            balance_count=balance_count, unchecked=unchecked, block=self._int("tip"), events=self._int("events"),
            error=self._meta("error"),
        )

    def reconcile(self, summary: IndexedSummary) -> list[str]:
        """`report.reconcile` of the totals (raises ReconciliationError like it)."""
        return report.reconcile(summary, transaction_problems=summary.transaction_problems)

    def verify_against_chain(self, summary: IndexedSummary, contract: Any, block: int, chain: Any = None
                             ) -> list[str]:
        """`report.verify_against_chain` from the totals, at `block` (at most the tip the
        summary describes): the counters of each budget (`budgetTotals`), the balance of
        every provider in every budget, and every balance the events changed since the chain
        last agreed with it. Balances that agree are remembered as checked at `block`, so
        the next check reads only what changed: O(budgets x providers + new changes).
        With `chain` (citypass.chain.Chain) every read goes out in one JSON-RPC batch."""
        with self.lock:
            rows = self.db.execute("SELECT budget, address, amount FROM agg_balance WHERE changed > verified "
                                   "AND changed <= ?", (block,)).fetchall()
            providers = list(summary.activity.providers)
            for b in summary.budgets:
                for p in providers:
                    got = self.db.execute("SELECT budget, address, amount FROM agg_balance WHERE budget = ? AND "
                                          "address = ? AND changed <= ?", (str(b.budget), p, block)).fetchone()
                    if got is not None:
                        rows.append(got)
            later = self.db.execute("SELECT COUNT(*) FROM agg_balance WHERE first > ?", (block,)).fetchone()[0]
            count = self._int("balances") - int(later)  # the pairs the events had touched by `block`
        balances = {(int(b), a): amount for b, a, amount in rows}
        if chain is not None:
            contract = BatchedReads.prefetch(chain, contract, block, [b.budget for b in summary.budgets],
                                             sorted(balances))
        problems, lines = report.verify_counters(summary.budgets, contract, block)
        agreed: list[tuple[int, str]] = []
        problems += report.verify_balances(balances, contract, block, on_agree=agreed.extend)
        self.mark_verified(agreed, block)
        if problems:
            raise report.ReconciliationError("the events disagree with the chain:\n  " + "\n  ".join(problems))
        lines.append(report.balances_line(count))
        return lines

    def mark_verified(self, keys: Iterable[tuple[int, str]], block: int) -> None:
        """The chain agreed with these balances at `block` (kept only if none changed since)."""
        keys = list(keys)
        if not keys:
            return
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.executemany("UPDATE agg_balance SET verified = ? WHERE budget = ? AND address = ? "
                                    "AND changed <= ? AND verified < ?",
                                    [(block, str(b), a, block, block) for b, a in keys])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise


class ContractReads:
    """eth_call data and reply decoding of a contract's view functions, from its ABI (web3's
    ContractFunction costs ~10 ms a call to build on a busy machine; this is a dict lookup)."""

    def __init__(self, abi: Sequence[dict[str, Any]]):
        from eth_utils import function_abi_to_4byte_selector

        self._fns: dict[str, tuple[bytes, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") == "function" and item["name"] not in self._fns:
                self._fns[item["name"]] = (bytes(function_abi_to_4byte_selector(item)),
                                           [_abi_type(i) for i in item["inputs"]],
                                           [_abi_type(o) for o in item["outputs"]])

    def call(self, to: str, block: int, name: str, *args: Any) -> tuple[str, list[Any]]:
        """The eth_call JSON-RPC request (method, params) of `name(*args)` at `block`."""
        from eth_abi import encode

        selector, inputs, _ = self._fns[name]
        return "eth_call", [{"to": to, "data": "0x" + (selector + encode(inputs, list(args))).hex()}, hex(block)]

    def decode(self, name: str, reply: str) -> tuple[Any, ...]:
        from eth_abi import decode

        return tuple(decode(self._fns[name][2], bytes.fromhex(reply[2:])))


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


_READS: dict[str, ContractReads] = {}


def contract_reads(contract: Any) -> ContractReads:
    """The ContractReads of a web3 contract (one per address)."""
    if contract.address not in _READS:
        _READS[contract.address] = ContractReads(contract.abi)
    return _READS[contract.address]


class BatchedReads:
    """The few contract reads of the chain check (`budgetTotals`, `balanceOfBatch`) fetched in
    one JSON-RPC batch and served to report.verify_counters / verify_balances as a contract
    would (`contract.functions.X(args).call(block_identifier=...)`), so the report's own check
    code runs without one HTTP round trip per read."""

    STEP = 500  # balanceOfBatch arguments per call, as report.verify_balances asks them

    def __init__(self, totals: dict[int, tuple[int, ...]], balances: dict[tuple[int, str], int]):
        self._totals, self._balances = totals, balances
        self.functions = self

    @classmethod
    def prefetch(cls, chain: Any, contract: Any, block: int, budgets: Sequence[int],
                 keys: Sequence[tuple[int, str]]) -> "BatchedReads":
        reads = contract_reads(contract)
        parts = [list(keys[i:i + cls.STEP]) for i in range(0, len(keys), cls.STEP)]
        calls = [reads.call(contract.address, block, "budgetTotals", b) for b in budgets]
        calls += [reads.call(contract.address, block, "balanceOfBatch", [a for _, a in part], [b for b, _ in part])
                  for part in parts]
        replies = chain.rpc_batch(calls)
        totals = {b: reads.decode("budgetTotals", r) for b, r in zip(budgets, replies)}
        balances: dict[tuple[int, str], int] = {}
        for part, reply in zip(parts, replies[len(budgets):]):
            balances.update(zip(part, reads.decode("balanceOfBatch", reply)[0]))
        return cls(totals, balances)

    def budgetTotals(self, budget: int) -> Any:  # noqa: N802 - the contract's name
        return _Call(self._totals[budget])

    def balanceOfBatch(self, accounts: Sequence[str], ids: Sequence[int]) -> Any:  # noqa: N802
        return _Call([self._balances[(i, a)] for a, i in zip(accounts, ids)])


@dataclass(frozen=True)
class _Call:
    value: Any

    def call(self, block_identifier: Any = "latest") -> Any:
        return self.value


class _Chunk:
    """One chunk's moves counted into the tables (see Aggregates.apply)."""

    def __init__(self, agg: Aggregates, act: E.Activity, records: Sequence[E.EventRecord], hi: int):
        self.agg, self.db, self.act, self.records, self.hi = agg, agg.db, act, records, hi

    def apply(self) -> None:
        act, db = self.act, self.db
        budgets: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_BUDGET_COLUMNS, 0))
        provs: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_PROVIDER_COLUMNS, 0))
        weeks: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_WEEK_COLUMNS, 0))
        balances: dict[tuple[str, str], list[int]] = {}  # key -> [delta, last block]
        credited: list[tuple[str, str]] = []  # (holder, budget)
        spent: list[tuple[str, str]] = []
        paid: dict[tuple[str, str, int, int], list[Any]] = {}  # this chunk's redemptions: [amount, refundable, refunded]
        refund_moves: list[E.Refund] = []

        def move(budget: int, address: str, delta: int, block: int) -> None:
            entry = balances.setdefault((str(budget), address), [0, block])
            entry[0] += delta
            entry[1] = block
            budgets[str(budget)]["held"] += delta

        moves = act.moves()
        for m in moves:
            key = str(m.budget)
            b = budgets[key]  # every move makes its budget's line, as summarize does
            if isinstance(m, E.Issuance):
                b["issued"] += m.amount
                move(m.budget, m.holder, m.amount, m.block)
                credited.append((m.holder, key))
            elif isinstance(m, E.Redemption):
                b["redeemed"] += m.amount
                b["co_payments"] += m.co_payment
                b["redemptions"] += 1
                spent.append((m.holder, key))
                p = provs[(m.provider, key)]
                p["redemptions"] += 1
                p["redeemed"] += m.amount
                p["co_payments"] += m.co_payment
                w = weeks[(report.iso_week(m.timestamp), key)]
                w["redemptions"] += 1
                w["redeemed"] += m.amount
                w["co_payments"] += m.co_payment
                move(m.budget, m.holder, -m.amount, m.block)
                move(m.budget, m.provider, m.amount, m.block)
                if m.nonce is not None:
                    paid[(m.holder, m.provider, m.budget, m.nonce)] = [m.amount, m.refundable, 0]
                if m.refundable:
                    self._add_meta("marked", 1)
            elif isinstance(m, E.Refund):
                b["refunded"] += m.amount
                b["refunds"] += 1
                p = provs[(m.provider, key)]
                p["refunds"] += 1
                p["refunded"] += m.amount
                weeks[(report.iso_week(m.timestamp), key)]["refunded"] += m.amount
                move(m.budget, m.provider, -m.amount, m.block)
                move(m.budget, m.holder, m.amount, m.block)
                refund_moves.append(m)
                self._refund(m, paid)
            elif isinstance(m, E.Settlement):
                b["settled"] += m.amount
                provs[(m.provider, key)]["settled"] += m.amount
                move(m.budget, m.provider, -m.amount, m.block)
            elif isinstance(m, E.Reclamation):
                b["reclaimed"] += m.amount
                move(m.budget, m.holder, -m.amount, m.block)
            elif isinstance(m, E.Correction):
                b["corrected"] += m.amount
                move(m.budget, m.holder, -m.amount, m.block)
            elif isinstance(m, E.Migration):
                move(m.budget, m.old, -m.amount, m.block)
                move(m.budget, m.new, m.amount, m.block)
        if refund_moves:
            self._add_meta("refunds", len(refund_moves))

        self._upsert("agg_budget", ("budget",), _BUDGET_COLUMNS, [((k,), v) for k, v in budgets.items()])
        self._upsert("agg_provider", ("provider", "budget"), _PROVIDER_COLUMNS, list(provs.items()))
        self._upsert("agg_week", ("week", "budget"), _WEEK_COLUMNS, list(weeks.items()))
        db.executemany(
            "INSERT INTO agg_balance (budget, address, amount, first, changed) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (budget, address) DO UPDATE SET amount = amount + excluded.amount, changed = excluded.changed",
            [(b, a, delta, block, block) for (b, a), (delta, block) in balances.items()])
        if moves:  # pairs first touched in this chunk (its blocks are new: no earlier pair has them)
            new = db.execute("SELECT COUNT(*) FROM agg_balance WHERE first >= ?", (moves[0].block,)).fetchone()[0]
            self._add_meta("balances", int(new))
        db.executemany("INSERT OR REPLACE INTO agg_paid (holder, provider, budget, nonce, amount, refundable, refunded) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(h, p, str(b), str(n), v[0], int(v[1]), v[2]) for (h, p, b, n), v in paid.items()])
        first = moves[0].block if moves else self.hi
        db.executemany("INSERT INTO agg_problem (block, kind, text) VALUES (?, ?, ?)",
                       [(first, BATCH, t) for t in report.batch_problems(act)]
                       + [(first, RECLAIM, t) for t in report.reclaim_problems(act)])
        self._residents(credited, spent)

    # ---------------------------------------------------------------- pieces
    def _add_meta(self, key: str, n: int) -> None:
        self.agg._set(key, self.agg._int(key) + n)

    def _upsert(self, table: str, keys: Sequence[str], columns: Sequence[str],
                rows: list[tuple[tuple[str, ...], dict[str, int]]]) -> None:
        if not rows:
            return
        sql = (f"INSERT INTO {table} ({', '.join((*keys, *columns))}) VALUES ({', '.join('?' * (len(keys) + len(columns)))}) "
               f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
               + ", ".join(f"{c} = {c} + excluded.{c}" for c in columns))
        self.db.executemany(sql, [(*k, *(v[c] for c in columns)) for k, v in rows])

    def _refund(self, f: E.Refund, paid: dict[tuple[str, str, int, int], list[Any]]) -> None:
        """report.refund_problems for one refund, against this chunk's and the stored redemptions."""
        aliases = report.refund_aliases(self._migrations())(f.holder)
        db = self.db

        class Paid:
            def get(self, key: tuple[str, str, int, int]) -> Any:
                if key in paid:
                    v = paid[key]
                else:
                    row = db.execute("SELECT amount, refundable, refunded FROM agg_paid WHERE holder = ? AND "
                                     "provider = ? AND budget = ? AND nonce = ?",
                                     (key[0], key[1], str(key[2]), str(key[3]))).fetchone()
                    if row is None:
                        return None
                    v = paid[key] = [row[0], bool(row[1]), row[2]]
                return _Redeemed(v[0], bool(v[1]))

        class Refunded(dict):  # type: ignore[type-arg]
            def get(self, key: Any, default: int = 0) -> int:
                return paid[key][2]

            def __setitem__(self, key: Any, value: int) -> None:
                paid[key][2] = value

            def __getitem__(self, key: Any) -> int:
                return paid[key][2]

        findings = report.refund_problems(f, aliases, Paid(), Refunded())
        db.executemany("INSERT INTO agg_finding (block, text) VALUES (?, ?)", [(f.block, t) for t in findings])

    def _migrations(self) -> dict[str, str]:
        """old -> new address of every migration so far (this chunk's included)."""
        return dict(self.act.passes_migrated)

    def _residents(self, credited: list[tuple[str, str]], spent: list[tuple[str, str]]) -> None:
        """Marks passes (by their first address) credited / spent, per budget and in any budget,
        keeping the counts of credited passes and of credited passes that spent."""
        back = {new: old for old, new in self.act.passes_migrated.items()}

        def origin(address: str) -> str:
            seen = set()
            while address in back and address not in seen:
                seen.add(address)
                address = back[address]
            return address

        # A migration onto an address that already had its own history joins that history to
        # the pass it came from (summarize follows every migration back, whenever it happened).
        chunk_migrations = [(r.args["from"], r.args["to"]) for r in self.records if r.name == "PassMigrated"]
        for _, new in chunk_migrations:
            was, now = new, origin(new)
            if now != was:
                for budget, c, s in self.db.execute("SELECT budget, credited, spent FROM agg_resident WHERE origin = ?",
                                                    (was,)).fetchall():
                    self._mark(was, budget, 0, 0, remove=True)
                    self._mark(now, budget, c, s)
        for holder, budget in credited:
            o = origin(holder)
            self._mark(o, budget, 1, 0)
            self._mark(o, ANY, 1, 0)
        for holder, budget in spent:
            o = origin(holder)
            self._mark(o, budget, 0, 1)
            self._mark(o, ANY, 0, 1)

    def _mark(self, origin: str, budget: str, credited: int, spent: int, remove: bool = False) -> None:
        row = self.db.execute("SELECT credited, spent FROM agg_resident WHERE origin = ? AND budget = ?",
                              (origin, budget)).fetchone()
        old_c, old_s = (row[0], row[1]) if row else (0, 0)
        new_c, new_s = (0, 0) if remove else (old_c | credited, old_s | spent)
        if (new_c, new_s) == (old_c, old_s) and row is not None:
            return
        d_credited = new_c - old_c
        d_both = (new_c & new_s) - (old_c & old_s)
        if remove:
            self.db.execute("DELETE FROM agg_resident WHERE origin = ? AND budget = ?", (origin, budget))
        else:
            self.db.execute("INSERT OR REPLACE INTO agg_resident (origin, budget, credited, spent) VALUES (?, ?, ?, ?)",
                            (origin, budget, new_c, new_s))
        if d_credited or d_both:
            if budget == ANY:
                self._add_meta("credited", d_credited)
                self._add_meta("spent", d_both)
            else:
                self.db.execute("INSERT INTO agg_budget (budget, credited, spent) VALUES (?, ?, ?) ON CONFLICT (budget) "
                                "DO UPDATE SET credited = credited + excluded.credited, spent = spent + excluded.spent",
                                (budget, d_credited, d_both))


@dataclass(frozen=True)
class _Redeemed:
    amount: int
    refundable: bool


def _record(row: Sequence[Any]) -> E.EventRecord:
    b, t, h, ti, li, n, a = row
    return E.EventRecord(block=b, timestamp=t, tx_hash=h, tx_index=ti, log_index=li, name=n, args=json.loads(a))


__all__ = ["AggregateError", "Aggregates", "BatchedReads", "ContractReads", "IndexedSummary", "SUMMARY_CONTEXT",
           "contract_reads"]
