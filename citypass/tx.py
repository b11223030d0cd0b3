"""Sending transactions: validate before you send, sign locally, wait as long as the chain needs.

`send` estimates gas first: a call the contract would refuse is explained (explain_revert)
and raised as CityPassError before anything is signed or sent. Keys never leave this
process (signed here with eth-keys/eth-account; the node only sees raw transactions). `send_many` pipelines
many calls from one account (the demo's thousands of redemptions): estimate all, sign all,
send all in JSON-RPC batches, then collect the receipts.

A transaction is never signed again under a new nonce: before sending, an account's
transactions still in flight (an earlier run killed after broadcasting) are waited for, so
the caller's "was it done already?" checks see them; a sent transaction that is not mined
within STUCK_AFTER is looked up: dropped by the node -> the same signed bytes are broadcast
again; still waiting because its fee is below the base fee -> replaced at the same nonce
with a higher fee; its nonce taken by another transaction -> reported, not re-sent.

Confirmations (`chain.default_confirmations`, `--confirmations N`): a send returns only when
its block has N blocks on top and is still the chain's block at that height. A transaction
reorganised out before then is followed with the same signed bytes (`_confirm`); what was
reported done is written down (citypass/reported.py) so a deeper reorg is noticed later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.datastructures import AttributeDict
from web3._utils.method_formatters import receipt_formatter

from citypass.address import eip55_cached, is_valid_spelling
from citypass.chain import Chain, RpcError
from citypass.errors import CityPassError
from citypass.reverts import explain_revert, type_of
from citypass.faults import fault_point
from citypass import reported

GAS_MARGIN = 1.2  # estimates can be a little short when storage warms up differently
GAS_EXTRA = 10_000
DEFAULT_PRIORITY_FEE = 10**9  # 1 gwei, if the node cannot suggest one
RPC_CHUNK = 250  # calls per JSON-RPC batch request
RECEIPT_TIMEOUT = 300.0
LOCAL_STALL_SECONDS = 0.2  # no new receipt nor block for this long on a local dev chain: see _nudge_local_miner
WAIT_SAY_AFTER = 3.0  # seconds of waiting before a "waiting for ..." message, then every WAIT_SAY_EVERY
WAIT_SAY_EVERY = 10.0
STUCK_AFTER = 30.0  # seconds without a receipt before a sent transaction is looked up
FEE_BUMP = 1.125  # a replacement pays at least 12.5% more (what geth's and Anvil's pools ask)

Receipt = AttributeDict


def fees(chain: Chain) -> dict[str, int]:
    """EIP-1559 fees (maxFee = 2 x base fee + tip, room for the base fee to rise for a
    few blocks), or a legacy gas price on nodes without EIP-1559."""
    block, tip = chain.rpc_batch([("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])],
                                 raise_errors=False)
    if isinstance(block, dict) and block.get("baseFeePerGas") is not None:
        base = int(block["baseFeePerGas"], 16)
        priority = DEFAULT_PRIORITY_FEE if isinstance(tip, RpcError) or tip is None else int(tip, 16)
        return {"maxFeePerGas": 2 * base + priority, "maxPriorityFeePerGas": priority}
    return {"gasPrice": int(chain.rpc("eth_gasPrice"), 16)}


def _max_fee(fee: dict[str, int]) -> int:
    return fee.get("maxFeePerGas", fee.get("gasPrice", 0))


def parse_eth(text: str, what: str = "--max-fee") -> int:
    """ETH as a decimal ("0.05") -> wei; a clear error for anything else."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise CityPassError(f"{what} must be an amount of ETH such as 0.05, not {text!r}") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal(1) / 10**18) or value > 10**9:
        raise CityPassError(f"{what} must be an amount of ETH such as 0.05 (at most 18 decimals), not {text!r}")
    return int(value * 10**18)


def eth_text(wei: int) -> str:
    """Wei as ETH for a message: 0.000420 ETH."""
    return f"{wei / 1e18:.6f} ETH" if wei >= 10**12 or wei == 0 else f"{wei} wei"


def gwei_text(wei: int) -> str:
    return f"{wei / 1e9:.3f} gwei"


def _check_fee_cap(chain: Chain, gas: int, count: int, fee: dict[str, int]) -> None:
    """Refuses a send whose worst case (every gas limit used at the highest fee it offers)
    would take the fees of this connection above chain.max_fee; says what it would cost."""
    if chain.max_fee is None:
        return
    worst = gas * _max_fee(fee)
    left = chain.max_fee - chain.fee_spent
    if worst <= left:
        return
    base = (fee["maxFeePerGas"] - fee["maxPriorityFeePerGas"]) // 2 if "maxFeePerGas" in fee else fee.get("gasPrice", 0)
    spent = f", of which {eth_text(chain.fee_spent)} is spent already" if chain.fee_spent else ""
    raise CityPassError(
        f"sending {count} transaction(s) would cost up to {eth_text(worst)} in fees ({gas:,} gas at up to "
        f"{gwei_text(_max_fee(fee))} per gas; the base fee is {gwei_text(base)} now), above the --max-fee of "
        f"{eth_text(chain.max_fee)} for this command{spent}: nothing more was sent. Run again when fees are lower, "
        "or with a higher --max-fee (a re-run carries on where this one stopped)")


