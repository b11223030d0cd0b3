"""Roles: separation of duties (every restricted function, every account that may not call
it) and the admin's two-step transfer with a delay (AccessControlDefaultAdminRules)."""

from __future__ import annotations

import pytest
from brownie import CityPass, chain
from eth_account import Account
from eth_utils import keccak

from tests.revert_helpers import assert_reverts_with, latest_time, mine_at, missing_role

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

DAY = 86_400
ADMIN_DELAY = 3 * DAY
ZERO = "0x" + "00" * 20
ROLE_NAMES = ["BUDGET_MANAGER_ROLE", "PROVIDER_MANAGER_ROLE", "REGISTRAR_ROLE", "ISSUER_ROLE", "TREASURER_ROLE", "PAUSER_ROLE"]
ROLE_HOLDER = dict(zip(ROLE_NAMES, ["budget", "providers", "registrar", "issuer", "treasurer", "pauser"]))


def fresh(label: str) -> str:
    return Account.from_key(keccak(text=f"citypass-test-roles-{label}")).address


def test_role_ids_are_the_hashes_of_their_names(cp):
    for name in ROLE_NAMES:
        assert bytes(getattr(cp, name)()) == keccak(text=name)
    assert bytes(cp.DEFAULT_ADMIN_ROLE()) == b"\x00" * 32


def test_constructor_gives_each_role_to_its_own_key(cp, roles):
    everyone = [roles.admin, roles.budget, roles.providers, roles.registrar, roles.issuer, roles.treasurer, roles.pauser, roles.stranger]
    for name, who in ROLE_HOLDER.items():
        role = getattr(cp, name)()
        assert [cp.hasRole(role, a) for a in everyone] == [a == getattr(roles, who) for a in everyone], name
        assert cp.getRoleAdmin(role) == cp.DEFAULT_ADMIN_ROLE()
    assert cp.defaultAdmin() == roles.admin and cp.owner() == roles.admin
    assert cp.hasRole(cp.DEFAULT_ADMIN_ROLE(), roles.admin)
    assert cp.defaultAdminDelay() == ADMIN_DELAY


def test_constructor_leaves_zero_operators_empty(roles):
    other = CityPass.deploy(0, roles.admin, [ZERO] * 6, "u", {"from": roles.admin})
    for name in ROLE_NAMES:
        assert not other.hasRole(getattr(other, name)(), ZERO)


def test_constructor_rejects_zero_admin(roles):
    assert_reverts_with(lambda: CityPass.deploy(0, ZERO, [ZERO] * 6, "u", {"from": roles.admin}),
                        "AccessControlInvalidDefaultAdmin(address)", ZERO)


@pytest.fixture
def restricted(cp, roles, sport, pool, alice, sign):
    """Every role-restricted function, called with arguments that succeed for its role."""
    cp.redeem(*sign(alice, pool, sport, 100), 100, 0, {"from": pool})  # the pool has something to settle
    now = latest_time()
    # A budget that has already ended, for reclaim (which is refused before the end).
    ended = cp.createBudget(0, now - DAY, now + 60, 1_000, "ended", {"from": roles.budget}).return_value
    chain.sleep(120)
    chain.mine()
    now = latest_time()
    return [
        ("BUDGET_MANAGER_ROLE", cp.defineCategory, (5, "x")),
        ("BUDGET_MANAGER_ROLE", cp.createBudget, (0, now, now + DAY, 1, "x")),
        ("BUDGET_MANAGER_ROLE", cp.setBudgetCap, (sport, 2_000_000)),
        ("BUDGET_MANAGER_ROLE", cp.reclaim, (ended, [fresh("nobody")])),
        ("PROVIDER_MANAGER_ROLE", cp.addProvider, (fresh("club"), 1, 0, "Club")),
        ("PROVIDER_MANAGER_ROLE", cp.renameProvider, (pool, "Pool")),
        ("PROVIDER_MANAGER_ROLE", cp.updateProvider, (pool, 1, 0)),
        ("PROVIDER_MANAGER_ROLE", cp.setProviderStatus, (pool, 2)),
        ("REGISTRAR_ROLE", cp.enrollPasses, ([fresh("new")], now + DAY)),
        ("REGISTRAR_ROLE", cp.renewPasses, ([alice], now + DAY)),
        ("REGISTRAR_ROLE", cp.suspendPass, (alice,)),
        ("REGISTRAR_ROLE", cp.revokePass, (alice,)),
        ("REGISTRAR_ROLE", cp.migratePass, (alice, fresh("phone"), [sport])),
        ("ISSUER_ROLE", cp.issue, (keccak(text="roles"), sport, [alice], [1])),
        ("TREASURER_ROLE", cp.settle, (pool, [sport], [100], "roles")),
        ("ISSUER_ROLE", cp.correct, (alice, sport, 1, "roles")),
        ("PAUSER_ROLE", cp.pause, ()),
    ]


def test_every_restricted_function_only_for_its_role(cp, roles, pool, museum, alice, restricted):
    callers = {w: getattr(roles, w) for w in ("admin", "budget", "providers", "registrar", "issuer", "treasurer", "pauser", "stranger")}
    callers.update(pool=pool, museum=museum, resident=alice)
    for role_name, fn, args in restricted:
        role = getattr(cp, role_name)()
        for label, caller in callers.items():
            if label == ROLE_HOLDER[role_name]:
                fn.call(*args, {"from": caller})  # succeeds (as a call: nothing changes)
            else:
                missing_role(lambda: fn.call(*args, {"from": caller}), caller, role)


