from brownie import chain, web3
from tests.revert_helpers import *

def test_wrong_arg_fails(cp, roles):
    assert_reverts_with(lambda: cp.defineCategory(64, "x", {"from": roles.budget}), "InvalidCategory(uint8)", 65)

def test_wrong_error_fails(cp, roles):
    assert_reverts_with(lambda: cp.defineCategory(64, "x", {"from": roles.budget}), "ZeroAmount()")

def test_no_revert_fails(cp, roles):
    assert_reverts_with(lambda: cp.defineCategory(6, "x", {"from": roles.budget}), "ZeroAmount()")

def test_chain(cp):
    print("CHAINID", chain.id, cp.address, cp.eip712Domain())
