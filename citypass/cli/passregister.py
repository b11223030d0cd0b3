"""`citypass register`: the registrar's command-line access to the private pass register
(citypass/register.py), the same rules and the same access log as the desk page. The officer
is the --from account (on a dev chain, the dev account holding the role); the role is checked
on chain and every read is logged with its address."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from citypass import contract as C
from citypass.cli.common import Ctx, output, pass_ctx
from citypass.errors import CityPassError
from citypass.register import Register, RegisterImportError


def _officer(c: Ctx, role: str) -> str:
    who = c.account(role).address
    C.require_role(c.deployment, role, who)
    return who


@click.group("register")
def register_group() -> None:
    """The private pass register (pass number <-> address). Needs REGISTRAR; the log needs the admin."""


@register_group.command("find")
@click.argument("number")
@pass_ctx
def register_find(c: Ctx, number: str) -> None:
    """Show the pass NUMBER's address, status and history (the look-up is logged)."""
    who = _officer(c, "REGISTRAR")
    with _open(c) as reg:
        entry = reg.find(number, who)
    if entry is None:
        raise CityPassError(f"pass number {number.strip().upper()} is not in the register")
    output(c, {"number": entry.number, "address": entry.address, "status": entry.status,
               "history": [{"kind": h.kind, "address": h.address, "old_address": h.old_address, "reason": h.reason,
                            "officer": h.officer, "time": h.time, "tx": h.tx} for h in entry.history]})


@register_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def register_import(c: Ctx, file: Path) -> None:
    """Add the links of a CSV file (pass_number,address[,status]); all or nothing."""
    who = _officer(c, "REGISTRAR")
    with _open(c) as reg:
        try:
            count = reg.import_csv(file.read_bytes(), who)
        except RegisterImportError as exc:
            raise CityPassError(f"{file}: {exc}") from None
        output(c, {"imported": count, "total": reg.count()})


@register_group.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
@pass_ctx
def register_export(c: Ctx, out: Path | None) -> None:
    """The whole register as CSV (logged)."""
    who = _officer(c, "REGISTRAR")
    with _open(c) as reg:
        text = reg.export_csv(who)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


@register_group.command("log")
@pass_ctx
def register_log(c: Ctx) -> None:
    """Who looked at what in the register, newest first (the admin, the registrars' supervisor)."""
    _officer(c, "ADMIN")
    with _open(c) as reg:
        rows = reg.lookups()
    output(c, {"lookups": [{"officer": x.officer, "time": x.time, "action": x.action, "number": x.number,
                            "found": x.found} for x in rows]},
           rows=[(x.time, x.officer, x.action, x.number or "-", "yes" if x.found else "no") for x in rows],
           columns=("TIME", "OFFICER", "ACTION", "NUMBER", "FOUND"))


class _open:
    def __init__(self, c: Ctx):
        self.reg = Register.open(c.workdir)

    def __enter__(self) -> Register:
        return self.reg

    def __exit__(self, *exc: object) -> None:
        self.reg.close()
