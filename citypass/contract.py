"""The CityPass contract: packaged ABI and bytecode, deployment, the address book, reads.

The package carries `citypass/artifacts/CityPass.json` (ABI + bytecode), so providers
need no compiler; `python -m citypass.contract --sync-artifacts` refreshes it from
Brownie's `build/contracts/CityPass.json` (tests/test_artifacts.py checks they agree).

The address book (`<workdir>/addressbook.json`) remembers, per chain id, where CityPass
was deployed, at which block (where event scans start), in which transaction and with
which code (its hash). Those identify the deployment across node restarts; the genesis
hash does not (Anvil makes a new block 0 at each start from a saved state).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address, to_checksum_address
from web3.contract import Contract

from citypass import budget_id
from citypass.artifact import ARTIFACT_ENV, ARTIFACT_KEYS, artifact_path, load_artifact, sync_artifacts  # noqa: F401
from citypass.chain import Chain
from citypass.errors import (
    PASS_STATUS, PROVIDER_STATUS, ROLE_IDS, CityPassError, UsageError, role_name,
)

ADDRESSBOOK = "addressbook.json"
DEFAULT_ADMIN_DELAY = 3 * 86_400  # two-step admin transfer waits three days
DEFAULT_METADATA_URI = "https://citypass.example/budget/{id}.json"
LOG_CHUNK = 50_000  # blocks per eth_getLogs request (public nodes limit ranges)
ROLE_PARAMS = ("admin", "budget_manager", "provider_manager", "registrar", "issuer", "treasurer", "pauser")


# ------------------------------------------------------------------ addresses
def checksum(address: str, what: str = "address") -> str:
    """A checksummed address, or a UsageError naming `what` and the problem."""
    text = str(address).strip()
    body = text[2:]
    if not text.startswith("0x") or len(body) != 40 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise UsageError(f"{what}: {text!r} is not an Ethereum address (0x followed by 40 hex digits)")
    # All lower or all upper case carries no checksum; mixed case must be a valid one. The
    # message never shows the "right" spelling: that is the mistyped address re-cased, and a
    # user who pastes it registers a wrong address with a valid checksum.
    if body != body.lower() and body != body.upper() and not is_checksum_address(text):
        raise UsageError(f"{what}: {text} has a bad checksum: the EIP-55 checksum does not match, so the "
                         "address has a typo; copy the address again from where it came from")
    return to_checksum_address(text)


# ------------------------------------------------------------------ deployments
@dataclass
class Deployment:
    chain: Chain
    address: str
    contract: Contract
    block: int = 0  # deployment block: event scans start here
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def role_id(self, name: str) -> bytes:
        return ROLE_IDS[name]

    def events(self, event: str, from_block: int | None = None, to_block: int | str = "latest",
               argument_filters: dict[str, Any] | None = None) -> list[Any]:
        """Decoded logs of one event since the deployment, fetched in block ranges."""
        ev = getattr(self.contract.events, event)
        start = self.block if from_block is None else from_block
        end = self.chain.w3.eth.block_number if to_block == "latest" else int(to_block)
        logs: list[Any] = []
        from citypass.events import _range_limits  # the range this endpoint took before (shared with the index)

        endpoint = self.chain.rpc_url
        size = min(LOG_CHUNK, _range_limits.get(endpoint, LOG_CHUNK))
        while start <= end:
            stop = min(start + size - 1, end)
            try:
                logs += ev.get_logs(from_block=start, to_block=stop, argument_filters=argument_filters)
            except Exception as exc:  # many public RPCs cap the range or the results per call
                if size > 1:
                    size = max(1, size // 2)
                    _range_limits[endpoint] = size
                    continue
                raise CityPassError(f"the node refused to return {event} events of blocks {start}..{stop}: {exc}") from exc
            start = stop + 1
        return logs


def contract_at(chain: Chain, address: str) -> Contract:
    return chain.w3.eth.contract(address=to_checksum_address(address), abi=load_artifact()["abi"])


def _genesis(chain: Chain) -> str:
    return chain.rpc("eth_getBlockByNumber", ["0x0", False])["hash"]


def code_hash(chain: Chain, address: str) -> str:
    """keccak of the code at `address` ("0x" + 64 hex digits)."""
    from eth_utils import keccak

    return "0x" + keccak(bytes(chain.w3.eth.get_code(to_checksum_address(address)))).hex()


NEW_EMPTY = "`citypass deploy` starts a new, empty contract"


def check_identity(chain: Chain, entry: dict[str, Any]) -> None:
    """Refuses an address-book entry whose deployment this chain does not hold: its
    deployment transaction must be on chain and have created that address, and the code
    there must be what it deployed. (Older entries without them: the code is checked by
    open_deployment; the genesis hash is not used, it changes at each Anvil restart.)"""
    address, deploy_tx = entry.get("address", ""), entry.get("tx")
    if deploy_tx:
        receipt = chain.rpc("eth_getTransactionReceipt", [deploy_tx])
        created = receipt and receipt.get("contractAddress")
        if not created or to_checksum_address(created) != to_checksum_address(address):
            raise CityPassError(
                f"the address book's CityPass for chain {chain.chain_id} ({address}, deployed in transaction "
                f"{deploy_tx}) is not on this chain: the node was reset, or this is another chain with the same id. "
                f"{NEW_EMPTY} (its passes and credit start from nothing); to use an existing one pass --contract ADDRESS"
            )
    if entry.get("code_hash") and code_hash(chain, address) != entry["code_hash"]:
        raise CityPassError(
            f"the code at {address} on chain {chain.chain_id} is not the CityPass the address book deployed there "
            f"(another chain with the same id?). {NEW_EMPTY}; to use an existing one pass --contract ADDRESS"
        )


def addressbook_path(workdir: Path | str) -> Path:
    return Path(workdir) / ADDRESSBOOK


def read_addressbook(workdir: Path | str) -> dict[str, Any]:
    path = addressbook_path(workdir)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise CityPassError(f"the address book {path} is not valid JSON: fix or remove it") from None


def record_deployment(chain: Chain, address: str, block: int, deployer: str, workdir: Path | str,
                      tx_hash: str | None = None) -> None:
    book = read_addressbook(workdir)
    key = str(chain.chain_id)
    # No RPC URL here: provider URLs often carry an API key, and this file gets shared.
    # "genesis" is informative only (it changes at each Anvil restart); tx + code_hash identify.
    entry = {"address": address, "block": block, "tx": tx_hash, "code_hash": code_hash(chain, address),
             "genesis": _genesis(chain), "deployer": deployer,
             "deployed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    previous = book.get(key)
    if previous:  # keep older deployments of this chain id: their events stay auditable
        entry["previous"] = previous.get("previous", []) + [{k: v for k, v in previous.items() if k != "previous"}]
    book[key] = entry
    path = addressbook_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(book, indent=2) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves half an address book


def deploy(
    chain: Chain,
    deployer: LocalAccount,
    *,
    admin: str,
    budget_manager: str | None,
    provider_manager: str | None,
    registrar: str | None,
    issuer: str | None,
    treasurer: str | None,
    pauser: str | None,
    admin_delay: int = DEFAULT_ADMIN_DELAY,
    metadata_uri: str = DEFAULT_METADATA_URI,
    workdir: Path | str | None = None,
    confirmations: int | None = None,
) -> Deployment:
    """Deploys CityPass with each role to the given address (None leaves a role empty) and
    records it in the address book of `workdir` (default: the chain's)."""
    from citypass.tx import send

    zero = "0x" + "00" * 20
    operators = [checksum(a, name) if a else zero for a, name in (
        (budget_manager, "budget manager"), (provider_manager, "provider manager"), (registrar, "registrar"),
        (issuer, "issuer"), (treasurer, "treasurer"), (pauser, "pauser"))]
    art = load_artifact()
    factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    receipt = send(chain, deployer, factory.constructor(admin_delay, checksum(admin, "admin"), operators, metadata_uri),
                   confirmations=confirmations)
    address = to_checksum_address(receipt.contractAddress)
    record_deployment(chain, address, receipt.blockNumber, deployer.address,
                      workdir if workdir is not None else chain.workdir,
                      tx_hash="0x" + bytes(receipt.transactionHash).hex())
    return Deployment(chain, address, contract_at(chain, address), receipt.blockNumber)


def dev_roles() -> dict[str, str]:
    """Local dev chains: each role its own Anvil dev account (dev:0 admin .. dev:6 pauser),
    so a demo shows the four-eyes split; dev:7..9 stay free for providers."""
    from citypass.keys import dev_account

    return {role: dev_account(i).address for i, role in enumerate(ROLE_PARAMS)}


def open_deployment(chain: Chain, address: str | None = None, workdir: Path | str | None = None) -> Deployment:
    """The CityPass at `address`, or the one the address book has for this chain."""
    workdir = Path(workdir) if workdir is not None else chain.workdir
    block = 0
    if address is None:
        address = os.environ.get("CITYPASS_CONTRACT") or None
    if address is None:
        book = read_addressbook(workdir)
        entry = book.get(str(chain.chain_id))
        if entry is None:
            others = ", ".join(sorted(book)) or "none"
            raise CityPassError(
                f"no CityPass deployed on chain {chain.chain_id} in {addressbook_path(workdir)} "
                f"(chains there: {others}): run `citypass deploy` (it starts a new, empty contract) "
                f"or pass --contract ADDRESS"
            )
        check_identity(chain, entry)
        address, block = entry["address"], int(entry.get("block", 0))
    address = checksum(address, "contract")
    if chain.w3.eth.get_code(address) in (b"", None):
        raise CityPassError(f"no contract at {address} on chain {chain.chain_id}: wrong chain or address?")
    dep = Deployment(chain, address, contract_at(chain, address), block)
    try:
        dep.contract.functions.HOT_NONCES().call()
        dep.contract.functions.DEFAULT_ADMIN_ROLE().call()
    except Exception:
        raise CityPassError(f"the contract at {address} on chain {chain.chain_id} is not CityPass") from None
    return dep


# ------------------------------------------------------------------ reads
@dataclass(frozen=True)
class BudgetInfo:
    id: int
    serial: int
    category: int
    valid_from: int
    valid_until: int
    cap: int
    issued: int
    settled: int
    reclaimed: int
    name: str
    corrected: int = 0  # taken back by the issuer (credit issued in error)

    @property
    def outstanding(self) -> int:
        return self.issued - self.settled - self.reclaimed - self.corrected


@dataclass(frozen=True)
class ProviderInfo:
    address: str
    status: str  # active | suspended | removed | none
    categories: tuple[int, ...]
    max_amount: int  # cents per redemption; 0 = no limit
    paused: bool  # CityPass is paused (one global flag in v2)
    name: str = ""  # the public name (latest ProviderNamed event); "" if it has none


@dataclass(frozen=True)
class PassInfo:
    address: str
    status: str  # none | active | suspended | revoked | migrated | provider
    valid_until: int
    migrated_to: str | None
    current_address: str
    balances: dict[int, int]  # budget id -> cents (non-zero only)


def category_names(dep: Deployment) -> dict[int, str]:
    """Category number -> name, the latest CategoryDefined of each."""
    return {int(e.args.category): e.args.name for e in dep.events("CategoryDefined")}


def budgets(dep: Deployment) -> list[BudgetInfo]:
    """Every budget, in order of creation, with its totals and name."""
    ids = dep.contract.functions.budgets().call()
    names = {int(e.args.budget): e.args.name for e in dep.events("BudgetCreated")}
    out = []
    for bid in ids:
        cap, issued, settled, reclaimed, corrected = dep.contract.functions.budgetTotals(bid).call()
        t = budget_id.decode(bid)
        out.append(BudgetInfo(bid, t.serial, t.category, t.valid_from, t.valid_until, cap, issued, settled,
                              reclaimed, names.get(bid, ""), corrected))
    return out


def find_budget(dep: Deployment, spec: str | int) -> BudgetInfo:
    """A budget by serial number ('3', '#3') or full id; error if this contract has none such."""
    text = str(spec).strip().lstrip("#")
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"budget {spec!r}: give its number (as `citypass budget list` shows) or its full id")
    value = int(text)
    for b in budgets(dep):
        if value in (b.serial, b.id):
            return b
    raise CityPassError(f"budget {spec} does not exist on the contract at {dep.address}: see `citypass budget list`")


