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
  refused too (it carries no checksum, so a typo would go unnoticed). No error ever shows
  a corrected address: re-casing a mistyped one would make a valid-looking wrong address.
- `amount`: euros, a dot for decimals, at most 2 decimals, more than 0 (`25`, `12.5`, `12.50`).
- Each holder at most once per file; at most MAX_ROWS rows.

Exactly once per (budget, tranche, holder), whatever the file's edits, row order or batch
size. Every batch id of a budget's tranche starts with the same 8-byte tag,

    tag = keccak256(abi.encode("CityPass issuance v2", chainId, contract, budget, tranche))[:8]
    id  = tag ++ keccak256(abi.encode(tag, kind, holders, amounts, before))[:24]

so a run finds the tranche's earlier batches among the budget's BatchIssued events and reads,
in those transactions, what each holder was minted (`read_received`; no local file is
trusted, so a run from another machine or work directory plans the same). Then:

- a holder who already received the line's amount gets nothing (a re-run sends nothing);
- a holder who received a different amount refuses the whole run, each such line listed
  with what the holder already received; nothing is sent. With `top_up` a holder who
  received less gets only the difference. Less is never taken back by issuing: that is the
  contract's correction (`correct(holder, budget, amount, reference)`, ISSUER, contract v2);
- holders removed from the file keep what they have; holders added are credited.

What is left is sent in holder order, `batch_size` rows per batch, as an `issue` transaction
(kind "credit", holders with an active pass) and/or an `enrollAndIssue` ("enrol", new
residents); `before` in its id is what its holders had received in the tranche (0 but for
top-ups). The chain accepts each id once, so the same transaction from the same starting
point is never issued twice, even by two runs of the same file at once. A deliberate second round to the same
residents is a new `tranche` label. Two clerks running *differently* edited files of the same
tranche at the same moment is out of scope (each plans from the chain before the other's
batches land); the README says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from citypass.address import eip55
from citypass.errors import CityPassError, date_text, euros
from citypass.money import parse_euros, plain_euros

if TYPE_CHECKING:
    from citypass.batch_access import EnrolAccess

HEADER = "holder,amount"
MAX_ROWS = 100_000
MAX_PROBLEMS_SHOWN = 50
ID_DOMAIN = "CityPass issuance v2"
TAG_BYTES = 8  # a batch id starts with its (budget, tranche) tag, see tranche_tag

# Gas per row, measured on the contract (tests/test_csv_issuance.py checks they still hold):
# a new resident costs a pass slot, a ledger slot and two events; a credit only the ledger.
ENROL_ROW_GAS = 56_000
CREDIT_ROW_GAS = 34_000
BATCH_BASE_GAS = 60_000  # transaction, batch id, budget totals, BatchIssued
BLOCK_SHARE = 0.4  # a batch takes at most this share of a block, so it is mined promptly
# Default batch sizes are taken from this ladder (round numbers that fit the block). Any size
# works for a re-run: what each holder received is read per holder, not per batch.
BATCH_LADDER = (2, 3, 5, 10, 25, 50, 100, 200, 400, 800, 1600)

PASS_NONE, PASS_ACTIVE, PASS_SUSPENDED, PASS_REVOKED, PASS_MIGRATED, PASS_PROVIDER = range(6)

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


# ---------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class Problem:
    """One reason the file cannot be issued. `line` is None for problems of the whole file.

    `reason` is the sentence the command line prints (English). `code` names the rule that was
    broken, stably, and `args` holds its values (amounts as `*_cents`, dates as `*_date` unix
    seconds), so a page can say the same in the officer's language (the back office's
    strings.js `pr_<code>`). Neither takes part in comparing problems."""

    line: int | None
    field: str
    reason: str
    code: str = dc_field(default="", compare=False)
    args: Mapping[str, Any] = dc_field(default_factory=dict, compare=False)

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
    """'12.5' -> 1250 cents; ValueError with the reason otherwise (money.parse_euros: the rule
    the command line's amounts follow too)."""
    return parse_euros(text)


