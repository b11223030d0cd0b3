"""Exactly-once issuance of credit from a CSV file.

The file format is strict on purpose: a mistake in an issuance file is money sent to the
wrong pass, so nothing is guessed and every bad line is reported before anything is sent.

    holder,amount
    0x5B38Da6a701c568545dCfcB03FcB875f56beddC4,100.00
    0xAb8483F64d9C6d1EcF9b849Ae677dD3315835cb2,25

- UTF-8 text (a leading byte-order mark is allowed), lines end in LF or CRLF.
- Line 1 is exactly `holder,amount`. No comments, no empty lines, no quotes, no spaces;
  only empty rows at the end (blank or bare commas, as spreadsheets write them) are ignored.
- `holder`: an address in its EIP-55 checksummed form. An all-lower/upper-case address is
  refused too (it carries no checksum, so a typo would go unnoticed); the error shows the
  checksummed form to copy from the municipality's own records.
- `amount`: euros, a dot for decimals, at most 2 decimals, more than 0 (`25`, `12.5`, `12.50`).
- Each holder at most once per file; at most MAX_ROWS rows.

Batches: the rows, sorted by holder address (so the order of the file does not matter: a
re-export of the same list in another order is the same issuance), are cut into batches of a
fixed size (from the block gas limit, see `batch_size_for`; only the sizes of BATCH_LADDER).
Batch i has the base id

    keccak256(abi.encode("CityPass issuance v1", chainId, contract, budget, tranche, i, holders, amounts))

and is sent as transactions with ids keccak256(baseId ++ "credit") (`issue`, for holders who
already have an active pass), keccak256(baseId ++ "enrol") (`enrollAndIssue`, for new
residents) and, only after interrupted runs, keccak256(baseId ++ "credit-k"). The chain
refuses a used id; a run reads, from the mint events of the batch's used ids, who was
credited already and sends only the rest. So a re-run, or a run after a crash, credits
nobody twice. The same rows for the same budget are the same issuance; a second tranche to
the same residents needs a `tranche` label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from citypass.address import eip55
from citypass.errors import CityPassError, date_text, euros
from citypass.money import cents_from_text

HEADER = "holder,amount"
MAX_ROWS = 100_000
MAX_PROBLEMS_SHOWN = 50
ID_DOMAIN = "CityPass issuance v1"

# Gas per row, measured on the contract (tests/test_csv_issuance.py checks they still hold):
# a new resident costs a pass slot, a ledger slot and two events; a credit only the ledger.
ENROL_ROW_GAS = 56_000
CREDIT_ROW_GAS = 34_000
BATCH_BASE_GAS = 60_000  # transaction, batch id, budget totals, BatchIssued
FOLLOWUP_IDS = 3  # follow-up credit transactions a batch may need after interrupted runs
BLOCK_SHARE = 0.4  # a batch takes at most this share of a block, so it is mined promptly
# Batch sizes are taken from this ladder, so a small drift of the block gas limit does not
# change the batches (and so the ids) of a file between two runs.
BATCH_LADDER = (2, 3, 5, 10, 25, 50, 100, 200, 400, 800, 1600)
# Only ladder sizes are accepted (also with --batch-size): a file's batch ids depend on the
# size, so a re-run must be able to find an earlier run of any size by probing the ladder.

PASS_NONE, PASS_ACTIVE, PASS_SUSPENDED, PASS_REVOKED, PASS_MIGRATED, PASS_PROVIDER = range(6)

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


# ---------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class Problem:
    """One reason the file cannot be issued. `line` is None for problems of the whole file."""

    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}: {self.reason}"


class IssuanceFileError(CityPassError):
    """The file (or the budget or passes it names) cannot be issued; nothing was sent."""

    def __init__(self, path: str | Path, problems: Sequence[Problem]):
        self.path = str(path)
        self.problems = list(problems)
        shown = [f"  {p}" for p in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"  ... and {len(self.problems) - MAX_PROBLEMS_SHOWN} more")
        count = len(self.problems)
        super().__init__(
            f"{self.path}: {count} problem{'s' if count != 1 else ''}, nothing was sent:\n" + "\n".join(shown)
        )


# ---------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Row:
    line: int
    holder: str  # checksummed
    amount: int  # euro cents


def parse_amount(text: str) -> int:
    """'12.5' -> 1250 cents; ValueError with the reason otherwise (see money.cents_from_text)."""
    cents = cents_from_text(text)
    if cents <= 0:
        raise ValueError("must be more than 0")
    return cents


def _check_holder(text: str) -> str:
    """The checksummed address, or ValueError saying how to fix it."""
    if not _HEX_ADDRESS.match(text):
        raise ValueError(_why_not_an_address(text))
    if int(text, 16) == 0:
        raise ValueError("the zero address cannot hold a pass")
    checksummed = eip55(text)
    if text == checksummed:  # checked first: a valid checksum may make every letter upper case
        return text
    body = text[2:]
    if body == body.lower() or body == body.upper():
        raise ValueError(
            f"{text} has no EIP-55 checksum (all one case), so a typo would go unnoticed; "
            f"write it checksummed, as the source records give it: {checksummed}"
        )
    raise ValueError(f"{text}: the EIP-55 checksum does not match, so the address has a typo; check it against the source")


def _why_not_an_address(text: str) -> str:
    shown = repr(text) if len(text) <= 60 else f"{text[:60]!r}... ({len(text):,} characters)"
    odd = next((c for c in text if not c.isascii()), None)
    if odd is not None:
        return (f"{shown} is not an Ethereum address: it contains {odd!r} (U+{ord(odd):04X}), which is not a hex "
                "digit; copy the address again from the source records")
    if "." in text and not text.lower().startswith("0x"):
        return (f"{shown} looks like an ENS name: names are not accepted (what they point to can change); "
                "write the 0x address it stands for")
    return f"{shown} is not an Ethereum address (0x followed by 40 hex digits)"


def parse(path: str | Path) -> tuple[list[Row], list[Problem]]:
    """Every well-formed row and every problem of the file (see the module docstring)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return [], [Problem(None, "file", f"cannot read it: {exc.strerror or exc}")]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return [], [Problem(None, "file", "is UTF-16 text (spreadsheets call it 'Unicode text'); save it as 'CSV UTF-8'")]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        return [], [Problem(None, "file", f"is empty; line 1 must be the header {HEADER!r}")]
    if b"\r" in data and b"\n" not in data:
        return [], [Problem(None, "file", "its lines end in CR only (old Mac style); save it with LF or CRLF line endings")]
    raw_lines = data.split(b"\n")
    # Spreadsheets end a file with a newline, and often with empty rows (written as blank
    # lines or as bare commas): nothing to issue there, so they are dropped at the end only.
    while raw_lines and not raw_lines[-1].replace(b",", b"").strip():
        raw_lines.pop()

    rows: list[Row] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(number, "line", f"not UTF-8 text (byte 0x{raw[exc.start]:02X} at column {exc.start + 1}); save the file as UTF-8"))
            continue
        if number == 1:
            if text != HEADER:
                problems.append(Problem(1, "header", f"expected exactly {HEADER!r}, found {text[:60]!r}{_header_hint(text)}"))
            continue
        problem = _parse_row(number, text, rows, first_line_of)
        if problem is not None:
            problems.append(problem)
    if len(raw_lines) == 1 and not problems:
        problems.append(Problem(None, "file", "has a header but no rows"))
    if len(raw_lines) - 1 > MAX_ROWS:
        problems.append(Problem(None, "file", f"has {len(raw_lines) - 1} rows, more than the maximum of {MAX_ROWS}; split it"))
    return rows, problems


