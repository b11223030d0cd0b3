"""The chain's revert data turned into one plain sentence (custom errors of CityPass,
RestrictedERC1155 and the OpenZeppelin bases, decoded with the packaged ABI)."""

from __future__ import annotations

from typing import Any, Callable

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from citypass.artifact import load_artifact
from citypass.errors import PASS_STATUS, PROVIDER_STATUS, CityPassError, budget_text, date_text, euros, role_name
from citypass.reasons import Reason

_PANIC = {
    0x01: "an internal assertion failed",
    0x11: "an arithmetic overflow or underflow",
    0x12: "a division by zero",
    0x21: "an invalid enum value",
    0x32: "an array index out of bounds",
    0x41: "out of memory",
}



def _addr(a: str) -> str:
    return to_checksum_address(a)


def _pass_status(s: int) -> str:
    return PASS_STATUS[s] if s < len(PASS_STATUS) else str(s)


def _not_active(holder: str, status: int) -> str:
    if status == 0:
        return f"{_addr(holder)} has no city pass"
    return f"the pass of {_addr(holder)} is {_pass_status(status)}, not active"


def _credit_refused(reason: int, frm: str, to: str, budget: int) -> str:
    try:
        text = Reason(reason).message
    except ValueError:
        text = f"refused for reason {reason}"
    return f"credit move refused: {text} (from {_addr(frm)} to {_addr(to)}, {budget_text(budget)})"


def _provider_unchanged(provider: str, status: int) -> str:
    if status == 3:
        return f"provider {_addr(provider)} was removed; a removed provider cannot change status"
    return f"provider {_addr(provider)} is already {PROVIDER_STATUS[status] if status < 4 else status}"


# One sentence per custom error of CityPass, RestrictedERC1155 and the OpenZeppelin bases.
_MESSAGES: dict[str, Callable[..., str]] = {
    "AccessControlUnauthorizedAccount": lambda a, r: f"account {_addr(a)} lacks the {role_name(r)} role",
    "AccessControlBadConfirmation": lambda: "an account can only renounce its own role",
    "AccessControlEnforcedDefaultAdminDelay": lambda t: (
        f"the admin transfer is not possible before {date_text(t)}" if t else "no admin transfer is pending"
    ),
    "AccessControlEnforcedDefaultAdminRules": lambda: (
        "the admin role can only change hands through the two-step admin transfer"
    ),
    "AccessControlInvalidDefaultAdmin": lambda a: f"{_addr(a)} cannot become the admin (zero address or not the pending admin)",
    "AddressHasPass": lambda a: f"{_addr(a)} has a city pass, so it cannot be registered as a provider",
    "AddressIsProvider": lambda a: f"{_addr(a)} is a registered provider, so it cannot get a city pass",
    "ApprovalsDisabled": lambda: "operator approvals are disabled: only the holder can move its credit",
    "BatchAlreadyIssued": lambda b: f"issuance batch 0x{bytes(b).hex()} was already issued",
    "BatchTooLarge": lambda n, m: f"a batch of {n} passes is larger than the maximum of {m}",
    "BudgetCapExceeded": lambda b, cap, would: (
        f"{budget_text(b)} would reach {euros(would)} issued, above its cap of {euros(cap)}"
    ),
    "BudgetClosed": lambda b, until: f"{budget_text(b)} ended on {date_text(until)}; no more credit can be issued",
    "BudgetNotEnded": lambda b, until: (
        f"{budget_text(b)} runs until {date_text(until)}; its credit can only be reclaimed after that"
    ),
    "DuplicateId": lambda b: f"{budget_text(b)} is listed twice in one batch transfer; list each budget once",
    "CapBelowIssued": lambda b, cap, issued: (
        f"the new cap {euros(cap)} of {budget_text(b)} is zero or below the {euros(issued)} already issued"
    ),
    "CreditMoveRefused": _credit_refused,
    "EmptySettlement": lambda: "a settlement needs at least one budget and amount to settle",
    "ERC1155InsufficientBalance": lambda a, bal, need, b: (
        f"{_addr(a)} has {euros(bal)} of {budget_text(b)}, not the {euros(need)} needed"
    ),
    "ERC1155InvalidApprover": lambda a: f"{_addr(a)} cannot approve operators",
    "ERC1155InvalidArrayLength": lambda i, v: f"{i} budget ids but {v} amounts: the lists must have the same length",
    "ERC1155InvalidOperator": lambda a: f"{_addr(a)} cannot be an operator",
    "ERC1155InvalidReceiver": lambda a: f"{_addr(a)} cannot receive CityPass credit (zero address or a contract that refuses ERC-1155)",
    "ERC1155InvalidSender": lambda a: f"{_addr(a)} cannot send CityPass credit",
    "ERC1155MissingApprovalForAll": lambda op, owner: f"{_addr(op)} may not move the credit of {_addr(owner)}",
    "InvalidBudgetTerms": lambda c, f, u, cap: (
        "invalid budget terms: the category must be 0..63, the window must end after it starts and "
        f"not in the past, the cap above zero (got category {c}, {date_text(f)} .. {date_text(u)}, cap {euros(cap)})"
    ),
    "InvalidCategory": lambda c: f"category {c} is out of range: categories are 0..63",
    "InvalidShortString": lambda: "a contract name string is malformed",
    "StringTooLong": lambda s: f"the string {s!r} is too long",
    "InvalidValidity": lambda u: f"the pass validity date {date_text(u)} is in the past",
    "InvalidName": lambda: "a provider's name must be 1 to 64 bytes of valid UTF-8",
    "EmptyReference": lambda: "the reference text is empty",
    "GasBelowCallBudget": lambda left, need: (
        f"the transaction had {left:,} gas left where the contract needs {need:,} to call a resident's account: "
        "send it with more gas"
    ),
    "NotTheRedeemingProvider": lambda h, b, n, p: (
        f"the redemption (nonce {n} of {_addr(h)}, {budget_text(b)}) was made by provider {_addr(p)}; "
        "only that provider can refund it"
    ),
    "PassNotMigrated": lambda h, s: f"the pass of {_addr(h)} is {_pass_status(s)}, not migrated: use migratePass first",
    "LengthMismatch": lambda a, b: f"{a} addresses but {b} amounts: the lists must have the same length",
    "PassExists": lambda h: f"{_addr(h)} already has a city pass",
    "PassNotActive": _not_active,
    "PassNotSuspended": lambda h, s: (
        f"{_addr(h)} has no city pass" if s == 0 else f"the pass of {_addr(h)} is {_pass_status(s)}, not suspended"
    ),
    "PauseUnchanged": lambda p: "CityPass is already paused" if p else "CityPass is not paused",
    "ProviderExists": lambda p: f"{_addr(p)} is already a registered provider",
    "ProviderStatusUnchanged": _provider_unchanged,
    "ReferenceAlreadySettled": lambda r: f"payment reference 0x{bytes(r).hex()} was already settled",
    "RefundExceedsRedemption": lambda h, b, n, remaining, amount: (
        f"at most {euros(remaining)} of the redemption (nonce {n} of {_addr(h)}, {budget_text(b)}) can still be "
        f"refunded, not {euros(amount)}"
    ),
    "SafeCastOverflowedUintDowncast": lambda bits, v: f"the value {v} does not fit in {bits} bits",
    "SystemPaused": lambda: "CityPass is paused by the municipality; nothing can be issued or moved",
    "UnknownBudget": lambda b: f"{budget_text(b)} does not exist on this contract",
    "UnknownProvider": lambda p: f"{_addr(p)} is not a registered provider",
    "UnknownRedemption": lambda h, b, n: (
        f"{_addr(h)} made no refundable redemption with nonce {n} in {budget_text(b)} (only payments marked "
        "refundable when they were made can be refunded)"
    ),
    "ZeroAddress": lambda: "the zero address is not allowed here",
    "ZeroAmount": lambda: "the amount must be more than zero",
}