class _HolderError(ValueError):
    """Why a holder is not an address a pass may have, with the Problem code of that rule."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _check_holder(text: str) -> str:
    """The checksummed address, or ValueError saying how to fix it."""
    if not _HEX_ADDRESS.match(text):
        odd = next((c for c in text if not c.isascii()), None)
        code = ("holder_odd_character" if odd is not None else
                "holder_ens" if "." in text and not text.lower().startswith("0x") else "not_an_address")
        raise _HolderError(_why_not_an_address(text), code)
    if int(text, 16) == 0:
        raise _HolderError("the zero address cannot hold a pass", "zero_address")
    checksummed = eip55(text)
    if text == checksummed:  # checked first: a valid checksum may make every letter upper case
        return text
    body = text[2:]
    if body == body.lower() or body == body.upper():
        raise _HolderError(
            f"{text} has no EIP-55 checksum (all one case), so a typo would go unnoticed; "
            "copy the address again, checksummed, from the municipality's own records", "no_checksum"
        )
    raise _HolderError(f"{text}: the EIP-55 checksum does not match, so the address has a typo; "
                       "copy the address again from the source records", "bad_checksum")


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
        return [], [Problem(None, "file", f"cannot read it: {exc.strerror or exc}", "file_unreadable")]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return [], [Problem(None, "file", "is UTF-16 text (spreadsheets call it 'Unicode text'); save it as 'CSV UTF-8'", "file_utf16")]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        return [], [Problem(None, "file", f"is empty; line 1 must be the header {HEADER!r}", "file_empty")]
    if b"\r" in data and b"\n" not in data:
        return [], [Problem(None, "file", "its lines end in CR only (old Mac style); save it with LF or CRLF line endings", "file_cr_only")]
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
            problems.append(Problem(number, "line", f"not UTF-8 text (byte 0x{raw[exc.start]:02X} at column {exc.start + 1}); save the file as UTF-8",
                                    "line_not_utf8", {"byte": f"0x{raw[exc.start]:02X}", "column": exc.start + 1}))
            continue
        if number == 1:
            if text != HEADER:
                hint = _header_hint(text)
                code = "header_missing" if "missing" in hint else "header_semicolon" if ";" in hint else "bad_header"
                problems.append(Problem(1, "header", f"expected exactly {HEADER!r}, found {text[:60]!r}{hint}", code,
                                        {"found": text[:60]}))
            continue
        problem = _parse_row(number, text, rows, first_line_of)
        if problem is not None:
            problems.append(problem)
    if len(raw_lines) == 1 and not problems:
        problems.append(Problem(None, "file", "has a header but no rows", "no_rows"))
    if len(raw_lines) - 1 > MAX_ROWS:
        problems.append(Problem(None, "file", f"has {len(raw_lines) - 1} rows, more than the maximum of {MAX_ROWS}; split it",
                                "too_many_rows", {"rows": len(raw_lines) - 1, "max": MAX_ROWS}))
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
        return Problem(number, "line", "is empty; remove it", "empty_line")
    if text.lstrip().startswith("#"):
        return Problem(number, "line", "comments are not allowed; remove the line", "comment")
    if '"' in text or "'" in text:
        return Problem(number, "line", "quotes are not allowed; write holder,amount without quotes", "quotes")
    fields = text.split(",")
    if ";" in text:
        found = f"found {len(fields)}" if len(fields) != 2 else "found ';' in it"
        return Problem(number, "line", f"expected 2 fields (holder,amount), {found} (separated by ';'? use a comma)",
                       "semicolon")
    # Duplicates are found by address, whatever its spelling: a second line for the same
    # resident is the mistake to report, even when it is also written without a checksum.
    if _HEX_ADDRESS.match(fields[0]):
        first = first_line_of.setdefault(fields[0].lower(), number)
        if first != number:
            checksummed = eip55(fields[0])
            spelling = "" if fields[0] == checksummed else " (here not in its EIP-55 checksummed form)"
            return Problem(number, "holder", f"{checksummed} is already on line {first}{spelling}; "
                                             "list each resident once (add the amounts up)",
                           "duplicate", {"holder": checksummed, "first": first})
    if len(fields) == 3 and _DECIMAL_COMMA.fullmatch(",".join(fields[1:])):
        amount = ",".join(fields[1:])
        return Problem(number, "amount", f"{amount!r} has a decimal comma: write it with a dot for decimals and "
                                         "no thousands separator (12.50, 1000.50)", "decimal_comma", {"value": amount})
    if len(fields) != 2:
        return Problem(number, "line", f"expected 2 fields (holder,amount), found {len(fields)}", "field_count",
                       {"found": len(fields)})
    for name, value in zip(("holder", "amount"), fields):
        if value != value.strip():
            return Problem(number, name, f"{value!r} has spaces around it; remove them", "spaces", {"value": value})
        if not value:
            return Problem(number, name, "is empty", "empty_field")
    try:
        holder = _check_holder(fields[0])
    except ValueError as exc:
        return Problem(number, "holder", str(exc), getattr(exc, "code", "bad_holder"), {"value": fields[0][:60]})
    try:
        amount = parse_amount(fields[1])
    except ValueError as exc:
        code = "amount_zero" if str(exc) == "must be more than 0" else "bad_amount"
        return Problem(number, "amount", str(exc), code, {"value": fields[1][:40]})
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


def tranche_tag(chain_id: int, contract: str, budget: int, tranche: str) -> bytes:
    """The first TAG_BYTES bytes of every batch id of (budget, tranche) on this contract: how a
    run finds, among the budget's BatchIssued events, what this tranche already credited."""
    return keccak(abi_encode(["string", "uint256", "address", "uint256", "string"],
                             [ID_DOMAIN, chain_id, to_checksum_address(contract), budget, tranche]))[:TAG_BYTES]


