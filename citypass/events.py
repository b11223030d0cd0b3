"""Every CityPass event, fetched from the chain and decoded into typed records.

The chain is the source of truth for audits and reports: this module reads the contract's
logs (in block ranges, from the deployment block on) and turns them into

- `EventRecord`: one decoded log (block, timestamp, tx hash, log index, name, args), and
- domain records built from them: `Issuance`, `Redemption`, `Refund`, `Migration`,
  `Settlement`, `Reclamation`, `Correction` (one per credit move, in chain order), through
  `activity()`.

Some domain facts span two logs of one transaction: a redemption is the `TransferSingle`
(holder -> provider) followed by its `Redeemed` (nonce, co-payment), and by
`RefundableRedemption` when the clerk marked it refundable; a settlement is the burn
followed by `Settled` (payment reference hash), the text of the reference is in the call's
`SettlementReference`; a refund is the transfer followed by `Refunded`; a correction is the
burn followed by `Corrected`. Provider names come from `ProviderNamed`. `activity()` makes those joins once so callers (audit, reclaim, report) don't.

Typical use::

    records = fetch_events(deployment)          # every event since deployment
    act = activity(records)
    act.redemptions[0].provider, act.redemptions[0].co_payment
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3

from citypass.errors import CityPassError

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
DEFAULT_CHUNK = 5_000  # blocks per eth_getLogs call; public RPCs often cap at 10,000


class EventFetchError(CityPassError):
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


@lru_cache(maxsize=1 << 16)
def _checksum(hex40: str) -> str:
    """EIP-55 form of an address (cached: the same few thousand addresses recur in every log)."""
    return to_checksum_address("0x" + hex40)


def _plain(value: Any, typ: str) -> Any:
    """An eth_abi value as a plain, JSON/CSV-friendly value: checksummed addresses, 0x-hex bytes."""
    if typ.endswith("]"):
        inner = typ[: typ.rindex("[")]
        return [_plain(v, inner) for v in value]
    if typ == "address":
        return _checksum(value[2:].lower() if isinstance(value, str) else bytes(value).hex())
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def _word(word: str, typ: str) -> Any:
    """One 32-byte ABI word (64 hex digits) of a static type."""
    if typ == "address":
        return _checksum(word[24:])
    if typ.startswith("uint"):
        return int(word, 16)
    if typ.startswith("int"):
        value = int(word, 16)
        return value - (1 << 256) if value >> 255 else value
    if typ == "bool":
        return int(word, 16) != 0
    if typ.startswith("bytes") and typ != "bytes":
        return "0x" + word[: 2 * int(typ[5:])]
    return "0x" + word  # an indexed dynamic value (string, bytes, array): the topic is its hash


def _is_static(typ: str) -> bool:
    """One ABI word in place (no arrays, strings or bytes)."""
    if typ.endswith("]"):
        return False
    return typ in ("address", "bool") or typ.startswith(("uint", "int")) or (typ.startswith("bytes") and typ != "bytes")


@dataclass(frozen=True)
class _Layout:
    name: str
    names: tuple[str, ...]  # every argument, in ABI order
    indexed: tuple[tuple[str, str], ...]  # (name, type) from topics[1:]
    data: tuple[tuple[str, str], ...]  # (name, type) from the data field
    static: bool  # data is all one-word values: slice it instead of calling eth_abi


class EventDecoder:
    """Decodes raw JSON-RPC logs (hex strings, as eth_getLogs returns them) by topic.

    web3's own log decoding costs about 2 ms per log (formatters, normalisers); a year
    of a city's redemptions is tens of thousands of logs, so this decoder reads the
    static words directly and calls eth_abi only for strings and arrays.
    """

    def __init__(self, abi: Sequence[dict[str, Any]]):
        self._by_topic: dict[str, _Layout] = {}
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            topic = "0x" + bytes(event_abi_to_log_topic(item)).hex()
            inputs = item["inputs"]
            data = tuple((i["name"], i["type"]) for i in inputs if not i.get("indexed"))
            self._by_topic[topic] = _Layout(
                name=item["name"],
                names=tuple(i["name"] for i in inputs),
                indexed=tuple((i["name"], i["type"]) for i in inputs if i.get("indexed")),
                data=data,
                static=all(_is_static(t) for _, t in data),
            )

    def topics(self, names: Iterable[str] | None = None) -> list[str]:
        """topic0 of every event (of `names`), for an eth_getLogs topic filter."""
        wanted = None if names is None else set(names)
        return [t for t, layout in self._by_topic.items() if wanted is None or layout.name in wanted]

    def decode(self, log: dict[str, Any], timestamp: int) -> EventRecord | None:
        """The record for a raw log, or None if it is not one of the ABI's events."""
        topics = log.get("topics") or []
        layout = self._by_topic.get(topics[0].lower()) if topics else None
        if layout is None:
            return None
        where = f"{layout.name} at block {int(log['blockNumber'], 16)} log {int(log['logIndex'], 16)}"
        if len(topics) != len(layout.indexed) + 1:
            raise EventFetchError(f"cannot decode {where}: {len(topics) - 1} indexed values, the ABI has {len(layout.indexed)}")
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(layout.indexed, topics[1:]):
            args[name] = _word(topic[2:].rjust(64, "0"), typ)
        data = log.get("data", "0x")[2:]
        try:
            if layout.static:
                if len(data) < 64 * len(layout.data):
                    raise ValueError(f"{len(data) // 2} bytes of data, expected {32 * len(layout.data)}")
                for i, (name, typ) in enumerate(layout.data):
                    args[name] = _word(data[64 * i : 64 * i + 64], typ)
            else:
                values = abi_decode([t for _, t in layout.data], bytes.fromhex(data))
                for (name, typ), value in zip(layout.data, values):
                    args[name] = _plain(value, typ)
        except Exception as exc:  # a log that matches a topic but not its layout
            raise EventFetchError(f"cannot decode {where}: {exc}") from exc
        return EventRecord(
            block=int(log["blockNumber"], 16),
            timestamp=timestamp,
            tx_hash=log["transactionHash"],
            tx_index=int(log["transactionIndex"], 16),
            log_index=int(log["logIndex"], 16),
            name=layout.name,
            args={name: args[name] for name in layout.names},
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


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    """One raw JSON-RPC call (no web3 result formatters: logs stay plain hex dicts)."""
    answer = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in answer:
        error = answer["error"]
        raise EventFetchError(f"{method} failed: {error.get('message', error) if isinstance(error, dict) else error}")
    return answer["result"]


def _block_timestamps(w3: Web3, blocks: set[int]) -> dict[int, int]:
    """Timestamps of `blocks`, for nodes whose logs lack `blockTimestamp` (one call each)."""
    return {n: int(_rpc(w3, "eth_getBlockByNumber", [hex(n), False])["timestamp"], 16) for n in sorted(blocks)}


_range_limits: dict[str, int] = {}  # endpoint -> the block range per eth_getLogs that it took after refusing more


def iter_log_chunks(
    w3: Web3, address: str, start: int, end: int, chunk: int, topics: Sequence[str] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Raw logs of `address` in [start, end], `chunk` blocks per call; halves the range if
    the node refuses a large one (many public RPCs cap the range or the results per call)
    and remembers, per endpoint, the range it then took, so later reads start there. A
    refusal of anything else (rate limits, a lost connection) is not a range problem: it is
    raised as it is (citypass/rpc_limits.py has waited already)."""
    import requests

    endpoint = str(getattr(w3.provider, "endpoint_uri", ""))
    lo = start
    size = max(1, min(chunk, _range_limits.get(endpoint, chunk)))
    query: dict[str, Any] = {"address": address}
    if topics is not None:
        query["topics"] = [list(topics)]
    while lo <= end:
        hi = min(end, lo + size - 1)
        try:
            logs = _rpc(w3, "eth_getLogs", [{**query, "fromBlock": hex(lo), "toBlock": hex(hi)}])
        except (EventFetchError, requests.HTTPError) as exc:  # the node said no to this range
            if size > 1:
                size = max(1, size // 2)
                _range_limits[endpoint] = size
                continue
            raise EventFetchError(f"eth_getLogs failed for blocks {lo}..{hi}: {exc}") from exc
        yield [log for log in logs if not log.get("removed")]
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
    latest), in chain order. `names` keeps only those event names (filtered by the node)."""
    contract = _contract_of(dep)
    w3: Web3 = contract.w3
    start = deployment_block(dep) if from_block is None else from_block
    end = int(_rpc(w3, "eth_blockNumber", []), 16) if to_block is None else to_block
    decoder = EventDecoder(contract.abi)
    topics = decoder.topics(names) if names is not None else None
    if topics == []:
        raise EventFetchError(f"no CityPass events are named {sorted(set(names or []))}")

    raw: list[dict[str, Any]] = []
    for logs in iter_log_chunks(w3, contract.address, start, end, chunk, topics):
        raw.extend(logs)
    # Nodes that follow the latest spec (Anvil, recent geth) put the block time in each
    # log; for the others, look the blocks up.
    missing = {int(log["blockNumber"], 16) for log in raw if not log.get("blockTimestamp")}
    times = _block_timestamps(w3, missing) if missing else {}

    records = []
    for log in raw:
        ts = log.get("blockTimestamp")
        record = decoder.decode(log, int(ts, 16) if ts else times[int(log["blockNumber"], 16)])
        if record is not None:
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
    refundable: bool = False  # marked refundable at the till (RefundableRedemption follows)


@dataclass(frozen=True)
class Correction(_Move):
    """Unspent credit the issuer took back from a holder (issued in error), with its reference."""

    holder: str
    reference: str


@dataclass(frozen=True)
class IssueSkip:
    """A resident an issuance batch skipped (its address refused the credit)."""

    block: int
    tx_hash: str
    batch_id: str
    holder: str
    amount: int


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
    corrections: list[Correction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    issue_skipped: list[IssueSkip] = field(default_factory=list)
    provider_names: dict[str, str] = field(default_factory=dict)  # provider -> public name (latest)
    references: dict[str, str] = field(default_factory=dict)  # payment reference hash -> its text
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
            *self.migrations, *self.settlements, *self.reclamations, *self.corrections,
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
    refundable_logs: set[tuple[str, int]] = set()  # Redeemed logs followed by RefundableRedemption
    for tx_hash, tx in by_tx.items():
        joined = [e for e in tx if e.name not in ("SettlementReference", "IssueSkipped")]  # once per call
        for here, after in zip(joined, joined[1:]):
            next_of[(tx_hash, here.log_index)] = after
        for here, after in zip(joined, joined[1:]):
            if here.name == "Redeemed" and after.name == "RefundableRedemption":
                refundable_logs.add((tx_hash, here.log_index))
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
        elif r.name == "ProviderNamed":
            act.provider_names[a["provider"]] = a["name"]
        elif r.name == "SettlementReference":
            act.references[a["paymentReference"]] = _reference_text(a)
        elif r.name == "IssueSkipped":
            act.issue_skipped.append(IssueSkip(r.block, r.tx_hash, a["batchId"], a["holder"], a["amount"]))
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
                refundable = nxt is not None and (r.tx_hash, nxt.log_index) in refundable_logs
                _classify(act, r, nxt, batch, r.tx_hash in reclaim_txs, frm, to, budget, value, refundable)
    return act


def _classify(
    act: Activity, r: EventRecord, nxt: EventRecord | None, batch_id: str | None, reclaim_tx: bool,
    frm: str, to: str, budget: int, value: int, refundable: bool = False,
) -> None:
    """Files one credit move under its kind, by who sent, who received and the log after it."""
    base = dict(block=r.block, timestamp=r.timestamp, tx_hash=r.tx_hash, log_index=r.log_index, budget=budget, amount=value)
    if frm == ZERO_ADDRESS:
        act.issuances.append(Issuance(**base, holder=to, batch_id=batch_id))
    elif to == ZERO_ADDRESS:
        if nxt is not None and nxt.name == "Settled":
            act.settlements.append(Settlement(**base, provider=frm, payment_reference=nxt.args["paymentReference"]))
        elif nxt is not None and nxt.name == "Corrected":
            act.corrections.append(Correction(**base, holder=frm, reference=_reference_text(nxt.args)))
        elif reclaim_tx:
            act.reclamations.append(Reclamation(**base, holder=frm))
        else:
            raise UnexplainedTransfer(f"burn of {value} from {frm} in tx {r.tx_hash} has neither Settled, "
                                      "Corrected nor Reclaimed")
    elif nxt is not None and nxt.name == "Redeemed":
        act.redemptions.append(Redemption(**base, holder=frm, provider=to, nonce=nxt.args["nonce"],
                                          co_payment=nxt.args["coPayment"], refundable=refundable))
    elif nxt is not None and nxt.name == "Refunded":
        act.refunds.append(Refund(**base, provider=frm, holder=to, redemption_nonce=nxt.args["redemptionNonce"]))
    elif frm in act.passes_migrated and to == _current_address(act.passes_migrated, frm):
        # migratePass moves to the next address; migrateBalances to the end of the chain
        act.migrations.append(Migration(**base, old=frm, new=to))
    elif to in act.providers:  # a holder paying with a plain ERC-1155 transfer
        act.redemptions.append(Redemption(**base, holder=frm, provider=to, nonce=None, co_payment=0))
    elif frm in act.providers:  # a provider returning credit with a plain transfer
        act.refunds.append(Refund(**base, provider=frm, holder=to, redemption_nonce=None))
    else:
        raise UnexplainedTransfer(f"transfer of {value} from {frm} to {to} in tx {r.tx_hash} fits no CityPass path")


def _current_address(migrated: dict[str, str], holder: str) -> str:
    """Where a pass lives now, following its migrations so far (as the contract's currentAddress)."""
    seen = {holder}
    while holder in migrated and migrated[holder] not in seen:
        holder = migrated[holder]
        seen.add(holder)
    return holder


def _reference_text(args: dict[str, Any]) -> str:
    """The text argument of SettlementReference / Corrected (`referenceText` in the ABI:
    `reference` is a reserved word in Solidity)."""
    return args["referenceText"] if "referenceText" in args else args["reference"]


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
        elif isinstance(m, Reclamation | Correction):
            bal[(m.budget, m.holder)] -= m.amount
    return dict(bal)


__all__ = [
    "Activity", "BudgetInfo", "Correction", "EventDecoder", "EventFetchError", "EventRecord", "IssueSkip",
    "Issuance", "Migration",
    "Reclamation", "Redemption", "Refund", "Settlement", "Skipped", "UnexplainedTransfer", "activity",
    "balances", "deployment_block", "fetch_events", "holders_of", "iter_log_chunks",
]
