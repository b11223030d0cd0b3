"""The chain every benchmark of one run shares: a fresh embedded Anvil in a temporary
folder, CityPass deployed, two open budgets and funded dev accounts. Synthetic data only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from citypass import chain as chain_mod
from citypass import contract, keys, node, tx
from citypass.chain import Chain

SPORT, CULTURE, EDUCATION = 0, 1, 2
DAY = 86_400
BIG_CAP = 10**15  # cents: no benchmark is limited by a budget cap


def resident_key(tag: str, i: int) -> LocalAccount:
    """A synthetic resident with a key (for signing vouchers); never a real person."""
    return Account.from_key(keccak(text=f"citypass-bench-{tag}-{i}"))


def resident_address(tag: str, i: int) -> str:
    """A synthetic address without a key: enough to be credited, and 50x faster to make."""
    return to_checksum_address(keccak(text=f"citypass-bench-addr-{tag}-{i}")[:20])


@dataclass
class World:
    workdir: Path
    chain: Chain
    dep: Any
    admin: LocalAccount
    office: LocalAccount  # budget manager + registrar + issuer: enrollAndIssue needs the last two
    provider_manager: LocalAccount
    treasurer: LocalAccount
    providers: list[LocalAccount]  # dev:5..9, approved for every category, no per-payment limit
    valid_until: int

    @property
    def f(self) -> Any:
        return self.dep.contract.functions

    def send(self, account: LocalAccount, fn: Any, **kw: Any) -> Any:
        return tx.send(self.chain, account, fn, **kw)

    def new_budget(self, category: int, name: str) -> int:
        now = self.chain.now()
        receipt = self.send(self.office, self.f.createBudget(category, now - DAY, now + 200 * DAY, BIG_CAP, name))
        return self.dep.contract.events.BudgetCreated().process_receipt(receipt)[0]["args"]["budget"]


def make_world(workdir: Path, gas_limit: int = node.GAS_LIMIT) -> World:
    node.node_start(workdir, persist=False, gas_limit=gas_limit)  # a fresh throwaway Anvil: no state dumps
    chain = chain_mod.connect(workdir=workdir)
    # Base fee 0 from the next block on (an EIP-1559 base fee of 0 stays ~0): the node-only
    # replays (bench/throughput.py) send hundreds of transactions signed at earlier fees, and
    # a base fee rising under them would price the last ones out (Anvil then drops them).
    chain.rpc("anvil_setNextBlockBaseFeePerGas", ["0x0"])
    admin, office, provider_manager, treasurer = (keys.dev_account(i) for i in range(4))
    providers = [keys.dev_account(i) for i in range(5, 10)]
    # One office account holds three roles: the benchmark measures gas and speed, not the
    # four-eyes split (the demo shows that).
    dep = contract.deploy(
        chain, admin, admin=admin.address, budget_manager=office.address, provider_manager=provider_manager.address,
        registrar=office.address, issuer=office.address, treasurer=treasurer.address, pauser=admin.address,
        workdir=workdir,
    )
    world = World(workdir, chain, dep, admin, office, provider_manager, treasurer, providers, chain.now() + 365 * DAY)
    every_category = (1 << SPORT) | (1 << CULTURE) | (1 << EDUCATION)
    tx.send_many(chain, provider_manager, [world.f.addProvider(p.address, every_category, 0, f"Bench provider {i}")
                                           for i, p in enumerate(providers)])
    return world
