"""What every `citypass` command shares: the context object (chain, deployment, signing
account, chosen lazily), parameter types (addresses, euros, dates, roles) and output.

Data goes to stdout (a table on a terminal, tab-separated lines in a pipe, JSON with
--json); messages and progress go to stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from citypass import contract as C
from citypass import keys, safe
from citypass.chain import Chain, connect
from citypass.errors import ROLE_IDS, CityPassError, UsageError, euros
from citypass.money import parse_euros as money_parse_euros
from citypass.money import plain_euros
from citypass.tx import Receipt, send, send_many

DAY = 86_400


# ------------------------------------------------------------------ context
@dataclass
class Ctx:
    """The global options, and what they lead to, resolved only when a command needs it
    (so `citypass account list` never starts a node)."""

    rpc: str | None = None
    workdir: Path = field(default_factory=lambda: Path(".citypass"))
    json: bool = False
    from_spec: str | None = None
    confirmations: int | None = None
    max_fee: int | None = None  # wei, --max-fee
    contract_address: str | None = None
    via_safe: str | None = None  # --via-safe: propose through this Safe instead of sending
    _chain: Chain | None = None
    _deployment: C.Deployment | None = None
    _accounts: dict[str, LocalAccount] = field(default_factory=dict)

    @property
    def chain(self) -> Chain:
        if self._chain is None:
            self._chain = connect(self.rpc, workdir=self.workdir, confirmations=self.confirmations,
                                  max_fee=self.max_fee)
            if self._chain.default_confirmations > 0:
                from citypass import reported

                reported.check(self._chain)  # a reorg deeper than the confirmations since the last command
        return self._chain

    @property
    def deployment(self) -> C.Deployment:
        if self._deployment is None:
            self._deployment = C.open_deployment(self.chain, self.contract_address, self.workdir)
        return self._deployment

    def load(self, spec: str) -> LocalAccount:
        if spec not in self._accounts:
            self._accounts[spec] = keys.load_account(spec, self.chain, workdir=self.workdir)
        return self._accounts[spec]

    def account(self, role: str | None = None) -> LocalAccount:
        """The signer: --from / $CITYPASS_FROM; on a local dev chain without one, the dev
        account that holds `role` (so a demo needs no --from on every line)."""
        if self.from_spec:
            return self.load(self.from_spec)
        if self.chain.is_local_dev:
            if role is None:
                return self.load("dev:0")
            holder = self.dev_holding([role])
            if holder is not None:
                return holder
            raise CityPassError(f"no dev account holds the {role} role on this chain: pass --from KEYSPEC"
                                + self._safe_hint(role))
        what = f" (an account with the {role} role)" if role else ""
        raise UsageError(f"no signing account: pass --from KEYSPEC{what} or set CITYPASS_FROM")

    def dev_holding(self, roles: list[str]) -> LocalAccount | None:
        """The first dev account that holds every one of `roles` (said on stderr), or None."""
        for i in range(keys.DEV_ACCOUNTS):
            address = keys.dev_account(i).address
            if all(C.has_role(self.deployment, r, address) for r in roles):
                held = f"the {roles[0]} role" if len(roles) == 1 else f"the {' and '.join(roles)} role(s)"
                note(f"signing as dev:{i} ({address}), which holds {held}")
                return self.load(f"dev:{i}")
        return None

    def _safe_hint(self, role: str) -> str:
        safes = [a for a in C.role_members(self.deployment).get(role, []) if safe.is_safe(self.chain, a)]
        return f" (Safe {safes[0]} holds it: this command cannot propose through a Safe yet)" if safes else ""

    def safe_route(self, roles: str | Sequence[str] | None) -> str | None:
        """The Safe through which this command proposes instead of sending, or None to send:
        --via-safe; else, when the signer (--from, or on a dev chain a dev account) lacks
        `roles` and one Safe holds them all, that Safe (said on stderr)."""
        wanted = [roles] if isinstance(roles, str) else list(roles or [])
        dep = self.deployment
        if self.via_safe:
            info = safe.safe_info(self.chain, self.via_safe, "--via-safe")
            missing = [r for r in wanted if not C.has_role(dep, r, info.address)]
            if missing:
                raise CityPassError(f"Safe {info.address} lacks the {' and '.join(missing)} role(s) on the contract at "
                                    f"{dep.address}: nothing was proposed")
            return info.address
        if not wanted:
            return None
        if self.from_spec:
            if all(C.has_role(dep, r, self.load(self.from_spec).address) for r in wanted):
                return None
        elif self.chain.is_local_dev and any(
                all(C.has_role(dep, r, keys.dev_account(i).address) for r in wanted) for i in range(keys.DEV_ACCOUNTS)):
            return None
        members = C.role_members(dep)
        holders = [a for a in members.get(wanted[0], []) if all(C.has_role(dep, r, a) for r in wanted[1:])]
        safes = [a for a in holders if safe.is_safe(self.chain, a)]
        if len(safes) > 1:
            raise UsageError(f"{len(safes)} Safes hold the {' and '.join(wanted)} role(s): pick one with --via-safe")
        if safes:
            info = safe.safe_info(self.chain, safes[0])
            held = f"the {wanted[0]} role is" if len(wanted) == 1 else f"the {' and '.join(wanted)} roles are"
            note(f"{held} held by Safe {info.address} ({info.threshold} of "
                 f"{len(info.owners)} owners): proposing a Safe transaction instead of sending")
            return info.address
        return None

    def propose(self, safe_address: str, calls: Sequence[tuple[str, bytes, str]], *, description: str | None = None,
                kind: str = "call", details: dict[str, Any] | None = None, dedupe: Sequence[str] = (),
                simulate: bool = True) -> None:
        """Records `calls` ((to, data, what)) as a Safe proposal, prints it, and ends the
        command (exit 0): nothing is sent until the owners sign and `safe execute` runs."""
        from citypass import proposals

        try:
            p = proposals.propose(self.chain, self.workdir, safe_address, calls, kind=kind, details=details,
                                  description=description or "; ".join(w for _, _, w in calls), dedupe=dedupe,
                                  simulate=simulate)
        except proposals.AlreadyProposed as exc:
            note(str(exc))
            show_proposal(self, exc.proposal)
            click.get_current_context().exit(0)
            return
        note(f"proposed Safe transaction {p.id} to Safe {p.safe}; nothing was sent: owners sign it with "
             f"`citypass safe sign {p.id} --from KEY`, then `citypass safe execute {p.id}`")
        show_proposal(self, p)
        click.get_current_context().exit(0)

    def propose_fns(self, safe_address: str, fns: Sequence[Any], dedupe: Sequence[str] = ()) -> None:
        """Proposes contract calls, each described in plain words (proposals.describe_call)."""
        from citypass import proposals

        calls = []
        for fn in fns:
            data = bytes.fromhex(fn._encode_transaction_data()[2:])
            calls.append((fn.address, data, proposals.describe_call(self.deployment, data)))
        self.propose(safe_address, calls, dedupe=dedupe)

    def send(self, fn: Any, what: str, *, role: str | None = None, account: LocalAccount | None = None) -> Receipt:
        """Sends one call as `account` (default: self.account(role)) and reports it on stderr;
        when `role` is held by a Safe (safe_route), proposes it instead and ends the command."""
        if account is None or self.via_safe:
            routed = self.safe_route(role)
            if routed:
                self.propose_fns(routed, [fn])
        signer = account or self.account(role)
        receipt = send(self.chain, signer, fn, confirmations=self.confirmations)
        note(f"{what} (tx 0x{bytes(receipt.transactionHash).hex()}, block {receipt.blockNumber})")
        return receipt

    def send_many(self, fns: Sequence[Any], what: str, *, role: str | None = None,
                  account: LocalAccount | None = None) -> list[Receipt]:
        if not fns:
            return []
        if account is None or self.via_safe:
            routed = self.safe_route(role)
            if routed:
                self.propose_fns(routed, fns)
        signer = account or self.account(role)
        receipts = send_many(self.chain, signer, fns, confirmations=self.confirmations)
        note(f"{what} ({len(receipts)} transaction(s), last in block {receipts[-1].blockNumber})")
        return receipts


pass_ctx = click.make_pass_decorator(Ctx)


def show_proposal(c: Ctx, p: Any) -> None:
    """A Safe proposal on stdout: what it does, its transactions and their signatures."""
    from citypass import proposals

    data = proposals.summary(c.chain, p)
    if c.json:
        output(c, data)
        return
    flat: dict[str, Any] = {k: data[k] for k in ("proposal", "safe", "what", "status", "signatures")}
    for k, v in data["details"].items():
        flat[k.replace("_", " ")] = ", ".join(map(str, v)) if isinstance(v, list) else v
    for t in data["transactions"]:
        label = f"nonce {t['nonce']}"
        flat[label] = (f"{t['safe_tx_hash']} {t['state']}"
                       + (f" in {t['executed_in']}" if t["executed_in"] else "")
                       + (f", signed by {', '.join(t['signed_by'])}" if t["signed_by"] else ", no signatures yet")
                       + ("" if len(data["transactions"]) == 1 else f": {t['what']}"))
        for problem in t["problems"]:
            warn(f"{t['safe_tx_hash']}: {problem}")
    output(c, flat)


# ------------------------------------------------------------------ messages and output
def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """A message for the human (stderr), never mixed with data."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)  # JSON readers lose precision above 2**53 (budget ids)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_json_written: list[bool] = [False]  # whether this invocation wrote its JSON data already