@lru_cache(maxsize=256)
def _encoder(signature: str, types: tuple[str, ...]) -> Callable[[tuple], bytes]:
    selector = keccak(text=signature)[:4]

    def encode(args: tuple) -> bytes:
        fast = _encode_simple(types, args)
        return selector + (fast if fast is not None else abi_encode(list(types), list(args)))

    return encode


def _decoder(types: Sequence[str]) -> Callable[[str], tuple]:
    """Decodes a call's 0x-hex answer. Uints, bools, addresses and bytes32 are read straight
    from their words, ~10x faster than eth-abi's validating decoder (reading 50,000 passes
    spent most of its client time there); anything else, or a word eth-abi would refuse,
    goes through eth-abi, which decodes or explains."""
    types = tuple(types)
    bits = [int(t[4:] or 256) if t.startswith("uint") and t[4:].isdigit() or t == "uint" else None for t in types]
    simple = all(b is not None or t in ("bool", "address", "bytes32") for t, b in zip(types, bits))
    size = 2 + 64 * len(types)

    def slow(answer: str) -> tuple:
        return tuple(abi_decode(list(types), bytes.fromhex(answer[2:])))

    def decode(answer: str) -> tuple:
        if not simple or len(answer) != size:
            return slow(answer)
        out: list[Any] = []
        for i, (kind, width) in enumerate(zip(types, bits)):
            word = answer[2 + 64 * i:66 + 64 * i]
            if kind == "bytes32":
                out.append(bytes.fromhex(word))
                continue
            value = int(word, 16)
            if width is not None and value >> width == 0:
                out.append(value)
            elif kind == "bool" and value <= 1:
                out.append(value == 1)
            elif kind == "address" and value >> 160 == 0:
                out.append("0x" + word[24:].lower())  # as eth-abi gives it
            else:
                return slow(answer)
        return tuple(out)

    return decode


def _word(kind: str, value: Any) -> bytes | None:
    """One ABI word of a simple static value, or None if it is not plainly valid."""
    if kind == "address":
        if isinstance(value, str) and is_valid_spelling(value):
            return bytes(12) + bytes.fromhex(value[2:])
        return None
    if kind.startswith("uint") and type(value) is int:
        bits = int(kind[4:] or 256)
        return value.to_bytes(32, "big") if 0 <= value < 1 << bits else None
    if kind == "bytes32" and isinstance(value, (bytes, bytearray)) and len(value) == 32:
        return bytes(value)
    if kind == "bool" and type(value) is bool:
        return (1 if value else 0).to_bytes(32, "big")
    return None


def _encode_simple(types: tuple[str, ...], args: tuple) -> bytes | None:
    """ABI encoding of addresses, uints, bytes32, bools and arrays of them, without eth-abi's
    per-value validation (~25 µs an address: an issuance batch has hundreds). None for
    anything else or any value that is not plainly valid: eth-abi then encodes, or explains."""
    if len(types) != len(args):
        return None
    head: list[bytes] = []
    tail: list[bytes] = []
    offset = 32 * len(types)
    for kind, value in zip(types, args):
        if kind.endswith("[]") and "[" not in kind[:-2] and isinstance(value, (list, tuple)):
            words = [_word(kind[:-2], v) for v in value]
            if any(w is None for w in words):
                return None
            part = len(value).to_bytes(32, "big") + b"".join(words)  # type: ignore[arg-type]
            head.append(offset.to_bytes(32, "big"))
            tail.append(part)
            offset += len(part)
        else:
            w = _word(kind, value)
            if w is None:
                return None
            head.append(w)
    return b"".join(head) + b"".join(tail)


def _encode(fn: Any) -> str | None:
    """Call data of a bound contract function, straight through eth-abi: web3's
    build_transaction re-validates the whole ABI on every call (~5 ms; the demo sends
    thousands). None when the arguments need web3's normalisation (dicts, hex bytes...)."""
    cached = getattr(fn, "_citypass_calldata", None)
    if cached is not None:  # an issuance batch is estimated, given an access list and sent
        return cached
    abi = getattr(fn, "abi", None)
    if not isinstance(abi, dict) or abi.get("type") != "function" or getattr(fn, "kwargs", None):
        return None
    try:
        types = tuple(type_of(p) for p in abi["inputs"])
        data = "0x" + _encoder(f"{abi['name']}({','.join(types)})", types)(tuple(fn.args)).hex()
    except Exception:  # anything eth-abi cannot take as is: let web3 normalise it
        return None
    fn._citypass_calldata = data
    return data


@dataclass(frozen=True)
class Transfer:
    """A plain ETH transfer, sendable like a contract call (funding accounts, benchmarks)."""
    to: str


def call_data(fn: Any) -> str:
    """The call data (0x hex) of a web3 contract function call."""
    return _call_params(fn, "0x" + "00" * 20)["data"]


def _call_params(fn: Any, sender: str, value: int = 0) -> dict[str, Any]:
    """{'from', 'to'?, 'data', 'value'} of a web3 contract function or constructor call."""
    if isinstance(fn, Transfer):
        return {"from": sender, "to": to_checksum_address(fn.to), "data": "0x", "value": hex(value)}
    data = _encode(fn)
    if data is not None:
        return {"from": sender, "to": to_checksum_address(fn.address), "data": data, "value": hex(value)}
    # build_transaction with every field filled in does no RPC: it only encodes the call.
    template = {"from": sender, "gas": 1, "nonce": 0, "chainId": 1, "gasPrice": 1, "value": value}
    built = fn.build_transaction(template)
    params = {"from": sender, "data": built["data"], "value": hex(value)}
    if built.get("to"):
        params["to"] = to_checksum_address(built["to"])
    return params


