"""`citypass coupons`: paper coupon sheets at the municipality's desk, for residents without a
smartphone. Thin: the rules, the key, the PDF and the chain steps are citypass/coupons.py.
Registered on the main group by citypass/cli/main.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from citypass import coupons as K
from citypass.cli.common import ADDRESS, DATE, Ctx, end_of_day, format_euros, note, output, parse_euros, pass_ctx
from citypass.errors import UsageError

OUT_HELP = ("The sheet's PDF (A4). If it exists, the command finishes that sheet (a re-run after a failure) "
            "instead of making a new one; it never credits twice.")
DENOMINATIONS_HELP = ("Face values of the coupons in euros, largest first, comma-separated "
                      f"[default: {','.join(str(d // 100) for d in K.DEFAULT_DENOMINATIONS)}]. A coupon is used once "
                      "whatever the amount, so keep them small.")


@click.group("coupons")
def coupons_group() -> None:
    """Paper coupon sheets for residents without a smartphone (the desk).

    A fresh key is made in memory, signs the coupons and is dropped: it is never written to
    disk. Each coupon is one voucher of the pass (any provider approved for the budget's
    category, up to its face value, valid until the budget's end), used once whatever the
    amount. A lost sheet: `citypass coupons replace` (or `pass migrate`) kills every coupon
    on it and gives a new sheet for the credit left.
    """


def _denominations(text: str | None) -> tuple[int, ...]:
    return K.DEFAULT_DENOMINATIONS if text is None else K.parse_denominations(text)


def _signer(c: Ctx, spec: str | None, role: str) -> Any:
    return c.load(spec) if spec else c.account(role)


def _report(c: Ctx, result: K.SheetResult) -> None:
    info = result.info
    if result.finished_before:
        note(f"{result.sheet_path} was finished before: nothing was sent")
    for b, cents in info.credits.items():
        have = result.balances.get(b, 0)
        note(f"ok: the pass holds {format_euros(have)} of budget #{b >> 128}; the sheet's coupons add up to "
             f"{format_euros(cents)}")
    note("print the sheet and give it to the resident; the key that signed it no longer exists")
    if c.json:
        output(c, result.to_json())
        return
    output(c, {"pass": info.holder, "sheet": str(result.sheet_path)})


@coupons_group.command("new")
@click.option("--budget", "budget_spec", required=True, metavar="ID", help="Budget number (#3 or 3) or full id.")
@click.option("--amount", required=True, metavar="EUROS", help="Credit for the new pass, e.g. 50.00.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=OUT_HELP)
@click.option("--denominations", metavar="EUROS,...", help=DENOMINATIONS_HELP)
@click.option("--tranche", default="", help="The issuance tranche this credit belongs to (as `citypass issue --tranche`).")
@click.option("--valid-until", type=DATE,
              help="Last valid day of the new pass (default: the budget's end); its coupons stop working after it.")
@click.option("--registrar", "registrar_spec", metavar="KEY",
              help="The registrar's account that enrols the pass (default: --from, or the dev account with the role).")
@click.option("--issuer", "issuer_spec", metavar="KEY",
              help="The issuer's account that credits it (default: --from, or the dev account with the role).")
@click.option("--allow-role-holders", is_flag=True, hidden=True)
@pass_ctx
def coupons_new(c: Ctx, budget_spec: str, amount: str, out: Path, denominations: str | None, tranche: str,
                valid_until: int | None, registrar_spec: str | None, issuer_spec: str | None,
                allow_role_holders: bool) -> None:
    """A new resident's sheet: enrol a fresh pass, credit it, print its coupons.

    Order: the key signs the coupons and the PDF is written first; then the registrar
    enrols the pass and the issuer credits it (exactly once per budget, tranche and pass).
    A failure after the PDF is written says so; running the same command again finishes
    that sheet.
    """
    from citypass import contract as C

    cents = parse_euros(amount, "--amount")
    denoms = _denominations(denominations)
    dep = c.deployment
    budget = C.find_budget(dep, budget_spec)
    registrar = _signer(c, registrar_spec, "REGISTRAR")
    issuer = _signer(c, issuer_spec, "ISSUER")
    if registrar.address == issuer.address:
        note(f"note: {registrar.address} both enrols and credits (four eyes: give --registrar and --issuer)")
    result = K.make_sheet(dep, registrar, issuer, budget.id, cents, out, denominations=denoms, tranche=tranche,
                          pass_valid_until=None if valid_until is None else end_of_day(valid_until),
                          allow_role_holders=allow_role_holders, note=note)
    _report(c, result)


@coupons_group.command("replace")
@click.argument("old", metavar="OLD")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help=OUT_HELP)
@click.option("--denominations", metavar="EUROS,...", help=DENOMINATIONS_HELP)
@click.option("--registrar", "registrar_spec", metavar="KEY",
              help="The registrar's account that migrates the pass (default: --from, or the dev account with the role).")
@pass_ctx
def coupons_replace(c: Ctx, old: str, out: Path, denominations: str | None, registrar_spec: str | None) -> None:
    """A sheet for the credit of the pass OLD: a lost sheet, a lost phone, or credit an
    issuance gave OLD. OLD is the pass address, or the old sheet's PDF (its pass).

    The PDF is written first; then OLD is migrated to the new sheet's pass with all its
    credit, which kills every coupon and QR code of OLD. Running the same command again
    finishes an interrupted sheet.
    """
    denoms = _denominations(denominations)
    if not old.startswith("0x") and old.lower().endswith(".pdf"):
        if not Path(old).is_file():
            raise UsageError(f"OLD: {old}: no such file (give the old sheet's PDF or the pass address)")
        old = K.read_sheet_info(old).holder
    old = ADDRESS.convert(old, None, None)
    dep = c.deployment
    registrar = _signer(c, registrar_spec, "REGISTRAR")
    result = K.replace_sheet(dep, registrar, old, out, denominations=denoms, note=note)
    _report(c, result)


@coupons_group.command("plan")
@click.option("--amount", required=True, metavar="EUROS", help="Credit, e.g. 50.00.")
@click.option("--denominations", metavar="EUROS,...", help=DENOMINATIONS_HELP)
@pass_ctx
def coupons_plan(c: Ctx, amount: str, denominations: str | None) -> None:
    """The coupons a credit gives (nothing is signed or sent)."""
    cents = parse_euros(amount, "--amount")
    values = K.amounts_for(cents, _denominations(denominations))
    if len(values) > K.MAX_COUPONS:
        raise UsageError(f"--amount: {len(values)} coupons, more than the {K.MAX_COUPONS} a sheet holds; "
                         "use larger --denominations")
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    output(c, {"coupons": len(values), "total": K._plain(sum(values)), "total_cents": sum(values),
               "values": [{"amount": K._plain(v), "amount_cents": v, "count": n} for v, n in counts.items()]},
           rows=[(n, format_euros(v)) for v, n in counts.items()], columns=("COUPONS", "EACH"))


STATUS_TEXT = {"unused": "unused", "used": "used", "dead": "dead: the sheet was replaced or reported lost",
               "blocked": "blocked: the pass is suspended or revoked", "ended": "the budget has ended"}


@coupons_group.command("show")
@click.argument("sheet", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def coupons_show(c: Ctx, sheet: Path) -> None:
    """Each coupon of the sheet SHEET.pdf and whether it still works (from the chain)."""
    info = K.read_sheet_info(sheet)
    dep = c.deployment
    if info.chain_id != dep.chain.chain_id or info.contract.lower() != dep.address.lower():
        raise UsageError(f"{sheet} is a sheet for chain {info.chain_id}, contract {info.contract}, not this one")
    if info.coupons and not info.listed:
        raise UsageError(f"{sheet}: this sheet's PDF does not list its coupons (made by an older citypass)")
    rows = K.sheet_status(dep, info)
    unused = [r for r in rows if r.status == "unused"]
    note(f"sheet of pass {info.holder}: {len(unused)} of {len(rows)} coupons unused, worth "
         f"{format_euros(sum(r.amount for r in unused))}")
    output(c, {"pass": info.holder, "coupons": [
        {"number": r.number, "budget": str(r.budget), "serial": r.budget >> 128, "amount": K._plain(r.amount),
         "amount_cents": r.amount, "nonce": r.nonce, "check": r.check, "status": r.status} for r in rows]},
        rows=[(r.number, f"#{r.budget >> 128}", format_euros(r.amount), K.show_check_number(r.check), STATUS_TEXT[r.status])
              for r in rows], columns=("BON", "BUDGET", "AMOUNT", "CHECK", "STATUS"))
