"""Passes: enrol, renew, suspend / reinstate / revoke, migrate (lost phone); who may do it."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from tests.revert_helpers import assert_reverts_with, latest_time, missing_role, next_block_at

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

DAY = 86_400
NONE, ACTIVE, SUSPENDED, REVOKED, MIGRATED, PROVIDER = range(6)
ZERO = "0x" + "00" * 20
NON_REGISTRARS = ["admin", "budget", "providers", "issuer", "treasurer", "pauser", "stranger"]
NOT_ACTIVE = "PassNotActive(address,uint8)"


def new_addresses(n: int, tag: str = "p") -> list[str]:
    return [Account.from_key(keccak(text=f"citypass-test-pass-{tag}-{i}")).address for i in range(n)]


def set_status(cp, roles, holder, status, spare):
    """Puts `holder`'s pass in `status` (spare: a fresh address for migration)."""
    if status == SUSPENDED:
        cp.suspendPass(holder, {"from": roles.registrar})
    elif status == REVOKED:
        cp.revokePass(holder, {"from": roles.registrar})
    elif status == MIGRATED:
        cp.migratePass(holder, spare, cp.budgets(), {"from": roles.registrar})


# ---------------------------------------------------------------- enrol
def test_enroll_batch(cp, roles):
    holders = new_addresses(3)
    until = latest_time() + 100 * DAY
    tx = cp.enrollPasses(holders, until, {"from": roles.registrar})
    assert [e.values() for e in tx.events["PassEnrolled"]] == [[h, until] for h in holders]
    assert all(cp.passOf(h) == (ACTIVE, until) for h in holders)


def test_enroll_empty_batch_is_a_no_op(cp, roles):
    tx = cp.enrollPasses([], latest_time() + DAY, {"from": roles.registrar})
    assert "PassEnrolled" not in tx.events


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_enroll_valid_until_now_ok_and_past_reverts(cp, roles):
    a, b = new_addresses(2, "validity")
    now = latest_time() + 10
    next_block_at(now)
    cp.enrollPasses([a], now, {"from": roles.registrar})
    next_block_at(now + 1)
    assert_reverts_with(lambda: cp.enrollPasses([b], now, {"from": roles.registrar}), "InvalidValidity(uint40)", now)


def test_enroll_zero_address(cp, roles):
    (a,) = new_addresses(1, "z")
    assert_reverts_with(lambda: cp.enrollPasses([a, ZERO], latest_time() + DAY, {"from": roles.registrar}), "ZeroAddress()")
    assert cp.passOf(a)[0] == NONE  # the whole batch reverted


def test_enroll_existing_pass_or_duplicate(cp, roles, alice):
    (a,) = new_addresses(1, "dup")
    until = latest_time() + DAY
    assert_reverts_with(lambda: cp.enrollPasses([alice], until, {"from": roles.registrar}), "PassExists(address)", alice)
    assert_reverts_with(lambda: cp.enrollPasses([a, a], until, {"from": roles.registrar}), "PassExists(address)", a)


@pytest.mark.parametrize("status", [SUSPENDED, REVOKED, MIGRATED])
def test_enroll_over_any_old_pass_reverts(cp, roles, alice, status):
    (spare,) = new_addresses(1, "spare")
    set_status(cp, roles, alice, status, spare)
    assert_reverts_with(lambda: cp.enrollPasses([alice], latest_time() + DAY, {"from": roles.registrar}), "PassExists(address)", alice)


def test_enroll_provider_address(cp, roles, pool):
    assert_reverts_with(lambda: cp.enrollPasses([pool], latest_time() + DAY, {"from": roles.registrar}), "AddressIsProvider(address)", pool)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", NON_REGISTRARS)
def test_enroll_needs_registrar(cp, roles, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.enrollPasses(new_addresses(1), latest_time() + DAY, {"from": caller}), caller, cp.REGISTRAR_ROLE())


# ---------------------------------------------------------------- renew
@pytest.mark.parametrize("status", [ACTIVE, SUSPENDED])
def test_renew(cp, roles, alice, status):
    if status == SUSPENDED:
        cp.suspendPass(alice, {"from": roles.registrar})
    until = latest_time() + 400 * DAY
    tx = cp.renewPasses([alice], until, {"from": roles.registrar})
    assert tx.events["PassRenewed"].values() == [alice, until]
    assert cp.passOf(alice) == (status, until)