def _refusal(error: RpcError, chain: Chain, sender: str, what: str = "the transaction") -> CityPassError:
    """A node's refusal of eth_estimateGas / eth_sendRawTransaction as one plain line."""
    message = error.message.lower()
    if "insufficient funds" in message or "funds for gas" in message:
        return _no_funds(chain, sender)
    if error.data or "revert" in message:
        return CityPassError(explain_revert(error.data))
    return CityPassError(f"the node refused {what}: {error.message}")


def _no_funds(chain: Chain, sender: str, needed: int | None = None) -> CityPassError:
    balance = chain.w3.eth.get_balance(sender)
    if balance == 0:
        return CityPassError(f"account {sender} has no ETH to pay gas on chain {chain.chain_id}")
    need = f", needs about {needed / 1e18:.6f}" if needed else ""
    return CityPassError(f"account {sender} has only {balance / 1e18:.6f} ETH to pay gas on chain {chain.chain_id}{need}")


def _estimate(chain: Chain, calls: Sequence[dict[str, Any]], sender: str) -> list[int]:
    """Gas limits for calls; raises the first refusal (with its index if several)."""
    limit = int(chain.rpc("eth_getBlockByNumber", ["latest", False])["gasLimit"], 16)
    gas: list[int] = []
    for start in range(0, len(calls), RPC_CHUNK):
        chunk = calls[start:start + RPC_CHUNK]
        answers = chain.rpc_batch([("eth_estimateGas", [c]) for c in chunk], raise_errors=False)
        for i, answer in enumerate(answers):
            if isinstance(answer, RpcError):
                err = _refusal(answer, chain, sender)
                if len(calls) > 1:
                    err = CityPassError(f"call {start + i + 1} of {len(calls)} would fail, nothing was sent: {err}")
                raise err
            gas.append(min(int(int(answer, 16) * GAS_MARGIN) + GAS_EXTRA, limit))
    return gas


def access_list(chain: Chain, sender: str, fn: Any) -> list[dict[str, Any]] | None:
    """The EIP-2930 access list of a call, from the node (eth_createAccessList), or None if
    the node cannot make one. Worth it for issuance batches: each resident's address and two
    storage slots are then paid for up front at a lower price (about 300 gas less per
    resident); a single redemption would pay more than it saves."""
    found = access_list_and_gas(chain, sender, fn)
    return found[0] if found else None


def access_list_and_gas(chain: Chain, sender: str, fn: Any) -> tuple[list[dict[str, Any]], int] | None:
    """The access list and a gas limit for a call sent with it, from one eth_createAccessList
    (the node runs the call once or twice; eth_estimateGas searches with a dozen runs, which
    is most of the node's time for an issuance batch). Only for calls without gas refunds
    (the node reports gas after refunds). None if the node cannot make access lists or the
    call would fail (then `send` estimates, and explains the failure)."""
    return access_lists_and_gas(chain, sender, [fn])[0]


def access_lists_and_gas(chain: Chain, sender: str, fns: Sequence[Any]) -> list[tuple[list[dict[str, Any]], int] | None]:
    """`access_list_and_gas` of many calls in one JSON-RPC batch (one round trip), each
    against the same state."""
    answers = chain.rpc_batch([("eth_createAccessList", [_call_params(fn, sender), "latest"]) for fn in fns],
                              raise_errors=False)
    return [_access_answer(a) for a in answers]


def _access_answer(answer: Any) -> tuple[list[dict[str, Any]], int] | None:
    if isinstance(answer, RpcError) or not isinstance(answer, dict) or "accessList" not in answer:
        return None
    if answer.get("error") or "gasUsed" not in answer:
        return None
    return answer["accessList"], int(int(answer["gasUsed"], 16) * GAS_MARGIN) + GAS_EXTRA


def _rlp_access_list(entries: Sequence[dict[str, Any]]) -> list:
    return [[bytes.fromhex(e["address"][2:]), [bytes.fromhex(k[2:]) for k in e.get("storageKeys", [])]]
            for e in entries]


def _sign(account: LocalAccount, chain: Chain, call: dict[str, Any], gas: int, nonce: int,
          fee: dict[str, int]) -> bytes:
    value, data = int(call["value"], 16), call["data"]
    if "maxFeePerGas" in fee:
        return _sign_1559(account, chain.chain_id, nonce, fee, gas, call.get("to"), value, data,
                          call.get("accessList") or [])
    tx: dict[str, Any] = {"chainId": chain.chain_id, "nonce": nonce, "gas": gas, "value": value, "data": data, **fee}
    if "to" in call:
        tx["to"] = call["to"]
    return bytes(account.sign_transaction(tx).raw_transaction)


def _sign_1559(account: LocalAccount, chain_id: int, nonce: int, fee: dict[str, int], gas: int,
               to: str | None, value: int, data: str, access: Sequence[dict[str, Any]] = ()) -> bytes:
    """An EIP-1559 transaction signed straight with eth-keys (coincurve): several times
    faster than eth-account's validating path, which matters for thousands of redemptions.
    The node checks the result: a wrong encoding could only be refused, never misread."""
    fields = [
        chain_id, nonce, fee["maxPriorityFeePerGas"], fee["maxFeePerGas"], gas,
        bytes.fromhex(to[2:]) if to else b"", value, bytes.fromhex(data[2:]), _rlp_access_list(access),
    ]
    key = _private_key(bytes(account.key))
    signature = key.sign_msg_hash(keccak(b"\x02" + rlp_encode(fields)))
    return b"\x02" + rlp_encode(fields + [signature.v, signature.r, signature.s])