def provider_names(dep: Deployment) -> dict[str, str]:
    """Provider address -> its public name, the latest ProviderNamed event of each."""
    return {to_checksum_address(e.args.provider): e.args.name for e in dep.events("ProviderNamed")}


def provider_info(dep: Deployment, address: str, names: dict[str, str] | None = None) -> ProviderInfo:
    address = checksum(address, "provider")
    f = dep.contract.functions
    record = f.providerOf(address).call()
    if len(record) == 3:  # v2: (status, categories, maxAmount); the pause is one global flag
        status, cats, max_amount = record
        paused = bool(f.paused().call())
    else:  # v1 mirrored the pause into every provider record
        status, paused, cats, max_amount = record
    categories = tuple(c for c in range(64) if cats >> c & 1)
    name = (provider_names(dep) if names is None else names).get(address, "")
    return ProviderInfo(address, PROVIDER_STATUS[status], categories, max_amount, paused, name)


def providers(dep: Deployment) -> list[ProviderInfo]:
    names = provider_names(dep)
    return [provider_info(dep, a, names) for a in dep.contract.functions.providers().call()]


def pass_info(dep: Deployment, holder: str) -> PassInfo:
    holder = checksum(holder, "pass holder")
    f = dep.contract.functions
    status, valid_until = f.passOf(holder).call()
    moved = f.migratedTo(holder).call()
    ids = f.budgets().call()
    amounts = f.balanceOfBatch([holder] * len(ids), ids).call() if ids else []
    return PassInfo(
        holder, PASS_STATUS[status], valid_until,
        None if int(moved, 16) == 0 else to_checksum_address(moved),
        to_checksum_address(f.currentAddress(holder).call()),
        {bid: amt for bid, amt in zip(ids, amounts) if amt},
    )


