"""The role x function matrix: every state-changing function of CityPass, called by every
role holder and by an account with no role, is refused with AccessControlUnauthorizedAccount
by each account that lacks its role, and gets past the role gate (the call succeeds) for the
account that has it.

The list of functions is derived from the contract's ABI: a new state-changing function must be
added either to GATED (with its roles and arguments that succeed) or to OPEN (with the reason
it needs no role), or test_every_state_changing_function_is_in_the_matrix fails.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from brownie import accounts, chain
from eth_account import Account
from eth_utils import keccak

from citypass.contract import load_artifact
from tests.revert_helpers import assert_reverts_with, latest_time, missing_role

DAY = 86_400
ADMIN = "DEFAULT_ADMIN_ROLE"

# Functions anyone may call: what protects them is not a role.
OPEN = {
    "redeem": "the caller must be a provider: the one the voucher names, or any approved one if it names none (the holder's signature binds it)",
    "redeemRefundable": "as redeem; the chain stores what it debited, for the provider that made it",
    "redeemBatch": "as redeem, voucher by voucher",
    "refund": "only the provider that made a refundable redemption can refund it, up to what it debited",
    "safeTransferFrom": "an owner moves its own credit (from == caller); the transfer hook allows only holder -> approved provider",
    "safeBatchTransferFrom": "as safeTransferFrom, id by id",
    "renounceRole": "an account can only give up its own role (AccessControlBadConfirmation otherwise)",
    "acceptDefaultAdminTransfer": "only the pending admin, after the delay (AccessControlInvalidDefaultAdmin otherwise)",
}


def fresh(label: str) -> str:
    return Account.from_key(keccak(text=f"citypass-test-matrix-{label}")).address


# name -> (roles in the order the modifiers check them, args(ctx, ready)). `ready` is True for
# the caller expected to pass: then the arguments must make the call succeed, and any set-up
# (a transaction) is done. For the others the role gate refuses before the arguments matter.
def _reclaim(c, ready):
    if not ready:
        return (c.sport, [fresh("nobody")])
    now = latest_time()
    ended = c.cp.createBudget(0, now - DAY, now + 60, 1_000, "ended", {"from": c.roles.budget}).return_value
    chain.sleep(120)
    chain.mine()
    return (ended, [fresh("nobody")])


def _reinstate(c, ready):
    if ready:
        c.cp.suspendPass(c.bob, {"from": c.roles.registrar})
    return (c.bob,)


def _settle(c, ready):
    if ready:
        c.cp.redeem(*c.sign(c.alice, c.pool, c.sport, 100), 100, 0, {"from": c.pool})
    return (c.pool, [c.sport], [100], "matrix")


def _migrate_balances(c, ready):
    if ready:
        c.cp.migratePass(c.bob, fresh("bob-phone"), [], {"from": c.roles.registrar})
    return (c.bob, [c.sport])


def _unpause(c, ready):
    if ready:
        c.cp.pause({"from": c.roles.pauser})
    return ()


GATED = {
    "defineCategory": (("BUDGET_MANAGER_ROLE",), lambda c, r: (5, "x")),
    "createBudget": (("BUDGET_MANAGER_ROLE",), lambda c, r: (0, c.now, c.now + DAY, 1, "x")),
    "setBudgetCap": (("BUDGET_MANAGER_ROLE",), lambda c, r: (c.sport, 2_000_000)),
    "reclaim": (("BUDGET_MANAGER_ROLE",), _reclaim),
    "addProvider": (("PROVIDER_MANAGER_ROLE",), lambda c, r: (fresh("club"), 1, 0, "Club")),
    "renameProvider": (("PROVIDER_MANAGER_ROLE",), lambda c, r: (c.pool, "Pool")),
    "updateProvider": (("PROVIDER_MANAGER_ROLE",), lambda c, r: (c.pool, 1, 0)),
    "setProviderStatus": (("PROVIDER_MANAGER_ROLE",), lambda c, r: (c.pool, 2)),
    "enrollPasses": (("REGISTRAR_ROLE",), lambda c, r: ([fresh("new")], c.now + DAY)),
    "renewPasses": (("REGISTRAR_ROLE",), lambda c, r: ([c.alice], c.now + DAY)),
    "suspendPass": (("REGISTRAR_ROLE",), lambda c, r: (c.alice,)),
    "reinstatePass": (("REGISTRAR_ROLE",), _reinstate),
    "revokePass": (("REGISTRAR_ROLE",), lambda c, r: (c.alice,)),
    "migratePass": (("REGISTRAR_ROLE",), lambda c, r: (c.alice, fresh("phone"), [c.sport])),
    "migrateBalances": (("REGISTRAR_ROLE",), _migrate_balances),
    "issue": (("ISSUER_ROLE",), lambda c, r: (keccak(text="matrix"), c.sport, [c.alice], [1])),
    "correct": (("ISSUER_ROLE",), lambda c, r: (c.alice, c.sport, 1, "matrix")),
    "enrollAndIssue": (("ISSUER_ROLE", "REGISTRAR_ROLE"),
                       lambda c, r: (keccak(text="matrix"), c.sport, c.now + DAY, [fresh("new")], [1])),
    "settle": (("TREASURER_ROLE",), _settle),
    "pause": (("PAUSER_ROLE",), lambda c, r: ()),
    "unpause": (("PAUSER_ROLE",), _unpause),
    "grantRole": ((ADMIN,), lambda c, r: (c.cp.ISSUER_ROLE(), c.roles.stranger)),
    "revokeRole": ((ADMIN,), lambda c, r: (c.cp.PAUSER_ROLE(), c.roles.pauser)),
    "beginDefaultAdminTransfer": ((ADMIN,), lambda c, r: (c.roles.stranger,)),
    "cancelDefaultAdminTransfer": ((ADMIN,), lambda c, r: ()),
    "changeDefaultAdminDelay": ((ADMIN,), lambda c, r: (DAY,)),
    "rollbackDefaultAdminDelay": ((ADMIN,), lambda c, r: ()),
}

# Each caller and the roles it holds (the fixture gives every role its own key; "enroller"
# holds the two roles enrollAndIssue needs, "nobody" holds none).
CALLERS = {
    "admin": {ADMIN},
    "budget": {"BUDGET_MANAGER_ROLE"},
    "providers": {"PROVIDER_MANAGER_ROLE"},
    "registrar": {"REGISTRAR_ROLE"},
    "issuer": {"ISSUER_ROLE"},
    "treasurer": {"TREASURER_ROLE"},
    "pauser": {"PAUSER_ROLE"},
    "enroller": {"ISSUER_ROLE", "REGISTRAR_ROLE"},
    "nobody": set(),
}


def state_changing_functions(abi: list[dict]) -> set[str]:
    return {f["name"] for f in abi if f["type"] == "function" and f["stateMutability"] in ("nonpayable", "payable")}


def test_every_state_changing_function_is_in_the_matrix(cp):
    functions = state_changing_functions(cp.abi)
    unlisted = functions - set(GATED) - set(OPEN)
    assert not unlisted, f"state-changing functions with no role-matrix entry (add to GATED or OPEN): {sorted(unlisted)}"
    assert functions == state_changing_functions(load_artifact()["abi"])  # the shipped ABI too
    stale = (set(GATED) | set(OPEN)) - functions
    assert not stale, f"matrix entries for functions the contract no longer has: {sorted(stale)}"
    assert not set(GATED) & set(OPEN)


def test_approvals_are_refused_for_everyone(cp, roles, pool, alice):
    """setApprovalForAll is `pure` (so not in the list above): it always reverts."""
    for caller in (roles.admin, roles.stranger, pool, alice):
        assert_reverts_with(lambda: cp.setApprovalForAll.call(roles.stranger, True, {"from": caller}), "ApprovalsDisabled()")


@pytest.fixture(scope="module")
def enroller(deployment, roles):
    """Granted once for the module (before the tests' own snapshots)."""
    account = accounts.add(keccak(text="citypass-test-matrix-enroller"))
    deployment.cp.grantRole(deployment.cp.ISSUER_ROLE(), account, {"from": roles.admin})
    deployment.cp.grantRole(deployment.cp.REGISTRAR_ROLE(), account, {"from": roles.admin})
    return account


def caller_account(name: str, roles, enroller):
    return {"enroller": enroller, "nobody": roles.stranger}.get(name) or getattr(roles, name)


def test_callers_hold_exactly_the_roles_the_matrix_assumes(cp, roles, enroller):
    every_role = {r for held in CALLERS.values() for r in held}
    for name, held in CALLERS.items():
        caller = caller_account(name, roles, enroller)
        assert {r for r in every_role if cp.hasRole(getattr(cp, r)(), caller)} == held, name


@pytest.mark.parametrize("caller_name", list(CALLERS))
@pytest.mark.parametrize("function", list(GATED))
def test_role_gate(cp, roles, sport, pool, alice, bob, sign, enroller, function, caller_name):
    required, make_args = GATED[function]
    held = CALLERS[caller_name]
    caller = caller_account(caller_name, roles, enroller)
    allowed = set(required) <= held
    ctx = SimpleNamespace(cp=cp, roles=roles, sport=sport, pool=pool, alice=alice, bob=bob, sign=sign, now=latest_time())
    args = make_args(ctx, allowed)
    fn = getattr(cp, function)
    if allowed:
        fn.call(*args, {"from": caller})  # past the gate, and the call succeeds
    else:
        lacking = next(r for r in required if r not in held)  # the first modifier that refuses
        missing_role(lambda: fn.call(*args, {"from": caller}), caller, getattr(cp, lacking)())
