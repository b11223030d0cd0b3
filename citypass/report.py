"""The municipal report: what was issued, spent, refunded, settled, reclaimed and corrected, from events.

Everything here is computed from the chain's events (`citypass.events`), never from the
bookkeeping of whoever ran the operations, so an auditor can rebuild the same report.
`build_report` reads them from the deployment's event index (`citypass.index`, which it
brings up to date first) when given one, as `citypass report` does; `fetch_events` reads the
same records straight from the chain.

    idx = EventIndex.open(dep); idx.sync()
    summary = summarize(activity(idx.records()))     # or activity(fetch_events(dep))
    reconcile(summary)                       # raises ReconciliationError on any gap
    verify_against_chain(summary, dep.contract)
    write_report(summary, "report/")        # CSV tables, PNG charts, index.html

The reconciliation, per budget, to the cent:

    issued   = held by residents + held by providers + settled + reclaimed + corrected
    redeemed - refunded = received by providers = held by providers + settled

and the event totals must agree with the contract's own counters and balances. Provider
names come from the chain (`ProviderNamed`), payment reference texts from the chain's
`SettlementReference` (each checked against its hash, shown next to it).
"""

from __future__ import annotations

import csv
import html
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from citypass.errors import CityPassError
from citypass.money import euros, plain_euros
from citypass.events import (
    Activity, Correction, Issuance, Migration, Reclamation, Redemption, Refund, Settlement, balances,
)
from eth_utils import keccak


class ReconciliationError(CityPassError):
    """The totals do not add up; the message names the budget and the gap in cents."""