def rlp_encode(item: int | bytes | Sequence[Any]) -> bytes:
    """RLP of ints, byte strings and (nested) lists of them: the same bytes as `rlp.encode`,
    ~20x faster on an issuance batch's access list (600 keys), because nothing is inferred."""
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP has no negative integers")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big")
    if isinstance(item, (bytes, bytearray)):
        if len(item) == 1 and item[0] < 0x80:
            return bytes(item)
        return _rlp_length(len(item), 0x80) + item
    payload = b"".join([rlp_encode(x) for x in item])
    return _rlp_length(len(payload), 0xC0) + payload


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(size)]) + size


@lru_cache(maxsize=64)
def _private_key(secret: bytes) -> PrivateKey:
    return PrivateKey(secret)


def _format_receipt(raw: dict[str, Any]) -> Receipt:
    """web3's receipt, with the logs formatted by a direct loop: web3's generic formatter
    takes ~0.5 ms per log, and an issuance batch of 200 residents has 200 logs."""
    receipt = receipt_formatter({k: v for k, v in raw.items() if k != "logs"})
    receipt["logs"] = [_format_log(log) for log in raw.get("logs", [])]
    return AttributeDict.recursive(receipt)


def _format_log(log: dict[str, Any]) -> dict[str, Any]:
    """The same fields and types as web3's log formatter gives."""
    out = dict(log)
    out["address"] = eip55_cached(log["address"])
    out["topics"] = [HexBytes(t) for t in log["topics"]]
    out["data"] = HexBytes(log["data"])
    for key in ("blockHash", "transactionHash"):
        if log.get(key) is not None:
            out[key] = HexBytes(log[key])
    for key in ("blockNumber", "transactionIndex", "logIndex"):
        if isinstance(log.get(key), str):
            out[key] = int(log[key], 16)
    return out


@dataclass
class _Pending:
    """One sent transaction: what it calls, and every signed version of it (all with the
    same nonce: a replacement only raises the fee)."""

    call: dict[str, Any]
    gas: int
    nonce: int
    fee: dict[str, int]
    raws: list[bytes]
    hashes: list[str]


def _wait_receipts(chain: Chain, account: LocalAccount, sent: Sequence[_Pending], timeout: float) -> list[dict[str, Any]]:
    """Raw receipts of `sent` (one account's), polling until all are mined; a transaction not
    mined within STUCK_AFTER is looked after (`_unstick`) once per STUCK_AFTER, and a local
    dev chain whose miner stalled is nudged (`_nudge_local_miner`)."""
    found: dict[int, dict[str, Any]] = {}
    start = time.monotonic()
    deadline, next_look = start + timeout, start + STUCK_AFTER
    pause = 0.02 if chain.is_local_dev else 1.0
    last_progress, last_count, last_block = start, -1, None
    next_say = start + WAIT_SAY_AFTER
    while len(found) < len(sent):
        if len(found) != last_count:
            last_progress, last_count = time.monotonic(), len(found)
        elif chain.is_local_dev and time.monotonic() - last_progress > LOCAL_STALL_SECONDS:
            # Stalled only if no block came either: a heavy block may simply take a while.
            block = chain.rpc("eth_blockNumber")
            if block == last_block:
                _nudge_local_miner(chain)
            last_progress, last_block = time.monotonic(), block
        # One account's transactions are mined in nonce order: ask for the receipts of those
        # below its mined nonce only, not for every waiting one on every poll (with hundreds
        # in flight that polling kept both this process and the node busy).
        mined_nonce = int(chain.rpc("eth_getTransactionCount", [account.address, "latest"]), 16)
        ready = [i for i in range(len(sent)) if i not in found and sent[i].nonce < mined_nonce]
        asks = [(i, h) for i in ready for h in sent[i].hashes]
        for begin in range(0, len(asks), RPC_CHUNK):
            chunk = asks[begin:begin + RPC_CHUNK]
            for (i, _), r in zip(chunk, chain.rpc_batch([("eth_getTransactionReceipt", [h]) for _, h in chunk])):
                if r is not None:
                    found[i] = r
        if len(found) < len(sent):
            now = time.monotonic()
            if now > deadline:
                first = sent[min(i for i in range(len(sent)) if i not in found)]
                raise CityPassError(
                    f"{len(sent) - len(found)} transaction(s) not mined after {timeout:.0f} s "
                    f"(first: {first.hashes[-1]}, nonce {first.nonce}); they may still be mined later: "
                    "check before re-sending"
                )
            if now >= next_look:
                _unstick(chain, account, [sent[i] for i in range(len(sent)) if i not in found])
                next_look = now + STUCK_AFTER
            if now >= next_say:  # blocks at the network's pace: say why nothing seems to happen
                chain.say(f"waiting for {len(sent) - len(found)} of {len(sent)} transaction(s) to be mined "
                          f"({now - start:.0f} s so far; they keep their order, nonces {sent[0].nonce}.."
                          f"{sent[-1].nonce}; gives up after {timeout:.0f} s)")
                next_say = now + WAIT_SAY_EVERY
            time.sleep(pause)
    return [found[i] for i in range(len(sent))]


