"""The dashboard's figures: one snapshot of the deployment, read from the event index's
running totals (citypass/index_aggregates.py) and computed by the report's own functions
(citypass.report), so the page and `citypass report` cannot disagree, and a load costs
O(budgets + providers + weeks), not O(history).

    state = DashboardState(service)
    snap = state.snapshot()          # cached until the index holds other events
    snap.public(now_block, now_time) # the JSON the page draws (cents, no per-holder data)

Where each figure comes from (the one place to adapt when the library changes):
- per budget and in total: `index.aggregates.summary()`, a `report.Summary` of the indexed
  events built from the totals -> BudgetLine fields. Every money field of BudgetLine is passed
  on, so a new one (v2: `corrected`) appears by itself;
- the checks: `report.reconcile`, the chain check (`Aggregates.verify_against_chain`: the
  report's counters per budget, every provider's balances and the balances changed since the
  last check) and the refund audit, with the lines `citypass report` prints; a check that fails
  comes first;
- providers: `report.ProviderLine`s summed per provider, with the contract's status and
  categories (`contract.providers`) and the gas left on each provider's address;
- spending over time: `Summary.weeks` (ISO weeks, per budget) summed per category;
- the exports: the report's files, written from every indexed event up to the snapshot's block
  (`report.summarize` of them: the files list every redemption).

Privacy: the snapshot holds aggregates only. A check's text from the library can name an
address (a balance that disagrees with the chain); any address there that is not a provider
or the contract is replaced by "a pass" before it leaves the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from citypass import budget_id
from citypass import contract as C
from citypass import report
from citypass.errors import CityPassError
from citypass.index_aggregates import SUMMARY_CONTEXT, IndexedSummary

ENDING_SOON_DAYS = 30  # a budget that ends within this many days gets a warning
REFUND_FLAG_SHARE = 10  # percent: refunds above this share of what a provider received are flagged
INLINE_CHECK = 5_000  # a first snapshot with more balances to check than this shows them checking in the background
DAY = 86_400

# BudgetLine fields that are not money: everything else of type int is cents.
_NOT_MONEY = {"budget", "category", "valid_from", "valid_until", "redemptions", "refunds", "residents_credited",
              "residents_who_spent"}
# Where issued credit can be now (the conservation equation); `corrected` only if the library has it (v2).
_WHERE = ("held_by_residents", "held_by_providers", "settled", "reclaimed", "corrected")
_ADDRESS = re.compile(r"(?<![0-9A-Za-z])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")  # not part of a longer hex (a batch id)


def money_fields() -> list[str]:
    """The BudgetLine fields in cents, in the library's order (v2 adds `corrected`)."""
    return [f.name for f in dataclasses.fields(report.BudgetLine)
            if f.name not in _NOT_MONEY and f.type in ("int", int)]


def where_parts() -> list[str]:
    have = set(money_fields())
    return [p for p in _WHERE if p in have]


@dataclass
class Check:
    group: str  # reconciliation | chain | refunds | index
    ok: bool
    text: str  # the library's own line (English), addresses of passes masked

    def json(self) -> dict[str, Any]:
        return {"group": self.group, "ok": self.ok, "text": self.text}


