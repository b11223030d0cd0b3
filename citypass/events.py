"""Every CityPass event, fetched from the chain and decoded into typed records.

The chain is the source of truth for audits and reports: this module reads the contract's
logs (in block ranges, from the deployment block on) and turns them into

- `EventRecord`: one decoded log (block, timestamp, tx hash, log index, name, args), and
- domain records built from them: `Issuance`, `Redemption`, `Refund`, `Migration`,
  `Settlement`, `Reclamation` (one per credit move, in chain order), through `activity()`.

Some domain facts span two logs of one transaction: a redemption is the `TransferSingle`
(holder -> provider) followed by its `Redeemed` (nonce, co-payment); a settlement is the
burn followed by `Settled` (payment reference); a refund is the transfer followed by
`Refunded`. `activity()` makes those joins once so callers (audit, reclaim, report) don't.

Typical use::

    records = fetch_events(deployment)          # every event since deployment
    act = activity(records)
    act.redemptions[0].provider, act.redemptions[0].co_payment
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.events import get_event_data

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
DEFAULT_CHUNK = 5_000  # blocks per eth_getLogs call; public RPCs often cap at 10,000


class EventFetchError(RuntimeError):
    """Logs could not be read or decoded; the message names the block range or log."""


# ---------------------------------------------------------------------------- raw records
@dataclass(frozen=True)
class EventRecord:
    """One decoded CityPass log. `args` uses the ABI's parameter names; addresses are
    checksummed strings, bytes32 values 0x-prefixed hex strings, integers ints."""

    block: int
    timestamp: int  # unix seconds of the block
    tx_hash: str
    tx_index: int
    log_index: int
    name: str
    args: dict[str, Any]

    @property
    def position(self) -> tuple[int, int]:
        """Chain order: sort key across blocks."""
        return (self.block, self.log_index)

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, timezone.utc)


def _plain(value: Any) -> Any:
    """ABI values as plain, JSON/CSV-friendly Python values."""
    if isinstance(value, (bytes, bytearray, HexBytes)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class EventDecoder:
    """Decodes raw logs of one contract by topic, with the contract's ABI."""

    def __init__(self, w3: Web3, abi: Sequence[dict[str, Any]]):
        self.w3 = w3
        self._by_topic: dict[bytes, dict[str, Any]] = {}
        for item in abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                self._by_topic[bytes(event_abi_to_log_topic(item))] = item

    def topics(self) -> list[str]:
        return ["0x" + t.hex() for t in self._by_topic]

    def decode(self, log: dict[str, Any], timestamp: int) -> EventRecord | None:
        """The record for `log`, or None if it is not one of the ABI's events."""
        if not log["topics"]:
            return None
        abi = self._by_topic.get(bytes(log["topics"][0]))
        if abi is None:
            return None
        try:
            data = get_event_data(self.w3.codec, abi, log)
        except Exception as exc:  # a log that matches a topic but not its layout
            raise EventFetchError(
                f"cannot decode {abi['name']} at block {log['blockNumber']} log {log['logIndex']}: {exc}"
            ) from exc
        return EventRecord(
            block=int(log["blockNumber"]),
            timestamp=timestamp,
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            tx_index=int(log["transactionIndex"]),
            log_index=int(log["logIndex"]),
            name=data["event"],
            args={k: _plain(v) for k, v in data["args"].items()},
        )


def deployment_block(dep: Any) -> int:
    """The block the contract was deployed in (from the address book), or 0 if unknown.

    Accepts a Deployment-like object; several attribute spellings are tried so the
    function works with the address book's record and with plain test doubles.
    """
    for name in ("block", "deployment_block", "deploy_block", "block_number", "deployed_block"):
        value = getattr(dep, name, None)
        if isinstance(value, int):
            return value
    return 0


def _contract_of(dep: Any) -> Any:
    """A web3 Contract from a Deployment (`.contract`) or a Contract itself."""
    return getattr(dep, "contract", dep)


def _block_timestamps(w3: Web3, blocks: set[int]) -> dict[int, int]:
    """Timestamps of `blocks`, fetched in JSON-RPC batches (one call per block is slow
    on an automining dev chain, where every transaction is its own block)."""
    result: dict[int, int] = {}
    ordered = sorted(blocks)
    step = 500
    for i in range(0, len(ordered), step):
        part = ordered[i : i + step]
        try:
            with w3.batch_requests() as batch:
                for n in part:
                    batch.add(w3.eth.get_block(n))
                blocks_data = batch.execute()
        except Exception:  # a provider without batch support: one call per block
            blocks_data = [w3.eth.get_block(n) for n in part]
        for n, block in zip(part, blocks_data):
            result[n] = int(block["timestamp"])
    return result