def _unstick(chain: Chain, account: LocalAccount, waiting: Sequence[_Pending]) -> None:
    """Looks up transactions that are taking long: re-broadcasts what the node dropped (the
    same signed bytes), replaces at the same nonce what waits below the base fee, and raises
    if a nonce was taken by another transaction (then this call was not done: the caller
    decides, nothing is re-sent under a new nonce)."""
    mined_nonce = int(chain.rpc("eth_getTransactionCount", [account.address, "latest"]), 16)
    known = [t for start in range(0, len(waiting), RPC_CHUNK) for t in chain.rpc_batch(
        [("eth_getTransactionByHash", [p.hashes[-1]]) for p in waiting[start:start + RPC_CHUNK]])]
    fee = fees(chain)
    for p, tx in zip(waiting, known):
        if tx is not None and tx.get("blockHash"):
            continue  # mined since the receipt was asked
        if p.nonce < mined_nonce and not any(chain.rpc("eth_getTransactionReceipt", [h]) for h in p.hashes):
            raise CityPassError(
                f"transaction {p.hashes[-1]} (nonce {p.nonce} of {account.address}) was not mined: another "
                f"transaction from that account took nonce {p.nonce}. It was not re-sent; check whether its "
                "change is still needed (a re-run checks that) before sending it again"
            )
        if _below_base_fee(p.fee, fee):  # waits (or was dropped) for a base fee that may never come back
            _check_replacement(chain, p, fee, waiting)
            _replace(chain, account, p, fee)
        elif tx is None:  # dropped from the node's pool: the same bytes again, same nonce, same hash
            _broadcast(chain, p.raws[-1], already_ok=True)


def _below_base_fee(paid: dict[str, int], now: dict[str, int]) -> bool:
    if "maxFeePerGas" in now:
        return paid.get("maxFeePerGas", paid.get("gasPrice", 0)) < (now["maxFeePerGas"] - now["maxPriorityFeePerGas"]) // 2
    return paid.get("gasPrice", 0) < now["gasPrice"]


def _check_replacement(chain: Chain, p: _Pending, fee: dict[str, int], waiting: Sequence[_Pending]) -> None:
    """A replacement at a higher fee must fit chain.max_fee too, with the other waiting ones."""
    if chain.max_fee is None:
        return
    bumped = _bumped(p.fee, fee)
    others = sum(q.gas * _max_fee(q.fee) for q in waiting if q is not p)
    worst = p.gas * _max_fee(bumped)
    left = chain.max_fee - chain.fee_spent - others
    if worst > left:
        raise CityPassError(
            f"transaction {p.hashes[-1]} (nonce {p.nonce}) waits below the base fee; replacing it at "
            f"{gwei_text(_max_fee(bumped))} per gas would cost up to {eth_text(worst)}, more than the --max-fee of "
            f"{eth_text(chain.max_fee)} leaves ({eth_text(max(left, 0))}). It was not replaced and may still be mined "
            "when the base fee falls: run the command again later (it checks what is still needed)")


def _bumped(old: dict[str, int], now: dict[str, int]) -> dict[str, int]:
    return {k: max(now.get(k, 0), int(v * FEE_BUMP) + 1) for k, v in old.items()}


def _replace(chain: Chain, account: LocalAccount, p: _Pending, fee: dict[str, int]) -> None:
    """The same call at the same nonce with a fee that fits the base fee now."""
    p.fee = _bumped(p.fee, fee)
    raw = _sign(account, chain, p.call, p.gas, p.nonce, p.fee)
    tx_hash = _broadcast(chain, raw, already_ok=False)
    if tx_hash is not None:
        p.hashes.append(tx_hash)
        p.raws.append(raw)


def _broadcast(chain: Chain, raw: bytes, *, already_ok: bool) -> str | None:
    """Offers signed bytes (again); None if their nonce was mined meanwhile: by the waiting
    transaction itself (its receipt is then found), or by another one (`_unstick`'s next look
    reports that). Neither is an error here."""
    answer = chain.rpc_batch([("eth_sendRawTransaction", ["0x" + raw.hex()])], raise_errors=False)[0]
    if isinstance(answer, RpcError):
        message = answer.message.lower()
        if already_ok and "already" in message:
            return "0x" + keccak(raw).hex()
        if "nonce too low" in message or "nonce is too low" in message:
            return None
        raise CityPassError(f"the node refused to take back a waiting transaction: {answer.message}")
    return answer


def _send_alone(chain: Chain, raw: bytes) -> Any:
    """Hardhat's node handles the items of a JSON-RPC batch side by side, and on automine it
    refuses a nonce ahead of the mined one ("can't be queued when automining"): a pipelined
    batch can then be refused in part. Each such item is offered again on its own, in nonce
    order (the ones before it are mined by then): the same signed bytes."""
    answer: Any = None
    for attempt in range(20):
        answer = chain.rpc_batch([("eth_sendRawTransaction", ["0x" + raw.hex()])], raise_errors=False)[0]
        if not (isinstance(answer, RpcError) and "nonce too high" in answer.message.lower()):
            return answer
        time.sleep(0.01 * (attempt + 1))
    return answer


def _node_has(chain: Chain, raw: bytes) -> bool:
    """Whether the node knows this signed transaction (in its pool or mined)."""
    found = chain.rpc_batch([("eth_getTransactionByHash", ["0x" + keccak(raw).hex()])], raise_errors=False)[0]
    return isinstance(found, dict)


