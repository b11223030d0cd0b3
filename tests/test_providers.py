"""Provider registry: register, update, suspend / reinstate / remove; who may do it."""

from __future__ import annotations

import pytest
from brownie import web3
from eth_account import Account
from eth_utils import keccak

from tests.revert_helpers import assert_reverts_with, missing_role

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

SPORT, CULTURE, EDUCATION = 0, 1, 2
NONE, ACTIVE, SUSPENDED, REMOVED = 0, 1, 2, 3
PROVIDER_STATUS = 5  # PassStatus.Provider: the address is reserved in the pass map
NON_MANAGERS = ["admin", "budget", "registrar", "issuer", "treasurer", "pauser", "stranger"]


def new_address(label: str) -> str:
    return Account.from_key(keccak(text=f"citypass-test-provider-{label}")).address


def test_fixture_providers(cp, pool, museum):
    assert list(cp.providers()) == [pool, museum]
    assert cp.providerOf(pool) == (ACTIVE, 1 << SPORT, 5_000)
    assert cp.providerOf(museum) == (ACTIVE, (1 << CULTURE) | (1 << EDUCATION), 0)


def test_add_provider(cp, roles):
    club = new_address("club")
    tx = cp.addProvider(club, (1 << SPORT) | (1 << 63), 777, "Test provider", {"from": roles.providers})
    assert tx.events["ProviderRegistered"].values() == [club, (1 << SPORT) | (1 << 63), 777]
    assert cp.providerOf(club) == (ACTIVE, (1 << SPORT) | (1 << 63), 777)
    assert cp.passOf(club)[0] == PROVIDER_STATUS
    assert cp.providers()[-1] == club


def test_add_provider_zero_address(cp, roles):
    assert_reverts_with(lambda: cp.addProvider("0x" + "00" * 20, 1, 0, "Test provider", {"from": roles.providers}), "ZeroAddress()")


def test_add_provider_twice(cp, roles, pool):
    assert_reverts_with(lambda: cp.addProvider(pool, 2, 0, "Test provider", {"from": roles.providers}), "ProviderExists(address)", pool)


def test_removed_provider_cannot_be_added_again(cp, roles, pool):
    cp.setProviderStatus(pool, REMOVED, {"from": roles.providers})
    assert_reverts_with(lambda: cp.addProvider(pool, 1, 0, "Test provider", {"from": roles.providers}), "ProviderExists(address)", pool)


@pytest.mark.parametrize("status", ["active", "suspended", "revoked", "migrated"])
def test_pass_holder_cannot_become_provider(cp, roles, alice, bob, outsider, status):
    if status == "suspended":
        cp.suspendPass(alice, {"from": roles.registrar})
    elif status == "revoked":
        cp.revokePass(alice, {"from": roles.registrar})
    elif status == "migrated":
        cp.migratePass(alice, outsider, cp.budgets(), {"from": roles.registrar})
    assert_reverts_with(lambda: cp.addProvider(alice, 1, 0, "Test provider", {"from": roles.providers}), "AddressHasPass(address)", alice)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", NON_MANAGERS)
def test_add_provider_needs_provider_manager(cp, roles, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.addProvider(new_address("x"), 1, 0, "Test provider", {"from": caller}), caller, cp.PROVIDER_MANAGER_ROLE())


def test_update_provider(cp, roles, pool):
    tx = cp.updateProvider(pool, 1 << CULTURE, 0, {"from": roles.providers})
    assert tx.events["ProviderRegistered"].values() == [pool, 1 << CULTURE, 0]
    assert cp.providerOf(pool) == (ACTIVE, 1 << CULTURE, 0)


def test_update_keeps_status(cp, roles, pool):
    """v2: the pause is one flag (the provider record has no copy of it any more)."""
    cp.setProviderStatus(pool, SUSPENDED, {"from": roles.providers})
    cp.pause({"from": roles.pauser})
    cp.updateProvider(pool, 3, 9, {"from": roles.providers})
    assert cp.paused()
    assert cp.providerOf(pool) == (SUSPENDED, 3, 9)


def test_update_unknown_provider(cp, roles, outsider):
    assert_reverts_with(lambda: cp.updateProvider(outsider, 1, 0, {"from": roles.providers}), "UnknownProvider(address)", outsider)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", NON_MANAGERS)
def test_update_provider_needs_provider_manager(cp, roles, pool, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.updateProvider(pool, 1, 0, {"from": caller}), caller, cp.PROVIDER_MANAGER_ROLE())


@pytest.mark.parametrize("path", [(SUSPENDED, ACTIVE), (SUSPENDED, REMOVED), (REMOVED,)])
def test_status_transitions(cp, roles, pool, path):
    for status in path:
        tx = cp.setProviderStatus(pool, status, {"from": roles.providers})
        assert tx.events["ProviderStatusChanged"].values() == [pool, status]
        assert cp.providerOf(pool)[0] == status


@pytest.mark.parametrize("before,target", [((), ACTIVE), ((), NONE), ((SUSPENDED,), SUSPENDED), ((REMOVED,), ACTIVE), ((REMOVED,), SUSPENDED), ((REMOVED,), REMOVED)])
def test_status_unchanged_or_final(cp, roles, pool, before, target):
    for status in before:
        cp.setProviderStatus(pool, status, {"from": roles.providers})
    current = cp.providerOf(pool)[0]
    assert_reverts_with(
        lambda: cp.setProviderStatus(pool, target, {"from": roles.providers}),
        "ProviderStatusUnchanged(address,uint8)", pool, current,
    )


def test_status_unknown_provider(cp, roles, outsider):
    assert_reverts_with(lambda: cp.setProviderStatus(outsider, SUSPENDED, {"from": roles.providers}), "UnknownProvider(address)", outsider)


@pytest.mark.anvil_only("reads the node's raw eth_call error, which Ganache shapes differently")
def test_status_out_of_enum_range_reverts(cp, roles, pool):
    """An enum argument outside ProviderStatus is rejected by the ABI decoder (empty revert)."""
    call = {"to": cp.address, "from": str(roles.providers)}
    valid = cp.setProviderStatus.encode_input(pool, REMOVED)
    web3.eth.call({**call, "data": valid})  # the hand-made encoding is right: 3 is accepted
    with pytest.raises(ValueError) as info:
        web3.eth.call({**call, "data": valid[:-2] + "04"})
    assert info.value.args[0]["data"] == "0x"
    assert cp.providerOf(pool)[0] == ACTIVE


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", NON_MANAGERS)
def test_status_needs_provider_manager(cp, roles, pool, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.setProviderStatus(pool, SUSPENDED, {"from": caller}), caller, cp.PROVIDER_MANAGER_ROLE())
