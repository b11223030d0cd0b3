"""A connection to one chain: the embedded Anvil by default, any JSON-RPC node with --rpc.

`connect()` is the one way in. It checks the node answers before anything else runs, so
"node not running" is one clear line, not a stack of connection errors.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from web3 import HTTPProvider, Web3

from citypass import node, rpc_limits
from citypass.errors import CityPassError

LOCAL_DEV_CHAIN_IDS = {31337, 1337}  # Anvil/Hardhat, Ganache
# A private Besu/geth network may also use chain id 1337: dev keys and time travel only
# where the node itself says it is a development node.
LOCAL_DEV_CLIENTS = ("anvil", "ganache", "hardhat")
DEFAULT_CONFIRMATIONS = 2  # blocks on top of a transaction's block on a real network
RPC_TIMEOUT = 60
MAX_REQUEST_BYTES = 2_000_000  # per HTTP request; Anvil refuses a 2.6 MB batch


@dataclass
class Chain:
    w3: Web3
    chain_id: int
    rpc_url: str
    embedded: bool = False  # the node is this work directory's own Anvil
    workdir: Path = field(default_factory=lambda: Path(".citypass"))
    session: requests.Session = field(default_factory=requests.Session)
    client: str = ""  # web3_clientVersion, e.g. "anvil/v1.7.1"
    confirmations: int | None = None  # blocks on top of a transaction before it counts as done (None: the default)
    notify: Any = None  # callable(str) for "waiting..." messages (rate limits, blocks); None: stderr
    max_fee: int | None = None  # wei: the most the sends through this connection may pay in fees (--max-fee)
    fee_spent: int = 0  # wei paid in fees by the sends through this connection so far

    @property
    def is_local_dev(self) -> bool:
        """Anvil/Ganache dev chains: public dev keys allowed, time can be moved, no confirmations."""
        return self.chain_id in LOCAL_DEV_CHAIN_IDS and self.client.lower().startswith(LOCAL_DEV_CLIENTS)

    @property
    def default_confirmations(self) -> int:
        """Blocks on top of a transaction's block before a send reports it done: the chain's
        `confirmations` if set (`--confirmations N`), else 0 on dev chains and 2 elsewhere."""
        if self.confirmations is not None:
            return self.confirmations
        return 0 if self.is_local_dev else DEFAULT_CONFIRMATIONS

    def say(self, message: str) -> None:
        """A message for the human while something waits (never data): `notify`, else stderr."""
        if self.notify is not None:
            self.notify(message)
        else:
            print(f"note: {message}", file=sys.stderr, flush=True)

    @property
    def name(self) -> str:
        if self.embedded:
            return f"embedded Anvil (chain {self.chain_id})"
        return f"chain {self.chain_id} at {self.rpc_url}"

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One raw JSON-RPC call; node errors become CityPassError."""
        return self.rpc_batch([(method, params or [])])[0]

    def rpc_batch(self, calls: list[tuple[str, list[Any]]], *, raise_errors: bool = True) -> list[Any]:
        """Several JSON-RPC calls in one HTTP request (much faster than one request each).

        With raise_errors=False an item that failed is returned as its error object
        ({"code", "message", "data"}) wrapped in `RpcError`."""
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        bodies = [json.dumps(item, separators=(",", ":")) for item in payload]
        if len(calls) > 1 and sum(map(len, bodies)) > MAX_REQUEST_BYTES:
            # Nodes refuse big requests ("Invalid request" from Anvil): split, keep the order.
            half = len(calls) // 2
            return (self.rpc_batch(calls[:half], raise_errors=raise_errors)
                    + self.rpc_batch(calls[half:], raise_errors=raise_errors))
        try:
            r = self.session.post(self.rpc_url, data="[" + ",".join(bodies) + "]", timeout=RPC_TIMEOUT,
                                  headers={"Content-Type": "application/json"})
            r.raise_for_status()
            answers = r.json()
        except requests.RequestException as exc:
            raise CityPassError(f"the node at {self.rpc_url} does not answer: {exc.__class__.__name__}") from exc
        except ValueError as exc:
            raise CityPassError(f"the node at {self.rpc_url} sent a malformed answer") from exc
        if isinstance(answers, dict):  # some nodes answer a batch they refuse with one error
            raise CityPassError(f"the node at {self.rpc_url} refused a batch request: {answers.get('error')}")
        by_id = {a.get("id"): a for a in answers}
        results = []
        for i, (method, _) in enumerate(calls):
            answer = by_id.get(i, {"error": {"message": "no answer"}})
            if "error" in answer:
                err = RpcError(method, answer["error"])
                if raise_errors:
                    raise CityPassError(str(err))
                results.append(err)
            else:
                results.append(answer.get("result"))
        return results

    def now(self) -> int:
        """Timestamp of the latest block (the chain's clock, not this computer's)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance_time(self, seconds: int) -> int:
        """Moves a dev chain's clock forward and mines a block; returns the new time."""
        if not self.is_local_dev:
            raise CityPassError(f"cannot move the clock of {self.name}: only local dev chains allow it")
        self.rpc("evm_increaseTime", [int(seconds)])
        self.rpc("evm_mine", [])
        return self.now()


