"""The municipality's money side: reclaim expired credit, settle providers, export an audit.

Payment references (settlement): the treasurer's text is normalised (NFC, trimmed, runs of
white space made one space, upper-cased) and sent as text; the chain keys it by
keccak256(UTF-8 bytes) and logs the text once per settlement (`SettlementReference`), so an
auditor can check every hash against the text the treasurer typed:

    reference_hash(text) = keccak256(normalize_reference(text))

so " inv-2026 0001" and "INV-2026  0001" are the same reference and cannot both be paid.
The chain refuses a reference twice; `settle` checks first and names the earlier payment.

Corrections: the issuer takes back unspent credit issued in error (`correct`), with a
reason reference kept in the `Corrected` event; counted apart in the totals (issued = held +
settled + reclaimed + corrected).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

from eth_utils import keccak, to_checksum_address

from citypass import budget_id
from citypass.errors import CityPassError, date_text, euros

RECLAIM_BATCH = 500  # holders per reclaim transaction (~8k gas each: ~4M gas)


def _serial(budget: int) -> str:
    return f"#{budget_id.decode(budget).serial}"


# ---------------------------------------------------------------------------- reclaim
@dataclass(frozen=True)
class ReclaimResult:
    budget: int
    candidates: int  # addresses that ever received this budget's credit (providers excluded)
    holders: int  # of them with credit left, now reclaimed
    total: int  # cents burned by this run
    tx_hashes: tuple[str, ...]


def reclaim_candidates(dep: Any, budget: int) -> list[str]:
    """Every non-provider address that ever received credit of `budget` (issuance, refund,
    migration), from the events: the contract keeps no list of holders."""
    from citypass.events import activity, fetch_events, holders_of

    providers = {to_checksum_address(p) for p in dep.contract.functions.providers().call()}
    return [h for h in holders_of(activity(fetch_events(dep)), budget) if to_checksum_address(h) not in providers]


def reclaim(
    dep: Any, account: Any, budget: int, batch_size: int = RECLAIM_BATCH,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReclaimResult:
    """Burns the credit residents left in `budget` after it ended, `batch_size` holders per
    transaction. Idempotent: holders with nothing left are not sent again."""
    from citypass.contract import require_role
    from citypass.issuance import call_many
    from citypass.tx import send

    f = dep.contract.functions
    if int(f.budgetTotals(budget).call()[0]) == 0:
        raise CityPassError(f"budget {budget} does not exist on this contract")
    until = budget_id.decode(budget).valid_until
    if dep.chain.now() <= until:
        raise CityPassError(f"budget {_serial(budget)} runs until {date_text(until)}; its credit can be reclaimed after that")
    require_role(dep, "BUDGET_MANAGER", account.address)
    candidates = reclaim_candidates(dep, budget)
    balances = [int(b) for (b,) in call_many(dep, "balanceOf", [(h, budget) for h in candidates])]
    left = [(h, b) for h, b in zip(candidates, balances) if b]
    hashes = []
    done = 0
    if on_progress:
        on_progress(0, len(left))
    for start in range(0, len(left), batch_size):
        part = left[start : start + batch_size]
        receipt = send(dep.chain, account, f.reclaim(budget, [h for h, _ in part]))
        hashes.append("0x" + bytes(receipt["transactionHash"]).hex())
        done += len(part)
        if on_progress:
            on_progress(done, len(left))
    return ReclaimResult(budget, len(candidates), len(left), sum(b for _, b in left), tuple(hashes))


# ---------------------------------------------------------------------------- settle
def normalize_reference(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text).strip()).upper()


def reference_hash(text: str) -> bytes:
    """The bytes32 a payment reference is stored under (rule in the module docstring)."""
    norm = normalize_reference(text)
    if not norm:
        raise CityPassError("the payment reference is empty")
    return keccak(norm.encode("utf-8"))


@dataclass(frozen=True)
class SettleResult:
    provider: str
    reference: str  # normalized text
    reference_hash: str
    amounts: tuple[tuple[int, int], ...]  # (budget id, cents)
    tx_hash: str

    @property
    def total(self) -> int:
        return sum(a for _, a in self.amounts)


def settle(dep: Any, account: Any, provider: str, reference: str, budgets: Sequence[int] | None = None) -> SettleResult:
    """Records that the municipality paid `provider` what it holds now (of `budgets`, default
    all), under `reference`: burns that credit; the reference can never be used again."""
    from citypass.contract import require_role
    from citypass.redemption import balance
    from citypass.tx import send, wait_idle

    provider = to_checksum_address(provider)
    f = dep.contract.functions
    ref = reference_hash(reference)
    wait_idle(dep.chain, account.address)  # a settlement an earlier, killed run left in flight counts
    if f.referenceSettled(ref).call():
        raise CityPassError(f"payment reference {normalize_reference(reference)!r} was already used{_earlier(dep, ref)}; nothing was sent")
    if int(f.providerOf(provider).call()[0]) == 0:
        raise CityPassError(f"{provider} is not a registered provider")
    held = balance(dep, provider)
    if budgets is not None:
        wanted = set(budgets)
        held = [b for b in held if b.budget in wanted]
    if not held:
        raise CityPassError(f"provider {provider} holds no credit{' of those budgets' if budgets is not None else ''} to settle")
    require_role(dep, "TREASURER", account.address)
    amounts = tuple((b.budget, b.cents) for b in held)
    receipt = send(dep.chain, account, f.settle(provider, [b for b, _ in amounts], [a for _, a in amounts],
                                                normalize_reference(reference)))
    return SettleResult(provider, normalize_reference(reference), "0x" + ref.hex(), amounts,
                        "0x" + bytes(receipt["transactionHash"]).hex())


def reference_texts(dep: Any) -> dict[str, str]:
    """Payment reference hash (0x-hex) -> the text settled under it, from the chain's
    SettlementReference events; each text is checked against its hash."""
    out = {}
    for e in dep.events("SettlementReference"):
        digest = "0x" + bytes(e.args.paymentReference).hex()
        text = e.args.referenceText if "referenceText" in e.args else e.args.reference
        if "0x" + keccak(text.encode("utf-8")).hex() != digest:
            raise CityPassError(f"SettlementReference in block {e.blockNumber}: the text {text!r} does not hash to {digest}")
        out[digest] = text
    return out


def _earlier(dep: Any, ref: bytes) -> str:
    try:
        events = dep.events("Settled", argument_filters={"paymentReference": ref})
    except Exception:  # the refusal matters, not the detail
        return ""
    if not events:
        return ""
    e = events[0]
    total = sum(int(x.args.amount) for x in events if x.transactionHash == e.transactionHash)
    return f" (provider {e.args.provider} was paid {euros(total)} under it in block {e.blockNumber})"


# ---------------------------------------------------------------------------- correct
MAX_REFERENCE_BYTES = 256  # a correction's reason reference: a case number, not a story


@dataclass(frozen=True)
class CorrectResult:
    holder: str
    budget: int
    amount: int  # cents taken back
    reference: str
    left: int  # cents the holder still has of the budget
    tx_hash: str


def correct(dep: Any, account: Any, holder: str, budget: int, amount: int, reference: str) -> CorrectResult:
    """The issuer takes back `amount` cents of unspent credit of `budget` that was issued to
    `holder` in error, under a reason `reference` (a case number; no personal data). Never
    more than the holder still has; refused while CityPass is paused. Checked before sending."""
    from citypass.contract import require_role
    from citypass.tx import send

    holder = to_checksum_address(holder)
    ref = re.sub(r"\s+", " ", unicodedata.normalize("NFC", reference).strip())
    if not ref:
        raise CityPassError("the correction's reference is empty: give the case number it is made under")
    if len(ref.encode("utf-8")) > MAX_REFERENCE_BYTES:
        raise CityPassError(f"the correction's reference is {len(ref.encode())} bytes; keep it to a case number "
                            f"(at most {MAX_REFERENCE_BYTES})")
    if amount <= 0:
        raise CityPassError(f"amount: must be more than 0 cents, got {amount}")
    f = dep.contract.functions
    if int(f.budgetTotals(budget).call()[0]) == 0:
        raise CityPassError(f"budget {budget} does not exist on this contract")
    if f.paused().call():
        raise CityPassError("CityPass is paused: corrections wait until it runs again")
    have = int(f.balanceOf(holder, budget).call())
    if amount > have:
        raise CityPassError(f"{holder} holds {euros(have)} of budget {_serial(budget)}, less than the "
                            f"{euros(amount)} to take back (only unspent credit can be corrected)")
    require_role(dep, "ISSUER", account.address)
    receipt = send(dep.chain, account, f.correct(holder, budget, amount, ref))
    return CorrectResult(holder, budget, amount, ref, have - amount, "0x" + bytes(receipt["transactionHash"]).hex())


# ---------------------------------------------------------------------------- audit
FIXED_COLUMNS = ["block", "time", "tx_hash", "log_index", "event"]


def audit(dep: Any, out: str | Path | TextIO | None = None) -> int:
    """Writes every CityPass event since deployment as CSV: block, time (UTC), transaction,
    log index, event name, then one column per argument name (empty where an event has no
    such argument) and `args` with all of them as JSON. Returns the number of events."""
    from citypass.events import fetch_events

    records = fetch_events(dep)
    arg_columns: dict[str, None] = {}
    for r in records:
        for k in r.args:
            arg_columns.setdefault(k, None)
    header = FIXED_COLUMNS + [c for c in arg_columns if c not in FIXED_COLUMNS] + ["args"]

    def write(stream: TextIO) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        for r in records:
            args = {k: _cell(v) for k, v in r.args.items()}
            fixed = [r.block, r.time.strftime("%Y-%m-%dT%H:%M:%SZ"), r.tx_hash, r.log_index, r.name]
            writer.writerow(fixed + [args.get(c, "") for c in header[len(FIXED_COLUMNS):-1]] + [json.dumps(args)])

    if out is None or str(out) == "-":
        write(sys.stdout)
    elif isinstance(out, io.TextIOBase):
        write(out)
    else:
        try:
            with open(out, "w", newline="", encoding="utf-8") as stream:
                write(stream)
        except OSError as exc:
            raise CityPassError(f"cannot write {out}: {exc.strerror or exc}") from None
    return len(records)


def _cell(value: Any) -> Any:
    """Big integers (budget ids) as text, so JSON readers and spreadsheets keep every digit."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, list):
        return [_cell(v) for v in value]
    return value