# The standard Solidity revert payloads, in case the ABI is not at hand.
_BUILTIN_ERRORS = [
    {"type": "error", "name": "Error", "inputs": [{"type": "string", "name": "message"}]},
    {"type": "error", "name": "Panic", "inputs": [{"type": "uint256", "name": "code"}]},
]


def type_of(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(type_of(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


_table_cache: dict[bytes, tuple[str, list[str]]] = {}


def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    """Selector -> (name, argument types) of every error in the ABI (cached once the
    artifacts were found; without them only Error(string) and Panic decode)."""
    if _table_cache:
        return _table_cache
    abi: list[dict[str, Any]] = list(_BUILTIN_ERRORS)
    complete = True
    try:
        abi += load_artifact()["abi"]
    except CityPassError:
        complete = False
    table = {}
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [type_of(p) for p in item["inputs"]]
        selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
        table[selector] = (item["name"], types)
    if complete:
        _table_cache.update(table)
    return table


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    text = data.strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def decode_revert(data: bytes | str | None) -> tuple[str, tuple] | None:
    """(error name, decoded arguments) of revert data, or None if it is not a known error."""
    raw = _as_bytes(data)
    if len(raw) < 4:
        return None
    entry = _error_table().get(raw[:4])
    if entry is None:
        return None
    name, types = entry
    try:
        return name, tuple(abi_decode(types, raw[4:]))
    except Exception:  # malformed arguments: still worth naming the error
        return name, ()


def explain_revert(data: bytes | str | None) -> str:
    """One plain sentence for the revert data of a CityPass call."""
    decoded = decode_revert(data)
    if decoded is None:
        raw = _as_bytes(data)
        if not raw:
            return "the transaction was reverted without a reason (out of gas, or not a CityPass contract?)"
        return f"the transaction was reverted with unknown error data 0x{raw.hex()}"
    name, args = decoded
    if name == "Error":
        return f"the transaction was reverted: {args[0]}" if args else "the transaction was reverted"
    if name == "Panic":
        code = args[0] if args else -1
        return f"the contract stopped on {_PANIC.get(code, f'panic code {code:#x}')}"
    message = _MESSAGES.get(name)
    if message is None or not args and name not in _NO_ARGS:
        return f"the contract refused: {name}{args if args else ''}"
    try:
        return message(*args)
    except Exception:  # a changed signature must not hide the error itself
        return f"the contract refused: {name}{args}"


_NO_ARGS = {
    "AccessControlBadConfirmation", "AccessControlEnforcedDefaultAdminRules", "ApprovalsDisabled", "EmptySettlement",
    "InvalidShortString", "SystemPaused", "ZeroAddress", "ZeroAmount", "InvalidName", "EmptyReference",
}