@pytest.mark.anvil_only("needs the next block within 1 s of the last; Ganache's clock runs on after a snapshot revert")
def test_renew_may_shorten(cp, roles, alice):
    until = latest_time() + 1
    cp.renewPasses([alice], until, {"from": roles.registrar})
    assert cp.passOf(alice)[1] == until


@pytest.mark.parametrize("status", [NONE, REVOKED, MIGRATED, PROVIDER])
def test_renew_needs_active_or_suspended(cp, roles, alice, outsider, pool, status):
    (spare,) = new_addresses(1, "spare")
    target = {NONE: outsider, PROVIDER: pool}.get(status, alice)
    set_status(cp, roles, alice, status, spare)
    assert_reverts_with(
        lambda: cp.renewPasses([target], latest_time() + DAY, {"from": roles.registrar}), NOT_ACTIVE, target, status
    )


def test_renew_past_date(cp, roles, alice):
    past = latest_time() - 1
    assert_reverts_with(lambda: cp.renewPasses([alice], past, {"from": roles.registrar}), "InvalidValidity(uint40)", past)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", NON_REGISTRARS)
def test_renew_needs_registrar(cp, roles, alice, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.renewPasses([alice], latest_time() + DAY, {"from": caller}), caller, cp.REGISTRAR_ROLE())


# ---------------------------------------------------------------- suspend / reinstate / revoke
def test_suspend_reinstate_revoke(cp, roles, alice):
    tx = cp.suspendPass(alice, {"from": roles.registrar})
    assert tx.events["PassStatusChanged"].values() == [alice, SUSPENDED]
    tx = cp.reinstatePass(alice, {"from": roles.registrar})
    assert tx.events["PassStatusChanged"].values() == [alice, ACTIVE]
    tx = cp.revokePass(alice, {"from": roles.registrar})
    assert tx.events["PassStatusChanged"].values() == [alice, REVOKED]
    assert cp.passOf(alice)[0] == REVOKED


def test_revoke_suspended_pass(cp, roles, alice):
    cp.suspendPass(alice, {"from": roles.registrar})
    cp.revokePass(alice, {"from": roles.registrar})
    assert cp.passOf(alice)[0] == REVOKED


@pytest.mark.parametrize("status", [NONE, SUSPENDED, REVOKED, MIGRATED, PROVIDER])
def test_suspend_needs_active(cp, roles, alice, outsider, pool, status):
    (spare,) = new_addresses(1, "spare")
    target = {NONE: outsider, PROVIDER: pool}.get(status, alice)
    set_status(cp, roles, alice, status, spare)
    assert_reverts_with(lambda: cp.suspendPass(target, {"from": roles.registrar}), NOT_ACTIVE, target, status)


@pytest.mark.parametrize("status", [NONE, ACTIVE, REVOKED, MIGRATED, PROVIDER])
def test_reinstate_needs_suspended(cp, roles, alice, outsider, pool, status):
    (spare,) = new_addresses(1, "spare")
    target = {NONE: outsider, PROVIDER: pool}.get(status, alice)
    set_status(cp, roles, alice, status, spare)
    assert_reverts_with(lambda: cp.reinstatePass(target, {"from": roles.registrar}), "PassNotSuspended(address,uint8)", target, status)


@pytest.mark.parametrize("status", [NONE, REVOKED, MIGRATED, PROVIDER])
def test_revoke_needs_active_or_suspended(cp, roles, alice, outsider, pool, status):
    (spare,) = new_addresses(1, "spare")
    target = {NONE: outsider, PROVIDER: pool}.get(status, alice)
    set_status(cp, roles, alice, status, spare)
    assert_reverts_with(lambda: cp.revokePass(target, {"from": roles.registrar}), NOT_ACTIVE, target, status)


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("fn", ["suspendPass", "reinstatePass", "revokePass"])
@pytest.mark.parametrize("who", NON_REGISTRARS)
def test_status_changes_need_registrar(cp, roles, alice, fn, who):
    caller = getattr(roles, who)
    if fn == "reinstatePass":
        cp.suspendPass(alice, {"from": roles.registrar})
    missing_role(lambda: getattr(cp, fn)(alice, {"from": caller}), caller, cp.REGISTRAR_ROLE())