eur = plain_euros  # CSV files: 12345 -> '123.45'
eur_text = euros  # people: 1234567 -> '€12,345.67'


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def iso_week(timestamp: int) -> str:
    year, week, _ = datetime.fromtimestamp(timestamp, timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


# ---------------------------------------------------------------------------- the figures
@dataclass
class BudgetLine:
    """One budget's totals, in cents."""

    budget: int
    name: str
    category: int
    category_name: str
    valid_from: int
    valid_until: int
    cap: int = 0
    issued: int = 0
    redeemed: int = 0  # paid by residents to providers (vouchers and direct payments)
    refunded: int = 0  # returned by providers to residents
    settled: int = 0  # paid out in euros by the municipality (credit burned)
    reclaimed: int = 0  # left by residents after the end, burned
    corrected: int = 0  # taken back by the issuer: credit issued in error
    held_by_residents: int = 0
    held_by_providers: int = 0  # redeemed but not yet settled: the municipality owes it
    co_payments: int = 0  # what residents paid on top, as recorded in the vouchers
    redemptions: int = 0
    refunds: int = 0
    residents_credited: int = 0
    residents_who_spent: int = 0

    @property
    def provider_received(self) -> int:
        return self.redeemed - self.refunded

    @property
    def take_up(self) -> float:
        return self.residents_who_spent / self.residents_credited if self.residents_credited else 0.0


@dataclass
class ProviderLine:
    """One provider's activity in one budget, in cents."""

    provider: str
    name: str
    budget: int
    budget_name: str
    redemptions: int = 0
    redeemed: int = 0
    refunds: int = 0
    refunded: int = 0
    co_payments: int = 0
    settled: int = 0
    unsettled: int = 0  # balance the municipality still has to pay
    payment_references: list[str] = field(default_factory=list)


@dataclass
class WeekLine:
    """Spending of one budget in one ISO week, in cents."""

    week: str
    budget: int
    budget_name: str
    category_name: str
    redemptions: int = 0
    redeemed: int = 0
    refunded: int = 0
    co_payments: int = 0


@dataclass
class Summary:
    budgets: list[BudgetLine]
    providers: list[ProviderLine]
    weeks: list[WeekLine]
    activity: Activity
    provider_names: dict[str, str]
    balances: dict[tuple[int, str], int]

    def categories(self) -> list[dict[str, Any]]:
        """Budgets summed per category (one category may have several budgets/years)."""
        out: dict[int, dict[str, Any]] = {}
        for b in self.budgets:
            row = out.setdefault(b.category, {"category": b.category, "category_name": b.category_name, "budgets": 0,
                                              **{k: 0 for k in _MONEY_FIELDS}, "redemptions": 0})
            row["budgets"] += 1
            row["redemptions"] += b.redemptions
            for k in _MONEY_FIELDS:
                row[k] += getattr(b, k)
        return [out[c] for c in sorted(out)]

    def total(self, name: str) -> int:
        return sum(getattr(b, name) for b in self.budgets)

    def residents(self) -> tuple[int, int]:
        """(passes credited in any budget, passes that spent in any budget), by pass (a
        migrated pass counts once)."""
        credited = {self._pass(i.holder) for i in self.activity.issuances}
        spent = {self._pass(r.holder) for r in self.activity.redemptions}
        return len(credited), len(spent & credited)

    def _pass(self, address: str) -> str:
        return _origin(self.activity, address)

    def reconciliation_lines(self) -> list[str]:
        """The lines the demo prints and the report shows: two per budget, both checked by
        `reconcile` (see the module docstring)."""
        lines = []
        for b in self.budgets:
            lines.append(
                f"{b.name}: issued {eur_text(b.issued)} = spent {eur_text(b.redeemed)} - refunded {eur_text(b.refunded)}"
                f" + reclaimed {eur_text(b.reclaimed)} + corrected {eur_text(b.corrected)}"
                f" + still with residents {eur_text(b.held_by_residents)}"
            )
            lines.append(
                f"{b.name}: received by providers {eur_text(b.provider_received)} = settled {eur_text(b.settled)}"
                f" + not yet settled {eur_text(b.held_by_providers)}"
            )
        if len(self.budgets) > 1:
            t = self.total
            lines.append(
                f"All budgets: issued {eur_text(t('issued'))} = spent {eur_text(t('redeemed'))} - refunded "
                f"{eur_text(t('refunded'))} + reclaimed {eur_text(t('reclaimed'))} + corrected "
                f"{eur_text(t('corrected'))} + still with residents "
                f"{eur_text(t('held_by_residents'))}; providers were paid {eur_text(t('settled'))} and are owed "
                f"{eur_text(t('held_by_providers'))}"
            )
        return lines


_MONEY_FIELDS = ("cap", "issued", "redeemed", "refunded", "settled", "reclaimed", "corrected",
                 "held_by_residents", "held_by_providers", "co_payments")


def _origin(act: Activity, address: str) -> str:
    """The first address of a pass (follows lost-phone migrations backwards)."""
    back = {new: old for old, new in act.passes_migrated.items()}
    while address in back:
        address = back[address]
    return address


def summarize(act: Activity, provider_names: Mapping[str, str] | None = None,
              references: Mapping[str, str] | None = None) -> Summary:
    """Aggregates the activity per budget, per provider and per week.

    Provider names and payment reference texts come from the chain's own events
    (`ProviderNamed`, `SettlementReference`); `provider_names` (address -> name) and
    `references` (hash -> text) add to or override them (e.g. for a range of blocks that
    does not include the naming). A provider without a name shows as its short address;
    a reference as "TEXT (0xhash…)", or the hash alone if its text is unknown.
    """
    known = {**act.provider_names, **(provider_names or {})}
    names = {p: known.get(p) or _short(p) for p in act.providers}
    texts = {**act.references, **(references or {})}
    lines = budget_lines(act)

    def line(budget: int) -> BudgetLine:
        if budget not in lines:
            lines[budget] = unknown_budget_line(act, budget)
        return lines[budget]

    provs: dict[tuple[str, int], ProviderLine] = {}

    def pline(provider: str, budget: int) -> ProviderLine:
        key = (provider, budget)
        if key not in provs:
            provs[key] = ProviderLine(provider, names.get(provider, _short(provider)), budget, line(budget).name)
        return provs[key]

    weeks: dict[tuple[str, int], WeekLine] = {}

    def wline(ts: int, budget: int) -> WeekLine:
        key = (iso_week(ts), budget)
        if key not in weeks:
            b = line(budget)
            weeks[key] = WeekLine(key[0], budget, b.name, b.category_name)
        return weeks[key]

    credited: dict[int, set[str]] = defaultdict(set)
    spent: dict[int, set[str]] = defaultdict(set)
    for m in act.moves():
        b = line(m.budget)
        if isinstance(m, Issuance):
            b.issued += m.amount
            credited[m.budget].add(_origin(act, m.holder))
        elif isinstance(m, Redemption):
            b.redeemed += m.amount
            b.co_payments += m.co_payment
            b.redemptions += 1
            spent[m.budget].add(_origin(act, m.holder))
            p = pline(m.provider, m.budget)
            p.redemptions += 1
            p.redeemed += m.amount
            p.co_payments += m.co_payment
            w = wline(m.timestamp, m.budget)
            w.redemptions += 1
            w.redeemed += m.amount
            w.co_payments += m.co_payment
        elif isinstance(m, Refund):
            b.refunded += m.amount
            b.refunds += 1
            p = pline(m.provider, m.budget)
            p.refunds += 1
            p.refunded += m.amount
            wline(m.timestamp, m.budget).refunded += m.amount
        elif isinstance(m, Settlement):
            b.settled += m.amount
            p = pline(m.provider, m.budget)
            p.settled += m.amount
            p.payment_references.append(reference_label(m.payment_reference, texts))
        elif isinstance(m, Reclamation):
            b.reclaimed += m.amount
        elif isinstance(m, Correction):
            b.corrected += m.amount
        elif isinstance(m, Migration):
            pass  # moves credit between two addresses of the same pass: no total changes

    bal = balances(act)
    for (budget, address), amount in bal.items():
        b = line(budget)
        if address in act.providers:
            b.held_by_providers += amount
            if amount:
                pline(address, budget).unsettled += amount
        else:
            b.held_by_residents += amount
    for budget, b in lines.items():
        b.residents_credited = len(credited[budget])
        b.residents_who_spent = len(spent[budget] & credited[budget])

    return Summary(
        budgets=sorted(lines.values(), key=lambda b: b.budget >> 128),
        providers=sorted(provs.values(), key=lambda p: (p.name, p.budget >> 128)),
        weeks=sorted(weeks.values(), key=lambda w: (w.week, w.budget >> 128)),
        activity=act,
        provider_names=names,
        balances=bal,
    )


def budget_lines(act: Activity) -> dict[int, BudgetLine]:
    """An empty line for every budget the activity's BudgetCreated events define."""
    return {info.budget: BudgetLine(
        budget=info.budget, name=info.name, category=info.category,
        category_name=act.categories.get(info.category, f"category {info.category}"),
        valid_from=info.valid_from, valid_until=info.valid_until, cap=info.cap,
    ) for info in act.budgets.values()}


def unknown_budget_line(act: Activity, budget: int) -> BudgetLine:
    """The line of a budget whose creation is outside the range read (named by its serial)."""
    return BudgetLine(budget, f"budget {budget >> 128}", (budget >> 80) & 0xFF,
                      act.categories.get((budget >> 80) & 0xFF, "?"), 0, 0)


def reference_label(digest: str, texts: Mapping[str, str]) -> str:
    """'INV-2026-0001 (0x1a2b3c4d…)': the text the treasurer typed next to the hash the chain
    keys it by, after checking that the text hashes to it."""
    text = texts.get(digest)
    if text is None:
        return digest
    if "0x" + keccak(text.encode("utf-8")).hex() != digest.lower():
        raise ReconciliationError(f"payment reference {digest}: the text {text!r} given for it does not hash to it")
    return f"{text} ({digest[:10]}…)"


# ---------------------------------------------------------------------------- the checks
def reconcile(summary: Summary, *, transaction_problems: Sequence[str] | None = None) -> list[str]:
    """Checks every equation of the module docstring plus the events' own totals; returns
    the reconciliation lines, or raises ReconciliationError listing every gap.
    `transaction_problems`: the result of `batch_problems` + `reclaim_problems` when the
    summary's activity does not hold the per-holder moves (the event index's running totals
    keep it as the events come in)."""
    problems = budget_problems(summary)
    if transaction_problems is None:
        problems += batch_problems(summary.activity) + reclaim_problems(summary.activity)
    else:
        problems += list(transaction_problems)
    if problems:
        raise ReconciliationError("the report does not reconcile:\n  " + "\n  ".join(problems))
    return summary.reconciliation_lines()


def budget_problems(summary: Summary) -> list[str]:
    """The equations per budget, the cap, and no balance below zero."""
    problems = []
    for b in summary.budgets:
        held = b.held_by_residents + b.held_by_providers + b.settled + b.reclaimed + b.corrected
        if b.issued != held:
            problems.append(f"{b.name}: issued {eur_text(b.issued)} but held + settled + reclaimed + corrected is "
                            f"{eur_text(held)} (gap {b.issued - held} cents)")
        accounted = b.redeemed - b.refunded + b.reclaimed + b.corrected + b.held_by_residents
        if b.issued != accounted:
            problems.append(f"{b.name}: issued {eur_text(b.issued)} but spent - refunded + reclaimed + corrected + "
                            f"with residents is {eur_text(accounted)} (gap {b.issued - accounted} cents)")
        if b.provider_received != b.held_by_providers + b.settled:
            problems.append(f"{b.name}: providers received {eur_text(b.provider_received)} but hold + were paid "
                            f"{eur_text(b.held_by_providers + b.settled)}")
        if b.cap and b.issued > b.cap:
            problems.append(f"{b.name}: issued {eur_text(b.issued)} is above the cap {eur_text(b.cap)}")
    for (budget, address), amount in summary.balances.items():
        if amount < 0:
            problems.append(f"budget {budget >> 128}: {address} would hold {eur_text(amount)} (more went out than came in)")
    return problems


def batch_problems(act: Activity) -> list[str]:
    """Each BatchIssued states its total: the per-holder credits of its transaction must add up."""
    problems = []
    minted: dict[tuple[str, int], int] = defaultdict(int)
    for i in act.issuances:
        minted[(i.tx_hash, i.budget)] += i.amount
    for batch in act.batches:
        key = (batch.tx_hash, batch.args["budget"])
        if minted.get(key, 0) != batch.args["total"]:
            problems.append(f"issuance batch {batch.args['batchId']}: BatchIssued says {eur_text(batch.args['total'])}, "
                            f"the credits add up to {eur_text(minted.get(key, 0))}")
    return problems


def reclaim_problems(act: Activity) -> list[str]:
    """Each Reclaimed states its total: the burns of its transaction must add up."""
    problems = []
    burned: dict[tuple[str, int], int] = defaultdict(int)
    for r in act.reclamations:
        burned[(r.tx_hash, r.budget)] += r.amount
    for key, total in act.reclaim_totals.items():
        if burned.get(key, 0) != total:
            problems.append(f"reclaim in tx {key[0]}: Reclaimed says {eur_text(total)}, "
                            f"the burns add up to {eur_text(burned.get(key, 0))}")
    return problems


def refund_aliases(passes_migrated: Mapping[str, str]) -> Any:
    """holder -> {holder and every address that migrated into it}: a refund to a pass's new
    phone belongs to a payment made from its old one."""
    origin: dict[str, list[str]] = defaultdict(list)  # new address -> old addresses
    for old, new in passes_migrated.items():
        origin[new].append(old)

    def aliases(holder: str) -> set[str]:
        seen, todo = {holder}, [holder]
        while todo:
            for old in origin.get(todo.pop(), []):
                if old not in seen:
                    seen.add(old)
                    todo.append(old)
        return seen

    return aliases


RefundKey = tuple[str, str, int, int]  # (holder, provider, budget, nonce) of a redemption


def refund_problems(f: Refund, aliases: set[str], paid: Any, refunded: Any) -> list[str]:
    """The findings of one refund: `paid.get(key)` gives the redemption (with .amount and
    .refundable) of a RefundKey or None; `refunded` (key -> cents so far) is updated."""
    if f.redemption_nonce is None:
        return [f"credit moved back from provider {f.provider} in tx {f.tx_hash} without the refund function"]
    keys = [(h, f.provider, f.budget, f.redemption_nonce) for h in sorted(aliases)]
    key = next((k for k in keys if paid.get(k) is not None), None)
    if key is None:
        return [f"refund in tx {f.tx_hash} of {eur_text(f.amount)} to {f.holder}: no matching redemption"]
    findings = []
    redeemed = paid.get(key)
    if not redeemed.refundable:
        findings.append(f"refund in tx {f.tx_hash} of {eur_text(f.amount)}: the redemption (nonce {key[3]}) "
                        "was not marked refundable")
    refunded[key] = refunded.get(key, 0) + f.amount
    if refunded[key] > redeemed.amount:
        findings.append(f"refund in tx {f.tx_hash}: refunds of the {eur_text(redeemed.amount)} redemption by {key[0]} "
                        f"(nonce {key[3]}) now total {eur_text(refunded[key])}")
    return findings


def refund_lines(findings: Sequence[str], refunds: int, marked: int) -> list[str]:
    """The refund check's lines: each finding, or one all-clear line with the counts."""
    if findings:
        return ["FINDING: " + line for line in findings]
    return [f"all {refunds} refunds belong to one of the {marked} refundable redemptions, "
            "and none exceeds what it debited"]


def refund_findings(act: Activity) -> list[str]:
    """Every refund must belong to a redemption marked refundable at the till, by the same
    provider, budget and nonce (paid by the refunded pass, or by the lost phone it migrated
    from), and the refunds of one redemption never add up to more than it debited. The
    contract (v2) enforces this with what it stored at the refundable scan; the report
    checks it again from the events. Returns one line: all clear, or each finding."""
    aliases = refund_aliases(act.passes_migrated)
    paid = {(r.holder, r.provider, r.budget, r.nonce): r for r in act.redemptions if r.nonce is not None}
    refunded: dict[RefundKey, int] = {}
    findings = []
    for f in act.refunds:
        findings += refund_problems(f, aliases(f.holder), paid, refunded)
    return refund_lines(findings, len(act.refunds), sum(1 for r in act.redemptions if r.refundable))


def verify_against_chain(summary: Summary, contract: Any, *, block: int | str = "latest") -> list[str]:
    """Checks the event totals against the contract's own state: its counters per budget
    (`budgetTotals`: issued, settled, reclaimed) and the balance of every address the
    events mention. Returns one line per budget; raises ReconciliationError on a gap."""
    problems, lines = verify_counters(summary.budgets, contract, block)
    problems += verify_balances(summary.balances, contract, block)
    if problems:
        raise ReconciliationError("the events disagree with the chain:\n  " + "\n  ".join(problems))
    lines.append(balances_line(len(summary.balances)))
    return lines


def verify_counters(budgets: Sequence[BudgetLine], contract: Any, block: int | str = "latest"
                    ) -> tuple[list[str], list[str]]:
    """(problems, lines): each budget's event totals against `budgetTotals` on chain."""
    problems, lines = [], []
    for b in budgets:
        _cap, issued, settled, reclaimed, corrected = contract.functions.budgetTotals(b.budget).call(
            block_identifier=block)
        for label, chain_value, event_value in (("issued", issued, b.issued), ("settled", settled, b.settled),
                                                ("reclaimed", reclaimed, b.reclaimed),
                                                ("corrected", corrected, b.corrected)):
            if chain_value != event_value:
                problems.append(f"{b.name}: {label} is {eur_text(chain_value)} on chain but {eur_text(event_value)} in the events")
        lines.append(f"{b.name}: chain counters agree (issued {eur_text(issued)}, settled {eur_text(settled)}, "
                     f"reclaimed {eur_text(reclaimed)}, corrected {eur_text(corrected)})")
    return problems, lines


def verify_balances(balances: Mapping[tuple[int, str], int], contract: Any, block: int | str = "latest",
                    on_agree: Any = None) -> list[str]:
    """Problems: each (budget, address) -> cents of `balances` against balanceOfBatch on
    chain. `on_agree(keys)` is told which ones agreed."""
    problems = []
    keys = sorted(balances)
    step = 500  # balanceOfBatch arguments per call
    for i in range(0, len(keys), step):
        part = keys[i : i + step]
        onchain = contract.functions.balanceOfBatch([a for _, a in part], [b for b, _ in part]).call(block_identifier=block)
        agreed = []
        for (budget, address), value in zip(part, onchain):
            if value != balances[(budget, address)]:
                problems.append(f"budget {budget >> 128}: {address} holds {eur_text(value)} on chain, "
                                f"{eur_text(balances[(budget, address)])} by the events")
            else:
                agreed.append((budget, address))
        if on_agree is not None:
            on_agree(agreed)
    return problems


def balances_line(count: int) -> str:
    return f"all {count} balances replayed from events agree with balanceOf on chain"


# ---------------------------------------------------------------------------- the files
@dataclass
class ReportFiles:
    directory: Path
    csvs: list[Path]
    charts: list[Path]
    html: Path


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def write_csvs(summary: Summary, out: Path) -> list[Path]:
    """The tables, amounts in euros with two decimals (a spreadsheet reads them as numbers)."""
    money = ["cap", "issued", "redeemed", "refunded", "settled", "reclaimed", "corrected", "held_by_residents",
             "held_by_providers", "co_payments"]
    files = [
        _write_csv(
            out / "budgets.csv",
            ["budget_id", "name", "category", "valid_from", "valid_until", *(f"{m}_eur" for m in money),
             "provider_received_eur", "redemptions", "refunds", "residents_credited", "residents_who_spent", "take_up_pct"],
            ([str(b.budget), b.name, b.category_name, _date(b.valid_from), _date(b.valid_until),
              *(eur(getattr(b, m)) for m in money), eur(b.provider_received), b.redemptions, b.refunds,
              b.residents_credited, b.residents_who_spent, f"{100 * b.take_up:.1f}"] for b in summary.budgets),
        ),
        _write_csv(
            out / "categories.csv",
            ["category", "budgets", *(f"{m}_eur" for m in money), "redemptions"],
            ([c["category_name"], c["budgets"], *(eur(c[m]) for m in money), c["redemptions"]]
             for c in summary.categories()),
        ),
        _write_csv(
            out / "providers.csv",
            ["provider", "address", "budget", "redemptions", "redeemed_eur", "refunds", "refunded_eur",
             "received_eur", "co_payments_eur", "settled_eur", "unsettled_eur", "payment_references"],
            ([p.name, p.provider, p.budget_name, p.redemptions, eur(p.redeemed), p.refunds, eur(p.refunded),
              eur(p.redeemed - p.refunded), eur(p.co_payments), eur(p.settled), eur(p.unsettled),
              "; ".join(p.payment_references)] for p in summary.providers),
        ),
        _write_csv(
            out / "weeks.csv",
            ["week", "budget", "category", "redemptions", "redeemed_eur", "refunded_eur", "co_payments_eur"],
            ([w.week, w.budget_name, w.category_name, w.redemptions, eur(w.redeemed), eur(w.refunded),
              eur(w.co_payments)] for w in summary.weeks),
        ),
        _write_csv(
            out / "redemptions.csv",
            ["time_utc", "week", "budget", "provider", "holder", "amount_eur", "co_payment_eur", "nonce", "refundable",
             "tx_hash"],
            ([datetime.fromtimestamp(r.timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), iso_week(r.timestamp),
              _budget_name(summary, r.budget), summary.provider_names.get(r.provider, r.provider), r.holder,
              eur(r.amount), eur(r.co_payment), "" if r.nonce is None else r.nonce, "yes" if r.refundable else "",
              r.tx_hash]
             for r in summary.activity.redemptions),
        ),
    ]
    return files


def _budget_name(summary: Summary, budget: int) -> str:
    return next((b.name for b in summary.budgets if b.budget == budget), str(budget))


def write_charts(summary: Summary, out: Path) -> list[Path]:
    """PNG charts (matplotlib, Agg backend: no display needed)."""
    try:
        import matplotlib
    except ImportError:
        raise CityPassError("charts need matplotlib: pip install 'citypass[reports]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    euro_axis = FuncFormatter(lambda v, _: f"€{v:,.0f}")
    colors = plt.get_cmap("tab10").colors
    cat_color = {c["category_name"]: colors[i % 10] for i, c in enumerate(summary.categories())}
    files = []

    # 1. Net spending per category over time (cumulative, so the end point is the total).
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    moves = [m for m in summary.activity.moves() if isinstance(m, Redemption | Refund)]
    for cat in cat_color:
        budgets = {b.budget for b in summary.budgets if b.category_name == cat}
        xs, ys, total = [], [], 0
        for m in moves:
            if m.budget in budgets:
                total += m.amount if isinstance(m, Redemption) else -m.amount
                xs.append(datetime.fromtimestamp(m.timestamp, timezone.utc))
                ys.append(total / 100)
        if xs:
            ax.step(xs, ys, where="post", label=f"{cat} ({eur_text(total)})", color=cat_color[cat], linewidth=2)
    ax.set_title("Credit spent per category over time (cumulative, after refunds)")
    ax.yaxis.set_major_formatter(euro_axis)
    ax.set_ylabel("spent")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    files.append(_save(fig, out / "spending_per_category.png"))

    # 2. Per provider: received, split into settled (paid) and still to pay.
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in summary.providers:
        per[p.name][0] += p.settled
        per[p.name][1] += p.unsettled
    names = sorted(per, key=lambda n: sum(per[n]))
    fig, ax = plt.subplots(figsize=(9, 0.55 * max(len(names), 3) + 1.6), dpi=110)
    paid = [per[n][0] / 100 for n in names]
    owed = [per[n][1] / 100 for n in names]
    ax.barh(names, paid, color=colors[2], label="settled (paid by the municipality)")
    ax.barh(names, owed, left=paid, color=colors[1], label="not yet settled")
    for i, n in enumerate(names):
        ax.text(paid[i] + owed[i], i, f"  {eur_text(sum(per[n]))}", va="center")
    ax.set_title("Credit received per provider (after refunds)")
    ax.xaxis.set_major_formatter(euro_axis)
    ax.set_xlim(0, max([a + b for a, b in zip(paid, owed)] + [1]) * 1.25)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    files.append(_save(fig, out / "spending_per_provider.png"))

    # 3. Take-up: share of credited residents who used the credit at least once.
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    labels = [b.name for b in summary.budgets]
    shares = [b.take_up for b in summary.budgets]
    bars = ax.bar(labels, shares, color=[cat_color.get(b.category_name, colors[0]) for b in summary.budgets])
    for bar, b in zip(bars, summary.budgets):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                f"{100 * b.take_up:.0f}%\n({b.residents_who_spent} of {b.residents_credited})",
                ha="center", va="bottom")
    ax.set_ylim(0, 1.2)  # room above a 100% bar for its label
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title("Take-up: share of residents who used their credit")
    ax.grid(axis="y", alpha=0.3)
    files.append(_save(fig, out / "take_up.png"))

    # 4. Where each budget's money is now: the reconciliation as a picture.
    fig, ax = plt.subplots(figsize=(9, 0.7 * max(len(summary.budgets), 2) + 1.8), dpi=110)
    parts = [("settled", "paid to providers", colors[2]), ("held_by_providers", "owed to providers", colors[1]),
             ("reclaimed", "reclaimed (unused)", colors[7]), ("held_by_residents", "still with residents", colors[0])]
    left = [0.0] * len(summary.budgets)
    for attr, label, color in parts:
        vals = [getattr(b, attr) / 100 for b in summary.budgets]
        ax.barh(labels, vals, left=left, color=color, label=label)
        left = [a + v for a, v in zip(left, vals)]
    ax.invert_yaxis()  # first budget on top, as in the tables
    ax.xaxis.set_major_formatter(euro_axis)
    ax.set_title("Where each budget's issued credit is now")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    files.append(_save(fig, out / "budget_use.png"))
    return files


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# Chart file stem -> (heading, one sentence for a reader who has not seen the data before).
_CHARTS = {
    "spending_per_category": ("Spending per category over time",
                              "How much credit residents spent in each category since the start, after refunds."),
    "spending_per_provider": ("Spending per provider",
                              "What each provider received from residents' passes; green is already paid out by the "
                              "municipality, orange is still to be paid."),
    "take_up": ("Take-up", "Of the residents who received credit in a budget, the share who used it at least once."),
    "budget_use": ("Where the money is now",
                   "Each budget's issued credit, split into paid to providers, owed to providers, reclaimed after "
                   "the budget ended, and still with residents."),
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d2733; line-height: 1.5; }
h1 { margin-bottom: .2rem; } .sub { color: #5b6b7b; margin-top: 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .8rem; margin: 1.5rem 0; }
.figure { background: #f2f6fa; border-radius: .5rem; padding: .8rem 1rem; }
.figure b { display: block; font-size: 1.5rem; } .figure span { color: #5b6b7b; font-size: .9rem; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; font-size: .92rem; }
th, td { padding: .35rem .6rem; border-bottom: 1px solid #dde3ea; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #eef2f6; }
tr.check td { color: #176b2c; font-weight: 600; }
img { max-width: 100%; border: 1px solid #dde3ea; border-radius: .4rem; margin: .5rem 0 1.5rem; }
.ok { color: #176b2c; } code { font-size: .85rem; }
"""


def write_html(summary: Summary, out: Path, *, charts: Sequence[Path], csvs: Sequence[Path],
               title: str, intro: str, checks: Sequence[str], extra: Mapping[str, Sequence[tuple[str, str]]] | None) -> Path:
    e = html.escape
    credited, spent = summary.residents()
    figures = [
        (eur_text(summary.total("issued")), "credit issued"),
        (f"{credited:,}", "residents credited"),
        (f"{100 * spent / credited:.0f}%" if credited else "–", "used their credit"),
        (eur_text(summary.total("redeemed") - summary.total("refunded")), "spent at providers (after refunds)"),
        (eur_text(summary.total("settled")), "paid to providers"),
        (eur_text(summary.total("reclaimed")), "unused, reclaimed"),
    ]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{e(title)}</h1><p class='sub'>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from the "
             f"CityPass events on chain.</p>",
             f"<p>{e(intro)}</p>",
             "<div class='figures'>"]
    parts += [f"<div class='figure'><b>{e(v)}</b><span>{e(k)}</span></div>" for v, k in figures]
    parts.append("</div>")

    parts.append("<h2>Where the money is: the reconciliation</h2><p>For every budget, all credit issued is "
                 "accounted for to the cent: it is still with residents, with providers (to be paid), "
                 "paid out to providers, reclaimed after the budget ended, or corrected (taken back by the "
                 "issuer because it was issued in error).</p>")
    cols = [("issued", "Issued"), ("redeemed", "Spent"), ("refunded", "Refunded"), ("held_by_residents", "With residents"),
            ("held_by_providers", "Owed to providers"), ("settled", "Paid to providers"), ("reclaimed", "Reclaimed"),
            ("corrected", "Corrected")]
    parts.append("<table><tr><th>Budget</th><th>Cap</th>" + "".join(f"<th>{c}</th>" for _, c in cols)
                 + "<th>Take-up</th></tr>")
    for b in summary.budgets:
        parts.append(f"<tr><td>{e(b.name)}</td><td>{eur_text(b.cap)}</td>"
                     + "".join(f"<td>{eur_text(getattr(b, k))}</td>" for k, _ in cols)
                     + f"<td>{100 * b.take_up:.0f}%</td></tr>")
    parts.append("<tr class='check'><td>Total</td><td>" + eur_text(summary.total("cap")) + "</td>"
                 + "".join(f"<td>{eur_text(summary.total(k))}</td>" for k, _ in cols) + "<td></td></tr></table>")
    parts.append("<p>Checks passed:</p><ul>" + "".join(f"<li class='ok'>{e(c)}</li>" for c in checks) + "</ul>")

    parts.append("<h2>Providers</h2><table><tr><th>Provider</th><th>Budget</th><th>Payments</th><th>Received</th>"
                 "<th>Co-payments by residents</th><th>Paid</th><th>Still to pay</th><th>Payment references</th></tr>")
    for p in summary.providers:
        parts.append(f"<tr><td>{e(p.name)}</td><td>{e(p.budget_name)}</td><td>{p.redemptions:,}</td>"
                     f"<td>{eur_text(p.redeemed - p.refunded)}</td><td>{eur_text(p.co_payments)}</td>"
                     f"<td>{eur_text(p.settled)}</td><td>{eur_text(p.unsettled)}</td>"
                     f"<td>{e('; '.join(p.payment_references))}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Charts</h2>")
    for c in charts:
        title, caption = _CHARTS.get(c.stem, (c.stem.replace("_", " "), ""))
        parts.append(f"<h3>{e(title)}</h3><p>{e(caption)}</p><img src='{e(c.name)}' alt='{e(title)}'>")
    for heading, rows in (extra or {}).items():
        parts.append(f"<h2>{e(heading)}</h2><table>")
        parts += [f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows]
        parts.append("</table>")
    parts.append("<h2>Data</h2><p>The tables as CSV (amounts in euros):</p><ul>")
    parts += [f"<li><a href='{e(p.name)}'>{e(p.name)}</a></li>" for p in csvs]
    parts.append("</ul><p class='sub'>No personal data: residents appear only as pseudonymous addresses. "
                 "Anyone with access to the chain can rebuild this report from the events.</p></body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_report(
    summary: Summary,
    out_dir: str | Path,
    *,
    title: str = "CityPass report",
    intro: str = "What the city pass credit was issued for, where residents spent it, and where every euro is now.",
    checks: Sequence[str] = (),
    extra: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> ReportFiles:
    """Writes CSV tables, PNG charts and index.html into `out_dir` (created if needed).
    Reconciles first: a report that does not add up is never written."""
    lines = reconcile(summary)
    try:  # before writing anything: no half report without charts
        import matplotlib  # noqa: F401
    except ImportError:
        raise CityPassError("charts need matplotlib: pip install 'citypass[reports]'") from None
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        csvs = write_csvs(summary, out)
        charts = write_charts(summary, out)
        page = write_html(summary, out, charts=charts, csvs=csvs, title=title, intro=intro,
                          checks=[*lines, *checks], extra=extra)
    except OSError as exc:
        raise CityPassError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    return ReportFiles(out, csvs, charts, page)


@dataclass
class Report:
    summary: Summary
    reconciliation: list[str]  # the equations, per budget (checked)
    chain_checks: list[str]  # events against the contract's own state (checked)
    files: ReportFiles
    block: int  # the report is as of this block


def build_report(
    dep: Any,
    out_dir: str | Path,
    *,
    provider_names: Mapping[str, str] | None = None,
    references: Mapping[str, str] | None = None,
    title: str = "CityPass report",
    intro: str | None = None,
    extra: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    index: Any = None,
) -> Report:
    """The whole report of a deployment as of the latest block: events -> figures ->
    reconciliation -> check against the chain -> files. Raises ReconciliationError (and
    writes nothing) if anything does not add up.

    `index`: the deployment's event index (`citypass.index.EventIndex`, as `citypass report`
    and the demo pass it), brought up to the chain's head first, so only the blocks it has not
    read yet are fetched and a reorg is rolled back before the report reads; without one the
    events are read straight from the chain (`events.fetch_events`)."""
    from citypass.events import activity, fetch_events

    if index is not None:
        block = index.sync().to_block
        records = [r for r in index.records() if r.block <= block]  # another process may read on meanwhile
    else:
        block = int(dep.contract.w3.eth.block_number)
        records = fetch_events(dep, to_block=block)
    summary = summarize(activity(records), provider_names, references)
    lines = reconcile(summary)
    checks = verify_against_chain(summary, dep.contract, block=block) + refund_findings(summary.activity)
    kwargs = {"intro": intro} if intro else {}
    files = write_report(summary, out_dir, title=title, checks=checks, extra=extra, **kwargs)
    return Report(summary, lines, checks, files, block)


__all__ = [
    "BudgetLine", "ProviderLine", "ReconciliationError", "Report", "ReportFiles", "Summary", "WeekLine",
    "balances_line", "batch_problems", "budget_lines", "budget_problems", "build_report", "eur", "eur_text",
    "iso_week", "reclaim_problems", "reconcile", "reference_label", "refund_aliases", "refund_findings",
    "refund_lines", "refund_problems", "summarize", "unknown_budget_line", "verify_against_chain",
    "verify_balances", "verify_counters", "write_report",
]