def test_reinstate_and_unpause_only_for_their_roles(cp, roles, alice):
    cp.suspendPass(alice, {"from": roles.registrar})
    cp.pause({"from": roles.pauser})
    for caller in (roles.admin, roles.budget, roles.issuer, roles.pauser):
        missing_role(lambda: cp.reinstatePass.call(alice, {"from": caller}), caller, cp.REGISTRAR_ROLE())
    for caller in (roles.admin, roles.registrar, roles.treasurer):
        missing_role(lambda: cp.unpause.call({"from": caller}), caller, cp.PAUSER_ROLE())
    cp.reinstatePass.call(alice, {"from": roles.registrar})
    cp.unpause.call({"from": roles.pauser})


def test_admin_grants_and_revokes_roles(cp, roles, sport, alice):
    role = cp.ISSUER_ROLE()
    tx = cp.grantRole(role, roles.stranger, {"from": roles.admin})
    assert tx.events["RoleGranted"].values() == [role, roles.stranger, roles.admin]
    cp.issue(keccak(text="granted"), sport, [alice], [1], {"from": roles.stranger})
    cp.revokeRole(role, roles.stranger, {"from": roles.admin})
    missing_role(lambda: cp.issue(keccak(text="revoked"), sport, [alice], [1], {"from": roles.stranger}), roles.stranger, role)


def test_only_admin_grants_or_revokes(cp, roles):
    admin_role = cp.DEFAULT_ADMIN_ROLE()
    for who in ("budget", "providers", "registrar", "issuer", "treasurer", "pauser", "stranger"):
        caller = getattr(roles, who)
        missing_role(lambda: cp.grantRole(cp.ISSUER_ROLE(), caller, {"from": caller}), caller, admin_role)
        missing_role(lambda: cp.revokeRole(cp.PAUSER_ROLE(), roles.pauser, {"from": caller}), caller, admin_role)
        missing_role(lambda: cp.beginDefaultAdminTransfer(caller, {"from": caller}), caller, admin_role)


def test_admin_role_cannot_be_granted_directly(cp, roles):
    assert_reverts_with(lambda: cp.grantRole(cp.DEFAULT_ADMIN_ROLE(), roles.stranger, {"from": roles.admin}),
                        "AccessControlEnforcedDefaultAdminRules()")


def test_operator_may_renounce_own_role(cp, roles):
    cp.renounceRole(cp.PAUSER_ROLE(), roles.pauser, {"from": roles.pauser})
    assert not cp.hasRole(cp.PAUSER_ROLE(), roles.pauser)
    assert_reverts_with(lambda: cp.renounceRole(cp.ISSUER_ROLE(), roles.issuer, {"from": roles.admin}),
                        "AccessControlBadConfirmation()")


def test_admin_transfer_is_two_step_with_delay(cp, roles):
    new_admin = roles.stranger
    tx = cp.beginDefaultAdminTransfer(new_admin, {"from": roles.admin})
    schedule = tx.events["DefaultAdminTransferScheduled"]["acceptSchedule"]
    assert schedule == tx.timestamp + ADMIN_DELAY
    assert cp.pendingDefaultAdmin() == (new_admin, schedule)
    # Too early, and only the pending admin may accept.
    assert_reverts_with(lambda: cp.acceptDefaultAdminTransfer({"from": new_admin}),
                        "AccessControlEnforcedDefaultAdminDelay(uint48)", schedule)
    mine_at(schedule + 1)
    assert_reverts_with(lambda: cp.acceptDefaultAdminTransfer({"from": roles.budget}),
                        "AccessControlInvalidDefaultAdmin(address)", roles.budget)
    cp.acceptDefaultAdminTransfer({"from": new_admin})
    assert cp.defaultAdmin() == new_admin and not cp.hasRole(cp.DEFAULT_ADMIN_ROLE(), roles.admin)
    missing_role(lambda: cp.grantRole(cp.ISSUER_ROLE(), roles.admin, {"from": roles.admin}), roles.admin, cp.DEFAULT_ADMIN_ROLE())


def test_admin_transfer_can_be_cancelled(cp, roles):
    cp.beginDefaultAdminTransfer(roles.stranger, {"from": roles.admin})
    cp.cancelDefaultAdminTransfer({"from": roles.admin})
    assert cp.pendingDefaultAdmin() == (ZERO, 0)
    mine_at(latest_time() + ADMIN_DELAY + 1)
    assert_reverts_with(lambda: cp.acceptDefaultAdminTransfer({"from": roles.stranger}),
                        "AccessControlInvalidDefaultAdmin(address)", roles.stranger)


def test_admin_delay_change_is_itself_delayed(cp, roles):
    tx = cp.changeDefaultAdminDelay(DAY, {"from": roles.admin})
    new_delay, effect = cp.pendingDefaultAdminDelay()
    assert new_delay == DAY and effect > tx.timestamp
    assert cp.defaultAdminDelay() == ADMIN_DELAY
    missing_role(lambda: cp.changeDefaultAdminDelay(0, {"from": roles.stranger}), roles.stranger, cp.DEFAULT_ADMIN_ROLE())