@dataclass
class Snapshot:
    """Everything the page shows except how current it is (that is added per request)."""

    key: str  # changes whenever the indexed events change
    block: int  # the index's tip when this was computed; the chain checks ran at this block
    time: int  # that block's timestamp
    summary: report.Summary | None  # None when the events could not be read into a summary
    local_checks: list[Check]  # reconcile and refund_findings: from the events alone
    providers: list[dict[str, Any]]
    events: int
    computed_ms: float
    chain: list[Check] = field(default_factory=list)  # verify_against_chain ...
    chain_lines: list[str] = field(default_factory=list)  # ... its lines for the written report ...
    chain_block: int = 0  # ... run at this block (an earlier one while the check of `block` runs)
    findings: list[str] = field(default_factory=list)  # refund_findings lines (also in the written report)

    @property
    def checks(self) -> list[Check]:
        """In the order of `citypass report`: reconciliation, chain, refunds."""
        recon = [c for c in self.local_checks if c.group != "refunds"]
        return recon + self.chain + [c for c in self.local_checks if c.group == "refunds"]

    @property
    def chain_pending(self) -> bool:
        """The chain check of this snapshot's own block is still running (the one shown is older)."""
        return self.summary is not None and self.chain_block != self.block

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def reconciles(self) -> bool:
        """The report can be written: it reconciles, and agreed with the chain at the last check
        (the export waits for the check of this snapshot's own block, see Dashboard.export)."""
        return self.summary is not None and all(c.ok for c in self.checks if c.group != "refunds")

    # ------------------------------------------------------------------ the page's JSON
    def public(self, now: int) -> dict[str, Any]:
        """The figures as JSON: cents (integers), budget ids as decimal strings, times in unix
        seconds. `now` is the chain time of the newest block (for days left)."""
        s = self.summary
        money = money_fields()
        out: dict[str, Any] = {
            "computed_block": self.block, "computed_time": self.time,
            "computed_ms": round(self.computed_ms, 1),  # the server's time for this snapshot
            "chain_checked_block": self.chain_block, "chain_check_pending": self.chain_pending,
            "ok": self.ok, "failed": sum(1 for c in self.checks if not c.ok),
            "checks": [c.json() for c in sorted(self.checks, key=lambda c: c.ok)],  # failures first, stable
            "events": self.events, "money_fields": money, "where_parts": where_parts(),
            "ending_soon_days": ENDING_SOON_DAYS, "refund_flag_percent": REFUND_FLAG_SHARE,
        }
        if s is None:
            out.update(totals=None, budgets=[], providers=[], weeks=[], categories=[])
            return out
        credited, spent = s.residents()
        totals = {f"{m}_cents": s.total(m) for m in money}
        totals.update(
            provider_received_cents=s.total("redeemed") - s.total("refunded"),
            redemptions=s.total("redemptions"), refunds=s.total("refunds"),
            residents_credited=credited, residents_who_spent=spent,
            take_up=round(spent / credited, 6) if credited else 0.0,
        )
        out["totals"] = totals
        out["budgets"] = [_budget_json(b, money, now) for b in s.budgets]
        out["providers"] = self.providers
        out["categories"] = [{"category": c["category"], "category_name": c["category_name"], "budgets": c["budgets"],
                              **{f"{m}_cents": c[m] for m in money if m in c}} for c in s.categories()]
        out["weeks"] = weeks_per_category(s)
        return out


