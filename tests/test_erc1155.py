"""ERC-1155 surface: interfaces, balances, metadata, disabled approvals, receiver checks."""

from __future__ import annotations

import pytest
from brownie import MigrationWitnessMock, NonReceiverMock, SmartAccountMock
from eth_account import Account
from eth_utils import keccak

from tests.revert_helpers import assert_reverts_with, latest_time, sign_for

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

DAY = 86_400
ZERO = "0x" + "00" * 20
INVALID_RECEIVER = "ERC1155InvalidReceiver(address)"


@pytest.mark.parametrize("interface,supported", [
    ("0x01ffc9a7", True),   # ERC-165
    ("0xd9b67a26", True),   # ERC-1155
    ("0x0e89341c", True),   # ERC-1155 metadata URI
    ("0x7965db0b", True),   # IAccessControl
    ("0x31498786", True),   # IAccessControlDefaultAdminRules
    ("0xffffffff", False),  # ERC-165 says: must be false
    ("0x4e2312e0", False),  # ERC-1155 receiver: the token is not one
    ("0x80ac58cd", False),  # ERC-721
    ("0x00000000", False),
])
def test_supports_interface(cp, interface, supported):
    assert cp.supportsInterface(interface) is supported


def test_uri_is_the_template_for_every_id(cp, sport, culture):
    for budget in (sport, culture, 0, 2**256 - 1):
        assert cp.uri(budget) == "https://citypass.example/budget/{id}.json"


def test_balance_of_batch(cp, sport, culture, alice, bob, pool, outsider, sign):
    cp.redeem(*sign(alice, pool, sport, 250), 250, 0, {"from": pool})
    got = cp.balanceOfBatch([alice, bob, pool, outsider, alice], [sport, culture, sport, sport, sport + 1])
    assert list(got) == [9_750, 10_000, 250, 0, 0]
    assert list(cp.balanceOfBatch([], [])) == []


def test_balance_of_batch_length_mismatch(cp, sport, alice):
    assert_reverts_with(lambda: cp.balanceOfBatch([alice, alice], [sport]), "ERC1155InvalidArrayLength(uint256,uint256)", 1, 2)


def test_batch_transfer_length_mismatch(cp, sport, alice, pool):
    assert_reverts_with(lambda: cp.safeBatchTransferFrom(alice, pool, [sport], [1, 1], b"", {"from": alice}),
                        "ERC1155InvalidArrayLength(uint256,uint256)", 1, 2)


def test_approvals_are_disabled(cp, alice, pool):
    assert_reverts_with(lambda: cp.setApprovalForAll(pool, True, {"from": alice}), "ApprovalsDisabled()")
    assert_reverts_with(lambda: cp.setApprovalForAll(pool, False, {"from": alice}), "ApprovalsDisabled()")
    assert cp.isApprovedForAll(alice, pool) is False and cp.isApprovedForAll(alice, alice) is False


def test_transfer_and_batch_events(cp, sport, culture, alice, pool, museum):
    tx = cp.safeTransferFrom(alice, pool, sport, 10, b"memo", {"from": alice})
    assert tx.events["TransferSingle"].values() == [alice, alice, pool, sport, 10]
    tx = cp.safeBatchTransferFrom(alice, museum, [culture], [20], b"", {"from": alice})
    assert tx.events["TransferBatch"].values() == [alice, alice, museum, [culture], [20]]


def test_zero_value_payment_moves_nothing(cp, sport, alice, pool):
    tx = cp.safeTransferFrom(alice, pool, sport, 0, b"", {"from": alice})
    assert tx.events["TransferSingle"]["value"] == 0 and cp.balanceOf(pool, sport) == 0


def test_transfer_above_balance(cp, culture, alice, museum):
    assert_reverts_with(lambda: cp.safeTransferFrom(alice, museum, culture, 10_001, b"", {"from": alice}),
                        "ERC1155InsufficientBalance(address,uint256,uint256,uint256)", alice, 10_000, 10_001, culture)


# ---------------------------------------------------------------- receiver checks
@pytest.fixture
def owner_key():
    return Account.from_key(keccak(text="citypass-test-erc1155-owner"))