def batch_id(tag: bytes, kind: str, rows: Sequence[Row], before: Sequence[int] | None = None) -> bytes:
    """tag ++ the first 24 bytes of keccak256(abi.encode(tag, kind, holders, amounts, before)),
    `before` being what each holder had received in the tranche already (0 unless a top-up):
    the same transaction from the same starting point gets the same id, which the chain
    accepts once, while a top-up that happens to equal an earlier batch is a new one."""
    before = [0] * len(rows) if before is None else list(before)
    digest = keccak(abi_encode(["bytes8", "string", "address[]", "uint256[]", "uint256[]"],
                               [tag, kind, [r.holder for r in rows], [r.amount for r in rows], before]))
    return tag + digest[: 32 - TAG_BYTES]


@dataclass(frozen=True)
class Send:
    """One transaction of the plan: `issue` (kind "credit") or `enrollAndIssue` ("enrol").
    Its rows carry what is sent: the file's amount, or for a top-up only the difference."""

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
class Batch:
    """Rows still to send, `batch_size` at a time, in holder order; one or two Sends."""

    index: int
    rows: tuple[Row, ...]
    sends: tuple[Send, ...]

    @property
    def total(self) -> int:
        return sum(r.amount for r in self.rows)


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
    """The chain as the plan sees it: ids, clock, limits, passes of the file's holders, what
    this budget's tranche already credited (from the chain's own events) and who holds roles."""

    chain_id: int
    contract: str
    now: int
    block_gas_limit: int
    max_per_batch: int
    passes: Mapping[str, PassState]
    used_ids: frozenset[bytes] = frozenset()  # of the ids this plan would send
    migrated_to: Mapping[str, str] = field(default_factory=dict)  # a file holder's migrated pass -> current address
    # Cents each address received from this budget in this tranche (mint events of the
    # tranche's batches; credit that moved with a migrated pass counts for its new address).
    received: Mapping[str, int] = field(default_factory=dict)
    tranche_batches: int = 0  # batch transactions of this tranche found on chain
    role_of: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # municipal roles by holder


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Plan:
    path: str
    budget: int
    tranche: str
    batch_size: int
    pass_valid_until: int  # validity of passes enrolled by this file
    rows: tuple[Row, ...]  # the file
    batches: tuple[Batch, ...]  # what is still to be sent
    sends: tuple[Send, ...]  # the same, as transactions, in order
    budget_cap: int
    budget_issued: int
    tag: bytes = b""
    already: tuple[Row, ...] = ()  # holders who already received exactly their amount in this tranche
    top_ups: tuple[tuple[Row, int], ...] = ()  # (file row, already received): only the difference is sent
    absent: tuple[tuple[str, int], ...] = ()  # credited earlier in this tranche, not in this file (unchanged)
    earlier_batches: int = 0  # batch transactions of this tranche found on chain

    @property
    def done_batches(self) -> tuple[int, ...]:
        """Indexes of the tranche's batch transactions already on chain (nothing is re-sent for them)."""
        return tuple(range(self.earlier_batches))

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
        return [s.batch_id for s in self.sends]


def _in_tranche(tranche: str) -> str:
    return f" in tranche {tranche!r}" if tranche else ""