def wait_idle(chain: Chain, address: str, timeout: float = RECEIPT_TIMEOUT) -> bool:
    """Waits until no transaction of `address` is in flight (pending nonce = mined nonce);
    True if there was one. Called before "was this done already?" checks: a run killed after
    broadcasting leaves its transaction in the pool, and the next run must see it mined,
    not send it again."""
    deadline = time.monotonic() + timeout
    pause = 0.05 if chain.is_local_dev else 1.0
    waited = False
    while True:
        mined, pending = (int(n, 16) for n in chain.rpc_batch(
            [("eth_getTransactionCount", [address, "latest"]), ("eth_getTransactionCount", [address, "pending"])]))
        if pending <= mined:
            return waited
        waited = True
        if time.monotonic() > deadline:
            raise CityPassError(
                f"account {address} has {pending - mined} transaction(s) waiting to be mined (nonces {mined}..{pending - 1}) "
                f"for over {timeout:.0f} s; nothing was sent: wait for them (or replace them) and run again"
            )
        time.sleep(pause)


def _nudge_local_miner(chain: Chain) -> None:
    """Anvil's automine can leave ready transactions in its pool when many arrive at once
    (foundry-rs/foundry#10122; seen here with pipelined issuance batches and redemptions):
    they sit there until the next transaction comes. On a local dev chain, mining a block
    takes them in; on a real network this never runs."""
    if not _automine(chain) and _mines_on_an_interval(chain):
        return  # blocks come at the node's own pace (--block-time): never mine for it
    status = chain.rpc_batch([("txpool_status", [])], raise_errors=False)[0]
    if isinstance(status, dict) and int(status.get("pending", "0x0"), 16) > 0:
        chain.rpc("evm_mine")


def _mines_on_an_interval(chain: Chain) -> bool:
    """Whether a dev node makes blocks by itself every few seconds (Anvil --block-time)."""
    answer = chain.rpc_batch([("anvil_getIntervalMining", [])], raise_errors=False)[0]
    return isinstance(answer, int) and not isinstance(answer, bool) and answer > 0


def _automine(chain: Chain) -> bool:
    """Whether a local dev node mines a block for every transaction (Anvil's and Hardhat's
    own question; True for a node that cannot say, e.g. Ganache, as before)."""
    for method in ("anvil_getAutomine", "hardhat_getAutomine"):
        answer = chain.rpc_batch([(method, [])], raise_errors=False)[0]
        if isinstance(answer, bool):
            return answer
    return True


def _confirm(chain: Chain, account: LocalAccount, sent: Sequence[_Pending], receipts: list[dict[str, Any]],
             wanted: int, timeout: float) -> list[dict[str, Any]]:
    """Waits until every receipt's block has `wanted` blocks on top of it *and* is still the
    chain's block at that height; returns the receipts as they are then. A transaction whose
    block was reorganised away meanwhile is followed, never re-signed: mined again elsewhere
    -> its new receipt; back in (or dropped from) the pool -> the same signed bytes are
    offered again and waited for; its nonce taken by another transaction -> CityPassError
    (then it is not done, and a re-run checks what is still needed)."""
    deadline = time.monotonic() + timeout
    pause = 0.05 if chain.is_local_dev else 1.0
    next_say = time.monotonic() + WAIT_SAY_AFTER
    receipts = list(receipts)
    automine: bool | None = None
    while True:
        head = int(chain.rpc("eth_blockNumber"), 16)
        target = max(int(r["blockNumber"], 16) for r in receipts) + wanted
        if head >= target:
            moved = _moved(chain, receipts)
            if not moved:
                return receipts
            gone = [i for i, fresh in moved.items() if fresh is None]
            chain.say(f"the chain reorganised: {len(moved)} of {len(receipts)} transaction(s) left the block they were "
                      f"mined in before they were {wanted} block(s) deep; following them (the same signed "
                      "transactions, nothing is signed again)")
            for i, fresh in moved.items():
                if fresh is not None:
                    receipts[i] = fresh
            if gone:
                for i in gone:
                    _offer_again(chain, account, sent[i], receipts[i]["transactionHash"])
                again = _wait_receipts(chain, account, [sent[i] for i in gone], max(1.0, deadline - time.monotonic()))
                for i, r in zip(gone, again):
                    receipts[i] = r
            continue
        now = time.monotonic()
        if now > deadline:
            raise CityPassError(
                f"block {target - wanted} did not get {wanted} confirmation(s) within {timeout:.0f} s (head: block "
                f"{head}); the transaction(s) may still be confirmed later: check before re-sending")
        if now >= next_say:
            chain.say(f"waiting for {wanted} confirmation(s): block {head} of {target}")
            next_say = now + WAIT_SAY_EVERY
        if chain.is_local_dev and automine is None:
            automine = _automine(chain)
        if automine:  # a dev chain that mines only for transactions: the blocks on top are mined here
            chain.rpc("evm_mine")
            continue
        time.sleep(pause)


