"""The time the next block will have, and read-only calls judged at that time.

A voucher's deadline and every pre-check must use the time of the block that will
include the redemption, not the latest block's: on a quiet chain the latest block can be
hours old (a voucher signed "latest + 5 minutes" would be born expired), and a dev chain
moved forward with `evm_increaseTime` runs ahead of the wall clock. So:

    next_block_time = max(wall clock, latest block time + 1)

Calls made "at the next block" pass that time as an eth_call block override (Anvil, geth,
Besu, reth); a node that refuses overrides (Ganache 7) is asked at the latest block, and
the caller re-judges the time-dependent rules itself (see redemption.explain).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from eth_abi import decode as abi_decode

from citypass.errors import CityPassError
from citypass.reverts import type_of


def next_block_time(chain: Any) -> int:
    return max(int(time.time()), int(chain.now()) + 1)


_OVERRIDES_OK: dict[str, bool] = {}  # rpc url -> whether the node takes block overrides


def call_at(chain: Any, contract: Any, name: str, arg_lists: Sequence[tuple], timestamp: int) -> tuple[list[tuple], bool]:
    """`name` called with each argument tuple, judged at `timestamp`, in one JSON-RPC batch.
    Returns (results as tuples, whether the node applied the time override)."""
    if not arg_lists:
        return [], True
    from citypass.tx import _encoder  # eth-abi directly: web3's encode_abi re-validates the ABI per call (~8 ms)

    fn_abi = contract.get_function_by_name(name).abi
    inputs = tuple(type_of(i) for i in fn_abi["inputs"])
    outputs = [type_of(o) for o in fn_abi["outputs"]]
    encode = _encoder(f"{name}({','.join(inputs)})", inputs)
    datas = ["0x" + encode(tuple(a)).hex() for a in arg_lists]
    url = getattr(chain, "rpc_url", "")
    override = _OVERRIDES_OK.get(url, True)
    if override:
        calls = [("eth_call", [{"to": contract.address, "data": d}, "latest", {}, {"time": hex(timestamp)}]) for d in datas]
        answers = chain.rpc_batch(calls, raise_errors=False)
        if any(not isinstance(a, str) for a in answers):
            _OVERRIDES_OK[url] = override = False
    if not override:
        answers = chain.rpc_batch([("eth_call", [{"to": contract.address, "data": d}, "latest"]) for d in datas])
    out = []
    for a in answers:
        if not isinstance(a, str):
            raise CityPassError(f"{name} failed on chain {chain.chain_id}: {a}")
        out.append(tuple(abi_decode(outputs, bytes.fromhex(a[2:]))))
    return out, override
