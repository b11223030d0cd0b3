"""`citypass safe`: Safe multisig accounts holding CityPass roles, and the Safe transactions
CityPass commands propose when a role is held by a Safe (citypass/proposals.py).

    citypass safe create --owner A --owner B --owner C --threshold 2   (local dev chains)
    citypass safe info ADDRESS
    citypass safe list [--all]            proposals waiting for signatures or execution
    citypass safe show HASH
    citypass safe sign HASH --from OWNER  each owner with their own key
    citypass safe execute HASH [--from KEY]
    citypass safe discard HASH

Registered on the main group by citypass/cli/main.py.
"""

from __future__ import annotations

import click

from citypass import contract as C
from citypass import keys, proposals
from citypass import safe as S
from citypass.cli.common import ADDRESS, Ctx, address_of, note, output, pass_ctx, role_label, show_proposal
from citypass.errors import CityPassError, UsageError

DEV_ADMIN_OWNERS = (0, 1, 2)  # `deploy --dev-safes`: the admin Safe's owners (dev:N), 2 of 3
DEV_ISSUER_OWNERS = (3, 4, 5)  # the issuer (and registrar) Safe's owners, 2 of 3


def register(group: click.Group) -> None:
    group.add_command(safe_group)


@click.group("safe")
def safe_group() -> None:
    """Safe multisigs holding roles: create, inspect, and sign and execute proposals.

    When a role a command needs is held by a Safe (or with --via-safe ADDRESS), the
    command proposes a Safe transaction instead of sending: it is kept in
    --workdir/safe-proposals/ until enough owners signed and someone executes it.
    """


def describe_safe(info: S.SafeInfo) -> str:
    return f"Safe {info.address}, {info.threshold} of {len(info.owners)} owners: {', '.join(info.owners)}"


def create_dev_safe(c: Ctx, owners: tuple[int, ...], threshold: int = 2) -> S.SafeInfo:
    """A Safe of dev accounts on a local dev chain (deploy --dev-safes)."""
    deployer = c.load("dev:0")
    return S.create_safe(c.chain, deployer, [keys.dev_account(i).address for i in owners], threshold,
                         workdir=c.workdir)


@safe_group.command("create")
@click.option("--owner", "owners", multiple=True, required=True, metavar="ADDRESS",
              help="An owner: address, keystore name or dev:N (repeat for each).")
@click.option("--threshold", type=click.IntRange(min=1), required=True, help="Signatures needed to execute.")
@pass_ctx
def safe_create(c: Ctx, owners: tuple[str, ...], threshold: int) -> None:
    """Create a Safe 1.4.1 (local dev chains: its contracts are deployed first, once).

    On other chains make the Safe with the Safe's own app and give its address to
    `citypass deploy --admin ADDRESS` or `citypass role grant ROLE ADDRESS`.
    """
    if not c.chain.is_local_dev:
        raise CityPassError(f"chain {c.chain.chain_id} is not a local dev chain: create the Safe with the Safe app "
                            "(app.safe.global) and pass its address to CityPass")
    addresses = [address_of(c, o, "--owner") for o in owners]
    if None in addresses:
        raise UsageError("--owner cannot be `none`")
    info = S.create_safe(c.chain, c.account(), addresses, threshold, workdir=c.workdir)  # type: ignore[arg-type]
    note(f"created {describe_safe(info)}")
    output(c, {"safe": info.address, "threshold": info.threshold, "owners": list(info.owners)})


@safe_group.command("info")
@click.argument("address", type=ADDRESS)
@pass_ctx
def safe_info_cmd(c: Ctx, address: str) -> None:
    """A Safe's owners, threshold and nonce, and the CityPass roles it holds."""
    info = S.safe_info(c.chain, address)
    data = {"safe": info.address, "version": info.version, "threshold": info.threshold, "owners": list(info.owners),
            "nonce": info.nonce}
    try:
        members = C.role_members(c.deployment)
        data["roles"] = [role_label(r) for r, held in members.items() if info.address in held]
    except CityPassError:
        pass  # no CityPass on this chain yet
    output(c, data if c.json else {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in data.items()})


