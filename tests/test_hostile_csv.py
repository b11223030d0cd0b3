"""Hostile issuance files: what spreadsheets really write is read, and every bad file is
refused with its line and field before anything is sent.

One table of bad files, checked at the library level (cheap, no chain), and a representative
part of it run through `citypass issue` on the embedded node, where "nothing was sent" is
read from the chain: the budget's issued counter, the block number and the issuer's nonce.
Synthetic addresses only."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
from eth_utils import keccak, to_checksum_address

from citypass import issuance as I
from tests.ops_helpers import World, cli, make_world

BUDGET = (1 << 128) | (0 << 80) | (1_700_000_000 << 40) | 1_900_000_000
NOW = 1_800_000_000
CONTRACT = to_checksum_address("0x" + "cd" * 20)
CONTRACT_TOKEN = b"<contract>"  # replaced by the contract's address (the fake one, or the node's)


def addr(label: str) -> str:
    """A synthetic, checksummed address (no real person behind it)."""
    return to_checksum_address(keccak(text=f"hostile-csv-{label}")[-20:])


A, B = addr("a").encode(), addr("b").encode()


def _bad_checksum(address: bytes) -> bytes:
    text = address.decode()
    i = next(i for i, c in enumerate(text[2:], start=2) if c.isalpha())
    return (text[:i] + text[i].swapcase() + text[i + 1 :]).encode()


def _lookalike(address: bytes) -> bytes:
    """The address with its first hex letter replaced by a Cyrillic look-alike."""
    text = address.decode()
    i = next(i for i, c in enumerate(text[2:], start=2) if c in "aAcCeE")
    return (text[:i] + {"a": "а", "A": "А", "c": "с", "C": "С", "e": "е", "E": "Е"}[text[i]] + text[i + 1 :]).encode()


def rows(*lines: bytes) -> bytes:
    return b"holder,amount\n" + b"".join(line + b"\n" for line in lines)


class Bad(NamedTuple):
    id: str
    data: bytes
    line: int | None  # None: a problem of the whole file
    field: str
    fragment: str


BAD_FILES = [
    Bad("non-UTF-8 bytes", rows(A + b",1", B + b",12\xe9"), 3, "line", "not UTF-8 text (byte 0xE9 at column 46)"),
    Bad("UTF-16 file", "holder,amount\n".encode("utf-16"), None, "file", "is UTF-16 text"),
    Bad("wrong header", b"address,euros\n" + A + b",1\n", 1, "header", "expected exactly 'holder,amount'"),
    Bad("missing header", A + b",1\n" + B + b",2\n", 1, "header", "the header line is missing"),
    Bad("wrong column count (3)", rows(A + b",1,groceries"), 2, "line", "expected 2 fields (holder,amount), found 3"),
    Bad("wrong column count (1)", rows(A), 2, "line", "expected 2 fields (holder,amount), found 1"),
    Bad("semicolons and a decimal comma", rows(A + b";12,50"), 2, "line", "separated by ';'? use a comma"),
    Bad("empty file", b"", None, "file", "is empty"),
    Bad("only a BOM and empty lines", b"\xef\xbb\xbf\r\n\r\n", None, "file", "is empty"),
    Bad("CR-only line endings", b"holder,amount\r" + A + b",1\r", None, "file", "CR only"),
    Bad("bad checksum", rows(_bad_checksum(A) + b",1"), 2, "holder", "the EIP-55 checksum does not match"),
    Bad("zero address", rows(b"0x" + b"0" * 40 + b",1"), 2, "holder", "the zero address cannot hold a pass"),
    Bad("the contract's own address", rows(A + b",1", CONTRACT_TOKEN + b",1"), 3, "holder",
        "is the CityPass contract's own address"),
    Bad("ENS name", rows(b"gemeente-resident.eth,10"), 2, "holder", "looks like an ENS name"),
    Bad("Cyrillic look-alike letter", rows(_lookalike(A) + b",10"), 2, "holder", "which is not a hex digit"),
    Bad("duplicate after checksum normalisation", rows(A + b",1", A.lower() + b",2"), 3, "holder",
        f"{A.decode()} is already on line 2"),
    Bad("amount 1e3", rows(A + b",1e3"), 2, "amount", "no exponent notation"),
    Bad("amount NaN", rows(A + b",NaN"), 2, "amount", "'NaN' is not an amount in euros"),
    Bad("amount +5", rows(A + b",+5"), 2, "amount", "no sign"),
    Bad("amount 1_000", rows(A + b",1_000"), 2, "amount", "no digit separators"),
    Bad("amount 1.000,50", rows(A + b",1.000,50"), 2, "amount", "'1.000,50' has a decimal comma"),
    Bad("Unicode digits (Arabic-Indic)", rows(A + ",١٠".encode()), 2, "amount", "U+0661 ARABIC-INDIC DIGIT ONE"),
    Bad("Unicode digits (full-width)", rows(A + ",１０".encode()), 2, "amount", "U+FF11 FULLWIDTH DIGIT ONE"),
    Bad("zero-width space", rows(A + ",10\u200b".encode()), 2, "amount", "U+200B ZERO WIDTH SPACE"),
    Bad("non-breaking space", rows(A + ",\u00a010".encode()), 2, "amount", "has spaces around it"),
    Bad("NUL byte", rows(A + b",1\x00"), 2, "amount", "is not an amount in euros"),
    Bad("negative", rows(A + b",-5"), 2, "amount", "it is negative"),
    Bad("zero", rows(A + b",0"), 2, "amount", "must be more than 0"),
    Bad("zero with cents", rows(A + b",0.00"), 2, "amount", "must be more than 0"),
    Bad("one cent above uint128", rows(A + b",3402823669209384634633746074317682114.56"), 2, "amount",
        "is too large: the most an amount can be is 3402823669209384634633746074317682114.55"),
    Bad("above uint256", rows(A + b"," + str(2**256).encode()), 2, "amount", "is too large"),
    Bad("5,000 digits", rows(A + b"," + b"9" * 5000), 2, "amount", "(5,000 characters) is too large"),
]


def write(tmp_path: Path, data: bytes, contract: str = CONTRACT, name: str = "hostile.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.replace(CONTRACT_TOKEN, contract.encode()))
    return path


def state(contract: str = CONTRACT) -> I.ChainState:
    return I.ChainState(31337, contract, NOW, 30_000_000, 2000, {}, frozenset())


def problems(path: Path, cap: int = 10**12, issued: int = 0) -> list[I.Problem]:
    with pytest.raises(I.IssuanceFileError) as e:
        I.validate(path, I.BudgetState(BUDGET, cap, issued), state())
    assert "nothing was sent" in str(e.value)
    return e.value.problems


@pytest.mark.parametrize("case", BAD_FILES, ids=[b.id for b in BAD_FILES])
def test_bad_file_names_line_and_field(tmp_path, case: Bad):
    (problem,) = problems(write(tmp_path, case.data))
    assert (problem.line, problem.field) == (case.line, case.field), str(problem)
    assert case.fragment in problem.reason, str(problem)
    assert "Traceback" not in problem.reason and len(str(problem)) < 400  # one readable line


class Cap(NamedTuple):
    id: str
    amounts: tuple[str, ...]
    cap: int  # cents
    issued: int  # cents, before this file
    line: int | None
    field: str
    fragment: str


CAP_CASES = [
    Cap("one row above the cap", ("1", "100.01"), 10_000, 0, 3, "amount", "€100.01 alone is more than the €100.00 left"),
    Cap("one row above what is left", ("10.01",), 10_000, 9_000, 2, "amount", "alone is more than the €10.00 left"),
    Cap("the total above the cap", ("60", "40.01"), 10_000, 0, None, "budget",
        "issuing €100.01 would bring it to €100.01, above its cap of €100.00 (€100.00 left)"),
]


@pytest.mark.parametrize("case", CAP_CASES, ids=[c.id for c in CAP_CASES])
def test_above_the_cap(tmp_path, case: Cap):
    data = rows(*(addr(f"cap-{i}").encode() + b"," + a.encode() for i, a in enumerate(case.amounts)))
    found = problems(write(tmp_path, data), cap=case.cap, issued=case.issued)
    match = [p for p in found if (p.line, p.field) == (case.line, case.field)]
    assert len(match) == 1 and case.fragment in match[0].reason, [str(p) for p in found]
    # a row is blamed only when it alone is too much; the total is always stated
    assert all(p.line is None or p.line == case.line for p in found)
    assert any(p.line is None and "above its cap" in p.reason for p in found)


# ---------------------------------------------------------------------------- as spreadsheets write them
GOOD = [(addr("g1"), "100", 10_000), (addr("g2"), "12.5", 1_250), (addr("g3"), "0.01", 1)]


def _sheet(newline: str, *, bom: bool, trailer: str) -> bytes:
    body = newline.join(["holder,amount", *(f"{h},{a}" for h, a, _ in GOOD)]) + trailer
    return ("\ufeff" if bom else "").encode() + body.encode()


SPREADSHEET_FILES = [
    ("Excel: BOM, CRLF, final CRLF", _sheet("\r\n", bom=True, trailer="\r\n")),
    ("BOM, CRLF and a trailing empty line", _sheet("\r\n", bom=True, trailer="\r\n\r\n")),
    ("trailing empty rows written as commas", _sheet("\r\n", bom=True, trailer="\r\n,\r\n,\r\n")),
    ("LibreOffice: LF, no BOM", _sheet("\n", bom=False, trailer="\n")),
    ("no newline at the end", _sheet("\n", bom=False, trailer="")),
]


@pytest.mark.parametrize("data", [d for _, d in SPREADSHEET_FILES], ids=[i for i, _ in SPREADSHEET_FILES])
def test_spreadsheet_files_are_read(tmp_path, data: bytes):
    plan = I.validate(write(tmp_path, data), I.BudgetState(BUDGET, 10**9, 0), state())
    assert [(r.line, r.holder, r.amount) for r in plan.rows] == [(i + 2, h, c) for i, (h, _, c) in enumerate(GOOD)]


def test_an_empty_line_between_rows_is_still_refused(tmp_path):
    """Only empty lines at the end are a spreadsheet's habit; one inside the list is a mistake."""
    (problem,) = problems(write(tmp_path, _sheet("\r\n", bom=True, trailer="\r\n").replace(b"\r\n0x", b"\r\n\r\n0x", 1)))
    assert (problem.line, problem.field) == (2, "line") and "is empty" in problem.reason