def validate(
    path: str | Path,
    budget: BudgetState,
    state: ChainState,
    *,
    pass_valid_until: int | None = None,
    tranche: str = "",
    batch_size: int | None = None,
    parsed: tuple[list[Row], list[Problem]] | None = None,
    top_up: bool = False,
    allow_role_holders: bool = False,
) -> Plan:
    """The plan for issuing `path` to `budget`, or IssuanceFileError listing every problem:
    bad lines, unknown or closed budget, cap, passes that cannot be credited, role holders,
    and holders whose credit in this tranche differs from the file.

    Exactly once per (budget, tranche, holder): a holder who already received the line's
    amount gets nothing; one who received a different amount refuses the whole run (with
    `top_up`, one who received less gets the difference). `parsed`: what parse(path) gave."""
    rows, problems = parsed if parsed is not None else parse(path)
    problems = list(problems)
    # Credit sent to the contract itself would be stuck there (it is no pass holder).
    contract = to_checksum_address(state.contract)
    problems += [Problem(r.line, "holder", f"{r.holder} is the CityPass contract's own address, not a resident's",
                         "contract_address", {"holder": r.holder})
                 for r in rows if r.holder == contract]
    size = batch_size or batch_size_for(state.block_gas_limit, state.max_per_batch)
    if size > state.max_per_batch:
        problems.append(Problem(None, "batch size", f"{size} is above the contract's maximum of {state.max_per_batch}",
                                "batch_size", {"size": size, "max": state.max_per_batch}))
    tag = tranche_tag(state.chain_id, state.contract, budget.id, tranche)
    valid_until = budget.valid_until if pass_valid_until is None else pass_valid_until
    where = f"from this budget{_in_tranche(tranche)}"

    already: list[Row] = []
    top_ups: list[tuple[Row, int]] = []
    to_send: list[Row] = []
    before: dict[int, int] = {}  # line -> what its holder had received in this tranche
    in_file: set[str] = set()
    for row in rows:
        current = state.migrated_to.get(row.holder, row.holder)
        in_file.add(current)
        got = state.received.get(current, 0)
        if got == row.amount:
            already.append(row)
            continue
        if got > row.amount:
            problems.append(Problem(row.line, "amount", (
                f"{row.holder} already received {euros(got)} {where}, more than the {euros(row.amount)} on this "
                f"line; issuing never takes credit back: write {plain_euros(got)} on the line (or remove it), and "
                "take back what was issued in error with the contract's correction (`correct`, ISSUER role)"),
                "received_more", {"holder": row.holder, "got_cents": got, "amount_cents": row.amount}))
            continue
        if got and not top_up:
            problems.append(Problem(row.line, "amount", (
                f"{row.holder} already received {euros(got)} {where}, not the {euros(row.amount)} on this line; "
                f"to credit only the difference ({euros(row.amount - got)}) run again with --top-up; for a second "
                "round of credit, use a new --tranche"), "received_different",
                {"holder": row.holder, "got_cents": got, "amount_cents": row.amount, "diff_cents": row.amount - got}))
            continue
        if got:
            top_ups.append((row, got))
        roles = state.role_of.get(row.holder)
        if roles and not allow_role_holders:
            problems.append(Problem(row.line, "holder", (
                f"{row.holder} holds the municipal {' and '.join(roles)} role{'s' if len(roles) > 1 else ''}: one "
                "person with a role and a pass defeats the four-eyes principle; remove the line, or pass "
                "--allow-role-holders if this is intended"), "role_holder", {"holder": row.holder, "roles": ", ".join(roles)}))
            continue
        to_send.append(Row(row.line, row.holder, row.amount - got))
        before[row.line] = got
    absent = tuple(sorted((h, c) for h, c in state.received.items() if c and h not in in_file))

    to_send.sort(key=lambda r: r.holder.lower())
    batches: list[Batch] = []
    for index, start in enumerate(range(0, len(to_send), size)):
        part = to_send[start : start + size]
        credit_rows: list[Row] = []
        enrol_rows: list[Row] = []
        for row in part:
            p = state.passes.get(row.holder, PassState(PASS_NONE, 0))
            if p.status == PASS_NONE:
                enrol_rows.append(row)
            else:
                problem = _pass_problem(row, p, state)
                if problem:
                    problems.append(problem)
                else:
                    credit_rows.append(row)
        sends = []
        for kind, kind_rows in (("credit", credit_rows), ("enrol", enrol_rows)):
            if not kind_rows:
                continue
            send = Send(index, kind, batch_id(tag, kind, kind_rows, [before[r.line] for r in kind_rows]), tuple(kind_rows))
            if send.batch_id in state.used_ids:
                # The same transaction went through before, yet the chain shows no credit from
                # this tranche for these holders: the contract skipped them (IssueSkipped).
                problems += [Problem(r.line, "holder", (
                    f"a batch with exactly these rows (id 0x{send.batch_id.hex()}) was issued before, but "
                    f"{r.holder} received nothing from it (the contract skipped it); check the resident's "
                    "account, then issue the line under a new --tranche"), "batch_skipped",
                    {"holder": r.holder, "batch_id": "0x" + send.batch_id.hex()}) for r in kind_rows]
                continue
            sends.append(send)
        batches.append(Batch(index, tuple(part), tuple(sends)))

    all_sends = [s for b in batches for s in b.sends]
    to_send_total = sum(s.total for s in all_sends)
    if all_sends and budget.cap:  # a row that alone exceeds what is left is that row's fault
        left = max(budget.cap - budget.issued, 0)
        problems += [Problem(r.line, "amount", f"{euros(r.amount)} alone is more than the {euros(left)} left under "
                                               f"the budget's cap of {euros(budget.cap)}", "row_over_cap",
                             {"amount_cents": r.amount, "left_cents": left, "cap_cents": budget.cap})
                     for s in all_sends for r in s.rows if r.amount > left]
    if all_sends:  # an issuance that is complete stays reportable after the budget closed
        budget_problems = _budget_problems(budget, state, to_send_total)
        problems += budget_problems
        if any(s.kind == "enrol" for s in all_sends) and valid_until < state.now and not budget_problems:
            problems.append(Problem(None, "pass validity", f"new passes would be valid until {date_text(valid_until)}, which is in the past",
                                    "pass_validity_past", {"until_date": valid_until}))
    if problems:
        raise IssuanceFileError(path, sorted(problems, key=lambda p: (p.line or 0)))
    return Plan(
        path=str(path), budget=budget.id, tranche=tranche, batch_size=size, pass_valid_until=valid_until,
        rows=tuple(rows), batches=tuple(batches), sends=tuple(all_sends), budget_cap=budget.cap,
        budget_issued=budget.issued, tag=tag, already=tuple(already), top_ups=tuple(top_ups), absent=absent,
        earlier_batches=state.tranche_batches,
    )