@safe_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also executed and superseded proposals.")
@pass_ctx
def safe_list(c: Ctx, show_all: bool) -> None:
    """Proposals waiting for signatures or execution, with what they do."""
    rows, data = [], []
    for p in proposals.load_all(c.workdir, c.chain.chain_id):
        s = proposals.summary(c.chain, p)
        if not show_all and s["status"] not in ("pending", "partly executed"):
            continue
        data.append(s)
        rows.append((p.id, p.safe, s["status"], s["signatures"], p.description))
    output(c, data, rows=rows, columns=("PROPOSAL", "SAFE", "STATUS", "SIGNATURES", "WHAT"))
    if not rows:
        note("no proposals waiting" + ("" if show_all else " (--all shows executed ones too)"))


@safe_group.command("show")
@click.argument("proposal")
@pass_ctx
def safe_show(c: Ctx, proposal: str) -> None:
    """One proposal: what it does, each Safe transaction, who signed."""
    show_proposal(c, proposals.find(c.workdir, proposal, c.chain.chain_id))


@safe_group.command("sign")
@click.argument("proposal")
@pass_ctx
def safe_sign(c: Ctx, proposal: str) -> None:
    """Sign PROPOSAL as an owner of its Safe, with your own key (--from).

    What it does is printed first (for an issuance: totals per budget, the file's hash,
    the number of new passes): read it before you sign. Each transaction's hash is checked
    against the Safe's own getTransactionHash.
    """
    if not c.from_spec:
        raise UsageError("pass --from KEY: each owner signs with their own key (keystore name, or dev:N on a dev chain)")
    p = proposals.find(c.workdir, proposal, c.chain.chain_id)
    account = c.load(c.from_spec)
    proposals.require_owner(c.chain, p, account)
    note(f"signing: {p.description}")
    for k, v in p.details.items():
        note(f"  {k.replace('_', ' ')}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
    have, need = proposals.sign(c.chain, c.workdir, p, account)
    note(f"{account.address} signed proposal {p.id}: {have} of {need} signatures"
         + (f"; `citypass safe execute {p.id}` can run now" if have >= need else f"; {need - have} more needed"))
    show_proposal(c, p)


@safe_group.command("execute")
@click.argument("proposal")
@pass_ctx
def safe_execute(c: Ctx, proposal: str) -> None:
    """Execute PROPOSAL once enough owners signed it (any account pays the gas: --from;
    on a local dev chain dev:0 by default). Each transaction is checked first: nonce,
    signatures, and the call itself; a refusal sends nothing."""
    p = proposals.find(c.workdir, proposal, c.chain.chain_id)
    sender = c.load(c.from_spec) if c.from_spec else c.account()
    done = proposals.execute(c.chain, c.workdir, p, sender, confirmations=c.confirmations,
                             on_done=lambda e: note(f"executed Safe transaction {e.tx.hash} (nonce {e.tx.nonce}): "
                                                    f"{e.tx.what} (tx {e.tx_hash}, block {e.block}, gas {e.gas_used:,})"))
    note(f"proposal {p.id} executed: {p.description}")
    if c.json:
        output(c, {"proposal": p.id, "executed": [{"safe_tx_hash": e.tx.hash, "tx": e.tx_hash, "block": e.block,
                                                    "gas_used": e.gas_used} for e in done]})


@safe_group.command("discard")
@click.argument("proposal")
@pass_ctx
def safe_discard(c: Ctx, proposal: str) -> None:
    """Remove a proposal that will not be executed from --workdir (refused once part of it
    ran). Signatures already given stay valid until the Safe uses that nonce: the next
    proposal takes the same nonce, which makes them useless."""
    p = proposals.find(c.workdir, proposal, c.chain.chain_id)
    executed = [s for s in proposals.states(c.chain, p) if s.state == "executed"]
    if executed:
        raise CityPassError(f"proposal {p.id} is partly executed ({len(executed)} of {len(p.txs)} transactions): it "
                            "stays on record; execute the rest")
    proposals.discard(c.workdir, p)
    note(f"discarded proposal {p.id} ({p.description})")
