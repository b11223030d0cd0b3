"""A small CityPass world on the package's own embedded Anvil (a fresh one per test module,
in a tmp work directory, on a free port), for the operations tests. Synthetic data only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from citypass import chain as C
from citypass import contract as K
from citypass import keys, node, tx

SPORT, CULTURE, EDUCATION = 0, 1, 2
DAY = 86_400


def synthetic_account(label: str) -> LocalAccount:
    """Deterministic resident keys from a label (never a real person)."""
    return Account.from_key(keccak(text=f"citypass-ops-test-{label}"))


@dataclass
class World:
    workdir: Path
    chain: Any
    dep: Any
    admin: LocalAccount
    budget_manager: LocalAccount
    provider_manager: LocalAccount
    issuer: LocalAccount  # also registrar (enrollAndIssue needs both)
    treasurer: LocalAccount
    pool: LocalAccount  # sport, max 50 euro
    museum: LocalAccount  # culture + education
    sport: int
    culture: int
    end: int

    def send(self, account: LocalAccount, fn: Any) -> Any:
        return tx.send(self.chain, account, fn)

    @property
    def f(self) -> Any:
        return self.dep.contract.functions

    def snapshot(self) -> str:
        return self.chain.rpc("evm_snapshot")

    def revert(self, snap: str) -> None:
        assert self.chain.rpc("evm_revert", [snap]) is True

    def rolled_back(self) -> Iterator["World"]:
        """For a per-test fixture: the world as the test leaves it is undone afterwards."""
        snap = self.snapshot()
        yield self
        self.revert(snap)


def make_world(workdir: Path) -> Iterator[World]:
    """Starts the embedded node in `workdir`, deploys with separate role keys, creates two
    budgets (sport, culture) and two providers; stops the node afterwards."""
    chain = C.connect(workdir=workdir)
    try:
        dev = [keys.load_account(f"dev:{i}", chain) for i in range(10)]
        admin, bm, pm, issuer, treasurer, pauser = dev[0], dev[1], dev[2], dev[3], dev[5], dev[6]
        dep = K.deploy(chain, admin, admin=admin.address, budget_manager=bm.address, provider_manager=pm.address,
                       registrar=issuer.address, issuer=issuer.address, treasurer=treasurer.address,
                       pauser=pauser.address, workdir=workdir)
        f = dep.contract.functions
        now = chain.now()
        start, end = now - DAY, now + 30 * DAY
        tx.send(chain, bm, f.createBudget(SPORT, start, end, 10_000_000, "Sport test"))
        tx.send(chain, bm, f.createBudget(CULTURE, start, end, 10_000_000, "Culture test"))
        sport, culture = f.budgets().call()
        pool, museum = dev[8], dev[9]
        tx.send(chain, pm, f.addProvider(pool.address, 1 << SPORT, 5_000, "Swimming pool test"))
        tx.send(chain, pm, f.addProvider(museum.address, (1 << CULTURE) | (1 << EDUCATION), 0, "Museum test"))
        yield World(workdir, chain, dep, admin, bm, pm, issuer, treasurer, pool, museum, sport, culture, end)
    finally:
        node.node_stop(workdir)


def enrol_and_credit(w: World, residents: list[LocalAccount], budget: int, cents: int, tag: str) -> None:
    holders = [r.address for r in residents]
    w.send(w.issuer, w.f.enrollAndIssue(keccak(text=tag), budget, w.end + 365 * DAY, holders, [cents] * len(holders)))


def cli(w: World, *args: str, env: dict[str, str] | None = None) -> Any:
    """Runs `citypass --workdir <world's> ARGS` in-process; stdout and stderr apart."""
    from click.testing import CliRunner

    from citypass.cli import main

    runner = CliRunner(mix_stderr=False)
    return runner.invoke(main, ["--workdir", str(w.workdir), *args], env={"CITYPASS_RPC": None, "CITYPASS_FROM": None, **(env or {})},
                         catch_exceptions=False)