def _pass_problem(row: Row, p: PassState, state: ChainState) -> Problem | None:
    if p.status == PASS_ACTIVE:
        if p.valid_until < state.now:
            return Problem(row.line, "holder", f"the pass of {row.holder} expired on {date_text(p.valid_until)}; renew it first",
                           "pass_expired", {"holder": row.holder, "until_date": p.valid_until})
        return None
    reason = {
        PASS_SUSPENDED: "is suspended; reinstate it or remove the line",
        PASS_REVOKED: "is revoked; remove the line",
        PASS_MIGRATED: f"moved to a new address ({state.migrated_to.get(row.holder, 'see `citypass pass show`')}); put that address in the file",
    }.get(p.status)
    code = {PASS_SUSPENDED: "pass_suspended", PASS_REVOKED: "pass_revoked", PASS_MIGRATED: "pass_migrated"}.get(p.status, "")
    if reason:
        return Problem(row.line, "holder", f"the pass of {row.holder} {reason}", code,
                       {"holder": row.holder, "new": state.migrated_to.get(row.holder, "")})
    if p.status == PASS_PROVIDER:
        return Problem(row.line, "holder", f"{row.holder} is a registered provider, not a pass holder", "is_provider",
                       {"holder": row.holder})
    return Problem(row.line, "holder", f"{row.holder} has an unknown pass status {p.status}", "pass_unknown_status",
                   {"holder": row.holder, "status": p.status})


def _budget_problems(budget: BudgetState, state: ChainState, to_send: int) -> list[Problem]:
    if budget.cap == 0:
        return [Problem(None, "budget", f"{budget.id} does not exist on this contract (see `citypass budget list`)",
                        "no_budget")]
    problems = []
    if state.now > budget.valid_until:
        problems.append(Problem(None, "budget", f"ended on {date_text(budget.valid_until)}; no more credit can be issued",
                                "budget_ended", {"until_date": budget.valid_until}))
    if budget.issued + to_send > budget.cap:
        problems.append(Problem(
            None, "budget",
            f"issuing {euros(to_send)} would bring it to {euros(budget.issued + to_send)}, above its cap of "
            f"{euros(budget.cap)} ({euros(budget.cap - budget.issued)} left)", "over_cap",
            {"send_cents": to_send, "after_cents": budget.issued + to_send, "cap_cents": budget.cap,
             "left_cents": budget.cap - budget.issued},
        ))
    return problems


# ---------------------------------------------------------------------------- on the chain
_BATCH_ISSUED = "0x" + keccak(text="BatchIssued(bytes32,uint256,uint256,uint256)").hex()
_TRANSFER_SINGLE = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()
_TRANSFER_BATCH = "0x" + keccak(text="TransferBatch(address,address,address,uint256[],uint256[])").hex()
_ISSUE_SKIPPED = "0x" + keccak(text="IssueSkipped(bytes32,address,uint256)").hex()
_ZERO_TOPIC = "0x" + "00" * 32
RECEIPTS_PER_CALL = 50


@dataclass(frozen=True)
class Received:
    """What the batches of one (budget, tranche) credited, read from the chain's own events."""

    by_holder: Mapping[str, int]  # current address (after migrations) -> cents
    batches: Mapping[bytes, Mapping[str, int]]  # batch id -> recipient -> cents minted by it
    skipped: Mapping[str, int]  # IssueSkipped (contract v2): holder -> cents the contract could not credit


def read_budget(dep: Any, budget: int) -> BudgetState:
    cap, issued = call_many(dep, "budgetTotals", [(budget,)])[0][:2]
    return BudgetState(budget, int(cap), int(issued))


def migrations(dep: Any) -> dict[str, str]:
    """Every migrated pass -> the address it lives at now (from PassMigrated events)."""
    step = {to_checksum_address(ev.args["from"]): to_checksum_address(ev.args.to) for ev in dep.events("PassMigrated")}
    out = {}
    for start in step:
        current, hops = step[start], 0
        while current in step and hops < len(step):
            current, hops = step[current], hops + 1
        out[start] = current
    return out