def _header_hint(first_line: str) -> str:
    if first_line.lower().startswith("0x"):
        return f" (the header line is missing: add {HEADER!r} above the first row)"
    if ";" in first_line:
        return " (separate the fields with a comma, not ';')"
    return ""


_DECIMAL_COMMA = re.compile(r"[0-9.]+,[0-9]{1,2}")


def _parse_row(number: int, text: str, rows: list[Row], first_line_of: dict[str, int]) -> Problem | None:
    if not text.strip():
        return Problem(number, "line", "is empty; remove it")
    if text.lstrip().startswith("#"):
        return Problem(number, "line", "comments are not allowed; remove the line")
    if '"' in text or "'" in text:
        return Problem(number, "line", "quotes are not allowed; write holder,amount without quotes")
    fields = text.split(",")
    if ";" in text:
        found = f"found {len(fields)}" if len(fields) != 2 else "found ';' in it"
        return Problem(number, "line", f"expected 2 fields (holder,amount), {found} (separated by ';'? use a comma)")
    # Duplicates are found by address, whatever its spelling: a second line for the same
    # resident is the mistake to report, even when it is also written without a checksum.
    if _HEX_ADDRESS.match(fields[0]):
        first = first_line_of.setdefault(fields[0].lower(), number)
        if first != number:
            checksummed = eip55(fields[0])
            spelling = "" if fields[0] == checksummed else " (here not in its EIP-55 checksummed form)"
            return Problem(number, "holder", f"{checksummed} is already on line {first}{spelling}; "
                                             "list each resident once (add the amounts up)")
    if len(fields) == 3 and _DECIMAL_COMMA.fullmatch(",".join(fields[1:])):
        amount = ",".join(fields[1:])
        return Problem(number, "amount", f"{amount!r} has a decimal comma: write it with a dot for decimals and "
                                         "no thousands separator (12.50, 1000.50)")
    if len(fields) != 2:
        return Problem(number, "line", f"expected 2 fields (holder,amount), found {len(fields)}")
    for name, value in zip(("holder", "amount"), fields):
        if value != value.strip():
            return Problem(number, name, f"{value!r} has spaces around it; remove them")
        if not value:
            return Problem(number, name, "is empty")
    try:
        holder = _check_holder(fields[0])
    except ValueError as exc:
        return Problem(number, "holder", str(exc))
    try:
        amount = parse_amount(fields[1])
    except ValueError as exc:
        return Problem(number, "amount", str(exc))
    rows.append(Row(number, holder, amount))
    return None