def emit_json(data: Any) -> None:
    click.echo(json.dumps(_plain(data), indent=2))
    _json_written[0] = True


def start_invocation() -> None:
    """A new command line: nothing written yet (the CLI may run many in one process)."""
    _json_written[0] = False


# ------------------------------------------------------------------ --json anywhere, failures as JSON
def hoist_json(args: Sequence[str]) -> tuple[list[str], bool]:
    """`citypass node status --json` means `citypass --json node status`: every `--json`
    before a `--` separator moves to the front (it is a global option)."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    found = "--json" in args[:end]
    if found:
        args = ["--json"] + [a for a in args[:end] if a != "--json"] + args[end:]
    return args, found


def failure(message: str, exit_code: int, *, as_json: bool) -> None:
    """A failed command: `error: <message>` on stderr; with --json also, on stdout, an
    object a script can parse: {"ok": false, "error": message, "exit_code": code}, unless
    the command wrote its JSON data already (e.g. `redeem --batch`, whose list says what
    failed): stdout then stays one JSON document, and the exit code tells the failure."""
    if as_json and not _json_written[0]:
        click.echo(json.dumps({"ok": False, "error": message, "exit_code": exit_code}, indent=2))
    click.echo(f"error: {message}", err=True)


def output(ctx: Ctx, data: Any, rows: Iterable[Sequence[Any]] | None = None,
           columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Data on stdout: `data` as JSON with --json, else `rows` under `columns` (a table on
    a terminal, tab-separated in a pipe), else `data` as `key: value` lines."""
    if ctx.json:
        emit_json(data)
        return
    if rows is None:
        items = data.items() if isinstance(data, dict) else []
        width = max((len(str(k)) for k, _ in items), default=0)
        for k, v in (data.items() if isinstance(data, dict) else []):
            click.echo(f"{str(k) + ':':<{width + 1}} {v}")
        return
    rows = [[str(c) for c in r] for r in rows]
    if not sys.stdout.isatty():
        if columns:
            click.echo("\t".join(columns))
        for r in rows:
            click.echo("\t".join(r))
        return
    table = Table(title=title, show_lines=False, box=None, header_style="bold")
    for c in columns or []:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    Console(highlight=False).print(table)