def read_received(dep: Any, budget: int, tag: bytes, moved: Mapping[str, str] | None = None) -> Received:
    """The mints of every batch of `budget` whose id starts with `tag`: the budget's
    BatchIssued events, then in each of their transactions the mints (TransferSingle or
    TransferBatch from address 0 of this budget) logged before that BatchIssued. A resident
    the contract skipped has no mint, so it simply received nothing."""
    moved = migrations(dep) if moved is None else moved
    wanted = {bytes(ev.args.batchId): "0x" + bytes(ev.transactionHash).hex()
              for ev in dep.events("BatchIssued", argument_filters={"budget": budget})
              if bytes(ev.args.batchId)[:TAG_BYTES] == tag}
    hashes = sorted(set(wanted.values()))
    receipts = []
    for start in range(0, len(hashes), RECEIPTS_PER_CALL):
        receipts += dep.chain.rpc_batch([("eth_getTransactionReceipt", [h]) for h in hashes[start:start + RECEIPTS_PER_CALL]])
    contract = dep.address.lower()
    batches: dict[bytes, dict[str, int]] = {}
    skipped: dict[str, int] = {}
    for receipt in receipts:
        pending: dict[str, int] = {}
        for log in receipt["logs"]:
            topics = log["topics"]
            if log["address"].lower() != contract or not topics:
                continue
            if topics[0] == _TRANSFER_SINGLE and topics[2] == _ZERO_TOPIC:
                data = log["data"]  # (uint256 id, uint256 value): two words, read directly (many of them)
                minted = [(int(data[2:66], 16), int(data[66:130], 16))]
            elif topics[0] == _TRANSFER_BATCH and topics[2] == _ZERO_TOPIC:
                tokens, values = abi_decode(["uint256[]", "uint256[]"], bytes.fromhex(log["data"][2:]))
                minted = list(zip(tokens, values))
            elif topics[0] == _ISSUE_SKIPPED and bytes.fromhex(topics[1][2:]) in wanted:
                holder = to_checksum_address("0x" + topics[2][-40:])
                skipped[holder] = skipped.get(holder, 0) + abi_decode(["uint256"], bytes.fromhex(log["data"][2:]))[0]
                continue
            elif topics[0] == _BATCH_ISSUED:
                bid = bytes.fromhex(topics[1][2:])
                if bid in wanted:
                    batches[bid] = pending
                pending = {}
                continue
            else:
                continue
            to = eip55("0x" + topics[3][-40:])
            for token, value in minted:
                if token == budget:
                    pending[to] = pending.get(to, 0) + int(value)
    missing = set(wanted) - set(batches)
    if missing:
        raise CityPassError(f"the chain logged issuance batch 0x{next(iter(missing)).hex()}, but its transaction "
                            "receipt was not found (a node that prunes receipts?): nothing was sent")
    by_holder: dict[str, int] = {}
    for minted_by in batches.values():
        for holder, cents in minted_by.items():
            current = moved.get(holder, holder)
            by_holder[current] = by_holder.get(current, 0) + cents
    return Received(by_holder, batches, skipped)


def role_holders(dep: Any) -> dict[str, tuple[str, ...]]:
    """Every address holding a municipal role -> its roles (the admin included)."""
    from citypass.errors import ROLE_IDS

    names = {role_id: name for name, role_id in ROLE_IDS.items()}
    order = {name: i for i, name in enumerate(ROLE_IDS)}
    granted = sorted({(names[bytes(ev.args.role)], to_checksum_address(ev.args.account))
                      for ev in dep.events("RoleGranted") if bytes(ev.args.role) in names},
                     key=lambda pair: (order[pair[0]], pair[1]))
    held = call_many(dep, "hasRole", [(ROLE_IDS[role], account) for role, account in granted])
    out: dict[str, list[str]] = {}
    for (role, account), (has,) in zip(granted, held):
        if has:
            out.setdefault(account, []).append(role)
    return {a: tuple(r) for a, r in out.items()}


def read_state(dep: Any, rows: Sequence[Row], budget: int, tranche: str = "") -> ChainState:
    """Passes of the file's holders, what this tranche credited and the role holders."""
    chain = dep.chain
    holders = [r.holder for r in rows]
    passes = call_many(dep, "passOf", [(h,) for h in holders])
    block = chain.w3.eth.get_block("latest")
    moved = migrations(dep)
    received = read_received(dep, budget, tranche_tag(chain.chain_id, dep.address, budget, tranche), moved)
    return ChainState(
        chain_id=chain.chain_id,
        contract=dep.address,
        now=int(block["timestamp"]),
        block_gas_limit=int(block["gasLimit"]),
        max_per_batch=int(dep.contract.functions.MAX_PASSES_PER_BATCH().call()),
        passes={h: PassState(int(s), int(v)) for h, (s, v) in zip(holders, passes)},
        migrated_to={h: moved.get(h, h) for h, (s, _) in zip(holders, passes) if s == PASS_MIGRATED},
        received=received.by_holder,
        tranche_batches=len(received.batches),
        role_of=role_holders(dep),
    )


def call_many(dep: Any, name: str, arg_lists: Sequence[tuple], chunk: int = 500) -> list[tuple]:
    """A view function of the deployment called with many argument tuples (see tx.call_many)."""
    from citypass.tx import call_many as _call_many

    return _call_many(dep.chain, dep.contract, name, arg_lists, chunk)


