"""Shared helpers of the contract tests: custom-error revert assertions, exact block time on
Anvil, vouchers signed for any holder address, and the per-budget conservation check.

Brownie decodes a revert's data with the ABIs it has seen (`VirtualMachineError.revert_msg`,
e.g. "CreditMoveRefused: 5, 0xab.., 0xcd.., 42"). To compare selector *and* arguments without
depending on that text format, the helper ABI-encodes the expected error itself (keccak of the
signature + eth_abi arguments) and runs the expected bytes through the same decoder: equal
strings mean equal revert data. An error unknown to Brownie decodes as "Unknown typed error:
0x<data>", so the comparison still covers the raw bytes.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from brownie import chain, web3
from brownie.exceptions import VirtualMachineError, decode_typed_error
from eth_abi import encode
from eth_utils import keccak

from citypass import voucher as V
from citypass.reasons import Reason


def _abi_value(value: Any) -> Any:
    """Brownie accounts/contracts and Reason members as eth_abi takes them."""
    if isinstance(value, Reason):
        return int(value)
    if hasattr(value, "address"):
        return str(value.address)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        return bytes.fromhex(value[2:])  # bytes32 given as hex text (as Brownie returns it)
    return value


def error_data(signature: str, *args: Any) -> str:
    """ABI-encoded revert data of custom error `signature`, e.g. "ZeroAmount()"."""
    types = signature[signature.index("(") + 1 : -1]
    type_list = [t for t in types.split(",") if t]
    if len(type_list) != len(args):
        raise ValueError(f"{signature}: expected {len(type_list)} arguments, got {len(args)}")
    values = [_abi_value(a) for a in args]
    return "0x" + (keccak(text=signature)[:4] + encode(type_list, values)).hex()


def assert_reverts_with(action: Callable[[], Any], signature: str, *args: Any) -> VirtualMachineError:
    """Runs `action` (a transaction or call) and asserts it reverts with exactly this error."""
    with pytest.raises(VirtualMachineError) as info:
        action()
    expected = decode_typed_error(error_data(signature, *args))
    actual = info.value.revert_msg
    assert actual == expected, f"reverted with {actual!r}, expected {signature} {args} ({expected!r})"
    return info.value


def refused(action: Callable[[], Any], reason: Reason, sender: Any, receiver: Any, budget: int) -> None:
    """The transfer hook's revert: CreditMoveRefused(reason, from, to, budget)."""
    assert_reverts_with(
        action, "CreditMoveRefused(uint8,address,address,uint256)", reason, str(sender), str(receiver), budget
    )


def missing_role(action: Callable[[], Any], account: Any, role: bytes) -> None:
    """OpenZeppelin AccessControl's revert for a caller without `role`."""
    assert_reverts_with(action, "AccessControlUnauthorizedAccount(address,bytes32)", str(account), role)


def latest_time() -> int:
    return int(web3.eth.get_block("latest")["timestamp"])


def _on_ganache() -> bool:
    return web3.client_version.lower().startswith("ganache")


def next_block_at(timestamp: int) -> None:
    """The next block (the next transaction, on automine) gets exactly `timestamp`.

    `chain.mine(timestamp=...)` fails on Anvil; `evm_setNextBlockTimestamp` is exact, while
    `chain.sleep` only moves the clock approximately (wall time keeps running).

    Ganache 7 has no way to give the next *transaction's* block an exact time while its
    clock follows the wall clock (no evm_setNextBlockTimestamp; `evm_setTime` and
    `evm_mine(timestamp)` set the clock, which then runs on, so the transaction lands one
    second later if it takes a second to send; its `--miner.timestampIncrement` would make
    it exact, but Brownie passes Ganache only its known cmd_settings). Tests that need this
    stay `anvil_only`; here that is a clear failure, not a wrong time.
    """
    if _on_ganache():
        raise RuntimeError("next_block_at: Ganache 7 cannot give the next transaction's block an exact time "
                           "(mark the test anvil_only)")
    web3.provider.make_request("evm_setNextBlockTimestamp", [int(timestamp)])


def mine_at(timestamp: int) -> None:
    """Mines an empty block at exactly `timestamp`, so views (eth_call) see that time, and
    later blocks come after it. Anvil: evm_setNextBlockTimestamp + evm_mine; Ganache:
    evm_mine with the timestamp (exact; its clock then runs on from there)."""
    if _on_ganache():
        web3.provider.make_request("evm_mine", [int(timestamp)])
    else:
        next_block_at(timestamp)
        web3.provider.make_request("evm_mine", [])
    assert latest_time() == timestamp
    chain._set_time_offset_from_block()  # keep chain.time() in step with the node


# ---------------------------------------------------------------- vouchers and accounting
def sign_for(
    cp: Any, holder: str, key: Any, provider: Any, budget: int, max_amount: int, *,
    nonce: int = 0, deadline: int | None = None,
    chain_id: int | None = None, contract: str | None = None,
) -> tuple[tuple, bytes]:
    """(voucher struct, 65-byte signature) for any holder address signed by any key; the
    conftest `sign` fixture always pairs an account with its own key, which an ERC-1271
    holder (a contract) or a forgery test cannot use."""
    v = V.build(holder, None if provider is None else str(provider), budget, max_amount, nonce=nonce,
                deadline=deadline if deadline is not None else latest_time() + 300)
    signed = V.sign(v, key, chain_id or chain.id, contract or cp.address)
    return v.contract_args(), signed.signature


def refused_voucher(action: Callable[[], Any], reason: Reason, holder: Any, provider: Any, budget: int) -> None:
    """A refused redeem: CreditMoveRefused with the reason checkVoucher gives (one rule, one code)."""
    refused(action, reason, holder, provider, budget)


def assert_conserved(cp: Any, budget: int, accounts: list[Any]) -> None:
    """issued == balances of `accounts` + settled + reclaimed + corrected, and `accounts` hold
    all credit in circulation (outstanding), so no balance can hide at an address the test forgot."""
    cap, issued, settled, reclaimed, corrected = cp.budgetTotals(budget)
    held = sum(cp.balanceOf(a, budget) for a in {str(a) for a in accounts})
    assert issued <= cap
    assert issued == held + settled + reclaimed + corrected, (issued, held, settled, reclaimed, corrected)
    assert cp.outstanding(budget) == held