def address_of(c: Ctx, value: str, what: str) -> str | None:
    """An address given as such, as a keystore name or as dev:N; None for `none`."""
    text = value.strip()
    if text.lower() == "none":
        return None
    if text.startswith("0x"):
        return C.checksum(text, what)
    if text.startswith("dev:"):
        return c.load(text).address  # load_account refuses dev keys off dev chains
    for entry in keys.list_keystores(c.workdir):
        if entry.name == text:
            return entry.address  # no password needed: the address is in the keystore
    raise UsageError(f"{what}: {text!r} is neither an address, a keystore name nor dev:N")


# ------------------------------------------------------------------ values
def parse_euros(text: str, what: str = "amount", *, allow_zero: bool = False) -> int:
    """'12.50' -> 1250 cents, by the rule issuance files follow too (money.parse_euros: a dot,
    at most two decimals, no comma, no currency sign); UsageError naming `what` otherwise."""
    try:
        return money_parse_euros(str(text), allow_zero=allow_zero)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


format_euros = euros  # for people: '€12.50'
cents_to_str = plain_euros  # for CSV and JSON: 1250 -> '12.50'


def parse_date(text: str, what: str = "date", *, end_of_day: bool = False) -> int:
    """YYYY-MM-DD (UTC) -> unix seconds at 00:00:00, or 23:59:59 with end_of_day (validity
    dates are inclusive)."""
    try:
        day = date.fromisoformat(str(text).strip())
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a date in the form YYYY-MM-DD") from None
    ts = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    return ts + DAY - 1 if end_of_day else ts