# ---------------------------------------------------------------------------- batches
def batch_size_for(block_gas_limit: int, max_per_batch: int) -> int:
    """The largest ladder size whose worst case (all new residents) fits BLOCK_SHARE of a block."""
    budget = block_gas_limit * BLOCK_SHARE - BATCH_BASE_GAS
    fitting = [n for n in BATCH_LADDER if n * ENROL_ROW_GAS <= budget and n <= max_per_batch and n >= 10]
    if not fitting:
        raise CityPassError(f"the block gas limit {block_gas_limit:,} is too small for an issuance batch of 10 rows")
    return fitting[-1]


def base_batch_id(chain_id: int, contract: str, budget: int, tranche: str, index: int, rows: Sequence[Row]) -> bytes:
    return keccak(
        abi_encode(
            ["string", "uint256", "address", "uint256", "string", "uint256", "address[]", "uint256[]"],
            [ID_DOMAIN, chain_id, to_checksum_address(contract), budget, tranche, index,
             [r.holder for r in rows], [r.amount for r in rows]],
        )
    )


def sub_batch_id(base: bytes, kind: str) -> bytes:
    return keccak(base + kind.encode())


@dataclass(frozen=True)
class Batch:
    index: int
    base_id: bytes
    rows: tuple[Row, ...]

    @property
    def credit_id(self) -> bytes:
        return sub_batch_id(self.base_id, "credit")

    @property
    def enrol_id(self) -> bytes:
        return sub_batch_id(self.base_id, "enrol")

    @property
    def followup_ids(self) -> tuple[bytes, ...]:
        """Ids for crediting holders a re-run finds active but not yet credited by this
        batch (e.g. enrolled elsewhere after a run stopped between its two transactions)."""
        return tuple(sub_batch_id(self.base_id, f"credit-{k}") for k in range(1, FOLLOWUP_IDS + 1))

    @property
    def ids(self) -> tuple[bytes, ...]:
        return (self.credit_id, self.enrol_id, *self.followup_ids)

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows)