# ---------------------------------------------------------------------------- through `citypass issue`
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("hostile-csv"))


def chain_mark(w: World) -> tuple[int, int, int]:
    """What any transaction of `issue` would move: the budget's issued counter, the block
    number and the issuer's nonce."""
    return (w.f.budgetTotals(w.sport).call()[1], w.chain.w3.eth.block_number,
            w.chain.w3.eth.get_transaction_count(w.issuer.address))


CLI_CASES = [b for b in BAD_FILES if b.id in {
    "non-UTF-8 bytes", "missing header", "empty file", "bad checksum", "the contract's own address", "ENS name",
    "duplicate after checksum normalisation", "amount 1.000,50", "Unicode digits (full-width)", "above uint256",
}] + [
    # The world's sport budget has a cap of €100,000.00 and nothing issued yet.
    Bad("one row above the cap", rows(A + b",1", B + b",100000.01"), 3, "amount",
        "€100,000.01 alone is more than the €100,000.00 left"),
    Bad("the total above the cap", rows(A + b",60000", B + b",40000.01"), None, "budget",
        "issuing €100,000.01 would bring it to €100,000.01, above its cap of €100,000.00"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[b.id for b in CLI_CASES])
def test_issue_command_refuses_and_sends_nothing(world, tmp_path, case: Bad):
    path = write(tmp_path, case.data, contract=world.dep.address)
    before = chain_mark(world)
    r = cli(world, "issue", str(path), "--budget", "1")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"error: {path}: ") and lines[0].endswith("nothing was sent:"), r.stderr
    where = f"line {case.line}: " if case.line is not None else ""
    assert any(line.startswith(f"  {where}{case.field}: ") and case.fragment in line for line in lines[1:]), r.stderr
    assert chain_mark(world) == before


def test_issue_command_reads_an_excel_file(world, tmp_path):
    """The positive control of the table above: the same command, a file as Excel saves it
    (BOM, CRLF, a trailing empty line), is issued in full."""
    path = write(tmp_path, _sheet("\r\n", bom=True, trailer="\r\n\r\n"))
    issued_before = chain_mark(world)[0]
    snap = world.snapshot()
    try:
        r = cli(world, "issue", str(path), "--budget", "1")
        assert r.exit_code == 0, r.stderr
        assert chain_mark(world)[0] == issued_before + sum(c for _, _, c in GOOD)
        assert world.f.balanceOfBatch([h for h, _, _ in GOOD], [world.sport] * 3).call() == [c for _, _, c in GOOD]
    finally:
        world.revert(snap)
