"""The RPC endpoint for browser wallets: forwards only what a wallet needs, to the chain the
server runs on, and refuses everything else with a JSON-RPC error.

A wallet reads the chain (blocks, balances, nonces, calls, gas and fee data, logs,
receipts) and sends transactions it signed itself (`eth_sendRawTransaction`). Nothing
else gets through: the embedded Anvil's dev accounts are unlocked, so `eth_sendTransaction`,
`eth_sign*`, `personal_*`, `anvil_*`, `evm_*`, `hardhat_*`, `debug_*`, `txpool_*`, ...
would let a page visitor act as the municipality.

Answers are HTTP 200 with JSON-RPC objects (as wallets and viem expect), errors included;
a reverted eth_call comes back as the node's error with its revert data. Only the body
size (413, in the Guard) and the rate limit (429) use other statuses.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

log = logging.getLogger("citypass.web")

ALLOWED_METHODS = frozenset({
    "eth_chainId", "net_version", "eth_blockNumber", "eth_getBlockByNumber", "eth_getBlockByHash",
    "eth_getBalance", "eth_getTransactionCount", "eth_call", "eth_estimateGas", "eth_gasPrice",
    "eth_maxPriorityFeePerGas", "eth_feeHistory", "eth_getLogs", "eth_getTransactionReceipt",
    "eth_getTransactionByHash", "eth_getCode", "eth_sendRawTransaction", "web3_clientVersion", "eth_syncing",
})
MAX_BATCH = 20
MAX_PARAMS = 8  # no wallet method takes more
RPC_TIMEOUT = 30

# JSON-RPC 2.0 error codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) and len(value) <= 128 or (
        isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53)


def screen(call: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the request to forward, rebuilt from its parts only; None) or (None, the error answer)."""
    if not isinstance(call, dict):
        return None, _error(None, INVALID_REQUEST, "a JSON-RPC request is an object")
    id_ = call.get("id")
    if not _valid_id(id_):
        return None, _error(None, INVALID_REQUEST, "id must be a number, a string (up to 128 characters) or null")
    if call.get("jsonrpc") != "2.0":
        return None, _error(id_, INVALID_REQUEST, 'jsonrpc must be "2.0"')
    method = call.get("method")
    if not isinstance(method, str):
        return None, _error(id_, INVALID_REQUEST, "method must be a string")
    if method not in ALLOWED_METHODS:
        shown = method[:64] + ("..." if len(method) > 64 else "")
        return None, _error(id_, METHOD_NOT_FOUND, f"method {shown!r} is not available through this endpoint "
                                                   "(wallets sign in the browser and send raw transactions)")
    params = call.get("params", [])
    if not isinstance(params, list) or len(params) > MAX_PARAMS:
        return None, _error(id_, INVALID_PARAMS, f"params must be a list of at most {MAX_PARAMS} values")
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}, None


class WalletRpc:
    """Forwards screened calls to `upstream` (the chain's RPC URL) in one batch."""

    def __init__(self, upstream: str, session: requests.Session | None = None):
        self.upstream = upstream
        self.session = session or requests.Session()

    def handle(self, body: bytes) -> Any:
        """The JSON answer (an object, or a list for a batch) to one HTTP request body."""
        try:
            payload = json.loads(body, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            return _error(None, PARSE_ERROR, "the request body is not valid JSON")
        if isinstance(payload, list):
            if not payload:
                return _error(None, INVALID_REQUEST, "an empty batch")
            if len(payload) > MAX_BATCH:
                return _error(None, INVALID_REQUEST, f"a batch holds at most {MAX_BATCH} calls, got {len(payload)}")
            return self._run(payload)
        return self._run([payload])[0]

    def _run(self, calls: list[Any]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any] | None] = []
        forward: list[tuple[int, dict[str, Any]]] = []
        for i, call in enumerate(calls):
            request, error = screen(call)
            answers.append(error)
            if request is not None:
                forward.append((i, request))
        if forward:
            # Our own ids upstream, so a caller's duplicate or odd ids cannot confuse the join.
            upstream = [{**req, "id": n} for n, (_, req) in enumerate(forward)]
            results = self._post(upstream)
            for n, (i, req) in enumerate(forward):
                answer = results.get(n)
                if answer is None:
                    answers[i] = _error(req["id"], INTERNAL_ERROR, "the chain node does not answer; try again")
                    continue
                out: dict[str, Any] = {"jsonrpc": "2.0", "id": req["id"]}
                if "error" in answer and isinstance(answer["error"], dict):
                    e = answer["error"]
                    out["error"] = {k: e[k] for k in ("code", "message", "data") if k in e}
                    out["error"].setdefault("code", INTERNAL_ERROR)
                    out["error"].setdefault("message", "the node refused the call")
                else:
                    out["result"] = answer.get("result")
                answers[i] = out
        return [a for a in answers if a is not None]

    def _post(self, upstream: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        try:
            r = self.session.post(self.upstream, data=json.dumps(upstream), timeout=RPC_TIMEOUT,
                                  headers={"Content-Type": "application/json"})
            data = r.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("wallet RPC: the node at %s failed: %s", self.upstream, exc.__class__.__name__)
            return {}
        if isinstance(data, dict):  # a node that answers a whole batch with one error
            err = data.get("error") if isinstance(data.get("error"), dict) else {"message": "the node refused the batch"}
            return {n: {"error": err} for n in range(len(upstream))}
        if not isinstance(data, list):
            return {}
        return {a["id"]: a for a in data if isinstance(a, dict) and isinstance(a.get("id"), int)}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