def format_date(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%d")


def parse_role(text: str) -> str:
    """'issuer', 'budget-manager', 'BUDGET_MANAGER_ROLE' -> 'ISSUER', 'BUDGET_MANAGER'."""
    name = str(text).strip().upper().replace("-", "_")
    name = name[:-5] if name.endswith("_ROLE") else name
    if name == "DEFAULT_ADMIN":
        name = "ADMIN"
    if name not in ROLE_IDS:
        known = ", ".join(n.lower().replace("_", "-") for n in ROLE_IDS)
        raise UsageError(f"role: unknown role {text!r} (known: {known})")
    return name


def role_label(name: str) -> str:
    return name.lower().replace("_", "-")


# ------------------------------------------------------------------ click parameter types
class _Converting(click.ParamType):
    """A click type over one of the parsers above; their UsageError becomes click's usage error."""

    parser: Callable[[str], Any]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return type(self).parser(value)
        except UsageError as exc:
            self.fail(str(exc).split(": ", 1)[-1], param, ctx)


class AddressType(_Converting):
    name = "ADDRESS"
    parser = staticmethod(lambda v: C.checksum(v))  # type: ignore[assignment]


class EuroType(_Converting):
    name = "EUROS"
    parser = staticmethod(lambda v: parse_euros(v))  # type: ignore[assignment]


class EuroOrZeroType(_Converting):
    name = "EUROS"
    parser = staticmethod(lambda v: parse_euros(v, allow_zero=True))  # type: ignore[assignment]


class DateType(_Converting):
    """A YYYY-MM-DD date; converted to its first second (use end_of_day() for inclusive ends)."""

    name = "YYYY-MM-DD"
    parser = staticmethod(lambda v: parse_date(v))  # type: ignore[assignment]


class RoleType(_Converting):
    name = "ROLE"
    parser = staticmethod(parse_role)  # type: ignore[assignment]


ADDRESS = AddressType()
EUROS = EuroType()
EUROS_OR_ZERO = EuroOrZeroType()
DATE = DateType()
ROLE = RoleType()


def end_of_day(day_start: int) -> int:
    return day_start + DAY - 1


def parse_categories(dep: C.Deployment, text: str) -> list[int]:
    """'0,2' or 'sport,culture' (names from `category define`) -> category numbers."""
    names = {n.lower(): c for c, n in C.category_names(dep).items()}
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if part.isascii() and part.isdigit():
            c = int(part)
        elif part.lower() in names:
            c = names[part.lower()]
        else:
            known = ", ".join(f"{c}={n}" for n, c in sorted(names.items(), key=lambda x: x[1])) or "none defined"
            raise UsageError(f"category {part!r}: not a number 0..63 nor a defined category ({known})")
        if not 0 <= c <= 63:
            raise UsageError(f"category {c}: categories are 0..63")
        out.append(c)
    if not out:
        raise UsageError("categories: give at least one (like 0,2 or sport,culture)")
    return sorted(set(out))


def category_label(dep: C.Deployment, category: int, names: dict[int, str] | None = None) -> str:
    names = C.category_names(dep) if names is None else names
    return f"{category} ({names[category]})" if category in names else str(category)