def _moved(chain: Chain, receipts: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any] | None]:
    """The receipts that are no longer on the chain as seen: index -> the fresh receipt (mined
    in another block) or None (not mined now). A receipt counts only if the chain's block at
    its height has its block hash (a node may still answer a receipt of a dropped fork)."""
    hashes = [r["transactionHash"] for r in receipts]
    fresh: list[Any] = []
    for start in range(0, len(hashes), RPC_CHUNK):
        fresh += chain.rpc_batch([("eth_getTransactionReceipt", [h]) for h in hashes[start:start + RPC_CHUNK]])
    numbers = sorted({int(f["blockNumber"], 16) for f in fresh if f})
    canonical: dict[int, str | None] = {}
    for start in range(0, len(numbers), RPC_CHUNK):
        part = numbers[start:start + RPC_CHUNK]
        for n, block in zip(part, chain.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])):
            canonical[n] = (block or {}).get("hash")
    out: dict[int, dict[str, Any] | None] = {}
    for i, (old, new) in enumerate(zip(receipts, fresh)):
        if new is not None and canonical.get(int(new["blockNumber"], 16)) != new["blockHash"]:
            new = None
        if new is None or new["blockHash"] != old["blockHash"]:
            out[i] = new
    return out


def _offer_again(chain: Chain, account: LocalAccount, p: _Pending, tx_hash: str) -> None:
    """After a reorg: the same signed bytes of `tx_hash` to the node again (a node that
    already has them back in its pool says so, which is fine)."""
    raw = p.raws[p.hashes.index(tx_hash)] if tx_hash in p.hashes else p.raws[-1]
    answer = chain.rpc_batch([("eth_sendRawTransaction", ["0x" + raw.hex()])], raise_errors=False)[0]
    if isinstance(answer, RpcError) and "already" not in answer.message.lower() and "known" not in answer.message.lower():
        raise CityPassError(
            f"transaction {tx_hash} (nonce {p.nonce} of {account.address}) was reorganised out of the chain and the "
            f"node refuses it now ({answer.message}): another transaction from that account took nonce {p.nonce} on "
            "the new chain. It was not re-sent and is not done; run the command again: it checks what is still needed")


def _failure(chain: Chain, call: dict[str, Any], receipt: dict[str, Any]) -> CityPassError:
    """Why a mined transaction failed: replay it against the state before its block."""
    block = int(receipt["blockNumber"], 16)
    answer = chain.rpc_batch([("eth_call", [call, hex(max(block - 1, 0))])], raise_errors=False)[0]
    reason = explain_revert(answer.data) if isinstance(answer, RpcError) and answer.data else (
        "out of gas, or the state changed between check and inclusion"
    )
    return CityPassError(f"transaction {receipt['transactionHash']} failed in block {block}: {reason}")


def send(chain: Chain, account: LocalAccount, fn: Any, *, confirmations: int | None = None,
         gas: int | None = None, value: int = 0, timeout: float = RECEIPT_TIMEOUT,
         access_list: Sequence[dict[str, Any]] | None = None) -> Receipt:
    """Validates, signs and sends one contract call (or constructor); returns its receipt
    once mined and `confirmations` blocks deep (default: 0 on dev chains, else 2).
    `access_list` (see `access_list()`) is attached on EIP-1559 chains."""
    return send_many(chain, account, [fn], confirmations=confirmations, gas=gas, value=value, timeout=timeout,
                     access_lists=None if access_list is None else [access_list])[0]


def send_many(chain: Chain, account: LocalAccount, fns: Sequence[Any], *,
              on_sent: Callable[[int, str], None] | None = None, confirmations: int | None = None,
              gas: int | Sequence[int] | None = None, value: int = 0, check: bool = True,
              timeout: float = RECEIPT_TIMEOUT,
              access_lists: Sequence[Sequence[dict[str, Any]] | None] | None = None,
              brief: bool = False) -> list[Receipt]:
    """Sends many calls from one account without waiting between them.

    Every call is estimated against the current state before anything is sent (a call that
    only succeeds after an earlier one of the same list is mined needs `gas=`, which skips
    estimation; a list gives one limit per call). `on_sent(index, tx_hash)` is called as each
    is handed to the node.
    With check=True a failed transaction raises after all receipts are collected.
    brief=True gives receipts without their logs (see `collect`)."""
    if not fns:
        return []
    wait_idle(chain, account.address, timeout)  # estimates and the nonce must see what is still in flight
    sent = submit(chain, account, fns, on_sent=on_sent, gas=gas, value=value, access_lists=access_lists)
    return collect(chain, sent, confirmations=confirmations, check=check, timeout=timeout, brief=brief)


@dataclass
class Submitted:
    """Transactions handed to the node by `submit`, not yet waited for (`collect`)."""

    account: LocalAccount
    pending: list[_Pending]


