"""`citypass web`: serve the till and its JSON API (thin: the server is citypass/web/)."""

from __future__ import annotations

import click

from citypass.cli.common import Ctx, note, pass_ctx
from citypass.errors import CityPassError, UsageError


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Beyond loopback only when no public dev key holds a role or gas.")
@click.option("--port", type=click.IntRange(1, 65535), default=8600, show_default=True)
@click.option("--public-name", "public_names", multiple=True, metavar="HOST[:PORT]",
              help="A host name the server answers to behind a reverse proxy (e.g. till.example.nl); repeatable.")
@click.option("--rate-limit", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Requests per client per minute (0: no limit; better set in the reverse proxy).")
@click.option("--rebuild-index", is_flag=True,
              help="Read the event index (<workdir>/index/) again from the chain before serving.")
@pass_ctx
def web_cmd(c: Ctx, host: str, port: int, public_names: tuple[str, ...], rate_limit: int, rebuild_index: bool) -> None:
    """Serve /till/, the JSON API and the wallet RPC endpoint on the chain of --rpc/--workdir.

    The till says paid once a payment has N blocks on top: `citypass --confirmations N web`
    (default: 0 on dev chains, else 2)."""
    from citypass.web import server
    from citypass.web.security import BindRefused

    if host in ("0.0.0.0", "::") and not public_names:
        raise UsageError(f"--host {host}: also give --public-name with the name(s) clients use (Host header check)")
    try:
        service, app = server.build(c.rpc, c.workdir, host=host, port=port, contract=c.contract_address,
                                    public_names=public_names, rate_limit=rate_limit, rebuild_index=rebuild_index,
                                    confirmations=c.confirmations)
    except BindRefused as exc:
        raise CityPassError(str(exc)) from None
    if service.dev_keys:
        note("development chain: public Anvil dev keys hold " + "; ".join(service.dev_keys[:3])
             + (" ..." if len(service.dev_keys) > 3 else "") + " (the pages show a banner)")
    wanted = service.chain.default_confirmations
    note(f"the till says paid once a payment has {wanted} block(s) on top (citypass --confirmations N web)")
    note(f"event index: {service.index.count()} events up to block {service.index.tip} in {service.index.path}")
    note(f"citypass web: CityPass {service.dep.address} on {service.chain.name}; "
         f"till at http://{host if ':' not in host else f'[{host}]'}:{port}/till/")
    server.serve(app, host, port)