def cut_batches(rows: Sequence[Row], size: int, *, chain_id: int, contract: str, budget: int, tranche: str = "") -> list[Batch]:
    """The file's rows sorted by holder, `size` per batch, with their content-derived ids."""
    rows = sorted(rows, key=lambda r: r.holder.lower())
    batches = []
    for index, start in enumerate(range(0, len(rows), size)):
        part = tuple(rows[start : start + size])
        batches.append(Batch(index, base_batch_id(chain_id, contract, budget, tranche, index, part), part))
    return batches


# ---------------------------------------------------------------------------- chain facts
@dataclass(frozen=True)
class BudgetState:
    """What validation needs to know about the budget (cap 0 = no such budget)."""

    id: int
    cap: int
    issued: int

    @property
    def valid_until(self) -> int:
        return self.id & ((1 << 40) - 1)


@dataclass(frozen=True)
class PassState:
    status: int
    valid_until: int


@dataclass(frozen=True)
class ChainState:
    """The chain as the plan sees it: ids, clock, limits, passes of the file's holders and
    which of its batch ids were used."""

    chain_id: int
    contract: str
    now: int
    block_gas_limit: int
    max_per_batch: int
    passes: Mapping[str, PassState]
    used_ids: frozenset[bytes]
    migrated_to: Mapping[str, str] = field(default_factory=dict)
    # Holders credited by each used batch id (from that transaction's mint events); a re-run
    # credits exactly the rows not in them.
    credited_by: Mapping[bytes, frozenset[str]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Send:
    """One transaction of the plan: `issue` (kind "credit") or `enrollAndIssue` ("enrol")."""

    batch: int
    kind: str
    batch_id: bytes
    rows: tuple[Row, ...]

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows)

    @property
    def gas_estimate(self) -> int:
        per_row = ENROL_ROW_GAS if self.kind == "enrol" else CREDIT_ROW_GAS
        return BATCH_BASE_GAS + per_row * len(self.rows)


@dataclass(frozen=True)
class Plan:
    path: str
    budget: int
    tranche: str
    batch_size: int
    pass_valid_until: int  # validity of passes enrolled by this file
    rows: tuple[Row, ...]
    batches: tuple[Batch, ...]
    sends: tuple[Send, ...]  # what is still to be sent, in order
    done_batches: tuple[int, ...]  # batch indexes already issued in full
    budget_cap: int
    budget_issued: int

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows)

    @property
    def to_send_total(self) -> int:
        return sum(s.total for s in self.sends)

    @property
    def to_send_rows(self) -> int:
        return sum(len(s.rows) for s in self.sends)

    @property
    def new_residents(self) -> int:
        return sum(len(s.rows) for s in self.sends if s.kind == "enrol")

    @property
    def gas_estimate(self) -> int:
        return sum(s.gas_estimate for s in self.sends)

    @property
    def all_ids(self) -> list[bytes]:
        return [i for b in self.batches for i in b.ids]