@pytest.fixture
def smart(roles, owner_key):
    return SmartAccountMock.deploy(owner_key.address, {"from": roles.admin})


@pytest.fixture
def non_receiver(roles):
    return NonReceiverMock.deploy({"from": roles.admin})


def test_issue_to_smart_account_and_to_non_receiver(cp, roles, sport, smart, non_receiver):
    until = latest_time() + DAY
    cp.enrollPasses([smart, non_receiver], until, {"from": roles.registrar})
    cp.issue(keccak(text="smart"), sport, [smart], [500], {"from": roles.issuer})
    assert cp.balanceOf(smart, sport) == 500
    # v2: a contract resident that cannot take the credit is skipped, never blocks the batch.
    tx = cp.issue(keccak(text="non"), sport, [smart, non_receiver], [1, 1], {"from": roles.issuer})
    assert tx.events["IssueSkipped"]["holder"] == non_receiver and tx.events["IssueSkipped"]["amount"] == 1
    assert cp.balanceOf(smart, sport) == 501 and cp.balanceOf(non_receiver, sport) == 0


def test_enroll_and_issue_checks_receivers(cp, roles, sport, smart, non_receiver):
    cp.grantRole(cp.REGISTRAR_ROLE(), roles.issuer, {"from": roles.admin})
    until = latest_time() + DAY
    tx = cp.enrollAndIssue(keccak(text="n"), sport, until, [smart, non_receiver], [1, 1], {"from": roles.issuer})
    assert [e["holder"] for e in tx.events["IssueSkipped"]] == [non_receiver]
    assert cp.passOf(non_receiver)[0] == 0  # not enrolled either
    cp.enrollAndIssue(keccak(text="s"), sport, until, [non_receiver], [7], {"from": roles.issuer})
    assert cp.balanceOf(smart, sport) == 1


def test_migration_checks_the_new_address(cp, roles, sport, alice, smart, non_receiver):
    assert_reverts_with(lambda: cp.migratePass(alice, non_receiver, cp.budgets(), {"from": roles.registrar}), INVALID_RECEIVER, non_receiver)
    cp.migratePass(alice, smart, cp.budgets(), {"from": roles.registrar})
    assert cp.balanceOf(smart, sport) == 10_000


def test_migration_moves_every_balance_before_asking_the_receiver(cp, roles, sport, culture, alice):
    """Checks-effects-interactions: no receiver hook sees (or re-enters) a half-migrated pass."""
    witness = MigrationWitnessMock.deploy([sport, culture], {"from": roles.admin})
    cp.migratePass(alice, witness, cp.budgets(), {"from": roles.registrar})
    assert witness.calls() == 2  # one receiver check per budget moved
    assert witness.leftWithSender() == 0
    assert [cp.balanceOf(witness, budget) for budget in (sport, culture)] == [10_000, 10_000]


@pytest.mark.parametrize("path", ["single", "batch"])
def test_payment_to_contract_providers(cp, roles, sport, alice, smart, non_receiver, path):
    for provider in (smart, non_receiver):
        cp.addProvider(provider, 1, 0, "Test provider", {"from": roles.providers})

    def pay(to):
        if path == "single":
            return lambda: cp.safeTransferFrom(alice, to, sport, 10, b"", {"from": alice})
        return lambda: cp.safeBatchTransferFrom(alice, to, [sport], [10], b"", {"from": alice})

    pay(smart)()
    assert cp.balanceOf(smart, sport) == 10
    assert_reverts_with(pay(non_receiver), INVALID_RECEIVER, non_receiver)


def test_refund_to_smart_account_holder(cp, roles, sport, pool, smart, owner_key):
    cp.enrollPasses([smart], latest_time() + DAY, {"from": roles.registrar})
    cp.issue(keccak(text="smart-refund"), sport, [smart], [500], {"from": roles.issuer})
    paid = sign_for(cp, smart.address, owner_key.key, pool, sport, 200, nonce=4)
    cp.redeemRefundable(*paid, 200, 0, {"from": pool})
    cp.refund(smart, sport, 4, 200, {"from": pool})  # the receiver hook of the smart account
    assert cp.balanceOf(smart, sport) == 500