def role_members(dep: Deployment) -> dict[str, list[str]]:
    """Current holders of each role, replayed from RoleGranted/RoleRevoked events (the
    contract does not enumerate members), then confirmed with hasRole."""
    names = {role_id: name for name, role_id in ROLE_IDS.items()}
    seen: dict[str, set[str]] = {name: set() for name in ROLE_IDS}
    for ev in dep.events("RoleGranted"):
        name = names.get(bytes(ev.args.role))
        if name:
            seen[name].add(to_checksum_address(ev.args.account))
    has = dep.contract.functions.hasRole
    return {name: sorted(a for a in accounts if has(ROLE_IDS[name], a).call()) for name, accounts in seen.items()}


MIGRATE_BUDGETS_PER_CALL = 50  # budgets moved by one migratePass / migrateBalances call (~30k gas each)


@dataclass(frozen=True)
class MigrationStep:
    fn: Any  # the contract call
    budgets: int  # how many budgets it moves
    moves_pass: bool  # migratePass (the pass itself and its first budgets) or migrateBalances


def migration_steps(dep: Deployment, old: str, new: str, budgets: Sequence[int] | None = None) -> list[MigrationStep]:
    """The calls that move the pass `old` (a lost phone or sheet) and its credit to `new`:
    migratePass with the first MIGRATE_BUDGETS_PER_CALL budgets, unless the pass moved to `new`
    already, then migrateBalances for the rest (or for credit that reached `old` later).
    `budgets`: default every budget `old` holds credit in. Empty: nothing is left to move.
    The CLI, the coupon sheets and the desk all move a pass through this."""
    p = pass_info(dep, old)
    if p.migrated_to is not None and p.migrated_to != new:
        raise CityPassError(f"the pass of {old} moved to {p.migrated_to} already, not to {new}")
    ids = list(p.balances) if budgets is None else list(budgets)
    step = MIGRATE_BUDGETS_PER_CALL
    parts = [ids[i:i + step] for i in range(0, len(ids), step)]
    f = dep.contract.functions
    out = []
    if p.migrated_to is None:
        first = parts.pop(0) if parts else []
        out.append(MigrationStep(f.migratePass(old, new, first), len(first), True))
    return out + [MigrationStep(f.migrateBalances(old, part), len(part), False) for part in parts]


