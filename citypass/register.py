"""The municipality's private pass register: pass number <-> pass address, with the history
of each link, and a log of every look-up.

The link between the municipality's pass number (printed on the resident's card, kept in
its own records beside the resident's name) and the pass address on chain is personal data.
It lives only here, in SQLite under the work directory (`<workdir>/register/register.sqlite`,
readable by its owner only), and is read only by the back office (citypass/web/backoffice.py,
for a signed-in registrar) and by `citypass register` (the registrar's account). It is never
served to the public API, never written into a report, never sent on chain.

    passes   number -> current address, status (active | suspended | revoked), since
    history  every change of a link: enrolled, imported, migrated (old -> new address),
             suspended, reinstated, revoked; with the reason, the officer and the transaction
    lookups  every read: which officer (address), when, what (find, export, ...), which number

Pass numbers are what the municipality prints: 4 to 24 characters of letters, digits and
dashes, compared without case (`sp-100234` is `SP-100234`).

CSV (import and export), UTF-8, comma-separated, header line required:

    pass_number,address,status
    SP-100234,0x5B38Da6a701c568545dCfcB03FcB875f56beddC4,active

`status` may be left out on import (active). An import is all or nothing: every problem is
reported with its line and field and nothing is written.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from citypass.errors import CityPassError
from citypass.issuance import Problem, _check_holder

FOLDER = "register"
FILE = "register.sqlite"
STATUSES = ("active", "suspended", "revoked")
KINDS = ("enrolled", "imported", "migrated", "suspended", "reinstated", "revoked")
# Reasons the desk picks from (suspend / reinstate / revoke); no free text, so nothing personal
# slips into the register's history.
REASONS = {
    "suspend": ("fraud_suspected", "eligibility_review", "resident_request", "card_lost"),
    "reinstate": ("review_passed", "resident_request", "error_corrected"),
    "revoke": ("no_longer_eligible", "moved_away", "deceased", "fraud_confirmed", "resident_request"),
}
EXPORT_HEADER = ["pass_number", "address", "status", "since"]
IMPORT_HEADERS = (["pass_number", "address"], ["pass_number", "address", "status"])
MAX_IMPORT_ROWS = 200_000
MAX_PROBLEMS = 50

_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,22}[A-Z0-9]$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS passes (
    number  TEXT PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    status  TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    since   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    number  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    address TEXT NOT NULL,
    old_address TEXT,
    reason  TEXT,
    officer TEXT NOT NULL,
    time    INTEGER NOT NULL,
    tx      TEXT
);
CREATE INDEX IF NOT EXISTS history_number ON history (number);
CREATE TABLE IF NOT EXISTS old_addresses (
    address TEXT PRIMARY KEY,
    number  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lookups (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    officer TEXT NOT NULL,
    time    INTEGER NOT NULL,
    action  TEXT NOT NULL,
    number  TEXT,
    found   INTEGER NOT NULL
);
"""


