"""`citypass` commands for operations: issuance from CSV, the resident's pass QR, provider
redemption, finance (settle, reclaim, correct, audit).

Amounts in --json output, everywhere: `X` in euros as a string ("12.50") and `X_cents` as
an integer (redemption.money). Thin: parse arguments, call the library, print. Registered on the main
group by citypass/cli/main.py (`register(main)`).
"""

from __future__ import annotations

import unicodedata
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import click

from citypass import budget_id
from citypass import contract as C
from citypass import finance, issuance, keys, passqr, redemption, settings, tx, wallet
from citypass.cli.common import (
    ADDRESS, DATE, EUROS, EUROS_OR_ZERO, Ctx, cents_to_str, end_of_day, err_console, format_date, format_euros,
    note, output, parse_euros, pass_ctx,
)
from citypass.errors import CityPassError, UsageError


def register(group: click.Group) -> None:
    for command in (issue_cmd, voucher_group, redeem_cmd, refund_cmd, balance_cmd, reclaim_cmd, settle_cmd, correct_cmd,
                    audit_cmd):
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
@click.option("--in-flight", type=click.IntRange(1, 256), default=issuance.PIPELINE_WINDOW, show_default=True,
              help="Batch transactions in flight at most: sent before the earlier ones are mined (1: one batch at a time).")
@pass_ctx
def issue_cmd(c: Ctx, file: Path, budget_spec: str, dry_run: bool, valid_until: int | None, tranche: str,
              top_up: bool, allow_role_holders: bool, batch_size: int | None, in_flight: int) -> None:
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
    routed = c.safe_route(["ISSUER", "REGISTRAR"] if plan.new_residents else ["ISSUER"]) if plan.sends else None
    if routed:  # the issuer is a Safe: the plan becomes one proposal its owners approve
        from citypass.proposals import issuance_proposal

        c.propose(routed, **issuance_proposal(dep, plan, b.name, b.serial))
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
            results = issuance.execute(dep, account, plan, in_flight=in_flight,
                                       on_sent=lambda r: bar.advance(len(r.send.rows)))
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
    """The resident's pass QR: sign it (as the phone does), or check one."""


def _budget_ids(c: Ctx, specs: tuple[str, ...]) -> list[int] | None:
    return [_budget(c, s).id for s in specs] or None


def _pass_qr_dict(pq: passqr.PassQR, text: str) -> dict[str, Any]:
    return {"payload": text, "holder": pq.holder, "provider": pq.provider,
            "any_provider": redemption.is_any(pq.provider), "deadline": pq.deadline, "chain_id": pq.chain_id,
            "contract": pq.contract, "qr_version": passqr.qr_version(text),
            "vouchers": [{"budget": budget_id.decode(e.budget).serial, "budget_id": str(e.budget),
                          **redemption.money("max_amount", e.max_amount), "nonce": e.nonce} for e in pq.entries]}


@voucher_group.command("sign")
@click.option("--budget", "budget_specs", multiple=True, metavar="ID",
              help="Budget number (#3 or 3) or full id, repeatable (default: every budget the pass holds credit in).")
@click.option("--max", "--amount", "max_amount", type=EUROS,
              help="Most one payment may take, e.g. 12.50 (default: min(balance, the municipality's per-scan limit)).")
@click.option("--provider", type=ADDRESS, help="Only this provider may redeem it (default: any approved provider).")
@click.option("--key", "key_spec", metavar="KEYSPEC", help="The holder's key (default: --from).")
@click.option("--qr", type=click.Path(dir_okay=False, path_type=Path), help="Write the QR code to this PNG file.")
@click.option("--ttl", type=click.IntRange(1, 366 * 86_400),
              help="Seconds the QR stays valid (default: the municipality's setting, 24 hours).")
@click.option("--nonce", type=click.IntRange(0, passqr.MAX_U32),
              help="Voucher number, for one budget (default: the lowest unused of each budget).")