def iter_log_chunks(w3: Web3, address: str, start: int, end: int, chunk: int) -> Iterator[list[dict[str, Any]]]:
    """Raw logs of `address` in [start, end], `chunk` blocks per call; halves the range if
    the node refuses a large one (many public RPCs cap results per call)."""
    lo = start
    size = max(1, chunk)
    while lo <= end:
        hi = min(end, lo + size - 1)
        try:
            logs = w3.eth.get_logs({"address": address, "fromBlock": lo, "toBlock": hi})
        except Exception as exc:
            if size > 1:
                size = max(1, size // 2)
                continue
            raise EventFetchError(f"eth_getLogs failed for block {lo}: {exc}") from exc
        yield list(logs)
        lo = hi + 1


def fetch_events(
    dep: Any,
    from_block: int | None = None,
    to_block: int | None = None,
    *,
    names: Iterable[str] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> list[EventRecord]:
    """Every CityPass event of the deployment `dep` (a Deployment with `.contract`, or a web3
    Contract) from `from_block` (default: its deployment block) to `to_block` (default:
    latest), in chain order. `names` keeps only those event names."""
    contract = _contract_of(dep)
    w3: Web3 = contract.w3
    start = deployment_block(dep) if from_block is None else from_block
    end = w3.eth.block_number if to_block is None else to_block
    decoder = EventDecoder(w3, contract.abi)
    wanted = set(names) if names is not None else None

    raw: list[dict[str, Any]] = []
    for logs in iter_log_chunks(w3, contract.address, start, end, chunk):
        raw.extend(logs)
    # Nodes that follow the latest spec (Anvil, recent geth) put the block time in each
    # log; for the others, look the blocks up.
    missing = {int(log["blockNumber"]) for log in raw if "blockTimestamp" not in log}
    times = _block_timestamps(w3, missing) if missing else {}

    records = []
    for log in raw:
        ts = log.get("blockTimestamp")
        ts = int(ts, 16) if isinstance(ts, str) else int(ts) if ts is not None else times[int(log["blockNumber"])]
        record = decoder.decode(log, ts)
        if record is not None and (wanted is None or record.name in wanted):
            records.append(record)
    records.sort(key=lambda r: r.position)
    return records


# ---------------------------------------------------------------------------- domain records
@dataclass(frozen=True)
class _Move:
    """What every credit movement has in common."""

    block: int
    timestamp: int
    tx_hash: str
    log_index: int  # of the TransferSingle/TransferBatch that moved the credit
    budget: int
    amount: int  # euro cents


@dataclass(frozen=True)
class Issuance(_Move):
    """Credit minted to a pass (issue or enrollAndIssue); `batch_id` from `BatchIssued`."""

    holder: str
    batch_id: str | None


@dataclass(frozen=True)
class Redemption(_Move):
    """Credit paid by a holder to a provider. From a voucher: `nonce`/`co_payment` come
    from the joined `Redeemed` event; a direct ERC-1155 transfer has nonce None."""

    holder: str
    provider: str
    nonce: int | None
    co_payment: int


@dataclass(frozen=True)
class Refund(_Move):
    """Credit returned by a provider to a holder; `redemption_nonce` is None for a direct
    transfer without the `refund` function."""

    provider: str
    holder: str
    redemption_nonce: int | None


@dataclass(frozen=True)
class Migration(_Move):
    """A balance moved from a lost phone's address to the pass's new address."""

    old: str
    new: str


@dataclass(frozen=True)
class Settlement(_Move):
    """Provider credit burned because the municipality paid it (`payment_reference`)."""

    provider: str
    payment_reference: str


@dataclass(frozen=True)
class Reclamation(_Move):
    """A holder's leftover credit burned after the budget ended."""

    holder: str


@dataclass(frozen=True)
class Skipped:
    """A voucher a batch redemption skipped, with the chain's reason code."""

    block: int
    timestamp: int
    tx_hash: str
    log_index: int
    holder: str
    nonce: int
    reason: int


@dataclass(frozen=True)
class BudgetInfo:
    budget: int
    category: int
    valid_from: int
    valid_until: int
    cap: int
    name: str


@dataclass
class Activity:
    """Everything that happened, sorted by kind; each list is in chain order."""

    issuances: list[Issuance] = field(default_factory=list)
    redemptions: list[Redemption] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    reclamations: list[Reclamation] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    budgets: dict[int, BudgetInfo] = field(default_factory=dict)  # budget id -> terms
    categories: dict[int, str] = field(default_factory=dict)  # category number -> name
    providers: dict[str, int] = field(default_factory=dict)  # provider -> category mask (latest)
    batches: list[EventRecord] = field(default_factory=list)  # BatchIssued records
    passes_migrated: dict[str, str] = field(default_factory=dict)  # old address -> new address
    pass_status: dict[str, int] = field(default_factory=dict)  # holder -> last PassStatus code
    reclaim_totals: dict[tuple[str, int], int] = field(default_factory=dict)  # (tx, budget) -> Reclaimed.total

    def moves(self) -> list[_Move]:
        """Every credit movement of every kind, in chain order."""
        every: list[_Move] = [
            *self.issuances, *self.redemptions, *self.refunds,
            *self.migrations, *self.settlements, *self.reclamations,
        ]
        return sorted(every, key=lambda m: (m.block, m.log_index))


class UnexplainedTransfer(EventFetchError):
    """A credit move that fits none of the contract's paths (would be a contract bug)."""


def _transfers(record: EventRecord) -> list[tuple[str, str, int, int]]:
    """(from, to, id, value) of a TransferSingle/TransferBatch record."""
    a = record.args
    if record.name == "TransferSingle":
        return [(a["from"], a["to"], a["id"], a["value"])]
    return [(a["from"], a["to"], i, v) for i, v in zip(a["ids"], a["values"])]


def activity(records: Sequence[EventRecord]) -> Activity:
    """Joins the raw records into domain records (see the module docstring).

    Raises UnexplainedTransfer for a credit move that none of the rules explains, so a
    report can never silently leave money out.
    """
    act = Activity()
    by_tx: dict[str, list[EventRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.position):
        by_tx[r.tx_hash].append(r)

    # Per transaction: the next record after each one, the batch id per budget, whether
    # it reclaimed (precomputed, so a 500-holder batch is not scanned 500 times).
    next_of: dict[tuple[str, int], EventRecord] = {}
    batch_of: dict[tuple[str, int], str] = {}
    reclaim_txs: set[str] = set()
    for tx_hash, tx in by_tx.items():
        for here, after in zip(tx, tx[1:]):
            next_of[(tx_hash, here.log_index)] = after
        for e in tx:
            if e.name == "BatchIssued":
                batch_of[(tx_hash, e.args["budget"])] = e.args["batchId"]
            elif e.name == "Reclaimed":
                reclaim_txs.add(tx_hash)

    for r in sorted(records, key=lambda r: r.position):
        a = r.args
        if r.name == "BudgetCreated":
            act.budgets[a["budget"]] = BudgetInfo(
                a["budget"], a["category"], a["validFrom"], a["validUntil"], a["cap"], a["name"]
            )
        elif r.name == "BudgetCapChanged" and a["budget"] in act.budgets:
            old = act.budgets[a["budget"]]
            act.budgets[a["budget"]] = BudgetInfo(
                old.budget, old.category, old.valid_from, old.valid_until, a["newCap"], old.name
            )
        elif r.name == "CategoryDefined":
            act.categories[a["category"]] = a["name"]
        elif r.name == "ProviderRegistered":
            act.providers[a["provider"]] = a["categories"]
        elif r.name == "PassMigrated":
            act.passes_migrated[a["from"]] = a["to"]
        elif r.name == "PassStatusChanged":
            act.pass_status[a["holder"]] = a["status"]
        elif r.name == "Reclaimed":
            act.reclaim_totals[(r.tx_hash, a["budget"])] = act.reclaim_totals.get((r.tx_hash, a["budget"]), 0) + a["total"]
        elif r.name == "BatchIssued":
            act.batches.append(r)
        elif r.name == "VoucherSkipped":
            act.skipped.append(Skipped(r.block, r.timestamp, r.tx_hash, r.log_index, a["holder"], a["nonce"], a["reason"]))
        elif r.name in ("TransferSingle", "TransferBatch"):
            nxt = next_of.get((r.tx_hash, r.log_index))
            for frm, to, budget, value in _transfers(r):
                batch = batch_of.get((r.tx_hash, budget))
                _classify(act, r, nxt, batch, r.tx_hash in reclaim_txs, frm, to, budget, value)
    return act


def _classify(
    act: Activity, r: EventRecord, nxt: EventRecord | None, batch_id: str | None, reclaim_tx: bool,
    frm: str, to: str, budget: int, value: int,
) -> None:
    """Files one credit move under its kind, by who sent, who received and the log after it."""
    base = dict(block=r.block, timestamp=r.timestamp, tx_hash=r.tx_hash, log_index=r.log_index, budget=budget, amount=value)
    if frm == ZERO_ADDRESS:
        act.issuances.append(Issuance(**base, holder=to, batch_id=batch_id))
    elif to == ZERO_ADDRESS:
        if nxt is not None and nxt.name == "Settled":
            act.settlements.append(Settlement(**base, provider=frm, payment_reference=nxt.args["paymentReference"]))
        elif reclaim_tx:
            act.reclamations.append(Reclamation(**base, holder=frm))
        else:
            raise UnexplainedTransfer(f"burn of {value} from {frm} in tx {r.tx_hash} has neither Settled nor Reclaimed")
    elif nxt is not None and nxt.name == "Redeemed":
        act.redemptions.append(Redemption(**base, holder=frm, provider=to, nonce=nxt.args["nonce"], co_payment=nxt.args["coPayment"]))
    elif nxt is not None and nxt.name == "Refunded":
        act.refunds.append(Refund(**base, provider=frm, holder=to, redemption_nonce=nxt.args["redemptionNonce"]))
    elif act.passes_migrated.get(frm) == to:
        act.migrations.append(Migration(**base, old=frm, new=to))
    elif to in act.providers:  # a holder paying with a plain ERC-1155 transfer
        act.redemptions.append(Redemption(**base, holder=frm, provider=to, nonce=None, co_payment=0))
    elif frm in act.providers:  # a provider returning credit with a plain transfer
        act.refunds.append(Refund(**base, provider=frm, holder=to, redemption_nonce=None))
    else:
        raise UnexplainedTransfer(f"transfer of {value} from {frm} to {to} in tx {r.tx_hash} fits no CityPass path")


def holders_of(act: Activity, budget: int) -> list[str]:
    """Addresses that may still hold credit of `budget` (ever credited, refunded to or
    migrated to), in first-seen order: the candidates for `reclaim`."""
    seen: dict[str, None] = {}
    for m in act.moves():
        if m.budget != budget:
            continue
        if isinstance(m, Issuance | Refund):
            seen.setdefault(m.holder, None)
        elif isinstance(m, Migration):
            seen.setdefault(m.new, None)
    return list(seen)


def balances(act: Activity) -> dict[tuple[int, str], int]:
    """(budget, address) -> balance in cents, replayed from the events."""
    bal: dict[tuple[int, str], int] = defaultdict(int)
    for m in act.moves():
        if isinstance(m, Issuance):
            bal[(m.budget, m.holder)] += m.amount
        elif isinstance(m, Redemption):
            bal[(m.budget, m.holder)] -= m.amount
            bal[(m.budget, m.provider)] += m.amount
        elif isinstance(m, Refund):
            bal[(m.budget, m.provider)] -= m.amount
            bal[(m.budget, m.holder)] += m.amount
        elif isinstance(m, Migration):
            bal[(m.budget, m.old)] -= m.amount
            bal[(m.budget, m.new)] += m.amount
        elif isinstance(m, Settlement):
            bal[(m.budget, m.provider)] -= m.amount
        elif isinstance(m, Reclamation):
            bal[(m.budget, m.holder)] -= m.amount
    return dict(bal)


def to_rows(records: Iterable[EventRecord]) -> Iterator[dict[str, Any]]:
    """Flat rows for a CSV export (`citypass audit`): one per event, args as JSON-ish text."""
    for r in records:
        yield {
            "block": r.block,
            "timestamp": r.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tx_hash": r.tx_hash,
            "log_index": r.log_index,
            "event": r.name,
            "args": ";".join(f"{k}={_text(v)}" for k, v in r.args.items()),
        }


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


__all__ = [
    "Activity", "BudgetInfo", "EventDecoder", "EventFetchError", "EventRecord", "Issuance", "Migration",
    "Reclamation", "Redemption", "Refund", "Settlement", "Skipped", "UnexplainedTransfer", "activity",
    "balances", "deployment_block", "fetch_events", "holders_of", "iter_log_chunks", "to_rows",
]