class RegisterError(CityPassError):
    """A refused register operation; `field` names the input to blame."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class RegisterImportError(CityPassError):
    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:MAX_PROBLEMS])
        more = f"\n  ... and {len(self.problems) - MAX_PROBLEMS} more" if len(self.problems) > MAX_PROBLEMS else ""
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''}, nothing was imported:\n{shown}{more}")


@dataclass(frozen=True)
class Change:
    kind: str
    address: str
    old_address: str | None
    reason: str | None
    officer: str
    time: int
    tx: str | None


@dataclass(frozen=True)
class Entry:
    number: str
    address: str
    status: str
    since: int
    history: tuple[Change, ...]


@dataclass(frozen=True)
class Lookup:
    officer: str
    time: int
    action: str
    number: str | None
    found: bool


def normalize_number(text: str) -> str:
    """The pass number as stored ('sp-100234 ' -> 'SP-100234'); RegisterError if it is not one."""
    if not isinstance(text, str):
        raise RegisterError("number: expected the pass number as text", "number")
    value = text.strip().upper()
    if not _NUMBER.match(value):
        shown = repr(text[:40])
        raise RegisterError(f"number: {shown} is not a pass number (4 to 24 letters, digits or dashes, "
                            "as printed on the pass)", "number")
    return value


def check_address(text: str, field: str = "address") -> str:
    """An EIP-55 checksummed address (the rule of the issuance files), or RegisterError."""
    if not isinstance(text, str):
        raise RegisterError(f"{field}: expected an address as text", field)
    try:
        return _check_holder(text.strip())
    except ValueError as exc:
        raise RegisterError(f"{field}: {exc}", field) from None


class Register:
    """The register of one work directory. Thread-safe (one connection, one lock)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.path.parent, 0o700)
        except OSError:
            pass
        new = not self.path.exists()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        if new:
            os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a link the desk was told is saved stays saved
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, workdir: Path | str) -> "Register":
        return cls(Path(workdir) / FOLDER / FILE)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ reads (each one logged)
    def find(self, number: str, officer: str, action: str = "find") -> Entry | None:
        """The link of `number` with its history; the look-up is logged with the officer."""
        value = normalize_number(number)
        with self._lock:
            entry = self._entry(value)
            self._log(officer, action, value, entry is not None)
        return entry

    def find_address(self, address: str, officer: str) -> Entry | None:
        """The link an address (current or earlier) belongs to; logged like `find`."""
        value = check_address(address)
        with self._lock:
            row = self._db.execute("SELECT number FROM passes WHERE address = ?", (value,)).fetchone()
            if row is None:
                row = self._db.execute("SELECT number FROM old_addresses WHERE address = ?", (value,)).fetchone()
            entry = self._entry(row[0]) if row else None
            self._log(officer, "find-address", entry.number if entry else None, entry is not None)
        return entry

    def export_csv(self, officer: str) -> str:
        """The whole register as CSV (logged)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(EXPORT_HEADER)
        with self._lock:
            rows = self._db.execute("SELECT number, address, status, since FROM passes ORDER BY number").fetchall()
            self._log(officer, "export", None, True)
        for number, address, status, since in rows:
            w.writerow([number, address, status, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))])
        return out.getvalue()

    def lookups(self, limit: int = 500) -> list[Lookup]:
        """The access log, newest first (for the supervisor)."""
        with self._lock:
            rows = self._db.execute("SELECT officer, time, action, number, found FROM lookups ORDER BY id DESC "
                                    "LIMIT ?", (limit,)).fetchall()
        return [Lookup(o, t, a, n, bool(f)) for o, t, a, n, f in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM passes").fetchone()[0])

    def is_known_address(self, address: str) -> bool:
        """Whether the address is (or was) in the register (no look-up of a person: not logged)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM passes WHERE address = ? UNION SELECT 1 FROM old_addresses "
                                    "WHERE address = ?", (address, address)).fetchone() is not None

    # ------------------------------------------------------------------ writes
    def enrol(self, number: str, address: str, officer: str, tx: str | None = None) -> Entry:
        """Links a new pass number to a new address (after the pass is on chain)."""
        value, addr = normalize_number(number), check_address(address)
        now = int(time.time())
        with self._lock, self._tx():
            self._refuse_taken(value, addr)
            self._db.execute("INSERT INTO passes VALUES (?, ?, 'active', ?)", (value, addr, now))
            self._change(value, "enrolled", addr, None, None, officer, now, tx)
            return self._entry(value)  # type: ignore[return-value]

    def migrate(self, number: str, new_address: str, officer: str, tx: str | None = None) -> Entry:
        """The pass moved to a new address (lost phone or sheet)."""
        value, addr = normalize_number(number), check_address(new_address, "new_address")
        now = int(time.time())
        with self._lock, self._tx():
            entry = self._entry(value)
            if entry is None:
                raise RegisterError(f"number: {value} is not in the register", "number")
            if entry.address == addr:
                raise RegisterError("new_address: that is the pass's current address", "new_address")
            self._refuse_taken(None, addr)
            self._db.execute("INSERT INTO old_addresses VALUES (?, ?)", (entry.address, value))
            self._db.execute("UPDATE passes SET address = ?, since = ? WHERE number = ?", (addr, now, value))
            self._change(value, "migrated", addr, entry.address, None, officer, now, tx)
            return self._entry(value)  # type: ignore[return-value]

    def set_status(self, number: str, action: str, reason: str, officer: str, tx: str | None = None) -> Entry:
        """suspend / reinstate / revoke, with a reason from REASONS[action]."""
        value = normalize_number(number)
        if action not in REASONS:
            raise RegisterError(f"action: use one of {', '.join(REASONS)}", "action")
        if reason not in REASONS[action]:
            raise RegisterError(f"reason: for {action} use one of {', '.join(REASONS[action])}", "reason")
        status = {"suspend": "suspended", "reinstate": "active", "revoke": "revoked"}[action]
        kind = {"suspend": "suspended", "reinstate": "reinstated", "revoke": "revoked"}[action]
        now = int(time.time())
        with self._lock, self._tx():
            entry = self._entry(value)
            if entry is None:
                raise RegisterError(f"number: {value} is not in the register", "number")
            if entry.status == "revoked":
                raise RegisterError(f"number: the pass {value} is revoked; nothing more can change", "number")
            self._db.execute("UPDATE passes SET status = ?, since = ? WHERE number = ?", (status, now, value))
            self._change(value, kind, entry.address, None, reason, officer, now, tx)
            return self._entry(value)  # type: ignore[return-value]

    def import_csv(self, text: str | bytes, officer: str) -> int:
        """Adds the links of a CSV file (module docstring); all or nothing. Returns the count."""
        rows = self.parse_csv(text)
        now = int(time.time())
        with self._lock:
            problems = []
            for line, number, address, _ in rows:
                taken = self._db.execute("SELECT number FROM passes WHERE number = ? OR address = ?",
                                         (number, address)).fetchone()
                old = self._db.execute("SELECT number FROM old_addresses WHERE address = ?", (address,)).fetchone()
                if taken and taken[0] == number:
                    problems.append(Problem(line, "pass_number", f"{number} is already in the register"))
                elif taken or old:
                    problems.append(Problem(line, "address", f"{address} is already linked to another pass number"))
            if problems:
                raise RegisterImportError(problems)
            with self._tx():
                for _, number, address, status in rows:
                    self._db.execute("INSERT INTO passes VALUES (?, ?, ?, ?)", (number, address, status, now))
                    self._change(number, "imported", address, None, None, officer, now, None)
                self._log(officer, "import", None, True)
        return len(rows)

    @staticmethod
    def parse_csv(text: str | bytes) -> list[tuple[int, str, str, str]]:
        """(line, number, address, status) of every row, or RegisterImportError with every problem."""
        if isinstance(text, bytes):
            if text.startswith(b"\xef\xbb\xbf"):
                text = text[3:]
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RegisterImportError([Problem(None, "file", f"is not UTF-8 text (byte {exc.start}); save it as "
                                                                 "'CSV UTF-8'")]) from None
        text = text.lstrip("\ufeff")
        lines = text.replace("\r\n", "\n").split("\n")
        while lines and not lines[-1].replace(",", "").strip():
            lines.pop()
        if not lines:
            raise RegisterImportError([Problem(None, "file", "is empty; line 1 must be the header "
                                                             "'pass_number,address' (optionally ',status')")])
        header = lines[0].split(",")
        if header not in IMPORT_HEADERS:
            raise RegisterImportError([Problem(1, "header", f"expected 'pass_number,address' or "
                                                            f"'pass_number,address,status', found {lines[0][:60]!r}")])
        if len(lines) - 1 > MAX_IMPORT_ROWS:
            raise RegisterImportError([Problem(None, "file", f"has {len(lines) - 1} rows, more than {MAX_IMPORT_ROWS}")])
        problems: list[Problem] = []
        rows: list[tuple[int, str, str, str]] = []
        numbers: dict[str, int] = {}
        addresses: dict[str, int] = {}
        for line, raw in enumerate(lines[1:], start=2):
            fields = next(csv.reader([raw])) if raw else []
            if len(fields) != len(header):
                problems.append(Problem(line, "line", f"expected {len(header)} fields ({','.join(header)}), "
                                                      f"found {len(fields)}"))
                continue
            try:
                number = normalize_number(fields[0])
            except RegisterError as exc:
                problems.append(Problem(line, "pass_number", str(exc).split(": ", 1)[1]))
                continue
            try:
                address = check_address(fields[1])
            except RegisterError as exc:
                problems.append(Problem(line, "address", str(exc).split(": ", 1)[1]))
                continue
            status = fields[2].strip().lower() if len(fields) == 3 else "active"
            if status not in STATUSES:
                problems.append(Problem(line, "status", f"{fields[2][:20]!r}: use one of {', '.join(STATUSES)}"))
                continue
            if number in numbers:
                problems.append(Problem(line, "pass_number", f"{number} is already on line {numbers[number]}"))
                continue
            if address in addresses:
                problems.append(Problem(line, "address", f"{address} is already on line {addresses[address]}"))
                continue
            numbers[number], addresses[address] = line, line
            rows.append((line, number, address, status))
        if not rows and not problems:
            problems.append(Problem(None, "file", "has a header but no rows"))
        if problems:
            raise RegisterImportError(problems)
        return rows

    # ------------------------------------------------------------------ internals
    def _tx(self):  # noqa: ANN202 - a context manager for one SQLite transaction
        db = self._db

        class _T:
            def __enter__(self_inner) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, kind, *rest) -> None:  # noqa: ANN001
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _T()

    def _refuse_taken(self, number: str | None, address: str) -> None:
        if number is not None:
            row = self._db.execute("SELECT address FROM passes WHERE number = ?", (number,)).fetchone()
            if row:
                raise RegisterError(f"number: {number} is already in the register (look it up: lost phone?)", "number")
        row = self._db.execute("SELECT number FROM passes WHERE address = ? UNION SELECT number FROM old_addresses "
                               "WHERE address = ?", (address, address)).fetchone()
        if row:
            raise RegisterError("address: this address already belongs to a pass in the register; "
                                "scan the QR code of the resident's new phone", "address")

    def _entry(self, number: str) -> Entry | None:
        row = self._db.execute("SELECT address, status, since FROM passes WHERE number = ?", (number,)).fetchone()
        if row is None:
            return None
        changes = self._db.execute("SELECT kind, address, old_address, reason, officer, time, tx FROM history "
                                   "WHERE number = ? ORDER BY id", (number,)).fetchall()
        return Entry(number, row[0], row[1], row[2], tuple(Change(*c) for c in changes))

    def _change(self, number: str, kind: str, address: str, old: str | None, reason: str | None, officer: str,
                now: int, tx: str | None) -> None:
        self._db.execute("INSERT INTO history (number, kind, address, old_address, reason, officer, time, tx) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (number, kind, address, old, reason, officer, now, tx))

    def _log(self, officer: str, action: str, number: str | None, found: bool) -> None:
        self._db.execute("INSERT INTO lookups (officer, time, action, number, found) VALUES (?, ?, ?, ?, ?)",
                         (officer, int(time.time()), action, number, int(found)))


def problems_json(problems: Iterable[Problem]) -> list[dict[str, object]]:
    return [{"line": p.line, "field": p.field, "reason": p.reason} for p in problems]


__all__ = ["Register", "Entry", "Change", "Lookup", "RegisterError", "RegisterImportError", "REASONS",
           "normalize_number", "check_address", "problems_json"]