def has_role(dep: Deployment, role: str, account: str) -> bool:
    from citypass.tx import call_many  # the direct encoder: web3's .call() validates the whole ABI each time

    return bool(call_many(dep.chain, dep.contract, "hasRole", [(ROLE_IDS[role], checksum(account))])[0][0])


def require_role(dep: Deployment, role: str, account: str) -> None:
    """Checks a role before sending, so the error names the role and the account."""
    if not has_role(dep, role, account):
        raise CityPassError(f"account {account} lacks the {role} role on the contract at {dep.address}")


__all__ = [
    "Deployment", "BudgetInfo", "ProviderInfo", "PassInfo", "load_artifact", "sync_artifacts", "deploy",
    "open_deployment", "budgets", "find_budget", "provider_info", "provider_names", "providers", "pass_info", "category_names",
    "role_members", "has_role", "require_role", "checksum", "role_name", "migration_steps", "MigrationStep",
]


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citypass.contract", description=__doc__.splitlines()[0])
    parser.add_argument("--sync-artifacts", action="store_true", help="copy ABI/bytecode from a Brownie build")
    parser.add_argument("--build", default="build/contracts/CityPass.json", help="Brownie build artifact")
    args = parser.parse_args(argv)
    if not args.sync_artifacts:
        parser.print_help()
        return 2
    try:
        print(f"wrote {sync_artifacts(args.build)}", file=sys.stderr)
    except CityPassError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
