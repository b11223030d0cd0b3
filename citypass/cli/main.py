"""The `citypass` command: municipality and admin commands (issuance, vouchers and finance
are registered from citypass/cli/ops.py). Thin: the logic lives in the library modules.

    citypass [--rpc URL] [--workdir DIR] [--from KEY] [--json] NOUN VERB ...

Exit codes: 0 ok, 1 failure (a refusal by the chain, a missing file, ...), 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import requests
from web3.exceptions import Web3RPCError

from citypass import __version__, gas, keys, node
from citypass import contract as C
from citypass.cli import coupons as coupons_cli
from citypass.cli import ops, passregister, web
from citypass.cli import safe as safe_cli
from citypass.cli.common import (
    ADDRESS, DATE, ROLE, Ctx, address_of as _address_of, category_label, cents_to_str, end_of_day, failure, format_date,
    format_euros, hoist_json, note, output, start_invocation, parse_categories, parse_euros, pass_ctx, role_label,
)
from citypass.errors import ROLE_IDS, CityPassError, UsageError, budget_text, date_text

PASS_BATCH = 500  # addresses per enrol/renew transaction (~25k gas each: well inside a block)


class CityPassGroup(click.Group):
    """Turns a user's mistake into `error: <one line>` and its exit code, never a traceback;
    with --json (anywhere on the line) also into a JSON object on stdout."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        args, as_json = hoist_json(sys.argv[1:] if args is None else args)
        start_invocation()
        if not as_json:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:  # usage errors: click's message, as JSON too
            if not standalone_mode:
                raise
            failure(exc.format_message(), exc.exit_code, as_json=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            if not standalone_mode:
                raise
            failure("aborted", 1, as_json=True)
            sys.exit(1)
        if standalone_mode:
            sys.exit(code or 0)
        return code

    def invoke(self, ctx: click.Context) -> Any:
        def fail(message: str, code: int) -> None:
            failure(message, code, as_json=bool(getattr(ctx.obj, "json", False) or ctx.params.get("as_json")))
            ctx.exit(code)

        try:
            return super().invoke(ctx)
        except CityPassError as exc:
            fail(str(exc), exc.exit_code)
        except ValueError as exc:
            # VoucherError and other validation errors of the library are ValueErrors with a
            # message naming the field; anything else is a bug and keeps its traceback.
            if type(exc).__module__.startswith("citypass"):
                fail(str(exc), 1)
            raise
        except requests.ConnectionError:
            fail("lost the connection to the node (did it stop?)", 1)
        except Web3RPCError as exc:
            # The embedded node's supervisor answers -32603 "CityPass endpoint: ..." when its
            # Anvil went away under a request (a node stop or crash mid-command): a user-facing
            # stop, not a bug. Whatever was reported done is journaled; a re-run finishes.
            if "CityPass endpoint:" not in str(exc):
                raise
            fail(f"the embedded node stopped while this command ran ({_endpoint_reason(exc)}); nothing reported "
                 "done is lost: start it again (`citypass node start`) and run the same command, which sends "
                 "only what is still missing", 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)


def _endpoint_reason(exc: Exception) -> str:
    text = str(exc)
    return text[text.index("CityPass endpoint:"):].split("'")[0].strip()


@click.group(cls=CityPassGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--rpc", envvar="CITYPASS_RPC", metavar="URL",
              help="JSON-RPC node to use [env CITYPASS_RPC]; default: the embedded Anvil of --workdir.")
@click.option("--workdir", envvar="CITYPASS_HOME", default=".citypass", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Node state, keystores and address book [env CITYPASS_HOME].")
@click.option("--json", "as_json", is_flag=True,
              help="Print data as JSON (also after the subcommand); a failure prints {ok, error, exit_code}.")
@click.option("--from", "from_spec", envvar="CITYPASS_FROM", metavar="KEY",
              help="Signing account: keystore name or file, or dev:N on a local dev chain [env CITYPASS_FROM].")
@click.option("--confirmations", type=click.IntRange(min=0), metavar="N",
              help="Blocks to wait on top of each transaction (default: 0 on dev chains, else 2).")
@click.option("--max-fee", "max_fee", envvar="CITYPASS_MAX_FEE", metavar="ETH",
              help="The most this command may pay in fees, e.g. 0.05; a send that could cost more is refused "
                   "and says what it would cost [env CITYPASS_MAX_FEE].")
@click.option("--contract", "contract_address", envvar="CITYPASS_CONTRACT", metavar="ADDRESS",
              help="CityPass contract [env CITYPASS_CONTRACT]; default: the address book's for this chain.")
@click.option("--via-safe", "via_safe", envvar="CITYPASS_VIA_SAFE", metavar="SAFE",
              help="Propose a Safe transaction of this Safe instead of sending (automatic when the role a command "
                   "needs is held by a Safe) [env CITYPASS_VIA_SAFE].")
@click.version_option(__version__, prog_name="citypass")
@click.pass_context
def main(ctx: click.Context, rpc: str | None, workdir: Path, as_json: bool, from_spec: str | None,
         confirmations: int | None, contract_address: str | None, via_safe: str | None,
         max_fee: str | None = None) -> None:
    """CityPass: municipal city-pass credit on an Ethereum chain.

    With no --rpc, commands use a local Anvil node whose state persists in --workdir
    (started on first use). Amounts are euros with cents (12.50), dates YYYY-MM-DD (UTC).
    """
    from citypass.tx import parse_eth

    try:
        cap = None if max_fee is None else parse_eth(max_fee)
    except CityPassError as exc:
        raise UsageError(str(exc)) from None
    ctx.obj = Ctx(rpc=rpc, workdir=workdir, json=as_json, from_spec=from_spec,
                  confirmations=confirmations, contract_address=contract_address,
                  via_safe=C.checksum(via_safe, "--via-safe") if via_safe else None, max_fee=cap)


# ------------------------------------------------------------------ node
@main.group("node")
def node_group() -> None:
    """The embedded chain: Anvil behind CityPass's endpoint, journaled and snapshotted in --workdir."""


@node_group.command("start")
@click.option("--port", type=click.IntRange(1024, 65535), help="Port of the RPC endpoint (default: a free one).")
@pass_ctx
def node_start(c: Ctx, port: int | None) -> None:
    """Start the embedded node (or report the one running)."""
    info, started = node.node_start(c.workdir, port=port)
    note(f"{'started' if started else 'already running:'} the embedded node (pid {info.pid}); "
         f"RPC endpoint {info.rpc_url} (use this URL in a browser wallet), chain kept in {info.state_file}")
    output(c, {"running": True, "started": started, "pid": info.pid, "rpc": info.rpc_url, "state": info.state_file})


@node_group.command("stop")
@pass_ctx
def node_stop(c: Ctx) -> None:
    """Stop the embedded node; it writes a last snapshot for the next start."""
    info = node.node_stop(c.workdir)
    note(f"stopped the embedded node (pid {info.pid}); state saved in {info.state_file}" if info
         else "the embedded node was not running")
    if c.json:
        output(c, {"stopped": info is not None})


@node_group.command("status")
@pass_ctx
def node_status(c: Ctx) -> None:
    """Whether the embedded node runs, and its RPC endpoint (the URL for a browser wallet)."""
    info = node.node_status(c.workdir)
    if info is None:
        output(c, {"running": False, "workdir": str(c.workdir)})
        return
    output(c, {"running": True, "pid": info.pid, "rpc": info.rpc_url, "state": info.state_file, "log": info.log_file,
               "durable": info.durable})


@node_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def node_backup(c: Ctx, file: Path) -> None:
    """Write a consistent snapshot of the running node to FILE (restore it with `node restore`)."""
    path = node.node_backup(c.workdir, file)
    note(f"backed up the embedded chain to {path} ({path.stat().st_size:,} bytes)")
    output(c, {"backup": str(path), "bytes": path.stat().st_size})


@node_group.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_ctx
def node_restore(c: Ctx, file: Path) -> None:
    """Replace the embedded chain with the backup FILE and start it; the chain it replaces is
    moved aside in --workdir, not deleted."""
    aside = node.node_restore(c.workdir, file)
    note(f"restored the embedded chain from {file}; the chain it replaced is in {aside}")
    output(c, {"restored": str(file), "replaced_chain": str(aside)})


@node_group.command("advance")
@click.argument("duration")
@pass_ctx
def node_advance(c: Ctx, duration: str) -> None:
    """Move a dev chain's clock forward by DURATION (31d, 12h, 1d12h, 90m, 3600) and mine a
    block; the embedded node keeps the moved time across restarts. Dev chains only."""
    seconds = node.parse_duration(duration)
    chain = c.chain
    now = chain.advance_time(seconds)
    note(f"moved the clock of {chain.name} forward by {seconds:,} s: it is now {format_date(now)}")
    output(c, {"seconds": seconds, "now": now})


@node_group.command("brownie")
@click.option("--network", "name", default="citypass", show_default=True, help="Brownie network id to set.")
@pass_ctx
def node_brownie(c: Ctx, name: str) -> None:
    """Start the embedded node and point a Brownie network at its endpoint, so Brownie scripts
    (`brownie run scripts/deploy.py --network citypass`) go through the journal too."""
    from citypass.durable.brownie_net import point_brownie

    info, chain_id, new = point_brownie(c.workdir, name)
    note(f"{'added' if new else 'updated'} Brownie network '{name}': {info.rpc_url} (chain {chain_id}); "
         f"run scripts with `brownie run scripts/deploy.py --network {name}` and CITYPASS_HOME={c.workdir}")
    output(c, {"network": name, "rpc": info.rpc_url, "chain_id": chain_id, "added": new})


# ------------------------------------------------------------------ accounts
@main.group("account")
def account_group() -> None:
    """Encrypted keystores in --workdir/keys (password: prompt or $CITYPASS_PASSWORD[_NAME])."""


@account_group.command("new")
@click.argument("name")
@pass_ctx
def account_new(c: Ctx, name: str) -> None:
    """Create a new random key, stored encrypted as NAME."""
    entry = keys.create_keystore(c.workdir, name)
    note(f"created account {entry.name} in {entry.path}")
    output(c, {"name": entry.name, "address": entry.address, "keystore": str(entry.path)})


@account_group.command("import")
@click.argument("name")
@click.option("--key-file", type=click.File("r"), help="File holding the private key in hex (default: prompt or stdin).")
@pass_ctx
def account_import(c: Ctx, name: str, key_file: Any) -> None:
    """Store an existing private key, encrypted, as NAME."""
    if key_file is not None:
        secret = key_file.read().strip()
    elif sys.stdin.isatty():
        secret = click.prompt("Private key (hex)", hide_input=True).strip()
    else:
        secret = sys.stdin.readline().strip()
    if not secret:
        raise UsageError("no private key given (use --key-file FILE, stdin or the prompt)")
    entry = keys.create_keystore(c.workdir, name, secret)
    note(f"imported account {entry.name} into {entry.path}")
    output(c, {"name": entry.name, "address": entry.address, "keystore": str(entry.path)})


@account_group.command("list")
@pass_ctx
def account_list(c: Ctx) -> None:
    """Keystores in --workdir/keys."""
    entries = keys.list_keystores(c.workdir)
    output(c, [{"name": e.name, "address": e.address, "keystore": str(e.path)} for e in entries],
           rows=[(e.name, e.address) for e in entries], columns=("NAME", "ADDRESS"))


# ------------------------------------------------------------------ deploy and info
@main.command("deploy")
@click.option("--admin", metavar="ADDRESS", help="Default admin (ideally a multisig).")
@click.option("--budget-manager", metavar="ADDRESS")
@click.option("--provider-manager", metavar="ADDRESS")
@click.option("--registrar", metavar="ADDRESS")
@click.option("--issuer", metavar="ADDRESS")
@click.option("--treasurer", metavar="ADDRESS")
@click.option("--pauser", metavar="ADDRESS")
@click.option("--admin-delay-days", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Delay of the two-step admin transfer.")
@click.option("--metadata-uri", default=C.DEFAULT_METADATA_URI, show_default=True)
@click.option("--dev-safes", is_flag=True,
              help="Local dev chains: make the admin a 2-of-3 Safe of dev:0-2 and the issuer and registrar another "
                   "2-of-3 Safe of dev:3-5 (created first).")
@click.option("--allow-both-roles-on-one-key", "allow_both", is_flag=True,
              help="Allow one plain key (not a Safe) to be registrar and issuer off dev chains (four-eyes: only if intended).")
@pass_ctx
def deploy_cmd(c: Ctx, admin_delay_days: float, metadata_uri: str, dev_safes: bool, allow_both: bool,
               **roles: str | None) -> None:
    """Deploy CityPass, each role to its own address, and record it in the address book.

    Role addresses take an address, a keystore name, dev:N (local dev chains) or `none`
    (leave the role empty). On a local dev chain every role defaults to its own dev
    account; elsewhere --admin and every role must be given. A role address that is a
    contract must be a Safe: its owners and threshold are printed.
    """
    from citypass import proposals
    from citypass import safe as S

    chain = c.chain
    resolved: dict[str, str | None] = {}
    defaults = C.dev_roles() if chain.is_local_dev else {}
    if dev_safes:
        if not chain.is_local_dev:
            raise UsageError(f"--dev-safes: chain {chain.chain_id} is not a local dev chain (its keys are public)")
        if roles["admin"] or roles["issuer"] or roles["registrar"]:
            raise UsageError("--dev-safes makes the admin, issuer and registrar: leave out --admin, --issuer and --registrar")
        admin_safe = safe_cli.create_dev_safe(c, safe_cli.DEV_ADMIN_OWNERS)
        issuer_safe = safe_cli.create_dev_safe(c, safe_cli.DEV_ISSUER_OWNERS)
        roles.update(admin=admin_safe.address, issuer=issuer_safe.address, registrar=issuer_safe.address)
    for role, value in roles.items():
        option = "--" + role.replace("_", "-")
        if value is None and role not in defaults:
            raise UsageError(f"{option} is required on chain {chain.chain_id} (an address, or `none`)")
        resolved[role] = defaults[role] if value is None else _address_of(c, value, option)
    if resolved["admin"] is None:
        raise UsageError("--admin cannot be `none`: someone must be able to grant roles")
    safes: dict[str, S.SafeInfo] = {}
    for role, address in resolved.items():
        if address is not None and bytes(chain.w3.eth.get_code(address)):
            safes[role] = S.safe_info(chain, address, "--" + role.replace("_", "-"))  # a contract must be a Safe
    if resolved["issuer"] and resolved["issuer"] == resolved["registrar"] and not allow_both:
        refusal = proposals.both_roles_refusal(chain, resolved["issuer"], ["ISSUER", "REGISTRAR"])
        if refusal:
            raise CityPassError(f"--issuer and --registrar: {refusal}; nothing was deployed")
    for role, info in safes.items():
        note(f"{role.replace('_', ' ')}: {safe_cli.describe_safe(info)}")
    deployer = c.account()
    dep = C.deploy(chain, deployer, admin=resolved.pop("admin"), admin_delay=int(admin_delay_days * 86_400),
                   metadata_uri=metadata_uri, workdir=c.workdir, confirmations=c.confirmations, **resolved)
    note(f"deployed CityPass at {dep.address} on chain {chain.chain_id} (block {dep.block}); "
         f"recorded in {C.addressbook_path(c.workdir)}")
    members = {role_label(k): v for k, v in C.role_members(dep).items()}
    output(c, {"contract": dep.address, "chain_id": chain.chain_id, "block": dep.block, "roles": members}
           | ({"safes": {role_label(r.upper()): {"safe": i.address, "threshold": i.threshold, "owners": list(i.owners)}
                         for r, i in safes.items()}} if safes else {}),
           rows=[("contract", dep.address)] + [(k, ", ".join(v) or "-") for k, v in members.items()],
           columns=("WHAT", "ADDRESS"))


@main.command("info")
@pass_ctx
def info_cmd(c: Ctx) -> None:
    """Chain, contract, roles, budgets, providers and pause state."""
    dep = c.deployment
    f = dep.contract.functions
    members = {role_label(k): v for k, v in C.role_members(dep).items()}
    data = {
        "chain_id": dep.chain.chain_id,
        "rpc": dep.chain.rpc_url,
        "embedded_node": dep.chain.embedded,
        "contract": dep.address,
        "deploy_block": dep.block,
        "paused": f.paused().call(),
        "admin": f.defaultAdmin().call(),
        "admin_delay_days": f.defaultAdminDelay().call() / 86_400,
        "pending_admin": _pending_admin(dep),
        "budgets": len(f.budgets().call()),
        "providers": len(f.providers().call()),
        "roles": members,
    }
    if c.json:
        output(c, data)
        return
    flat = {k: v for k, v in data.items() if k != "roles"}
    flat.update({f"role {k}": ", ".join(v) or "-" for k, v in members.items()})
    output(c, flat)


def _pending_admin(dep: C.Deployment) -> str | None:
    pending, _ = dep.contract.functions.pendingDefaultAdmin().call()
    return None if int(pending, 16) == 0 else pending


# ------------------------------------------------------------------ categories and budgets
@main.group("category")
def category_group() -> None:
    """Service categories (0..63), named for people and reports."""


@category_group.command("define")
@click.argument("number", type=click.IntRange(0, 63))
@click.argument("name")
@pass_ctx
def category_define(c: Ctx, number: int, name: str) -> None:
    """Name category NUMBER (e.g. `citypass category define 0 sport`). Needs BUDGET_MANAGER."""
    c.send(c.deployment.contract.functions.defineCategory(number, name), f"category {number} is now {name!r}",
           role="BUDGET_MANAGER")
    if c.json:
        output(c, {"category": number, "name": name})


@category_group.command("list")
@pass_ctx
def category_list(c: Ctx) -> None:
    """Defined categories."""
    names = C.category_names(c.deployment)
    output(c, [{"category": k, "name": v} for k, v in sorted(names.items())],
           rows=sorted(names.items()), columns=("CATEGORY", "NAME"))


@main.group("budget")
def budget_group() -> None:
    """Budgets: one category, one validity window, one issuance cap."""


@budget_group.command("create")
@click.option("--category", required=True, help="Category number or defined name.")
@click.option("--valid-from", "valid_from", type=DATE, required=True, help="First day (YYYY-MM-DD, UTC).")
@click.option("--valid-until", "valid_until", type=DATE, required=True, help="Last day, inclusive.")
@click.option("--cap", required=True, metavar="EUROS", help="Issuance cap (the appropriation), e.g. 250000.00.")
@click.option("--name", required=True, help="Public name, e.g. 'Sport 2026' (no personal data).")
@pass_ctx
def budget_create(c: Ctx, category: str, valid_from: int, valid_until: int, cap: str, name: str) -> None:
    """Create a budget. Needs BUDGET_MANAGER."""
    dep = c.deployment
    cats = parse_categories(dep, category)
    if len(cats) != 1:
        raise UsageError("--category: a budget has exactly one category")
    cat = cats[0]
    until = end_of_day(valid_until)
    if until <= valid_from:
        raise UsageError("--valid-until must not be before --valid-from")
    if until < dep.chain.now():
        raise UsageError(f"--valid-until {format_date(until)} is in the past (chain time {format_date(dep.chain.now())})")
    cents = parse_euros(cap, "--cap")
    receipt = c.send(dep.contract.functions.createBudget(cat, valid_from, until, cents, name),
                     f"created budget {name!r}", role="BUDGET_MANAGER")
    (event,) = dep.contract.events.BudgetCreated().process_receipt(receipt)
    b = C.find_budget(dep, event.args.budget)
    output(c, _budget_dict(b), rows=[_budget_row(dep, b)], columns=_BUDGET_COLUMNS)


_BUDGET_COLUMNS = ("#", "NAME", "CATEGORY", "FROM", "UNTIL", "CAP", "ISSUED", "SETTLED", "RECLAIMED", "OUTSTANDING")


def _budget_dict(b: C.BudgetInfo) -> dict[str, Any]:
    return {
        "serial": b.serial, "id": str(b.id), "name": b.name, "category": b.category,
        "valid_from": format_date(b.valid_from), "valid_until": format_date(b.valid_until),
        "cap": cents_to_str(b.cap), "issued": cents_to_str(b.issued), "settled": cents_to_str(b.settled),
        "reclaimed": cents_to_str(b.reclaimed), "corrected": cents_to_str(b.corrected),
        "outstanding": cents_to_str(b.outstanding),
    }


def _budget_row(dep: C.Deployment, b: C.BudgetInfo, names: dict[int, str] | None = None) -> tuple:
    return (b.serial, b.name, category_label(dep, b.category, names), format_date(b.valid_from),
            format_date(b.valid_until), format_euros(b.cap), format_euros(b.issued), format_euros(b.settled),
            format_euros(b.reclaimed), format_euros(b.outstanding))


@budget_group.command("show")
@click.argument("budget")
@pass_ctx
def budget_show(c: Ctx, budget: str) -> None:
    """One budget (by its number or full id) with its totals."""
    dep = c.deployment
    b = C.find_budget(dep, budget)
    output(c, _budget_dict(b), rows=[_budget_row(dep, b)], columns=_BUDGET_COLUMNS)


@budget_group.command("set-cap")
@click.argument("budget")
@click.option("--cap", required=True, metavar="EUROS", help="New cap; never below what was issued.")
@pass_ctx
def budget_set_cap(c: Ctx, budget: str, cap: str) -> None:
    """Change a budget's cap (a council amendment). Needs BUDGET_MANAGER."""
    dep = c.deployment
    b = C.find_budget(dep, budget)
    cents = parse_euros(cap, "--cap")
    c.send(dep.contract.functions.setBudgetCap(b.id, cents),
           f"cap of budget #{b.serial} {format_euros(b.cap)} -> {format_euros(cents)}", role="BUDGET_MANAGER")
    b = C.find_budget(dep, b.id)
    output(c, _budget_dict(b), rows=[_budget_row(dep, b)], columns=_BUDGET_COLUMNS)


@budget_group.command("list")
@pass_ctx
def budget_list(c: Ctx) -> None:
    """Every budget with its totals (euros)."""
    dep = c.deployment
    items = C.budgets(dep)
    names = C.category_names(dep)
    output(c, [_budget_dict(b) for b in items], rows=[_budget_row(dep, b, names) for b in items],
           columns=_BUDGET_COLUMNS)


# ------------------------------------------------------------------ providers
@main.group("provider")
def provider_group() -> None:
    """Providers (pool, museum, club...) approved per category. Needs PROVIDER_MANAGER."""


def _max_amount(text: str | None) -> int:
    return 0 if text is None or text.strip().lower() in ("", "none", "0") else parse_euros(text, "--max")


NAME_HELP = ("Public name shown in lists, reports and the audit (1-64 bytes), stored on chain for good. "
             "A one-person practice's name can be personal data: list it under a neutral public name "
             "instead, e.g. 'Muziekles, Oosterpoort'.")
MAX_NAME_BYTES = 64


def _provider_name(text: str) -> str:
    name = " ".join(text.split())
    size = len(name.encode("utf-8"))
    if not 1 <= size <= MAX_NAME_BYTES:
        raise UsageError(f"--name: {size} bytes of UTF-8; a provider's name has 1 to {MAX_NAME_BYTES}")
    return name


@provider_group.command("add")
@click.argument("address", type=ADDRESS)
@click.option("--categories", required=True, help="Approved categories: numbers or names, comma-separated.")
@click.option("--max", "max_amount", metavar="EUROS", help="Largest amount per payment (default: no limit).")
@click.option("--name", required=True, help=NAME_HELP)
@pass_ctx
def provider_add(c: Ctx, address: str, categories: str, max_amount: str | None, name: str) -> None:
    """Register a provider under a public name.

    The name is public and kept on chain for good. Providers are organisations, but a
    one-person practice's name can be personal data: use a neutral public name for it
    (e.g. "Muziekles, Oosterpoort").
    """
    dep = c.deployment
    cats = parse_categories(dep, categories)
    limit = _max_amount(max_amount)
    routed = c.safe_route("PROVIDER_MANAGER")
    if routed:
        c.propose_fns(routed, [dep.contract.functions.addProvider(address, _mask(cats), limit, _provider_name(name))])
    signer = c.account("PROVIDER_MANAGER")
    c.send(dep.contract.functions.addProvider(address, _mask(cats), limit, _provider_name(name)),
           f"registered provider {address}", account=signer)
    _fund_on_dev_chain(c, signer, address)
    _show_provider(c, address)


def _fund_on_dev_chain(c: Ctx, signer: Any, address: str) -> None:
    """On a local dev chain a new provider gets gas at once (elsewhere: `provider top-up`)."""
    try:
        funded = gas.fund_new_provider(c.deployment, signer, address)
    except CityPassError as exc:
        note(f"warning: the new provider has no gas yet and funding it failed ({exc}); "
             "run `citypass provider top-up --gas-account KEY`")
        return
    if funded is not None:
        note(f"dev chain: sent {gas.eth_text(funded.amount)} ETH for gas to {address} from {signer.address} "
             f"(tx {funded.tx_hash})")


@provider_group.command("rename")
@click.argument("address", type=ADDRESS)
@click.argument("name")
@pass_ctx
def provider_rename(c: Ctx, address: str, name: str) -> None:
    """Give a provider a new public name (e.g. a neutral one instead of a person's name).

    The old name stays in the chain's history: a name that was personal data is not erased
    by renaming, so choose the first name with care.
    """
    dep = c.deployment
    if C.provider_info(dep, address, names={}).status == "none":
        raise CityPassError(f"{address} is not a registered provider")
    c.send(dep.contract.functions.renameProvider(address, _provider_name(name)),
           f"renamed provider {address}", role="PROVIDER_MANAGER")
    _show_provider(c, address)


@provider_group.command("update")
@click.argument("address", type=ADDRESS)
@click.option("--categories", help="New approved categories (default: unchanged).")
@click.option("--max", "max_amount", metavar="EUROS", help="New limit per payment; `none` for no limit.")
@pass_ctx
def provider_update(c: Ctx, address: str, categories: str | None, max_amount: str | None) -> None:
    """Change a provider's categories and/or limit."""
    dep = c.deployment
    current = C.provider_info(dep, address)
    if current.status == "none":
        raise CityPassError(f"{address} is not a registered provider")
    if categories is None and max_amount is None:
        raise UsageError("give --categories and/or --max")
    cats = parse_categories(dep, categories) if categories is not None else list(current.categories)
    limit = _max_amount(max_amount) if max_amount is not None else current.max_amount
    c.send(dep.contract.functions.updateProvider(address, _mask(cats), limit),
           f"updated provider {address}", role="PROVIDER_MANAGER")
    _show_provider(c, address)


def _mask(categories: list[int]) -> int:
    return sum(1 << cat for cat in categories)


def _provider_status_command(verb: str, status: int, past: str) -> None:
    @provider_group.command(verb)
    @click.argument("address", type=ADDRESS)
    @pass_ctx
    def command(c: Ctx, address: str) -> None:
        c.send(c.deployment.contract.functions.setProviderStatus(address, status), f"{past} provider {address}",
               role="PROVIDER_MANAGER")
        _show_provider(c, address)

    command.__doc__ = {
        "suspend": "Suspend a provider: it accepts no credit until reinstated (refunds and settlement still work).",
        "reinstate": "Reinstate a suspended provider.",
        "remove": "Remove a provider for good (its redeemed credit stays payable).",
    }[verb]


_provider_status_command("suspend", 2, "suspended")
_provider_status_command("reinstate", 1, "reinstated")
_provider_status_command("remove", 3, "removed")


def _provider_dict(p: C.ProviderInfo) -> dict[str, Any]:
    return {"address": p.address, "name": p.name, "status": p.status, "categories": list(p.categories),
            "max_per_payment": cents_to_str(p.max_amount) if p.max_amount else None, "paused": p.paused}


def _provider_row(dep: C.Deployment, p: C.ProviderInfo, names: dict[int, str]) -> tuple:
    cats = ", ".join(category_label(dep, x, names) for x in p.categories) or "-"
    return (p.name or "-", p.address, p.status, cats, format_euros(p.max_amount) if p.max_amount else "no limit")


_PROVIDER_COLUMNS = ("NAME", "ADDRESS", "STATUS", "CATEGORIES", "MAX PER PAYMENT")


def _show_provider(c: Ctx, address: str) -> None:
    dep = c.deployment
    p = C.provider_info(dep, address)
    output(c, _provider_dict(p), rows=[_provider_row(dep, p, C.category_names(dep))], columns=_PROVIDER_COLUMNS)


@provider_group.command("list")
@pass_ctx
def provider_list(c: Ctx) -> None:
    """Every provider ever registered, with its gas and roughly how many redemptions it pays for."""
    dep = c.deployment
    items = C.providers(dep)
    names = C.category_names(dep)
    fuel = {g.address: g for g in gas.providers_gas(dep, [p.address for p in items])}

    def paid(g: gas.ProviderGas) -> str:
        return "unlimited (fee 0)" if g.redemptions is None else f"~{g.redemptions:,}"

    output(c, [_provider_dict(p) | {"gas_eth": gas.eth_text(fuel[p.address].balance),
                                    "redemptions_paid": fuel[p.address].redemptions} for p in items],
           rows=[(*_provider_row(dep, p, names), f"{gas.eth_text(fuel[p.address].balance)} ETH",
                  paid(fuel[p.address])) for p in items],
           columns=(*_PROVIDER_COLUMNS, "GAS", "REDEMPTIONS"))
    if items:
        fee = next(iter(fuel.values())).fee
        note(f"redemptions: at {fee / 1e9:.4g} gwei per gas now and ~{gas.REDEEM_GAS:,} gas per redemption; "
             "top up with `citypass provider top-up --gas-account KEY`")


@provider_group.command("top-up")
@click.argument("address", type=ADDRESS, required=False)
@click.option("--below", default=gas.DEFAULT_BELOW, show_default=True, metavar="ETH",
              help="Top up providers holding less than this.")
@click.option("--to", "target", metavar="ETH", help="Up to this balance [default: twice --below].")
@click.option("--gas-account", metavar="KEY",
              help="The municipality's account that pays: keystore name or file, dev:N on a dev chain [default: --from].")
@click.option("--dry-run", is_flag=True, help="Show who would get how much; send nothing.")
@pass_ctx
def provider_top_up(c: Ctx, address: str | None, below: str, target: str | None, gas_account: str | None,
                    dry_run: bool) -> None:
    """Send gas (ETH) from the municipality's gas account to every provider, or to ADDRESS,
    that holds less than --below, up to --to. Checked first (registered providers, enough in
    the gas account), then one transfer per provider; a re-run sends only to who is still
    below. On a local dev chain with neither --gas-account nor --from, dev:0 pays."""
    below_wei = gas.parse_eth(below, "--below")
    to_wei = gas.parse_eth(target, "--to") if target is not None else 2 * below_wei
    account = c.load(gas_account) if gas_account else c.account()
    dep = c.deployment
    plan = gas.plan_top_up(dep, account.address, below=below_wei, to=to_wei, provider=address)
    rows = [(t.provider, f"{gas.eth_text(t.before)} ETH", f"{gas.eth_text(t.amount)} ETH") for t in plan.top_ups]
    if not plan.top_ups:
        note(f"all {len(plan.checked)} provider(s) hold at least {gas.eth_text(below_wei)} ETH: nothing to send")
    elif dry_run:
        note(f"would send {gas.eth_text(plan.total)} ETH to {len(plan.top_ups)} provider(s) from {account.address}")
    if dry_run or not plan.top_ups:
        output(c, {"gas_account": account.address, "sent": [], "to_send": [
                   {"provider": t.provider, "before_eth": gas.eth_text(t.before), "amount_eth": gas.eth_text(t.amount)}
                   for t in plan.top_ups]},
               rows=rows, columns=("PROVIDER", "HAS", "TO SEND"))
        return
    note(f"topping up {len(plan.top_ups)} provider(s) to {gas.eth_text(to_wei)} ETH from {account.address}")
    with ops.lazy_progress_bar("topping up") as update:
        done = gas.top_up(dep, account, plan, on_progress=lambda i, n, _t: update(i, n))
    sent = [t for t in done if t.tx_hash]
    note(f"sent {gas.eth_text(sum(t.amount for t in sent))} ETH to {len(sent)} provider(s)"
         + (f"; {len(done) - len(sent)} had been topped up meanwhile" if len(sent) < len(done) else ""))
    output(c, {"gas_account": account.address, "sent": [
               {"provider": t.provider, "before_eth": gas.eth_text(t.before), "amount_eth": gas.eth_text(t.amount),
                "tx": t.tx_hash} for t in done]},
           rows=[(t.provider, f"{gas.eth_text(t.before)} ETH", f"{gas.eth_text(t.amount)} ETH", t.tx_hash or "-")
                 for t in done], columns=("PROVIDER", "HAD", "SENT", "TX"))


# ------------------------------------------------------------------ passes
@main.group("pass")
def pass_group() -> None:
    """City passes: a holder address, a validity date and a status. Needs REGISTRAR."""


def _read_addresses(addresses: tuple[str, ...], file: Any) -> list[str]:
    """Addresses from the arguments and/or a file (one per line, '#' comments), checked,
    with duplicates refused (the contract would refuse the second enrolment anyway)."""
    items: list[tuple[str, str]] = [(a, f"argument {i + 1}") for i, a in enumerate(addresses)]
    if file is not None:
        for n, line in enumerate(file, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                items.append((text, f"{getattr(file, 'name', 'file')} line {n}"))
    if not items:
        raise UsageError("give at least one address (arguments or --file)")
    seen: dict[str, str] = {}
    for text, where in items:
        address = C.checksum(text, where)
        if address in seen:
            raise UsageError(f"{where}: {address} is listed twice (first at {seen[address]})")
        seen[address] = where
    return list(seen)


def _batches(items: list[str], size: int = PASS_BATCH) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _pass_addresses(c: Ctx, given: tuple[str, ...]) -> tuple[str, ...]:
    """Each argument as a 0x address: the pass app's address QR text (ethereum:0x...@chain)
    or a picture of it (PNG, JPEG...) is read here (citypass/address.py)."""
    from pathlib import Path

    from citypass.address import AddressQRError, pass_address
    from citypass.wallet import read_qr

    out = []
    for i, text in enumerate(given):
        where = f"argument {i + 1}"
        if Path(text).suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"):
            try:
                text = read_qr(text)
            except CityPassError as exc:
                raise UsageError(f"{where}: {exc}") from None
            where += " (its QR code)"
        try:
            out.append(pass_address(text, c.deployment.chain.chain_id, where))
        except AddressQRError as exc:
            raise UsageError(str(exc)) from None
    return tuple(out)


@pass_group.command("enroll")
@click.argument("addresses", nargs=-1)
@click.option("--file", type=click.File("r"), help="More addresses, one per line.")
@click.option("--valid-until", type=DATE, required=True, help="Last valid day (YYYY-MM-DD, inclusive).")
@click.option("--allow-role-holders", is_flag=True,
              help="Enrol addresses that hold a municipal role too (four-eyes: only when intended).")
@pass_ctx
def pass_enroll(c: Ctx, addresses: tuple[str, ...], file: Any, valid_until: int, allow_role_holders: bool) -> None:
    """Enrol new passes. Each ADDRESS is a 0x address, the pass app's address QR text
    (ethereum:0x...@chain id) or a PNG/JPEG of that QR code."""
    from citypass.issuance import role_holders

    holders = _read_addresses(_pass_addresses(c, addresses), file)
    if not allow_role_holders:
        roles = role_holders(c.deployment)
        held = [f"{h} holds the {' and '.join(roles[h])} role" for h in holders if h in roles]
        if held:
            raise CityPassError("; ".join(held) + ": one person with a municipal role and a pass defeats the "
                                "four-eyes principle; nothing was sent (pass --allow-role-holders if it is intended)")
    until = end_of_day(valid_until)
    f = c.deployment.contract.functions
    c.send_many([f.enrollPasses(batch, until) for batch in _batches(holders)],
                f"enrolled {len(holders)} pass(es), valid until {format_date(until)}", role="REGISTRAR")
    output(c, {"enrolled": holders, "valid_until": format_date(until)},
           rows=[(h, format_date(until)) for h in holders], columns=("HOLDER", "VALID UNTIL"))


@pass_group.command("renew")
@click.argument("addresses", nargs=-1)
@click.option("--file", type=click.File("r"), help="More addresses, one per line.")
@click.option("--valid-until", type=DATE, required=True, help="New last valid day (YYYY-MM-DD, inclusive).")
@pass_ctx
def pass_renew(c: Ctx, addresses: tuple[str, ...], file: Any, valid_until: int) -> None:
    """Set a new validity date after the yearly eligibility review."""
    holders = _read_addresses(addresses, file)
    until = end_of_day(valid_until)
    f = c.deployment.contract.functions
    c.send_many([f.renewPasses(batch, until) for batch in _batches(holders)],
                f"renewed {len(holders)} pass(es) until {format_date(until)}", role="REGISTRAR")
    output(c, {"renewed": holders, "valid_until": format_date(until)},
           rows=[(h, format_date(until)) for h in holders], columns=("HOLDER", "VALID UNTIL"))


def _pass_status_command(verb: str, function: str, past: str, doc: str) -> None:
    @pass_group.command(verb)
    @click.argument("holder", type=ADDRESS)
    @pass_ctx
    def command(c: Ctx, holder: str) -> None:
        fn = getattr(c.deployment.contract.functions, function)(holder)
        c.send(fn, f"{past} the pass of {holder}", role="REGISTRAR")
        _show_pass(c, holder)

    command.__doc__ = doc


_pass_status_command("suspend", "suspendPass", "suspended",
                     "Suspend a pass: it can neither receive nor spend credit until reinstated.")
_pass_status_command("reinstate", "reinstatePass", "reinstated", "Reinstate a suspended pass.")
_pass_status_command("revoke", "revokePass", "revoked",
                     "Revoke a pass for good; its credit is reclaimed after its budgets end.")


@pass_group.command("migrate")
@click.argument("old", type=ADDRESS)
@click.argument("new")
@click.option("--budget", "budget_specs", multiple=True, metavar="ID",
              help="Budgets to move (repeatable; default: every budget the old pass holds credit in).")
@pass_ctx
def pass_migrate(c: Ctx, old: str, new: str, budget_specs: tuple[str, ...]) -> None:
    """Lost phone: move the pass and its credit from OLD to NEW (the old key is dead).
    NEW may be the new phone's address QR text (ethereum:0x...@chain id) or a picture of it.

    The credit moves in as many transactions as needed; credit left behind (or arriving
    later) follows with `pass migrate` again.
    """
    new = _pass_addresses(c, (new,))[0]  # NEW may be the new phone's address QR text or a picture of it
    if old == new:
        raise UsageError("OLD and NEW are the same address")
    dep = c.deployment
    ids = [C.find_budget(dep, s).id for s in budget_specs] if budget_specs else None
    steps = C.migration_steps(dep, old, new, ids)
    if not steps:
        note(f"the pass of {old} moved to {new} before, and it holds no credit left to move")
    for step in steps:
        c.send(step.fn, f"migrated the pass of {old} to {new} ({step.budgets} budget(s))" if step.moves_pass
               else f"moved {step.budgets} more budget(s) of {old} to {new}", role="REGISTRAR")
    _show_pass(c, new)


@pass_group.command("show")
@click.argument("holder", type=ADDRESS)
@pass_ctx
def pass_show(c: Ctx, holder: str) -> None:
    """A pass: status, validity, migration and credit per budget."""
    _show_pass(c, holder)


def _show_pass(c: Ctx, holder: str) -> None:
    dep = c.deployment
    p = C.pass_info(dep, holder)
    budgets = {b.id: b for b in C.budgets(dep)} if p.balances else {}
    balances = [{"budget": budgets[bid].serial if bid in budgets else str(bid),
                 "name": budgets[bid].name if bid in budgets else "", "credit": cents_to_str(amount)}
                for bid, amount in p.balances.items()]
    data = {
        "address": p.address, "status": p.status,
        "valid_until": format_date(p.valid_until) if p.valid_until else None,
        "migrated_to": p.migrated_to, "current_address": p.current_address, "balances": balances,
    }
    if c.json:
        output(c, data)
        return
    flat: dict[str, Any] = {"address": p.address, "status": p.status,
                            "valid until": data["valid_until"] or "-"}
    if p.migrated_to:
        flat["migrated to"] = p.migrated_to
        flat["current address"] = p.current_address
    for bid, amount in p.balances.items():
        label = f"budget #{budgets[bid].serial} {budgets[bid].name}" if bid in budgets else budget_text(bid)
        flat[f"credit {label}"] = format_euros(amount)
    if not p.balances:
        flat["credit"] = format_euros(0)
    output(c, flat)


# ------------------------------------------------------------------ roles and pause
@main.group("role")
def role_group() -> None:
    """Roles: admin, budget-manager, provider-manager, registrar, issuer, treasurer, pauser."""


@role_group.command("grant")
@click.argument("role", type=ROLE)
@click.argument("address", type=ADDRESS)
@click.option("--allow-both-roles-on-one-key", "allow_both", is_flag=True,
              help="Off dev chains: give a plain key (not a Safe) the registrar role beside the issuer role, or the "
                   "other way round (four-eyes: only if intended).")
@pass_ctx
def role_grant(c: Ctx, role: str, address: str, allow_both: bool) -> None:
    """Give ROLE to ADDRESS. Needs the admin.

    Off local dev chains, one plain key (EOA) is not given both the registrar and the
    issuer role without --allow-both-roles-on-one-key: a Safe holds both (enrollAndIssue
    needs both on one account; the Safe's threshold keeps four eyes on it).
    """
    from citypass import proposals

    _check_grantable(role)
    dep = c.deployment
    if C.has_role(dep, role, address):
        raise CityPassError(f"{address} already has the {role} role")
    if not allow_both:
        held = [r for r in ("REGISTRAR", "ISSUER") if C.has_role(dep, r, address)]
        refusal = proposals.both_roles_refusal(dep.chain, address, held + [role])
        if refusal:
            raise CityPassError(f"{refusal}; nothing was sent")
    c.send(dep.contract.functions.grantRole(ROLE_IDS[role], address), f"granted {role} to {address}", role="ADMIN")
    if c.json:
        output(c, {"role": role_label(role), "address": address, "granted": True})


@role_group.command("revoke")
@click.argument("role", type=ROLE)
@click.argument("address", type=ADDRESS)
@pass_ctx
def role_revoke(c: Ctx, role: str, address: str) -> None:
    """Take ROLE from ADDRESS. Needs the admin."""
    _check_grantable(role)
    dep = c.deployment
    if not C.has_role(dep, role, address):
        raise CityPassError(f"{address} does not have the {role} role")
    c.send(dep.contract.functions.revokeRole(ROLE_IDS[role], address), f"revoked {role} from {address}", role="ADMIN")
    if c.json:
        output(c, {"role": role_label(role), "address": address, "revoked": True})


def _check_grantable(role: str) -> None:
    if role == "ADMIN":
        raise UsageError("the admin role changes hands only through the two-step admin transfer "
                         "(beginDefaultAdminTransfer / acceptDefaultAdminTransfer), not grant/revoke")


@role_group.command("transfer-admin")
@click.argument("address", type=ADDRESS)
@pass_ctx
def role_transfer_admin(c: Ctx, address: str) -> None:
    """Start handing the admin role to ADDRESS; it accepts after the admin delay."""
    dep = c.deployment
    c.send(dep.contract.functions.beginDefaultAdminTransfer(address), f"admin transfer to {address} started",
           role="ADMIN")
    _show_admin(c)


@role_group.command("accept-admin")
@pass_ctx
def role_accept_admin(c: Ctx) -> None:
    """Accept a pending admin transfer (as the new admin, after the delay)."""
    dep = c.deployment
    pending, schedule = dep.contract.functions.pendingDefaultAdmin().call()
    if int(pending, 16) == 0:
        raise CityPassError("no admin transfer is pending")
    if bytes(dep.chain.w3.eth.get_code(pending)):  # the new admin is a Safe: its owners accept
        if schedule >= dep.chain.now():
            note(f"the transfer can be accepted after {date_text(schedule)}: the Safe's owners can sign now")
        c.propose(pending, [(dep.address, bytes.fromhex(dep.contract.functions.acceptDefaultAdminTransfer()
                                                        ._encode_transaction_data()[2:]),
                             "accept the admin role (the pending admin transfer)")],
                  simulate=schedule < dep.chain.now())
    signer = c.account() if c.from_spec or not dep.chain.is_local_dev else _dev_signer(c, pending)
    c.send(dep.contract.functions.acceptDefaultAdminTransfer(), f"{signer.address} is now the admin", account=signer)
    _show_admin(c)


@role_group.command("cancel-admin")
@pass_ctx
def role_cancel_admin(c: Ctx) -> None:
    """Cancel a pending admin transfer (as the admin)."""
    dep = c.deployment
    if int(dep.contract.functions.pendingDefaultAdmin().call()[0], 16) == 0:
        raise CityPassError("no admin transfer is pending")
    c.send(dep.contract.functions.cancelDefaultAdminTransfer(), "the pending admin transfer is cancelled", role="ADMIN")
    _show_admin(c)


def _dev_signer(c: Ctx, address: str) -> Any:
    index = keys.dev_index(address)
    if index is not None:
        return c.load(f"dev:{index}")
    raise UsageError(f"pass --from with the key of the pending admin {address}")


def _show_admin(c: Ctx) -> None:
    f = c.deployment.contract.functions
    _, schedule = f.pendingDefaultAdmin().call()
    output(c, {"admin": f.defaultAdmin().call(), "pending_admin": _pending_admin(c.deployment),
               "accept_after": date_text(schedule) if schedule else None})


@role_group.command("list")
@pass_ctx
def role_list(c: Ctx) -> None:
    """Who holds which role."""
    members = {role_label(k): v for k, v in C.role_members(c.deployment).items()}
    output(c, members, rows=[(k, a) for k, v in members.items() for a in (v or ["-"])], columns=("ROLE", "ADDRESS"))


@main.command("pause")
@pass_ctx
def pause_cmd(c: Ctx) -> None:
    """Emergency stop: no credit moves until `unpause`. Needs PAUSER."""
    c.send(c.deployment.contract.functions.pause(), "CityPass is paused", role="PAUSER")
    if c.json:
        output(c, {"paused": True})


@main.command("unpause")
@pass_ctx
def unpause_cmd(c: Ctx) -> None:
    """End an emergency stop. Needs PAUSER."""
    c.send(c.deployment.contract.functions.unpause(), "CityPass is running again", role="PAUSER")
    if c.json:
        output(c, {"paused": False})


@main.command("report")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Folder for the CSV tables, PNG charts and index.html.")
@pass_ctx
def report_cmd(c: Ctx, out_dir: str) -> None:
    """Municipal report from the chain's events: tables per budget, category, provider and
    week, charts, and an HTML summary. Refuses (exit 1) if any total fails to reconcile."""
    from citypass import report
    from citypass.index import EventIndex

    index = EventIndex.open(c.deployment)  # <workdir>/index/: only blocks it has not read yet are fetched
    try:
        result = report.build_report(c.deployment, out_dir, index=index)
    finally:
        index.close()
    for line in result.reconciliation + result.chain_checks:
        note(line)
    note(f"report written to {result.files.html} (as of block {result.block})")
    output(c, {"html": str(result.files.html), "block": result.block,
               "csv": [str(p) for p in result.files.csvs], "charts": [str(p) for p in result.files.charts]})


# ------------------------------------------------------------------ settings
@main.group("settings")
def settings_group() -> None:
    """The municipality's settings, kept in the work directory (settings.json)."""


@settings_group.command("show")
@pass_ctx
def settings_show(c: Ctx) -> None:
    """The settings in force (defaults where the file says nothing)."""
    from dataclasses import asdict

    from citypass import settings

    output(c, asdict(settings.load(c.workdir)))


@settings_group.command("set")
@click.option("--pass-qr-ttl", type=click.IntRange(1, 366 * 86_400), metavar="SECONDS",
              help="How long a pass QR stays valid after the phone signs it (default 86400: 24 hours).")
@click.option("--scan-limit", metavar="EUROS", callback=lambda _c, _p, v: None if v is None else parse_euros(v, "--scan-limit"), help="The most one scan of a pass QR may take from one budget (default 150.00).")
@pass_ctx
def settings_set(c: Ctx, pass_qr_ttl: int | None, scan_limit: int | None) -> None:
    """Change a setting."""
    from dataclasses import asdict

    from citypass import settings

    changes = {k: v for k, v in (("pass_qr_ttl_seconds", pass_qr_ttl), ("scan_limit_cents", scan_limit)) if v is not None}
    if not changes:
        raise UsageError("give --pass-qr-ttl and/or --scan-limit")
    new = settings.update(c.workdir, **changes)
    note(f"settings saved to {settings.path(c.workdir)}")
    output(c, asdict(new))


# ------------------------------------------------------------------ issuance, vouchers, finance
ops.register(main)
safe_cli.register(main)  # citypass safe (citypass/cli/safe.py)
main.add_command(web.web_cmd)  # citypass web (citypass/cli/web.py)
main.add_command(coupons_cli.coupons_group)  # citypass coupons (citypass/cli/coupons.py)
main.add_command(passregister.register_group)  # citypass register (citypass/cli/passregister.py)


def run_cli(rpc: str, args: list[str]) -> None:
    """Runs a `citypass` command against `rpc` from Python (the Brownie scripts), with the
    same output and errors as on the command line; SystemExit with its code on failure."""
    try:
        code = main.main(["--rpc", rpc, *args], prog_name="citypass", standalone_mode=False)
    except click.ClickException as exc:  # a usage error: click's own message, no traceback
        exc.show()
        raise SystemExit(exc.exit_code) from None
    if code:
        raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="citypass")