def plan_issuance(
    dep: Any, path: str | Path, budget: int, *, pass_valid_until: int | None = None, tranche: str = "",
    batch_size: int | None = None, top_up: bool = False, allow_role_holders: bool = False,
) -> Plan:
    """Reads the file and the chain and returns the plan (or IssuanceFileError with every problem).
    No local state is read: a re-run from another machine plans the same."""
    parsed = parse(path)
    if batch_size is not None and not 1 <= batch_size:
        raise CityPassError(f"--batch-size must be at least 1, not {batch_size}")
    state = read_state(dep, parsed[0], budget, tranche)
    options = dict(pass_valid_until=pass_valid_until, tranche=tranche, batch_size=batch_size, parsed=parsed,
                   top_up=top_up, allow_role_holders=allow_role_holders)
    info = read_budget(dep, budget)
    plan = validate(path, info, state, **options)
    used = call_many(dep, "batchIssued", [(i,) for i in plan.all_ids])
    used_ids = frozenset(i for i, (u,) in zip(plan.all_ids, used) if u)
    if used_ids:  # validate says which holders the contract skipped
        plan = validate(path, info, replace(state, used_ids=used_ids), **options)
    return plan


@dataclass(frozen=True)
class SendResult:
    send: Send
    tx_hash: str | None  # None: the id was found used just before sending (another run)
    gas_used: int


Sender = Callable[[Any], Any]  # contract call -> receipt


