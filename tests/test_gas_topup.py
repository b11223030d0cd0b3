"""Gas for providers (issue 11, item 3): the municipality tops up providers from its gas
account, `provider add` funds a new provider on a dev chain, and `provider list` shows each
provider's gas and roughly how many redemptions it pays for. On the package's embedded Anvil;
synthetic accounts only."""

from __future__ import annotations

import json

import pytest

from citypass import gas
from citypass.errors import CityPassError
from tests.ops_helpers import World, cli, make_world, synthetic_account

ETH = 10**18


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("gas"))


@pytest.fixture
def w(world):
    yield from world.rolled_back()


def balance(w: World, address: str) -> int:
    return w.chain.w3.eth.get_balance(address)


def sent_by(w: World, address: str) -> int:
    return w.chain.w3.eth.get_transaction_count(address)


def unfunded_providers(w: World, *labels: str) -> list[str]:
    """Providers registered straight on the contract, with keys that never held ETH."""
    out = []
    for label in labels:
        address = synthetic_account(f"gas-{label}").address
        w.send(w.provider_manager, w.f.addProvider(address, 1, 0, f"Gas test provider {address[:8]}"))
        assert balance(w, address) == 0
        out.append(address)
    return out


def test_provider_add_on_a_dev_chain_funds_the_new_provider(w):
    new = synthetic_account("gas-new-provider").address
    r = cli(w, "provider", "add", new, "--categories", "0", "--name", "Gas test provider")
    assert r.exit_code == 0, r.stderr
    assert balance(w, new) == gas.DEV_TARGET
    assert f"dev chain: sent 1 ETH for gas to {new}" in r.stderr


def test_provider_list_shows_gas_and_redemptions_it_pays_for(w):
    (dry,) = unfunded_providers(w, "dry")
    out = json.loads(cli(w, "--json", "provider", "list").stdout)
    by = {p["address"]: p for p in out}
    fee = gas.fee_per_gas(w.chain)
    assert fee > 0
    assert by[dry]["gas_eth"] == "0" and by[dry]["redemptions_paid"] == 0
    pool = balance(w, w.pool.address)
    assert by[w.pool.address]["gas_eth"] == gas.eth_text(pool)
    assert by[w.pool.address]["redemptions_paid"] == pool // (gas.REDEEM_GAS * fee)
    table = cli(w, "provider", "list")
    assert "GAS\tREDEMPTIONS" in table.stdout.splitlines()[0] and "52,000 gas per redemption" in table.stderr


def test_top_up_every_provider_below_the_threshold_then_nothing(w):
    a, b = unfunded_providers(w, "a", "b")
    rich = balance(w, w.pool.address)
    r = cli(w, "--json", "provider", "top-up", "--gas-account", "dev:0", "--below", "0.5", "--to", "1.5")
    assert r.exit_code == 0, r.stderr
    assert [(t["provider"], t["amount_eth"]) for t in json.loads(r.stdout)["sent"]] == [(a, "1.5"), (b, "1.5")]
    assert balance(w, a) == balance(w, b) == 3 * ETH // 2 and balance(w, w.pool.address) == rich
    assert "topping up 2 provider(s) to 1.5 ETH" in r.stderr and "topping up" in r.stderr

    nonce = sent_by(w, w.admin.address)
    again = cli(w, "provider", "top-up", "--gas-account", "dev:0", "--below", "0.5", "--to", "1.5")
    assert again.exit_code == 0 and "nothing to send" in again.stderr
    assert sent_by(w, w.admin.address) == nonce

    # one spent most of it: only that one gets the difference back up to the target
    w.chain.rpc("anvil_setBalance", [a, hex(ETH // 5)])
    r = cli(w, "--json", "provider", "top-up", "--gas-account", "dev:0", "--below", "0.5", "--to", "1.5")
    assert [(t["provider"], t["amount_eth"]) for t in json.loads(r.stdout)["sent"]] == [(a, "1.3")]
    assert balance(w, a) == 3 * ETH // 2


def test_top_up_one_provider_and_dry_run(w):
    a, b = unfunded_providers(w, "one-a", "one-b")
    dry = cli(w, "--json", "provider", "top-up", b, "--gas-account", "dev:0", "--dry-run")
    assert json.loads(dry.stdout)["to_send"] == [{"provider": b, "before_eth": "0", "amount_eth": "0.02"}]
    assert balance(w, b) == 0
    assert cli(w, "provider", "top-up", b, "--gas-account", "dev:0").exit_code == 0
    assert (balance(w, a), balance(w, b)) == (0, 2 * ETH // 100)


def test_checked_before_anything_is_sent(w):
    a, b = unfunded_providers(w, "check-a", "check-b")
    poor = synthetic_account("gas-poor-account")
    w.chain.rpc("anvil_setBalance", [poor.address, hex(ETH)])
    with pytest.raises(CityPassError, match=r"holds 1 ETH, but topping up 2 provider\(s\) to 1 ETH needs about 2\.0"):
        gas.plan_top_up(w.dep, poor.address, below=ETH // 2, to=ETH)
    assert (balance(w, a), balance(w, b), sent_by(w, poor.address)) == (0, 0, 0)
    r = cli(w, "provider", "top-up", "--gas-account", "dev:0", "--below", "1", "--to", "0.5")
    assert r.exit_code == 2 and "less than --below" in r.stderr
    r = cli(w, "provider", "top-up", "--gas-account", "dev:0", "--below", "1,5")
    assert r.exit_code == 2 and "is not an amount of ETH" in r.stderr
    stranger = synthetic_account("gas-stranger").address
    r = cli(w, "provider", "top-up", stranger, "--gas-account", "dev:0")
    assert r.exit_code == 1 and f"{stranger} is not a registered provider" in r.stderr
    r = cli(w, "provider", "top-up", "--gas-account", "dev:8")  # the pool is a provider itself
    assert r.exit_code == 1 and "is a provider itself" in r.stderr


def test_an_interrupted_top_up_is_finished_by_a_rerun(w):
    a, b, c = unfunded_providers(w, "crash-a", "crash-b", "crash-c")
    plan = gas.plan_top_up(w.dep, w.admin.address, below=ETH // 10, to=ETH // 5)

    def power_cut(done, total, _t):
        if done == 1:
            raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        gas.top_up(w.dep, w.admin, plan, on_progress=power_cut)
    assert sum(balance(w, x) > 0 for x in (a, b, c)) == 1
    # the old plan run again: the provider done already is skipped, not paid twice
    done = gas.top_up(w.dep, w.admin, plan)
    assert [t.tx_hash is None for t in done] == [True, False, False]
    assert [balance(w, x) for x in (a, b, c)] == [ETH // 5] * 3
    assert gas.plan_top_up(w.dep, w.admin.address, below=ETH // 10, to=ETH // 5).top_ups == ()


def test_eth_amounts_are_exact():
    assert gas.parse_eth("0.000000000000000001") == 1 and gas.parse_eth("1.5") == 3 * ETH // 2
    assert gas.eth_text(3 * ETH // 2) == "1.5" and gas.eth_text(0) == "0" and gas.eth_text(1) == "0.000000000000000001"
    for bad in ("-1", "1e3", "abc", "0.0000000000000000001", "", "1,5"):
        with pytest.raises(CityPassError):
            gas.parse_eth(bad)