def submit(chain: Chain, account: LocalAccount, fns: Sequence[Any], *,
           on_sent: Callable[[int, str], None] | None = None, gas: int | Sequence[int] | None = None,
           value: int = 0, access_lists: Sequence[Sequence[dict[str, Any]] | None] | None = None) -> Submitted:
    """Validates, signs and hands calls to the node at the account's next nonces, without
    waiting for them: the caller may submit more (they follow in nonce order) before it
    `collect`s. Only a caller that knows what of this account is in flight may skip
    `wait_idle` first (its own earlier submits); `send_many` does both."""
    sender = account.address
    calls = [_call_params(fn, sender, value) for fn in fns]
    for call_params, access in zip(calls, access_lists or []):
        if access:
            call_params["accessList"] = list(access)
    if gas is None:
        limits = _estimate(chain, calls, sender)
    elif isinstance(gas, int):
        limits = [gas] * len(calls)
    else:
        limits = list(gas)
        if len(limits) != len(calls):
            raise ValueError(f"{len(limits)} gas limits for {len(calls)} calls")
    fee = fees(chain)
    _check_fee_cap(chain, sum(limits), len(calls), fee)
    balance = chain.w3.eth.get_balance(sender)
    needed = sum(limits) * _max_fee(fee) + value * len(calls)
    if balance < needed:
        raise _no_funds(chain, sender, needed)
    nonce = int(chain.rpc("eth_getTransactionCount", [sender, "pending"]), 16)
    sent = [_Pending(c, g, nonce + i, fee, [_sign(account, chain, c, g, nonce + i, fee)], [])
            for i, (c, g) in enumerate(zip(calls, limits))]

    fault_point("before-send")
    for start in range(0, len(sent), RPC_CHUNK):
        chunk = sent[start:start + RPC_CHUNK]
        answers = chain.rpc_batch([("eth_sendRawTransaction", ["0x" + p.raws[0].hex()]) for p in chunk],
                                  raise_errors=False)
        for i, (p, answer) in enumerate(zip(chunk, answers)):
            if isinstance(answer, RpcError) and "nonce too high" in answer.message.lower():
                answer = _send_alone(chain, p.raws[0])
            if isinstance(answer, RpcError) and _node_has(chain, p.raws[0]):
                # The node has it already: a request asked again after a dropped connection
                # (citypass/rpc_limits.py) reaches it twice, the same signed bytes both times.
                answer = "0x" + keccak(p.raws[0]).hex()
            if isinstance(answer, RpcError):
                err = _refusal(answer, chain, sender, "the transaction")
                if start + i:  # some are out already: say so, the caller must not blindly resend
                    err = CityPassError(f"{err} (after {start + i} of {len(sent)} transactions were sent)")
                raise err
            p.hashes.append(answer)
            if on_sent is not None:
                on_sent(start + i, answer)
        fault_point("after-broadcast")
    return Submitted(account, sent)


def collect(chain: Chain, submitted: Submitted, *, confirmations: int | None = None,
            check: bool = True, timeout: float = RECEIPT_TIMEOUT, brief: bool = False) -> list[Receipt]:
    """The receipts of `submit`ted transactions once mined and `confirmations` deep (see
    `send_many`). brief=True leaves out the logs and gives only status, gasUsed,
    transactionHash, blockHash and blockNumber: formatting 200 logs costs ~30 ms a receipt,
    which a caller that reads its events elsewhere (issuance) need not pay."""
    account, sent = submitted.account, submitted.pending
    if not sent:
        return []
    fault_point("before-receipt")
    raw_receipts = _wait_receipts(chain, account, sent, timeout)
    fault_point("after-receipt")
    wanted = chain.default_confirmations if confirmations is None else confirmations
    if wanted > 0:
        raw_receipts = _confirm(chain, account, sent, raw_receipts, wanted, timeout)
        reported.record(chain, raw_receipts, wanted)
    chain.fee_spent += sum(int(r["gasUsed"], 16) * int(r.get("effectiveGasPrice") or "0x0", 16) for r in raw_receipts)
    if check:
        failed = [i for i, r in enumerate(raw_receipts) if int(r["status"], 16) != 1]
        if failed:
            err = _failure(chain, sent[failed[0]].call, raw_receipts[failed[0]])
            if len(sent) > 1:
                err = CityPassError(f"{len(failed)} of {len(sent)} transactions failed; the first: {err}")
            raise err
    if brief:
        return [_brief_receipt(r) for r in raw_receipts]
    return [_format_receipt(r) for r in raw_receipts]


def _brief_receipt(raw: dict[str, Any]) -> Receipt:
    return AttributeDict({
        "status": int(raw["status"], 16), "gasUsed": int(raw["gasUsed"], 16),
        "transactionHash": HexBytes(raw["transactionHash"]), "blockHash": HexBytes(raw["blockHash"]),
        "blockNumber": int(raw["blockNumber"], 16),
    })


def call_many(chain: Chain, contract: Any, name: str, arg_lists: Sequence[tuple], chunk: int = 500) -> list[tuple]:
    """One view function called with many argument tuples, as JSON-RPC batches (a plain
    call per holder is ~50x slower for a file of thousands); results as tuples. Encodes with
    eth-abi directly: web3's encode_abi re-validates the whole ABI on every call (~8 ms)."""
    if not arg_lists:
        return []
    fn_abi = contract.get_function_by_name(name).abi
    inputs = tuple(type_of(i) for i in fn_abi["inputs"])
    outputs = [type_of(o) for o in fn_abi["outputs"]]
    encode, decode = _encoder(f"{name}({','.join(inputs)})", inputs), _decoder(outputs)
    out: list[tuple] = []
    for start in range(0, len(arg_lists), chunk):
        part = arg_lists[start : start + chunk]
        calls = [("eth_call", [{"to": contract.address, "data": "0x" + encode(tuple(a)).hex()}, "latest"]) for a in part]
        out += [decode(answer) for answer in chain.rpc_batch(calls)]
    return out


def call(chain: Chain, fn: Any, sender: str | None = None) -> Any:
    """A read-only call whose revert is explained like a transaction's."""
    try:
        return fn.call({"from": sender} if sender else {})
    except Exception as exc:  # web3 raises several types; all carry the revert data in .data
        data = getattr(exc, "data", None)
        if data is None and exc.args and isinstance(exc.args[-1], str) and exc.args[-1].startswith("0x"):
            data = exc.args[-1]
        if data is not None:
            raise CityPassError(explain_revert(data)) from None
        raise CityPassError(f"the call failed on chain {chain.chain_id}: {exc}") from None