def execute(
    dep: Any, account: Any, plan: Plan, *, sender: Sender | None = None,
    on_sent: Callable[[SendResult], None] | None = None, in_flight: int = 0,
) -> list[SendResult]:
    """Sends the plan's transactions in order, at most `in_flight` unmined at once (default
    PIPELINE_WINDOW; one at a time with a custom `sender`). Each window's ids are checked just before it is
    sent, so two runs at once still issue each batch once (the chain refuses a used id anyway); a
    transaction an earlier, killed run left in flight is waited for first, so the checks see it."""
    from citypass.batch_access import EnrolAccess
    from citypass.contract import require_role
    from citypass.faults import fault_point
    from citypass.tx import wait_idle

    if plan.sends:
        require_role(dep, "ISSUER", account.address)
        if any(s.kind == "enrol" for s in plan.sends):
            require_role(dep, "REGISTRAR", account.address)
    do_send = sender or (lambda fn: _send_with_access_list(dep.chain, account, fn))
    f = dep.contract.functions

    def call_of(s: Send) -> Any:
        holders, amounts = [r.holder for r in s.rows], [r.amount for r in s.rows]
        return (f.issue(s.batch_id, plan.budget, holders, amounts) if s.kind == "credit"
                else f.enrollAndIssue(s.batch_id, plan.budget, plan.pass_valid_until, holders, amounts))

    def report(result: SendResult) -> None:
        results.append(result)
        if on_sent:
            on_sent(result)

    results: list[SendResult] = []
    if not plan.sends:
        return results
    wait_idle(dep.chain, account.address)
    if sender is not None:  # the crash tests' stand-ins: one batch at a time, each checked first
        for s in plan.sends:
            fault_point("between-batches")
            report(SendResult(s, None, 0) if f.batchIssued(s.batch_id).call() else _result(s, do_send(call_of(s))))
        return results
    # Batches go out a window at a time, and the next window is checked, estimated, signed and
    # sent while the node still mines the one before (waiting per batch, then per window, made
    # the client, not the node, the limit: issue 17). At most two windows, `in_flight` batches
    # in all, are in flight (in_flight=1: one batch at a time).
    # Each window's ids are read just before it is sent, so two runs at once still issue each
    # batch once (the chain refuses a used id anyway); results are reported once mined (and
    # N deep), in order.
    limit = in_flight or PIPELINE_WINDOW
    window = max(1, limit // 2)
    enrol_access = EnrolAccess(dep.address.lower(), plan.budget)
    previous: _Window | None = None
    for start in range(0, len(plan.sends), window):
        part = plan.sends[start:start + window]
        fault_point("between-batches")
        used = call_many(dep, "batchIssued", [(s.batch_id,) for s in part])
        todo = [s for s, (u,) in zip(part, used) if not u]
        current = _Window(part, todo, _submit_window(dep.chain, account, todo, [call_of(s) for s in todo], enrol_access))
        if previous is not None:
            _finish_window(dep, previous, report, lambda s: _result(s, do_send(call_of(s))))
        previous = current
        if limit == 1:
            _finish_window(dep, previous, report, lambda s: _result(s, do_send(call_of(s))))
            previous = None
    if previous is not None:
        _finish_window(dep, previous, report, lambda s: _result(s, do_send(call_of(s))))
    return results


PIPELINE_WINDOW = 16  # issuance batches in flight at most, in two windows (a 200-resident batch is ~10M gas)


@dataclass
class _Window:
    part: Sequence[Send]  # the window's batches in plan order
    todo: Sequence[Send]  # those not issued when it was checked: the ones submitted
    submitted: Any  # tx.Submitted


def _result(s: Send, receipt: Any) -> SendResult:
    return SendResult(s, "0x" + bytes(receipt["transactionHash"]).hex(), int(receipt["gasUsed"]))


def _submit_window(chain: Any, account: Any, sends: Sequence[Send], fns: list[Any], enrol_access: EnrolAccess) -> Any:
    """Hands a window's calls to the node with their access lists, without waiting. Each gas
    limit comes from the state before: later batches (of this window, or one still in flight)
    only find the budget's counters already written, which makes them cheaper, not dearer.
    Enrolment batches like ones the node already answered for are worked out here
    (citypass/batch_access.py); the others are asked of the node, in one round trip."""
    from citypass.tx import Submitted, access_lists_and_gas, call_data, submit

    if not fns:
        return Submitted(account, [])
    datas = [call_data(fn) for fn in fns]
    found: list[tuple[list[dict[str, Any]], int] | None] = [None] * len(fns)
    ask = []
    for i, (s, data) in enumerate(zip(sends, datas)):
        if s.kind == "enrol" and enrol_access.known([len(s.rows)]):
            found[i] = enrol_access.predict([r.holder for r in s.rows], s.batch_id, data)
        else:
            ask.append(i)
    if ask:
        for i, answer in zip(ask, access_lists_and_gas(chain, account.address, [fns[i] for i in ask])):
            found[i] = answer
    if any(x is None for x in found):  # the node makes no access lists (or a call fails): estimate each
        return submit(chain, account, fns)
    enrol_access.learn([([r.holder for r in sends[i].rows], sends[i].batch_id, datas[i], *found[i])
                        for i in ask if sends[i].kind == "enrol"])
    return submit(chain, account, fns, gas=[g for _, g in found], access_lists=[a for a, _ in found])


def _finish_window(dep: Any, w: _Window, report: Callable[[SendResult], None],
                   send_alone: Callable[[Send], SendResult]) -> None:
    """Waits for a window's receipts and reports its batches in order. A batch that still
    failed on chain is checked and sent again alone, which also explains a real refusal."""
    from citypass.tx import collect

    receipts = collect(dep.chain, w.submitted, check=False, brief=True) if w.todo else []
    by_id = dict(zip((s.batch_id for s in w.todo), receipts))
    for s in w.part:
        receipt = by_id.get(s.batch_id)
        if s.batch_id not in by_id:
            report(SendResult(s, None, 0))
        elif int(receipt["status"]) == 1:
            report(_result(s, receipt))
        else:
            report(SendResult(s, None, 0) if dep.contract.functions.batchIssued(s.batch_id).call() else send_alone(s))


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
    chain_rows: int  # the file's holders holding exactly their amount from this tranche (mint events)
    chain_total: int  # what the tranche's batches credited the file's holders
    chain_batches: int  # batch transactions of this tranche on chain
    sent_rows: int  # in this run
    sent_total: int
    before: Snapshot
    after: Snapshot
    cap: int

    @property
    def checks(self) -> list[tuple[str, bool]]:
        return [
            ("every holder in the file received exactly its amount in this tranche",
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
            f"on chain:         {self.chain_rows} residents, {euros(self.chain_total)} from {self.chain_batches} "
            "transactions of this budget and tranche (mint events)",
            f"this run:         {self.sent_rows} residents, {euros(self.sent_total)}"
            + ("" if self.sent_rows else " (all of it was issued before)"),
            f"budget issued:    {euros(self.before.issued)} -> {euros(self.after.issued)} (cap {euros(self.cap)})",
            f"holders' balance: {euros(self.before.balances)} -> {euros(self.after.balances)}",
        ]
        out += [f"{'ok' if ok else 'MISMATCH'}: {name}" for name, ok in self.checks]
        return out


def reconcile(dep: Any, plan: Plan, before: Snapshot, results: Sequence[SendResult]) -> Reconciliation:
    """The file against what the chain's events say this tranche credited, after the run."""
    moved = migrations(dep)
    received = read_received(dep, plan.budget, plan.tag, moved)
    rows = total = 0
    for row in plan.rows:
        got = received.by_holder.get(moved.get(row.holder, row.holder), 0)
        total += got
        rows += got == row.amount
    sent = [r for r in results if r.tx_hash]
    return Reconciliation(
        file_rows=len(plan.rows), file_total=plan.total, chain_rows=rows, chain_total=total,
        chain_batches=len(received.batches), sent_rows=sum(len(r.send.rows) for r in sent),
        sent_total=sum(r.send.total for r in sent), before=before, after=snapshot(dep, plan),
        cap=read_budget(dep, plan.budget).cap,
    )