@click.option("--force", is_flag=True, help="Sign even what the pre-checks say will be refused.")
@pass_ctx
def voucher_sign(c: Ctx, budget_specs: tuple[str, ...], max_amount: int | None, provider: str | None,
                 key_spec: str | None, qr: Path | None, ttl: int | None, nonce: int | None, force: bool) -> None:
    """Sign the pass QR as the pass holder and print its text (and write its QR code).

    One voucher per budget, the same nonce on every refresh until it is used. Refuses,
    with the reason, what would fail anyway (no credit, more than the balance, a provider
    not approved for the category or with a lower limit); --force signs anyway.
    """
    spec = key_spec or c.from_spec
    if not spec:
        raise UsageError("pass --key KEYSPEC (the pass holder's key) or --from")
    account = c.load(spec)
    budgets = _budget_ids(c, budget_specs)
    if nonce is not None and (budgets is None or len(budgets) != 1):
        raise UsageError("--nonce needs exactly one --budget")
    pq = wallet.pass_qr(c.deployment, account, budgets=budgets, provider=provider or passqr.ANY_PROVIDER,
                        max_amount=max_amount, ttl=ttl, settings=settings.load(c.workdir),
                        nonces={budgets[0]: nonce} if nonce is not None and budgets else None, force=force)
    text = pq.encode()
    if qr:
        wallet.write_qr(text, qr)
        note(f"QR code written to {qr} (QR version {passqr.qr_version(text)})")
    if c.json:
        output(c, _pass_qr_dict(pq, text) | {"qr": str(qr) if qr else None})
    else:
        click.echo(text)


@voucher_group.command("show")
@click.argument("voucher")
@click.option("--provider", type=ADDRESS,
              help="Check for this provider (default: the one the QR names, else the --from wallet's).")
