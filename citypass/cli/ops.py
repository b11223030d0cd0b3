"""`citypass` commands for operations: issuance from CSV, resident vouchers, provider
redemption, finance. Thin: parse arguments, call the library, print. Registered on the main
group by citypass/cli/main.py (`register(main)`).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import click

from citypass import budget_id
from citypass import contract as C
from citypass import finance, issuance, keys, redemption, tx, wallet
from citypass import voucher as V
from citypass.cli.common import (
    ADDRESS, DATE, EUROS, EUROS_OR_ZERO, Ctx, cents_to_str, end_of_day, err_console, format_date, format_euros,
    note, output, pass_ctx,
)
from citypass.errors import CityPassError, UsageError


def register(group: click.Group) -> None:
    for command in (issue_cmd, voucher_group, redeem_cmd, refund_cmd, balance_cmd, reclaim_cmd, settle_cmd, audit_cmd):
        group.add_command(command)


# ------------------------------------------------------------------ helpers
class _Bar:
    """advance(n) or update(done, total) one rich progress bar."""

    def __init__(self, bar: Any, task: Any):
        self._bar, self._task = bar, task

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)


@contextmanager
def progress_bar(label: str, total: int | None = None) -> Iterator[_Bar]:
    """A rich progress bar on stderr (data stays alone on stdout)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console(), transient=False) as bar:
        yield _Bar(bar, bar.add_task(label, total=total))


@contextmanager
def lazy_progress_bar(label: str) -> Iterator[Any]:
    """An update(done, total) callback whose progress bar is shown only once it is first called."""
    with ExitStack() as stack:
        bar: list[_Bar] = []

        def update(done: int, total: int) -> None:
            if not bar:
                bar.append(stack.enter_context(progress_bar(label, total)))
            bar[0].update(done, total)

        yield update


def _budget(c: Ctx, spec: str) -> C.BudgetInfo:
    return C.find_budget(c.deployment, spec)


def _dev_account_with(c: Ctx, roles: list[str]) -> Any:
    """--from, or on a local dev chain the first dev account holding all `roles`."""
    if c.from_spec or not c.chain.is_local_dev:
        return c.account(roles[0])
    holder = c.dev_holding(roles)
    if holder is not None:
        return holder
    raise CityPassError(
        f"no dev account holds the {' and '.join(roles)} roles together"
        + (" (enrolling new residents needs both): grant one, e.g. `citypass role grant registrar <issuer address>`"
           if len(roles) > 1 else "")
        + ", or pass --from KEYSPEC"
    )


def _provider_account(c: Ctx, named: str | None = None) -> Any:
    """The provider's own wallet: --from; on a local dev chain, the dev account the voucher names."""
    if c.from_spec:
        return c.load(c.from_spec)
    index = keys.dev_index(named) if named and c.chain.is_local_dev else None
    if index is not None:
        return c.load(f"dev:{index}")
    raise UsageError("pass --from KEYSPEC: the provider's own wallet (keystore name or file) signs and pays gas")