def validate(
    path: str | Path,
    budget: BudgetState,
    state: ChainState,
    *,
    pass_valid_until: int | None = None,
    tranche: str = "",
    batch_size: int | None = None,
    parsed: tuple[list[Row], list[Problem]] | None = None,
) -> Plan:
    """The plan for issuing `path` to `budget`, or IssuanceFileError listing every problem:
    bad lines, unknown or closed budget, cap, and passes that cannot be credited.
    `parsed`: what parse(path) gave, when the caller read the file already."""
    rows, problems = parsed if parsed is not None else parse(path)
    # Credit sent to the contract itself would be stuck there (it is no pass holder).
    contract = to_checksum_address(state.contract)
    problems += [Problem(r.line, "holder", f"{r.holder} is the CityPass contract's own address, not a resident's")
                 for r in rows if r.holder == contract]
    size = batch_size or batch_size_for(state.block_gas_limit, state.max_per_batch)
    if size > state.max_per_batch:
        problems.append(Problem(None, "batch size", f"{size} is above the contract's maximum of {state.max_per_batch}"))
    batches = cut_batches(rows, size, chain_id=state.chain_id, contract=state.contract, budget=budget.id, tranche=tranche)
    valid_until = budget.valid_until if pass_valid_until is None else pass_valid_until

    sends: list[Send] = []
    done: list[int] = []
    for batch in batches:
        used = [i for i in batch.ids if i in state.used_ids]
        credited = frozenset().union(*(state.credited_by.get(i, frozenset()) for i in used))
        credit_rows: list[Row] = []
        enrol_rows: list[Row] = []
        for row in batch.rows:
            if row.holder in credited:
                continue  # this batch credited it in an earlier run
            p = state.passes.get(row.holder, PassState(PASS_NONE, 0))
            if p.status == PASS_NONE:
                enrol_rows.append(row)
            else:
                problem = _pass_problem(row, p, state)
                if problem:
                    problems.append(problem)
                else:
                    credit_rows.append(row)
        if credit_rows:
            free = [i for i in (batch.credit_id, *batch.followup_ids) if i not in state.used_ids]
            if not free:
                problems.append(Problem(None, "batch", f"batch {batch.index} was interrupted more than "
                                        f"{FOLLOWUP_IDS} times; issue its remaining rows as a new --tranche"))
            else:
                sends.append(Send(batch.index, "credit", free[0], tuple(credit_rows)))
        if enrol_rows:
            if batch.enrol_id in state.used_ids:
                problems += [Problem(r.line, "holder", f"{r.holder} has no pass, but this batch's enrolment was "
                                     "already sent without it") for r in enrol_rows]
            else:
                sends.append(Send(batch.index, "enrol", batch.enrol_id, tuple(enrol_rows)))
        if not credit_rows and not enrol_rows:
            done.append(batch.index)

    to_send = sum(s.total for s in sends)
    if sends and budget.cap:  # a row that alone exceeds what is left is that row's fault
        left = max(budget.cap - budget.issued, 0)
        problems += [Problem(r.line, "amount", f"{euros(r.amount)} alone is more than the {euros(left)} left under "
                                               f"the budget's cap of {euros(budget.cap)}")
                     for s in sends for r in s.rows if r.amount > left]
    if sends:  # an issuance that is complete stays reportable after the budget closed
        budget_problems = _budget_problems(budget, state, to_send)
        problems += budget_problems
        if any(s.kind == "enrol" for s in sends) and valid_until < state.now and not budget_problems:
            problems.append(Problem(None, "pass validity", f"new passes would be valid until {date_text(valid_until)}, which is in the past"))
    if problems:
        raise IssuanceFileError(path, sorted(problems, key=lambda p: (p.line or 0)))
    return Plan(
        path=str(path), budget=budget.id, tranche=tranche, batch_size=size, pass_valid_until=valid_until,
        rows=tuple(rows), batches=tuple(batches), sends=tuple(sends), done_batches=tuple(done),
        budget_cap=budget.cap, budget_issued=budget.issued,
    )


def _pass_problem(row: Row, p: PassState, state: ChainState) -> Problem | None:
    if p.status == PASS_ACTIVE:
        if p.valid_until < state.now:
            return Problem(row.line, "holder", f"the pass of {row.holder} expired on {date_text(p.valid_until)}; renew it first")
        return None
    reason = {
        PASS_SUSPENDED: "is suspended; reinstate it or remove the line",
        PASS_REVOKED: "is revoked; remove the line",
        PASS_MIGRATED: f"moved to a new address ({state.migrated_to.get(row.holder, 'see `citypass pass show`')}); put that address in the file",
    }.get(p.status)
    if reason:
        return Problem(row.line, "holder", f"the pass of {row.holder} {reason}")
    if p.status == PASS_PROVIDER:
        return Problem(row.line, "holder", f"{row.holder} is a registered provider, not a pass holder")
    return Problem(row.line, "holder", f"{row.holder} has an unknown pass status {p.status}")