class RpcError(Exception):
    """A JSON-RPC error answer: `data` carries revert data when the node gives it."""

    def __init__(self, method: str, error: dict[str, Any]):
        self.method = method
        self.code = error.get("code")
        self.message = str(error.get("message", ""))
        data = error.get("data")
        if isinstance(data, dict):  # Ganache puts revert data under data.result / data.data
            data = data.get("data") or data.get("result")
        self.data = data if isinstance(data, str) else None
        super().__init__(f"{method}: {self.message}")


def connect(
    rpc: str | None = None,
    *,
    workdir: Path | str = ".citypass",
    start_node: bool = True,
    confirmations: int | None = None,
    max_fee: int | None = None,
) -> Chain:
    """Connects to `rpc` (or $CITYPASS_RPC), else to the embedded Anvil of `workdir`,
    starting it if needed (start_node=False: only attach; error if it does not run).
    `confirmations`: blocks on top of a transaction before any send of this chain reports it
    done (default: 0 on dev chains, 2 elsewhere; see Chain.default_confirmations).
    `max_fee`: wei, a cap on the fees all sends through this connection pay together
    (tx.send_many refuses a send whose worst case would go above it)."""
    workdir = Path(workdir)
    rpc = rpc or os.environ.get("CITYPASS_RPC") or None
    embedded = rpc is None
    if embedded:
        info = node.node_status(workdir)
        if info is None:
            if not start_node:
                raise CityPassError(f"the embedded node of {workdir} is not running: run `citypass node start`")
            info, _ = node.node_start(workdir)
        rpc = info.rpc_url
    assert rpc is not None
    if not rpc.startswith(("http://", "https://")):
        raise CityPassError(f"--rpc must be an http(s):// URL, got {rpc!r}")
    session = requests.Session()
    limits = rpc_limits.mount(session)  # HTTP 429 and dropped connections: wait and ask again
    chain_id = _chain_id(session, rpc)
    # No retries of a refused connection: a dead node must fail at once with one line.
    # web3 asks the chain id before every eth_call it validates (an extra round trip per
    # call); the connection is pinned to `chain_id` above, so only that answer is cached.
    provider = HTTPProvider(rpc, session=session, exception_retry_configuration=None,
                            request_kwargs={"timeout": RPC_TIMEOUT},
                            cache_allowed_requests=True, cacheable_requests={"eth_chainId"})
    w3 = Web3(provider)
    chain = Chain(w3=w3, chain_id=chain_id, rpc_url=rpc, embedded=embedded, workdir=workdir, session=session,
                  client=_client_version(session, rpc), confirmations=confirmations, max_fee=max_fee)
    limits.say = chain.say
    return chain


def _client_version(session: requests.Session, rpc: str) -> str:
    """The node's web3_clientVersion, or "" if it does not say."""
    try:
        r = session.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion", "params": []}, timeout=10)
        return str(r.json().get("result") or "")
    except (requests.RequestException, ValueError, AttributeError):
        return ""


def _chain_id(session: requests.Session, rpc: str) -> int:
    try:
        r = session.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=10)
        return int(r.json()["result"], 16)
    except requests.ConnectionError as exc:
        raise CityPassError(f"cannot reach a node at {rpc}: connection refused (is it running?)") from exc
    except requests.Timeout as exc:
        raise CityPassError(f"the node at {rpc} did not answer within 10 s") from exc
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise CityPassError(f"{rpc} is not an Ethereum JSON-RPC node (eth_chainId failed)") from exc