def _budget_json(b: report.BudgetLine, money: list[str], now: int) -> dict[str, Any]:
    open_ = b.valid_from <= now <= b.valid_until
    ended = now > b.valid_until
    days_left = max(0, -(-(b.valid_until - now) // DAY)) if not ended else 0
    return {
        "budget": str(b.budget), "serial": budget_id.decode(b.budget).serial, "name": b.name,
        "category": b.category, "category_name": b.category_name,
        "valid_from": b.valid_from, "valid_until": b.valid_until,
        **{f"{m}_cents": getattr(b, m) for m in money},
        "provider_received_cents": b.provider_received,
        "redemptions": b.redemptions, "refunds": b.refunds,
        "residents_credited": b.residents_credited, "residents_who_spent": b.residents_who_spent,
        "take_up": round(b.take_up, 6),
        "open": open_, "ended": ended, "not_started": now < b.valid_from, "days_left": days_left,
        "ending_soon": open_ and days_left <= ENDING_SOON_DAYS,
        # After the end, what residents still hold can be reclaimed (`citypass reclaim`).
        "reclaimable_cents": b.held_by_residents if ended else 0,
        "reclaimable_after_end_cents": b.held_by_residents,
    }


def weeks_per_category(s: report.Summary) -> list[dict[str, Any]]:
    """Spending per ISO week and category (the library's week lines summed over budgets)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for w in s.weeks:
        row = rows.setdefault((w.week, w.category_name), {"week": w.week, "category_name": w.category_name,
                                                          "redemptions": 0, "redeemed_cents": 0, "refunded_cents": 0})
        row["redemptions"] += w.redemptions
        row["redeemed_cents"] += w.redeemed
        row["refunded_cents"] += w.refunded
    for row in rows.values():
        row["net_cents"] = row["redeemed_cents"] - row["refunded_cents"]
    return [rows[k] for k in sorted(rows)]


def providers_json(s: report.Summary, infos: list[C.ProviderInfo], gas: dict[str, int],
                   names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per provider: the library's ProviderLines summed over budgets, with the chain's
    status, categories and the gas (wei) its address holds."""
    rows: dict[str, dict[str, Any]] = {}
    cats = s.activity.categories

    def row(address: str) -> dict[str, Any]:
        if address not in rows:
            rows[address] = {"address": address, "name": names.get(address), "status": "none", "categories": [],
                             "category_names": [], "max_amount_cents": 0, "paused": False, "budgets": [],
                             "redemptions": 0, "refunds": 0, "redeemed_cents": 0, "refunded_cents": 0,
                             "co_payments_cents": 0, "settled_cents": 0, "unsettled_cents": 0,
                             "gas_wei": str(gas.get(address, 0))}
        return rows[address]

    for info in infos:
        r = row(info.address)
        r.update(status=info.status, categories=list(info.categories), max_amount_cents=info.max_amount,
                 paused=info.paused, category_names=[cats.get(c, f"category {c}") for c in info.categories])
    for p in s.providers:
        r = row(p.provider)
        r["budgets"].append(p.budget_name)
        r["redemptions"] += p.redemptions
        r["refunds"] += p.refunds
        r["redeemed_cents"] += p.redeemed
        r["refunded_cents"] += p.refunded
        r["co_payments_cents"] += p.co_payments
        r["settled_cents"] += p.settled
        r["unsettled_cents"] += p.unsettled
    for r in rows.values():
        r["received_cents"] = r["redeemed_cents"] - r["refunded_cents"]
        r["refund_percent"] = round(100 * r["refunded_cents"] / r["redeemed_cents"], 2) if r["redeemed_cents"] else 0.0
        # For the auditor: refunds above REFUND_FLAG_SHARE % of what was paid to the provider.
        r["refund_flag"] = r["refunded_cents"] * 100 > r["redeemed_cents"] * REFUND_FLAG_SHARE
    return sorted(rows.values(), key=lambda r: ((r["name"] or "").lower(), r["address"]))


def provider_infos(chain: Any, contract: Any, names: dict[str, str], block: int
                   ) -> tuple[list[C.ProviderInfo], dict[str, int]]:
    """contract.provider_info of every provider, and the gas (wei) each holds at `block`: the
    same reads, in two JSON-RPC batches instead of two round trips per provider."""
    from eth_utils import to_checksum_address

    from citypass.index_aggregates import contract_reads

    reads, to = contract_reads(contract), contract.address
    listed, paused = chain.rpc_batch([reads.call(to, block, "providers"), reads.call(to, block, "paused")])
    addresses = [to_checksum_address(a) for a in reads.decode("providers", listed)[0]]
    is_paused = bool(reads.decode("paused", paused)[0])
    replies = chain.rpc_batch([reads.call(to, block, "providerOf", a) for a in addresses]
                              + [("eth_getBalance", [a, hex(block)]) for a in addresses])
    infos = []
    for a, reply in zip(addresses, replies):
        record = reads.decode("providerOf", reply)
        if len(record) == 1 and isinstance(record[0], tuple):  # a struct comes back as one tuple
            record = record[0]
        if len(record) == 3:  # v2: (status, categories, maxAmount); the pause is one global flag
            status, cats, max_amount = record
            provider_paused = is_paused
        else:  # v1 mirrored the pause into every provider record
            status, provider_paused, cats, max_amount = record
        infos.append(C.ProviderInfo(a, C.PROVIDER_STATUS[status], tuple(c for c in range(64) if cats >> c & 1),
                                    max_amount, provider_paused, names.get(a, "")))
    gas = {a: int(w, 16) for a, w in zip(addresses, replies[len(addresses):])}
    return infos, gas


# ------------------------------------------------------------------ the checks
def _problems(exc: CityPassError) -> list[str]:
    """The library lists every gap after a first line: 'the report does not reconcile:\\n  a\\n  b'."""
    head, _, rest = str(exc).partition("\n")
    lines = [line.strip() for line in rest.split("\n") if line.strip()]
    return lines or [head]


def local_checks(summary: report.Summary, mask: Any) -> tuple[list[Check], list[str]]:
    """`report.reconcile` and `report.refund_findings` as ✓/✗ lines (from the events alone).
    Returns (checks, the refund findings' lines)."""
    checks: list[Check] = []
    indexed = isinstance(summary, IndexedSummary)
    try:
        lines = report.reconcile(summary, transaction_problems=summary.transaction_problems if indexed else None)
        checks += [Check("reconciliation", True, mask(line)) for line in lines]
    except report.ReconciliationError as exc:
        problems = _problems(exc)
        checks += [Check("reconciliation", False, mask(p)) for p in problems]
        # The equations of budgets no problem names still hold: list them as passed.
        named = {p.split(":", 1)[0] for p in problems}
        checks += [Check("reconciliation", True, mask(line)) for line in summary.reconciliation_lines()
                   if line.split(":", 1)[0] not in named and not line.startswith("All budgets:")]
    findings = summary.refund_lines if indexed else report.refund_findings(summary.activity)
    checks += [Check("refunds", not line.startswith("FINDING"), mask(line)) for line in findings]
    return checks, findings


def chain_checks(summary: report.Summary, contract: Any, block: int, mask: Any, aggregates: Any = None,
                 chain: Any = None) -> tuple[list[Check], list[str]]:
    """The chain check at `block` as ✓/✗ lines, and its lines for the report: from the running
    totals (`aggregates.verify_against_chain`) for an IndexedSummary, else
    `report.verify_against_chain`."""
    try:
        if isinstance(summary, IndexedSummary) and aggregates is not None:
            lines = aggregates.verify_against_chain(summary, contract, block, chain)
        else:
            lines = report.verify_against_chain(summary, contract, block=block)
        return [Check("chain", True, mask(line)) for line in lines], lines
    except report.ReconciliationError as exc:
        return [Check("chain", False, mask(p)) for p in _problems(exc)], []


def run_checks(summary: report.Summary, contract: Any, block: int, mask: Any, aggregates: Any = None
               ) -> tuple[list[Check], list[str]]:
    """Every check of `citypass report`, in its order; (checks, chain + findings lines)."""
    local, findings = local_checks(summary, mask)
    chain, lines = chain_checks(summary, contract, block, mask, aggregates)
    recon = [c for c in local if c.group != "refunds"]
    return recon + chain + [c for c in local if c.group == "refunds"], lines + findings


def masker(public: set[str]) -> Any:
    """Replaces every address that is not in `public` (providers, the contract) by 'a pass'."""
    lowered = {a.lower() for a in public}

    def mask(text: str) -> str:
        return _ADDRESS.sub(lambda m: m.group(0) if m.group(0).lower() in lowered else "a pass", text)

    return mask


# ------------------------------------------------------------------ the cache
class DashboardState:
    """The snapshot of one server, recomputed when the index holds other events than last time.
    One computation at a time; readers get the last complete snapshot.

    The chain check (`verify_against_chain`: every balance against `balanceOfBatch`) is the
    slow part. The first snapshot waits for it; later ones are served at once with the last
    chain check (and the block it ran at) while the check of the new block runs in a thread,
    which then replaces it (the version changes, so open pages fetch it)."""

    def __init__(self, service: Any):
        self.service = service
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._times: dict[int, int] = {}
        self._checker: threading.Thread | None = None
        self._mask: Any = masker(set())

    def events_key(self, sync: bool = True) -> tuple[int, str]:
        """(tip, key of the indexed events): the count, the last event's block and that block's
        stored hash, so new events, a rollback and a reorg each give another key. Syncs the
        index first (at most once a second, see Service.fresh_index) unless `sync` is False."""
        idx = self.service.fresh_index() if sync else self.service.index
        with idx._lock:  # the index's own lock around its connection: tip and events read together
            last = idx.db.execute("SELECT MAX(block) FROM events").fetchone()[0]
            count = idx.aggregates.summary_events()  # kept with the events (a COUNT(*) reads them all)
            tip = idx.tip or 0
            stored = idx.stored_hash(last) if last is not None else ""
        digest = hashlib.sha256(f"{idx.path}|{count}|{last}|{stored}".encode())
        return tip, digest.hexdigest()[:16]

    def block_time(self, number: int) -> int:
        if number not in self._times:
            if len(self._times) > 1_000:
                self._times.clear()
            self._times[number] = int(self.service.chain.w3.eth.get_block(number)["timestamp"])
        return self._times[number]

    def snapshot(self, *, checked: bool = False) -> tuple[Snapshot, int]:
        """(the snapshot for the index's current events, the index's tip). `checked`: wait
        until its chain check is the one of its own block (for the written report)."""
        tip, key = self.events_key()
        snap = self._snap
        if snap is None or snap.key != key:
            with self._lock:
                for _ in range(5):
                    tip, key = self.events_key(sync=False)
                    if self._snap is not None and self._snap.key == key:
                        break
                    fresh = self.compute(key, tip)
                    if fresh is not None:
                        self._snap = fresh
                        if fresh.chain_pending:
                            self._start_chain_check(fresh)
                        break
                else:
                    raise CityPassError("the event index kept changing while the dashboard read it; try again")
        if checked:
            checker = self._checker
            if checker is not None:
                checker.join(120)
        return self._snap, tip  # type: ignore[return-value]

    def _start_chain_check(self, snap: Snapshot) -> None:
        def run() -> None:
            try:
                assert snap.summary is not None
                chain, lines = chain_checks(snap.summary, self.service.dep.contract, snap.block, self._mask,
                                            self.service.index.aggregates, self.service.chain)
            except Exception as exc:  # noqa: BLE001 - shown as a failed check, never lost
                chain, lines = [Check("chain", False, f"the chain check could not run: {str(exc)[:300]}")], []
            with self._lock:
                if self._snap is not None and self._snap.key == snap.key:
                    self._snap = dataclasses.replace(self._snap, chain=chain, chain_lines=lines, chain_block=snap.block)

        self._checker = threading.Thread(target=run, name="dashboard-chain-check", daemon=True)
        self._checker.start()

    def compute(self, key: str, tip: int) -> Snapshot | None:
        """The snapshot of the events `key` names, at block `tip`; None if another sync changed
        the index meanwhile (then the caller reads again). The first one runs the chain check
        itself (unless it has many balances to check: then in the background); later ones carry
        the last chain check over (see the class docstring)."""
        started = time.perf_counter()
        s = self.service
        idx = s.index
        _, _, names = s.names()
        infos, gas = provider_infos(s.chain, s.dep.contract, names, tip)
        public = {p.address for p in infos} | {s.dep.address}
        mask = masker(public)
        with idx._lock:  # the totals and the context records of the same events
            if self.events_key(sync=False)[1] != key:
                return None
            summary = idx.aggregates.summary(idx.records(names=SUMMARY_CONTEXT), names)
        events = summary.events
        if summary.error is not None:  # the events do not make sense (UnexplainedTransfer): say so first
            check = Check("index", False, mask(summary.error))
            return Snapshot(key, tip, self.block_time(tip), None, [check], [], events,
                            (time.perf_counter() - started) * 1000, chain_block=tip)
        act = summary.activity
        public |= set(act.providers)
        self._mask = mask = masker(public)
        local, findings = local_checks(summary, mask)
        rows = providers_json(summary, infos, gas, {**getattr(act, "provider_names", {}), **names})
        previous = self._snap
        if previous is None or previous.summary is None:
            if summary.unchecked <= INLINE_CHECK:
                chain, lines = chain_checks(summary, s.dep.contract, tip, mask, idx.aggregates, s.chain)
                chain_block = tip
            else:  # e.g. a fresh index of a long history: every balance once, in the background
                chain, lines, chain_block = [], [], 0
        else:
            chain, lines, chain_block = previous.chain, previous.chain_lines, previous.chain_block
        return Snapshot(key, tip, self.block_time(tip), summary, local, rows, events,
                        (time.perf_counter() - started) * 1000, chain, lines, chain_block, findings)

    def full_summary(self, snap: Snapshot) -> report.Summary:
        """`report.summarize` of every indexed event up to the snapshot's block: what the
        written report (its list of redemptions, its charts over time) is made of."""
        from citypass import events as E

        _, _, names = self.service.names()
        records = [r for r in self.service.index.records() if r.block <= snap.block]
        return report.summarize(E.activity(records), names)


__all__ = ["Check", "DashboardState", "Snapshot", "chain_checks", "local_checks", "money_fields", "run_checks",
           "weeks_per_category", "where_parts"]