def _budget_problems(budget: BudgetState, state: ChainState, to_send: int) -> list[Problem]:
    if budget.cap == 0:
        return [Problem(None, "budget", f"{budget.id} does not exist on this contract (see `citypass budget list`)")]
    problems = []
    if state.now > budget.valid_until:
        problems.append(Problem(None, "budget", f"ended on {date_text(budget.valid_until)}; no more credit can be issued"))
    if budget.issued + to_send > budget.cap:
        problems.append(Problem(
            None, "budget",
            f"issuing {euros(to_send)} would bring it to {euros(budget.issued + to_send)}, above its cap of "
            f"{euros(budget.cap)} ({euros(budget.cap - budget.issued)} left)",
        ))
    return problems


# ---------------------------------------------------------------------------- on the chain
def read_budget(dep: Any, budget: int) -> BudgetState:
    cap, issued, _settled, _reclaimed = dep.contract.functions.budgetTotals(budget).call()
    return BudgetState(budget, int(cap), int(issued))


def read_state(dep: Any, rows: Sequence[Row], ids: Sequence[bytes]) -> ChainState:
    """Passes of the file's holders and the use of its batch ids, in JSON-RPC batches."""
    chain = dep.chain
    holders = [r.holder for r in rows]
    passes = call_many(dep, "passOf", [(h,) for h in holders])
    used = call_many(dep, "batchIssued", [(i,) for i in ids])
    moved = [h for h, (status, _) in zip(holders, passes) if status == PASS_MIGRATED]
    targets = call_many(dep, "migratedTo", [(h,) for h in moved])
    block = chain.w3.eth.get_block("latest")
    return ChainState(
        chain_id=chain.chain_id,
        contract=dep.address,
        now=int(block["timestamp"]),
        block_gas_limit=int(block["gasLimit"]),
        max_per_batch=int(dep.contract.functions.MAX_PASSES_PER_BATCH().call()),
        passes={h: PassState(int(s), int(v)) for h, (s, v) in zip(holders, passes)},
        used_ids=frozenset(i for i, u in zip(ids, used) if u[0]),
        migrated_to={h: to_checksum_address(t[0]) for h, t in zip(moved, targets)},
    )


def call_many(dep: Any, name: str, arg_lists: Sequence[tuple], chunk: int = 500) -> list[tuple]:
    """A view function of the deployment called with many argument tuples (see tx.call_many)."""
    from citypass.tx import call_many as _call_many

    return _call_many(dep.chain, dep.contract, name, arg_lists, chunk)


def plan_issuance(
    dep: Any, path: str | Path, budget: int, *, pass_valid_until: int | None = None, tranche: str = "",
    batch_size: int | None = None,
) -> Plan:
    """Reads the file and the chain and returns the plan (or IssuanceFileError with every problem)."""
    parsed = parse(path)
    rows = parsed[0]
    state = read_state(dep, rows, [])
    if batch_size is not None and batch_size not in BATCH_LADDER:
        raise CityPassError(f"--batch-size must be one of {', '.join(map(str, BATCH_LADDER))}, not {batch_size}")
    size = batch_size or batch_size_for(state.block_gas_limit, state.max_per_batch)
    _check_other_sizes(dep, rows, size, state, budget, tranche)
    batches = cut_batches(rows, size, chain_id=state.chain_id, contract=dep.address, budget=budget, tranche=tranche)
    ids = [i for b in batches for i in b.ids]
    used = call_many(dep, "batchIssued", [(i,) for i in ids])
    used_ids = frozenset(i for i, u in zip(ids, used) if u[0])
    state = ChainState(**{**state.__dict__, "used_ids": used_ids, "credited_by": credited_by(dep, used_ids)})
    return validate(path, read_budget(dep, budget), state, pass_valid_until=pass_valid_until, tranche=tranche,
                    batch_size=size, parsed=parsed)


