"""Shared fixtures: a deployed CityPass with separate role keys, two budgets, two providers
and a few enrolled, credited residents. Every test runs in its own chain snapshot."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
from brownie import CityPass, accounts, chain, network, web3
from eth_account import Account
from eth_utils import keccak

from citypass import voucher as V

# Brownie runs gc.collect() on every chain.revert() (each test's isolation): ~0.2 s here, spent
# re-scanning the compiled project (ASTs, source maps) loaded before collection. Freezing what
# exists now takes those long-lived objects out of the collector: revert drops to ~0.03 s.
gc.freeze()

SPORT, CULTURE, EDUCATION = 0, 1, 2
DAY = 86_400
CREDIT = 10_000  # 100 euro per resident per budget
ADMIN_DELAY = 3 * DAY


def synthetic_key(label: str) -> Account:
    """Deterministic, synthetic resident keys (never real people)."""
    return Account.from_key(keccak(text=f"citypass-test-{label}"))


@pytest.fixture(scope="session")
def roles():
    return SimpleNamespace(
        admin=accounts[0],
        budget=accounts[1],
        providers=accounts[2],
        registrar=accounts[3],
        issuer=accounts[4],
        treasurer=accounts[5],
        pauser=accounts[6],
        stranger=accounts[7],
    )


@pytest.fixture(scope="session")
def pool():
    """A swimming pool: sport only, max 50 euro per payment."""
    return accounts[8]


@pytest.fixture(scope="session")
def museum():
    """A museum: culture and education, no limit."""
    return accounts[9]


@pytest.fixture(scope="session")
def residents():
    """Five synthetic residents, each a brownie account (to send) with its key (to sign)."""
    return [accounts.add(synthetic_key(f"resident-{i}").key) for i in range(5)]


@pytest.fixture(scope="module")
def deployment(roles, pool, museum, residents):
    cp = CityPass.deploy(
        ADMIN_DELAY,
        roles.admin,
        [roles.budget, roles.providers, roles.registrar, roles.issuer, roles.treasurer, roles.pauser],
        "https://citypass.example/budget/{id}.json",
        {"from": roles.admin},
    )
    now = chain.time()
    start, end = now - DAY, now + 30 * DAY
    sport = cp.createBudget(SPORT, start, end, 1_000_000, "Sport test", {"from": roles.budget}).return_value
    culture = cp.createBudget(CULTURE, start, end, 1_000_000, "Culture test", {"from": roles.budget}).return_value
    cp.addProvider(pool, 1 << SPORT, 5_000, "Swimming pool", {"from": roles.providers})
    cp.addProvider(museum, (1 << CULTURE) | (1 << EDUCATION), 0, "City museum", {"from": roles.providers})
    holders = [r.address for r in residents[:4]]
    cp.enrollPasses(holders, now + 365 * DAY, {"from": roles.registrar})
    cp.issue(b"\x01" * 32, sport, holders, [CREDIT] * 4, {"from": roles.issuer})
    cp.issue(b"\x02" * 32, culture, holders, [CREDIT] * 4, {"from": roles.issuer})
    return SimpleNamespace(cp=cp, sport=sport, culture=culture, start=start, end=end)


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    pass


@pytest.fixture
def cp(deployment):
    return deployment.cp


@pytest.fixture
def sport(deployment):
    return deployment.sport


@pytest.fixture
def culture(deployment):
    return deployment.culture


@pytest.fixture
def alice(residents):
    return residents[0]


@pytest.fixture
def bob(residents):
    return residents[1]


@pytest.fixture
def outsider(residents):
    """Has a key but no pass."""
    return residents[4]


@pytest.fixture
def sign(cp):
    """sign(holder_account, provider, budget, max_amount, nonce=0, deadline=None) -> (voucher, signature).
    provider None: a voucher for any provider approved for the budget's category."""

    def _sign(holder, provider, budget, max_amount, nonce=0, deadline=None, key=None, chain_id=None, contract=None, compact=False):
        v = V.build(
            holder.address, None if provider is None else str(provider), budget, max_amount,
            nonce=nonce,
            deadline=deadline if deadline is not None else chain.time() + 300,
        )
        signed = V.sign(v, key if key is not None else holder.private_key, chain_id or chain.id, contract or cp.address)
        return v.contract_args(), (V.compact_signature(signed) if compact else signed.signature)

    return _sign


# ---------------------------------------------------------------- Ganache (`-m ganache`)
def pytest_configure(config):
    config.addinivalue_line("markers", "ganache: in the subset `make test` also runs on Ganache (tests/test_ganache_coverage.py)")
    config.addinivalue_line("markers", "anvil_only(reason): left out of the Ganache pass of `make test`; the reason says why")


GANACHE_BALANCE = hex(1_000 * 10**18)


def on_ganache() -> bool:
    return web3.is_connected() and web3.client_version.lower().startswith("ganache")


@pytest.fixture(scope="module", autouse=True)
def ganache_fees(request):
    """Ganache 7 has a base fee that cannot be set to 0, so Brownie's development gas price 0
    would wait in its pool for ever: pay the base fee (EIP-1559, 1 wei tip), and give the keys
    tests add (residents, new phones) the ETH that Anvil's fee-free chain never asked of them."""
    if not on_ganache():
        yield
        return
    request.getfixturevalue("module_isolation")  # fund after the module's chain reset
    network.priority_fee("1 wei")
    fund = lambda account: web3.provider.make_request("evm_setAccountBalance", [account.address, GANACHE_BALANCE])  # noqa: E731
    for resident in request.getfixturevalue("residents"):
        fund(resident)
    add = accounts.add

    def add_funded(private_key=None):
        account = add(private_key)
        fund(account)
        return account

    accounts.add = add_funded
    yield
    del accounts.add