# ------------------------------------------------------------------ issue
@click.command("issue")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--budget", "budget_spec", required=True, metavar="ID", help="Budget number (#3 or 3) or full id.")
@click.option("--dry-run", is_flag=True, help="Validate and print totals, batches and gas; send nothing.")
@click.option("--valid-until", type=DATE, help="Validity of passes enrolled by this file (default: the budget's end).")
@click.option("--tranche", default="", help="Label of a deliberate further round of credit to the same residents.")
@click.option("--top-up", is_flag=True,
              help="For residents who already received less in this tranche, send only the difference.")
@click.option("--allow-role-holders", is_flag=True,
              help="Credit (and enrol) addresses that hold a municipal role too (four-eyes: only when intended).")
@click.option("--batch-size", type=click.IntRange(1, 2000),
              help="Rows per batch (default: from the block gas limit; any size is safe for a re-run).")
@pass_ctx
def issue_cmd(c: Ctx, file: Path, budget_spec: str, dry_run: bool, valid_until: int | None, tranche: str,
              top_up: bool, allow_role_holders: bool, batch_size: int | None) -> None:
    """Credit (and enrol) the residents in FILE.csv, exactly once per budget, tranche and resident.

    FILE has the header `holder,amount`, then one checksummed address and an amount in
    euros (at most 2 decimals) per line. Every bad line is reported and nothing is sent.
    What each resident already received from the budget in this tranche is read from the
    chain: a re-run (edited, re-ordered, from another machine) sends nothing for them; a
    different amount refuses the run (use --top-up to send only a difference; a correction
    downwards is the contract's `correct`).
    """
    dep = c.deployment
    b = _budget(c, budget_spec)
    options = dict(tranche=tranche, batch_size=batch_size, top_up=top_up, allow_role_holders=allow_role_holders)
    plan = issuance.plan_issuance(dep, file, b.id, pass_valid_until=end_of_day(valid_until) if valid_until else None,
                                  **options)
    summary = {
        "file": str(file), "budget": f"#{b.serial}", "budget_name": b.name, "tranche": tranche, "rows": len(plan.rows),
        "total": cents_to_str(plan.total), "batches": len(plan.batches), "batch_size": plan.batch_size,
        "already_issued_batches": plan.earlier_batches, "already_received": len(plan.already),
        "top_ups": len(plan.top_ups), "not_in_file": len(plan.absent), "transactions_to_send": len(plan.sends),
        "residents_to_credit": plan.to_send_rows, "new_residents": plan.new_residents,
        "euros_to_send": cents_to_str(plan.to_send_total), "gas_estimate": plan.gas_estimate,
        "new_pass_valid_until": format_date(plan.pass_valid_until),
    }
    _say_what_was_issued(plan)
    if dry_run:
        rows = [(s.batch, s.kind, "0x" + s.batch_id.hex()[:16] + "…", len(s.rows), format_euros(s.total), f"{s.gas_estimate:,}")
                for s in plan.sends]
        if c.json:
            output(c, summary | {"sends": [{"batch": s.batch, "kind": s.kind, "batch_id": "0x" + s.batch_id.hex(),
                                            "rows": len(s.rows), "total": cents_to_str(s.total), "gas_estimate": s.gas_estimate}
                                           for s in plan.sends]})
            return
        for k, v in summary.items():
            click.echo(f"{k + ':':<24} {v}")
        output(c, None, rows=rows, columns=("BATCH", "KIND", "ID", "ROWS", "EUROS", "GAS"))
        return
    if not plan.sends:
        note("everything in this file was issued before: nothing to send")
    else:
        note(f"sending {len(plan.sends)} transaction(s): {plan.to_send_rows} residents ({plan.new_residents} new), "
             f"{format_euros(plan.to_send_total)} of budget #{b.serial}")
    roles = ["ISSUER", "REGISTRAR"] if plan.new_residents else ["ISSUER"]
    account = _dev_account_with(c, roles) if plan.sends else None
    if account is not None and tx.wait_idle(dep.chain, account.address):
        note("a transaction of an earlier, interrupted run was still in flight: it is mined now, planning again")
        plan = issuance.plan_issuance(dep, file, b.id, pass_valid_until=plan.pass_valid_until,
                                      **(options | {"batch_size": plan.batch_size}))
    before = issuance.snapshot(dep, plan)
    results: list[issuance.SendResult] = []
    if plan.sends:
        with progress_bar("issuing", plan.to_send_rows) as bar:
            results = issuance.execute(dep, account, plan, on_sent=lambda r: bar.advance(len(r.send.rows)))
    skipped = [r for r in results if r.tx_hash is None]
    if skipped:
        note(f"{len(skipped)} batch transaction(s) were issued by another run meanwhile; skipped")
    rec = issuance.reconcile(dep, plan, before, results)
    if c.json:
        output(c, summary | {
            "sent": [{"batch": r.send.batch, "kind": r.send.kind, "tx": r.tx_hash, "gas_used": r.gas_used} for r in results],
            "reconciliation": {"ok": rec.ok, "lines": rec.lines()},
        })
    else:
        click.echo("\n".join(rec.lines()))
    if not rec.ok:
        raise CityPassError("the reconciliation does not agree (see above): check the chain before re-running")


def _say_what_was_issued(plan: issuance.Plan) -> None:
    """On stderr: what the chain says this tranche already did for the file's residents."""
    tranche = f" (tranche {plan.tranche!r})" if plan.tranche else ""
    if plan.already:
        note(f"{len(plan.already)} of {len(plan.rows)} residents in this file already received their amount from this "
             f"budget{tranche} ({plan.earlier_batches} earlier batch transaction(s) on chain): nothing is sent for them")
    for row, got in plan.top_ups:
        note(f"line {row.line}: {row.holder} received {format_euros(got)} before; topping up "
             f"{format_euros(row.amount - got)} to {format_euros(row.amount)}")
    if plan.absent:
        note(f"{len(plan.absent)} resident(s) credited earlier in this tranche are not in this file "
             f"({format_euros(sum(c for _, c in plan.absent))}); their credit stays as it is")


# ------------------------------------------------------------------ vouchers (resident)
@click.group("voucher")
def voucher_group() -> None:
    """Resident vouchers: sign one at the till (as a QR code), or check one."""


@voucher_group.command("sign")
@click.option("--budget", "budget_spec", required=True, metavar="ID", help="Budget number (#3 or 3) or full id.")
@click.option("--amount", type=EUROS, required=True, help="Euros taken from the pass, e.g. 12.50.")
@click.option("--provider", type=ADDRESS, required=True, help="The provider's wallet address.")
@click.option("--co-payment", type=EUROS_OR_ZERO, default="0", help="Euros the resident pays on top.")
@click.option("--key", "key_spec", metavar="KEYSPEC", help="The holder's key (default: --from).")
@click.option("--qr", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code to this PNG file.")
@click.option("--ttl", type=click.IntRange(1, 7 * 86_400), default=V.DEFAULT_TTL_SECONDS, show_default=True,
              help="Seconds the voucher stays valid.")
@click.option("--nonce", type=click.IntRange(min=0), help="Voucher number (default: the lowest unused).")
@pass_ctx
def voucher_sign(c: Ctx, budget_spec: str, amount: int, provider: str, co_payment: int, key_spec: str | None,
                 qr: Path | None, ttl: int, nonce: int | None) -> None:
    """Sign a voucher as the pass holder and print its payload (and write its QR code)."""
    spec = key_spec or c.from_spec
    if not spec:
        raise UsageError("pass --key KEYSPEC (the pass holder's key) or --from")
    account = c.load(spec)
    b = _budget(c, budget_spec)
    signed = wallet.sign_voucher(c.deployment, account, b.id, amount, provider, co_payment=co_payment, ttl=ttl, nonce=nonce)
    payload = V.encode_payload(signed)
    if qr:
        wallet.write_qr(payload, qr)
        note(f"QR code written to {qr}")
    v = signed.voucher
    if c.json:
        output(c, {"payload": payload, "holder": v.holder, "provider": v.provider, "budget": b.serial,
                   "amount": cents_to_str(v.amount), "co_payment": cents_to_str(v.co_payment), "nonce": v.nonce,
                   "deadline": v.deadline, "qr": str(qr) if qr else None})
    else:
        click.echo(payload)


@voucher_group.command("show")
@click.argument("voucher")
@click.option("--provider", type=ADDRESS, help="Check for this provider (default: the one the voucher names).")
@pass_ctx
def voucher_show(c: Ctx, voucher: str, provider: str | None) -> None:
    """Decode a voucher (payload text or QR PNG), explain it and run the chain's pre-check."""
    signed = wallet.load_voucher(voucher)
    check = redemption.explain(c.deployment, signed, provider)
    if c.json:
        output(c, check.as_dict())
    else:
        click.echo("\n".join(check.lines()))
    if not check.ok:
        raise redemption.VoucherRefused(check.reason, f"voucher refused: {check.message}")


# ------------------------------------------------------------------ provider
@click.command("redeem")
@click.argument("voucher", required=False)
@click.option("--batch", "batch_file", type=click.Path(dir_okay=False, path_type=Path),
              help="File with one voucher payload per line (collected offline).")
@pass_ctx
def redeem_cmd(c: Ctx, voucher: str | None, batch_file: Path | None) -> None:
    """Redeem a voucher (payload text or QR PNG) from the provider's own wallet (--from).

    The chain's pre-check runs first: a voucher it would refuse is reported with its plain
    reason and nothing is sent. On a local dev chain without --from, the dev account the
    voucher names signs. With --batch, vouchers the chain refuses are skipped (and listed).
    """
    if (voucher is None) == (batch_file is None):
        raise UsageError("give either one VOUCHER or --batch FILE")
    dep = c.deployment
    if voucher is not None:
        signed = wallet.load_voucher(voucher)
        result = redemption.redeem(dep, _provider_account(c, signed.voucher.provider), signed)
        v = result.voucher
        note(f"redeemed {format_euros(v.amount)} from {v.holder} (co-payment {format_euros(v.co_payment)}), "
             f"tx {result.tx_hash}, gas {result.gas_used:,}")
        output(c, {"redeemed": True, "holder": v.holder, "amount": cents_to_str(v.amount),
                   "co_payment": cents_to_str(v.co_payment), "nonce": v.nonce, "tx": result.tx_hash,
                   "block": result.block, "gas_used": result.gas_used})
        return
    assert batch_file is not None
    signed_list, lines = _read_batch(batch_file)
    if not signed_list:
        raise CityPassError(f"{batch_file}: no vouchers in the file")
    account = _provider_account(c, signed_list[0].voucher.provider)
    outcomes = redemption.redeem_batch(dep, account, signed_list)
    data = [{"line": lines[o.index], "holder": o.voucher.holder, "amount": cents_to_str(o.voucher.amount),
             "nonce": o.voucher.nonce, "redeemed": o.redeemed, "reason": o.reason.name if o.reason else None,
             "message": o.message, "tx": o.tx_hash} for o in outcomes]
    output(c, data, rows=[(d["line"], d["holder"], format_euros(o.voucher.amount), d["nonce"], d["message"])
                          for d, o in zip(data, outcomes)], columns=("LINE", "HOLDER", "AMOUNT", "NONCE", "OUTCOME"))
    done = [o for o in outcomes if o.redeemed]
    note(f"redeemed {len(done)} of {len(outcomes)} vouchers, {format_euros(sum(o.voucher.amount for o in done))}")
    if len(done) < len(outcomes):
        raise CityPassError(f"{len(outcomes) - len(done)} of {len(outcomes)} vouchers were refused (see the list)")


def _read_batch(path: Path) -> tuple[list[V.SignedVoucher], list[int]]:
    """Vouchers of a batch file (blank lines skipped); every bad line reported, none sent."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CityPassError(f"cannot read {path}: {exc}") from None
    vouchers, lines, problems = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            vouchers.append(V.decode_payload(line))
            lines.append(number)
        except V.VoucherError as exc:
            problems.append(f"  line {number}: {exc}")
    if problems:
        raise CityPassError(f"{path}: {len(problems)} bad line(s), nothing was sent:\n" + "\n".join(problems))
    return vouchers, lines


@click.command("refund")
@click.argument("voucher")
@click.option("--amount", type=EUROS, help="Euros to give back (default: all that is left to refund of the voucher).")
@pass_ctx
def refund_cmd(c: Ctx, voucher: str, amount: int | None) -> None:
    """Give credit back to a resident for a voucher you redeemed (payload text or QR PNG).

    Only the provider the voucher names can refund it, from its own wallet (--from; on a
    local dev chain the dev account the voucher names), and the refunds of one voucher add
    up to at most its amount. Checked before anything is sent.
    """
    signed = wallet.load_voucher(voucher)
    result = redemption.refund(c.deployment, _provider_account(c, signed.voucher.provider), signed, amount)
    v = signed.voucher
    serial = budget_id.decode(v.budget).serial
    note(f"refunded {format_euros(result.amount)} of budget #{serial} to {result.to} "
         f"({format_euros(result.left)} of this voucher's {format_euros(v.amount)} left to refund), tx {result.tx_hash}")
    output(c, {"refunded": cents_to_str(result.amount), "holder": v.holder, "to": result.to, "budget": serial,
               "nonce": v.nonce, "voucher_digest": "0x" + result.state.digest.hex(), "voucher_amount": cents_to_str(v.amount),
               "refunded_total": cents_to_str(result.state.refunded + result.amount),
               "left_to_refund": cents_to_str(result.left), "tx": result.tx_hash, "block": result.block,
               "gas_used": result.gas_used})


@click.command("balance")
@click.option("--provider", type=ADDRESS, help="Provider address (default: the --from account's).")
@pass_ctx
def balance_cmd(c: Ctx, provider: str | None) -> None:
    """Credit a provider holds per budget: redeemed and not yet settled."""
    if provider is None:
        if not c.from_spec:
            raise UsageError("pass --provider ADDRESS or --from KEYSPEC")
        provider = c.load(c.from_spec).address
    items = redemption.balance(c.deployment, provider)
    total = sum(b.cents for b in items)
    output(c, {"provider": provider, "total": cents_to_str(total),
               "budgets": [{"budget": b.serial, "name": b.name, "category": b.category, "amount": cents_to_str(b.cents)}
                           for b in items]},
           rows=[(f"#{b.serial}", b.name, b.category, format_euros(b.cents)) for b in items] + [("", "total", "", format_euros(total))],
           columns=("BUDGET", "NAME", "CATEGORY", "AMOUNT"))


# ------------------------------------------------------------------ finance
@click.command("reclaim")
@click.option("--budget", "budget_spec", required=True, metavar="ID")
@click.option("--batch-size", type=click.IntRange(1, 2000), default=finance.RECLAIM_BATCH, show_default=True)
@pass_ctx
def reclaim_cmd(c: Ctx, budget_spec: str, batch_size: int) -> None:
    """Burn the credit residents left in an ended budget. Needs BUDGET_MANAGER."""
    b = _budget(c, budget_spec)
    account = c.account("BUDGET_MANAGER")
    # The bar appears with the library's first progress report, which comes only after its
    # checks (budget ended, role): a refusal is never preceded by a progress bar.
    with lazy_progress_bar(f"reclaiming budget #{b.serial}") as update:
        result = finance.reclaim(c.deployment, account, b.id, batch_size, update)
    note(f"reclaimed {format_euros(result.total)} from {result.holders} of {result.candidates} holders of budget #{b.serial}"
         + ("" if result.holders else " (nothing left to reclaim)"))
    data = {"budget": b.serial, "candidates": result.candidates, "holders": result.holders,
            "reclaimed": cents_to_str(result.total), "transactions": list(result.tx_hashes)}
    output(c, data if c.json else data | {"transactions": ", ".join(result.tx_hashes) or "-"})


@click.command("settle")
@click.option("--provider", type=ADDRESS, required=True)
@click.option("--reference", required=True, help="Payment reference (case and spacing do not matter; used once).")
@click.option("--budget", "budget_specs", multiple=True, metavar="ID", help="Only these budgets (repeatable).")
@pass_ctx
def settle_cmd(c: Ctx, provider: str, reference: str, budget_specs: tuple[str, ...]) -> None:
    """Record a payment to a provider: burns what it holds under a one-time reference. Needs TREASURER."""
    budgets = [_budget(c, s).id for s in budget_specs] or None
    result = finance.settle(c.deployment, c.account("TREASURER"), provider, reference, budgets)
    note(f"settled {format_euros(result.total)} with {provider} under reference {result.reference!r} (tx {result.tx_hash})")
    output(c, {"provider": provider, "reference": result.reference, "reference_hash": result.reference_hash,
               "total": cents_to_str(result.total), "tx": result.tx_hash,
               "budgets": [{"budget": str(bid), "amount": cents_to_str(a)} for bid, a in result.amounts]},
           rows=[(f"#{budget_id.decode(bid).serial}", format_euros(a)) for bid, a in result.amounts]
           + [("total", format_euros(result.total))], columns=("BUDGET", "SETTLED"))


@click.command("audit")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file (default: stdout).")
@pass_ctx
def audit_cmd(c: Ctx, out: Path | None) -> None:
    """Export every CityPass event as CSV (block, time, tx, log index, event, arguments)."""
    count = finance.audit(c.deployment, out)
    note(f"{count} events" + (f" written to {out}" if out else ""))