def credited_by(dep: Any, batch_ids: frozenset[bytes] | set[bytes]) -> dict[bytes, frozenset[str]]:
    """For each used batch id, the holders its transaction credited: the recipients of the
    mint events in the transaction whose BatchIssued carries that id."""
    if not batch_ids:
        return {}
    chain, contract = dep.chain, dep.contract
    topic = "0x" + keccak(text="BatchIssued(bytes32,uint256,uint256,uint256)").hex()
    mint = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()
    zero = "0x" + "00" * 32
    logs = chain.rpc("eth_getLogs", [{
        "address": dep.address, "fromBlock": hex(getattr(dep, "block", 0) or 0), "toBlock": "latest",
        "topics": [topic, ["0x" + i.hex() for i in batch_ids]],
    }])
    txs = {log["transactionHash"]: bytes.fromhex(log["topics"][1][2:]) for log in logs}
    receipts = chain.rpc_batch([("eth_getTransactionReceipt", [h]) for h in txs])
    out: dict[bytes, frozenset[str]] = {}
    for (tx_hash, batch_id), receipt in zip(txs.items(), receipts):
        out[batch_id] = frozenset(
            to_checksum_address("0x" + log["topics"][3][-40:]) for log in receipt["logs"]
            if log["address"].lower() == dep.address.lower() and log["topics"][0] == mint and log["topics"][2] == zero
        )
    missing = set(batch_ids) - set(out)
    if missing:
        raise CityPassError(f"the chain says issuance batch 0x{next(iter(missing)).hex()} was used, but its "
                            "BatchIssued event was not found (a node that prunes logs?): nothing was sent")
    return out


def _check_other_sizes(dep: Any, rows: Sequence[Row], size: int, state: ChainState, budget: int, tranche: str) -> None:
    """A file first issued with another batch size (the block gas limit changed since) has
    other ids: refuse rather than issue it again. Runs send batch 0 first, so its ids tell."""
    # A size that gives the same first batch (a file shorter than both) gives the same ids.
    others = [n for n in BATCH_LADDER if n <= state.max_per_batch and min(n, len(rows)) != min(size, len(rows))]
    probes = []
    ordered = sorted(rows, key=lambda r: r.holder.lower())  # the order cut_batches uses
    for n in others:
        first = cut_batches(ordered[:n], n, chain_id=state.chain_id, contract=dep.address, budget=budget, tranche=tranche)
        if first:
            probes += [(n, i) for i in first[0].ids]
    used = call_many(dep, "batchIssued", [(i,) for _, i in probes])
    for (n, _), (u,) in zip(probes, used):
        if u:
            raise CityPassError(
                f"this file was already (partly) issued in batches of {n} rows, not {size}: "
                f"run again with --batch-size {n} so nothing is issued twice"
            )


@dataclass(frozen=True)
class SendResult:
    send: Send
    tx_hash: str | None  # None: the id was found used just before sending (another run)
    gas_used: int


Sender = Callable[[Any], Any]  # contract call -> receipt