@click.option("--amount", type=EUROS, help="Check this amount (default: each voucher's limit).")
@click.option("--budget", "budget_spec", metavar="ID", help="Only the voucher of this budget.")
@pass_ctx
def voucher_show(c: Ctx, voucher: str, provider: str | None, amount: int | None, budget_spec: str | None) -> None:
    """Decode a pass QR (text or PNG), explain each voucher and run the chain's pre-check,
    judged at the time the next block will have (as `redeem` will be)."""
    pq = wallet.load_pass_qr(voucher)
    if provider is None and c.from_spec and redemption.is_any(pq.provider):
        provider = c.load(c.from_spec).address  # the till's own wallet
    items = [pq.for_budget(_budget(c, budget_spec).id)] if budget_spec else pq.vouchers()
    checks = [redemption.explain(c.deployment, s, provider, amount) for s in items]
    if c.json:
        output(c, {"holder": pq.holder, "deadline": pq.deadline, "vouchers": [x.as_dict() for x in checks],
                   "ok": all(x.ok for x in checks)})
    else:
        click.echo("\n\n".join("\n".join(x.lines()) for x in checks))
    bad = [x for x in checks if not x.ok]
    if bad:
        raise redemption.VoucherRefused(bad[0].reason, f"voucher refused: {bad[0].message}"
                                        + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


# ------------------------------------------------------------------ provider
@click.command("redeem")
@click.argument("voucher", required=False)
@click.option("--amount", type=EUROS, help="Euros the till takes from the pass (at most the voucher's limit).")
@click.option("--co-payment", type=EUROS_OR_ZERO, default="0", help="Euros the resident pays on top (recorded only).")
@click.option("--budget", "budget_spec", metavar="ID", help="The budget to pay from (default: the only one this provider takes).")
@click.option("--refundable", is_flag=True,
              help="Mark the payment refundable (e.g. a course that may be cancelled): costs more gas.")
@click.option("--batch", "batch_file", type=click.Path(dir_okay=False, path_type=Path),
              help="File of scans collected offline, one per line: QR,AMOUNT[,CO_PAYMENT[,BUDGET]].")
@pass_ctx
def redeem_cmd(c: Ctx, voucher: str | None, amount: int | None, co_payment: int, budget_spec: str | None,
               refundable: bool, batch_file: Path | None) -> None:
    """Take AMOUNT from a pass QR (text or PNG) with the provider's own wallet (--from).

    The chain's pre-check runs first, at the next block's time: a voucher it would refuse
    is reported with its plain reason and nothing is sent. On a local dev chain a QR for
    one named provider is redeemed by that dev account without --from. With --batch,
    vouchers the chain refuses are skipped (and listed).
    """
    if (voucher is None) == (batch_file is None):
        raise UsageError("give either one VOUCHER or --batch FILE")
    dep = c.deployment
    if voucher is not None:
        if amount is None:
            raise UsageError("--amount: the euros the till takes from the pass")
        pq = wallet.load_pass_qr(voucher)
        account = _provider_account(c, None if redemption.is_any(pq.provider) else pq.provider)
        signed = redemption.pick(dep, pq, account.address, _budget(c, budget_spec).id if budget_spec else None)
        result = redemption.redeem(dep, account, signed, amount, co_payment, refundable)
        v = result.voucher
        serial = budget_id.decode(v.budget).serial
        note(f"redeemed {format_euros(amount)} of budget #{serial} from {v.holder} (co-payment {format_euros(co_payment)}"
             f"{', refundable' if refundable else ''}), tx {result.tx_hash}, gas {result.gas_used:,}")
        output(c, {"redeemed": True, "holder": v.holder, "provider": account.address, "budget": serial,
                   **redemption.money("amount", amount), **redemption.money("co_payment", co_payment),
                   "refundable": refundable, "nonce": v.nonce, "tx": result.tx_hash, "block": result.block,
                   "gas_used": result.gas_used})
        return
    if amount is not None or refundable or budget_spec:
        raise UsageError("with --batch, each line carries its own amount (and budget); a batch is never refundable")
    assert batch_file is not None
    raw, lines = _read_batch(batch_file)
    if not raw:
        raise CityPassError(f"{batch_file}: no vouchers in the file")
    first = raw[0][0]
    account = _provider_account(c, None if redemption.is_any(first.provider) else first.provider)
    scans = []
    for (pq, cents, co, bspec), line in zip(raw, lines):
        try:
            signed = redemption.pick(dep, pq, account.address, _budget(c, bspec).id if bspec else None)
        except CityPassError as exc:
            raise CityPassError(f"{batch_file}: line {line}: {exc}; nothing was sent") from None
        scans.append(redemption.Scan(signed, cents, co))
    outcomes = redemption.redeem_batch(dep, account, scans)
    data = [{"line": lines[o.index], "holder": o.voucher.holder, **redemption.money("amount", o.amount),
             "nonce": o.voucher.nonce, "redeemed": o.redeemed, "reason": o.reason.name if o.reason else None,
             "message": o.message, "tx": o.tx_hash} for o in outcomes]
    output(c, data, rows=[(d["line"], d["holder"], format_euros(o.amount), d["nonce"], d["message"])
                          for d, o in zip(data, outcomes)], columns=("LINE", "HOLDER", "AMOUNT", "NONCE", "OUTCOME"))
    done = [o for o in outcomes if o.redeemed]
    note(f"redeemed {len(done)} of {len(outcomes)} vouchers, {format_euros(sum(o.amount for o in done))}")
    if len(done) < len(outcomes):
        raise CityPassError(f"{len(outcomes) - len(done)} of {len(outcomes)} vouchers were refused (see the list)")


def _read_batch(path: Path) -> tuple[list[tuple[passqr.PassQR, int, int, str | None]], list[int]]:
    """Scans of a batch file, `QR,AMOUNT[,CO_PAYMENT[,BUDGET]]` per line (blank lines
    skipped; base45 has no comma); every bad line reported, none sent."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CityPassError(f"cannot read {path}: {exc}") from None
    scans, lines, problems = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            if not 2 <= len(fields) <= 4:
                raise CityPassError(f"{len(fields)} comma-separated fields, expected QR,AMOUNT[,CO_PAYMENT[,BUDGET]]")
            pq = passqr.decode(fields[0])
            cents = parse_euros(fields[1], "amount")
            co = parse_euros(fields[2], "co-payment", allow_zero=True) if len(fields) > 2 and fields[2] else 0
            scans.append((pq, cents, co, fields[3] if len(fields) > 3 and fields[3] else None))
            lines.append(number)
        except (passqr.PassQRError, CityPassError) as exc:
            problems.append(f"  line {number}: {exc}")
    if problems:
        raise CityPassError(f"{path}: {len(problems)} bad line(s), nothing was sent:\n" + "\n".join(problems))
    return scans, lines


@click.command("refund")
@click.argument("holder", type=ADDRESS)
@click.option("--budget", "budget_spec", required=True, metavar="ID", help="The budget of the redemption.")
@click.option("--nonce", required=True, type=click.IntRange(min=0), help="The redeemed voucher's nonce.")
@click.option("--amount", type=EUROS, help="Euros to give back (default: all that is left to refund).")
@pass_ctx
def refund_cmd(c: Ctx, holder: str, budget_spec: str, nonce: int, amount: int | None) -> None:
    """Give credit back for a payment you marked refundable when you took it.

    HOLDER is the pass that paid (as the redemption lists it). Only the provider that made
    the redemption can refund it, from its own wallet (--from), and its refunds add up to
    at most what it debited; ordinary (non-refundable) payments cannot be refunded.
    Checked before anything is sent.
    """
    dep = c.deployment
    b = _budget(c, budget_spec)
    state = redemption.refund_state(dep, holder, b.id, nonce)
    result = redemption.refund(dep, _provider_account(c, state.provider), holder, b.id, nonce, amount)
    note(f"refunded {format_euros(result.amount)} of budget #{b.serial} to {result.to} "
         f"({format_euros(result.left)} of this redemption left to refund), tx {result.tx_hash}")
    output(c, {**redemption.money("refunded", result.amount), "holder": holder, "to": result.to, "budget": b.serial,
               "nonce": nonce, **redemption.money("left_to_refund", result.left), "tx": result.tx_hash,
               "block": result.block, "gas_used": result.gas_used})


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
    output(c, {"provider": provider, **redemption.money("total", total),
               "budgets": [{"budget": b.serial, "name": b.name, "category": b.category, **redemption.money("amount", b.cents)}
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
    routed = c.safe_route("BUDGET_MANAGER")
    if routed:
        from citypass.proposals import reclaim_fns

        c.propose_fns(routed, reclaim_fns(c.deployment, b.id, batch_size))
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
@click.option("--reference", required=True,
              help="Payment reference, e.g. the bank transfer's (case and spacing do not matter; used once; "
                   "kept on chain as text, so no personal data).")
@click.option("--budget", "budget_specs", multiple=True, metavar="ID", help="Only these budgets (repeatable).")
@pass_ctx
def settle_cmd(c: Ctx, provider: str, reference: str, budget_specs: tuple[str, ...]) -> None:
    """Record a payment to a provider: burns what it holds under a one-time reference. Needs TREASURER."""
    budgets = [_budget(c, s).id for s in budget_specs] or None
    routed = c.safe_route("TREASURER")
    if routed:
        from citypass.proposals import settle_fn

        fn, key = settle_fn(c.deployment, provider, reference, budgets)
        c.propose_fns(routed, [fn], dedupe=[key])
    result = finance.settle(c.deployment, c.account("TREASURER"), provider, reference, budgets)
    note(f"settled {format_euros(result.total)} with {provider} under reference {result.reference!r} (tx {result.tx_hash})")
    output(c, {"provider": provider, "reference": result.reference, "reference_hash": result.reference_hash,
               **redemption.money("total", result.total), "tx": result.tx_hash,
               "budgets": [{"budget": str(bid), **redemption.money("amount", a)} for bid, a in result.amounts]},
           rows=[(f"#{budget_id.decode(bid).serial}", format_euros(a)) for bid, a in result.amounts]
           + [("total", format_euros(result.total))], columns=("BUDGET", "SETTLED"))


@click.command("correct")
@click.argument("holder", type=ADDRESS)
@click.option("--budget", "budget_spec", required=True, metavar="ID")
@click.option("--amount", type=EUROS, required=True, help="Euros of unspent credit to take back.")
@click.option("--reference", required=True, help="The case number the correction is made under (kept on chain; no personal data).")
@pass_ctx
def correct_cmd(c: Ctx, holder: str, budget_spec: str, amount: int, reference: str) -> None:
    """Take back unspent credit issued to HOLDER in error. Needs ISSUER.

    Never more than the holder still has; refused while paused. Counted apart in the
    report (issued = held + settled + reclaimed + corrected). To credit too little, issue
    the difference instead.
    """
    b = _budget(c, budget_spec)
    routed = c.safe_route("ISSUER")
    if routed:
        c.propose_fns(routed, [c.deployment.contract.functions.correct(
            holder, b.id, amount, " ".join(unicodedata.normalize("NFC", reference).split()))])
    result = finance.correct(c.deployment, c.account("ISSUER"), holder, b.id, amount, reference)
    note(f"took back {format_euros(result.amount)} of budget #{b.serial} from {result.holder} under {result.reference!r} "
         f"({format_euros(result.left)} left on the pass), tx {result.tx_hash}")
    output(c, {"holder": result.holder, "budget": b.serial, **redemption.money("corrected", result.amount),
               **redemption.money("left", result.left), "reference": result.reference, "tx": result.tx_hash})


@click.command("audit")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file (default: stdout).")
@pass_ctx
def audit_cmd(c: Ctx, out: Path | None) -> None:
    """Export every CityPass event as CSV (block, time, tx, log index, event, arguments)."""
    count = finance.audit(c.deployment, out)
    note(f"{count} events" + (f" written to {out}" if out else ""))