# ---------------------------------------------------------------- migrate
def test_migrate_moves_pass_and_every_balance(cp, roles, alice, outsider, sport, culture):
    validity = cp.passOf(alice)[1]
    tx = cp.migratePass(alice, outsider, cp.budgets(), {"from": roles.registrar})
    assert tx.events["PassMigrated"].values() == [alice, outsider]
    moves = [(e["from"], e["to"], e["id"], e["value"]) for e in tx.events["TransferSingle"]]
    assert moves == [(alice, outsider, sport, 10_000), (alice, outsider, culture, 10_000)]
    assert cp.passOf(alice) == (MIGRATED, validity)
    assert cp.passOf(outsider) == (ACTIVE, validity)
    assert cp.migratedTo(alice) == outsider
    assert cp.currentAddress(alice) == outsider and cp.currentAddress(outsider) == outsider
    assert [cp.balanceOf(alice, b) for b in (sport, culture)] == [0, 0]
    assert [cp.balanceOf(outsider, b) for b in (sport, culture)] == [10_000, 10_000]


def test_migrate_suspended_pass_stays_suspended(cp, roles, alice, outsider):
    cp.suspendPass(alice, {"from": roles.registrar})
    cp.migratePass(alice, outsider, cp.budgets(), {"from": roles.registrar})
    assert cp.passOf(outsider)[0] == SUSPENDED


def test_migrate_twice_follows_the_chain(cp, roles, alice, outsider, sport):
    (third,) = new_addresses(1, "third")
    cp.migratePass(alice, outsider, cp.budgets(), {"from": roles.registrar})
    cp.migratePass(outsider, third, cp.budgets(), {"from": roles.registrar})
    assert cp.currentAddress(alice) == third
    assert cp.balanceOf(third, sport) == 10_000


def test_migrate_pass_without_credit(cp, roles):
    a, b = new_addresses(2, "empty")
    cp.enrollPasses([a], latest_time() + DAY, {"from": roles.registrar})
    tx = cp.migratePass(a, b, cp.budgets(), {"from": roles.registrar})
    assert "TransferSingle" not in tx.events and cp.passOf(b)[0] == ACTIVE


@pytest.mark.parametrize("status", [NONE, REVOKED, MIGRATED, PROVIDER])
def test_migrate_needs_active_or_suspended(cp, roles, alice, outsider, pool, status):
    spare, target_new = new_addresses(2, "mig")
    source = {NONE: outsider, PROVIDER: pool}.get(status, alice)
    set_status(cp, roles, alice, status, spare)
    assert_reverts_with(lambda: cp.migratePass(source, target_new, cp.budgets(), {"from": roles.registrar}), NOT_ACTIVE, source, status)


def test_migrate_to_existing_pass_provider_or_zero(cp, roles, alice, bob, pool):
    assert_reverts_with(lambda: cp.migratePass(alice, bob, cp.budgets(), {"from": roles.registrar}), "PassExists(address)", bob)
    assert_reverts_with(lambda: cp.migratePass(alice, alice, cp.budgets(), {"from": roles.registrar}), "PassExists(address)", alice)
    assert_reverts_with(lambda: cp.migratePass(alice, pool, cp.budgets(), {"from": roles.registrar}), "AddressIsProvider(address)", pool)
    assert_reverts_with(lambda: cp.migratePass(alice, ZERO, cp.budgets(), {"from": roles.registrar}), "ZeroAddress()")


@pytest.mark.anvil_only("a per-caller role matrix: on Ganache test_roles.py checks every restricted function for every role at once")
@pytest.mark.parametrize("who", NON_REGISTRARS)
def test_migrate_needs_registrar(cp, roles, alice, outsider, who):
    caller = getattr(roles, who)
    missing_role(lambda: cp.migratePass(alice, outsider, cp.budgets(), {"from": caller}), caller, cp.REGISTRAR_ROLE())


def test_current_address_of_unknown_is_itself(cp, outsider):
    assert cp.currentAddress(outsider) == outsider