def execute(
    dep: Any, account: Any, plan: Plan, *, sender: Sender | None = None,
    on_sent: Callable[[SendResult], None] | None = None,
) -> list[SendResult]:
    """Sends the plan's transactions in order. Each id is checked just before sending, so
    two runs at once still issue each batch once (the chain refuses a used id anyway); a
    transaction an earlier, killed run left in flight is waited for first, so the checks see it."""
    from citypass.contract import require_role
    from citypass.faults import fault_point
    from citypass.tx import wait_idle

    if plan.sends:
        require_role(dep, "ISSUER", account.address)
        if any(s.kind == "enrol" for s in plan.sends):
            require_role(dep, "REGISTRAR", account.address)
    do_send = sender or (lambda fn: _send_with_access_list(dep.chain, account, fn))
    f = dep.contract.functions
    results = []
    if plan.sends:
        wait_idle(dep.chain, account.address)
    for s in plan.sends:
        fault_point("between-batches")
        holders, amounts = [r.holder for r in s.rows], [r.amount for r in s.rows]
        if f.batchIssued(s.batch_id).call():
            result = SendResult(s, None, 0)
        else:
            fn = (f.issue(s.batch_id, plan.budget, holders, amounts) if s.kind == "credit"
                  else f.enrollAndIssue(s.batch_id, plan.budget, plan.pass_valid_until, holders, amounts))
            receipt = do_send(fn)
            result = SendResult(s, "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["gasUsed"]))
        results.append(result)
        if on_sent:
            on_sent(result)
    return results


def _send_with_access_list(chain: Any, account: Any, fn: Any) -> Any:
    """An access list makes each resident ~300 gas cheaper (see tx.access_list), and the same
    node call gives the gas limit: an issuance batch only mints, so it has no refunds."""
    from citypass.tx import access_list_and_gas, send as tx_send

    found = access_list_and_gas(chain, account.address, fn)
    if found is None:  # the node makes no access lists, or the call would fail: send explains
        return tx_send(chain, account, fn)
    access, gas = found
    return tx_send(chain, account, fn, access_list=access, gas=gas)


# ---------------------------------------------------------------------------- reconciliation
@dataclass(frozen=True)
class Snapshot:
    issued: int  # the budget's issued counter
    balances: int  # sum of the file's holders' balances of the budget


def snapshot(dep: Any, plan: Plan) -> Snapshot:
    holders = [r.holder for r in plan.rows]
    parts = [holders[i:i + 500] for i in range(0, len(holders), 500)]
    answers = call_many(dep, "balanceOfBatch", [(part, [plan.budget] * len(part)) for part in parts], chunk=20)
    return Snapshot(read_budget(dep, plan.budget).issued, sum(sum(values) for (values,) in answers))


@dataclass(frozen=True)
class Reconciliation:
    file_rows: int
    file_total: int
    chain_rows: int  # from the BatchIssued events of this file's ids
    chain_total: int
    chain_batches: int
    sent_rows: int  # in this run
    sent_total: int
    before: Snapshot
    after: Snapshot
    cap: int

    @property
    def checks(self) -> list[tuple[str, bool]]:
        return [
            ("file = BatchIssued events of its batch ids",
             (self.file_rows, self.file_total) == (self.chain_rows, self.chain_total)),
            ("budget issued counter grew by what this run sent", self.after.issued - self.before.issued == self.sent_total),
            ("the file's holders' balances grew by what this run sent",
             self.after.balances - self.before.balances == self.sent_total),
        ]

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.checks)

    def lines(self) -> list[str]:
        out = [
            f"file:             {self.file_rows} rows, {self.file_rows} residents, {euros(self.file_total)}",
            f"on chain:         {self.chain_rows} residents, {euros(self.chain_total)} in {self.chain_batches} "
            "transactions (BatchIssued of this file's batch ids)",
            f"this run:         {self.sent_rows} residents, {euros(self.sent_total)}"
            + ("" if self.sent_rows else " (all of it was issued before)"),
            f"budget issued:    {euros(self.before.issued)} -> {euros(self.after.issued)} (cap {euros(self.cap)})",
            f"holders' balance: {euros(self.before.balances)} -> {euros(self.after.balances)}",
        ]
        out += [f"{'ok' if ok else 'MISMATCH'}: {name}" for name, ok in self.checks]
        return out


def reconcile(dep: Any, plan: Plan, before: Snapshot, results: Sequence[SendResult]) -> Reconciliation:
    ids = {"0x" + i.hex() for i in plan.all_ids}
    rows = total = count = 0
    for ev in dep.events("BatchIssued", argument_filters={"budget": plan.budget}):
        if "0x" + bytes(ev.args.batchId).hex() in ids:
            rows += int(ev.args["count"])
            total += int(ev.args.total)
            count += 1
    sent = [r for r in results if r.tx_hash]
    return Reconciliation(
        file_rows=len(plan.rows), file_total=plan.total, chain_rows=rows, chain_total=total, chain_batches=count,
        sent_rows=sum(len(r.send.rows) for r in sent), sent_total=sum(r.send.total for r in sent),
        before=before, after=snapshot(dep, plan), cap=read_budget(dep, plan.budget).cap,
    )
