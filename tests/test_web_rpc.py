"""The wallet RPC endpoint: what a wallet needs gets through, everything else is refused with
a JSON-RPC error (HTTP 200) and never reaches the node; batches, limits, reverts and a
dead node are answered the way wallets and viem expect."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from citypass import keys
from citypass.web import rpc as R
from tests.web_helpers import DEV, POOL, Server, free_port, make_world, stop_node

# Every method a wallet page must never reach (the unlocked dev accounts sign for these),
# plus node-administration namespaces; `eth_sendTransaction` and the signing methods first.
FORBIDDEN = [
    "eth_sendTransaction", "eth_sign", "eth_signTransaction", "eth_signTypedData", "eth_signTypedData_v3",
    "eth_signTypedData_v4", "eth_accounts", "eth_requestAccounts", "eth_coinbase", "eth_newFilter",
    "eth_getFilterChanges", "eth_subscribe", "eth_getProof", "eth_createAccessList", "eth_mining", "eth_submitWork",
    "personal_sign", "personal_unlockAccount", "personal_sendTransaction", "personal_listAccounts",
    "personal_importRawKey", "personal_newAccount", "personal_ecRecover",
    "anvil_setBalance", "anvil_impersonateAccount", "anvil_autoImpersonateAccount", "anvil_mine", "anvil_setCode",
    "anvil_setStorageAt", "anvil_reset", "anvil_dumpState", "anvil_loadState", "anvil_setNonce",
    "anvil_setAutomine", "anvil_reorg", "anvil_rollback", "anvil_nodeInfo", "anvil_dropTransaction",
    "evm_mine", "evm_snapshot", "evm_revert", "evm_increaseTime", "evm_setNextBlockTimestamp", "evm_setAutomine",
    "hardhat_setBalance", "hardhat_impersonateAccount", "hardhat_reset", "hardhat_mine",
    "debug_traceTransaction", "debug_traceCall", "debug_setHead", "txpool_content", "txpool_inspect",
    "txpool_status", "admin_peers", "admin_addPeer", "miner_start", "ots_getTransactionBySenderAndNonce",
    "engine_newPayloadV3", "web3_sha3", "rpc_modules", "wallet_switchEthereumChain", "wallet_addEthereumChain",
    "", " eth_chainId", "ETH_CHAINID", "eth_chainId\u0000", "eth_call;evm_mine",
]


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own embedded node, not Brownie's."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("citypass-web-rpc"))
    yield w
    stop_node(w.workdir)


@pytest.fixture(scope="module")
def server(world):
    with Server(world.service) as s:
        yield s


def chain_state(world) -> tuple:
    w3 = world.dep.chain.w3
    return (w3.eth.block_number, w3.eth.get_transaction_count(DEV[0]), w3.eth.get_balance(DEV[9]),
            world.dep.chain.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"])


@pytest.mark.parametrize("method", FORBIDDEN)
def test_forbidden_method(server, world, method):
    before = chain_state(world)
    params = {"eth_sendTransaction": [{"from": DEV[0], "to": DEV[9], "value": "0x1"}],
              "anvil_setBalance": [DEV[9], "0x1"], "evm_increaseTime": ["0x1000"],
              "eth_sign": [DEV[0], "0xdeadbeef"], "personal_sign": ["0xdeadbeef", DEV[0]]}.get(method, [])
    answer = server.rpc(method, params, id_=7)
    assert answer["jsonrpc"] == "2.0" and answer["id"] == 7 and "result" not in answer, answer
    assert answer["error"]["code"] == R.METHOD_NOT_FOUND and "not available" in answer["error"]["message"]
    assert chain_state(world) == before  # it never reached the node


def test_forbidden_list_really_is_forbidden():
    assert not set(FORBIDDEN) & R.ALLOWED_METHODS


def test_wallet_reads(server, world):
    w3 = world.dep.chain.w3
    assert server.rpc("eth_chainId")["result"] == "0x7a69"
    assert server.rpc("net_version")["result"] == "31337"
    assert int(server.rpc("eth_blockNumber")["result"], 16) == w3.eth.block_number
    assert int(server.rpc("eth_getBalance", [POOL, "latest"])["result"], 16) == w3.eth.get_balance(POOL)
    assert int(server.rpc("eth_getTransactionCount", [POOL, "latest"])["result"], 16) == w3.eth.get_transaction_count(POOL)
    assert server.rpc("eth_getCode", [world.dep.address, "latest"])["result"].startswith("0x60")
    block = server.rpc("eth_getBlockByNumber", ["latest", False])["result"]
    assert server.rpc("eth_getBlockByHash", [block["hash"], False])["result"]["number"] == block["number"]
    for method, params in [("eth_gasPrice", []), ("eth_maxPriorityFeePerGas", []),
                           ("eth_feeHistory", ["0x4", "latest", [25, 75]]), ("eth_syncing", []),
                           ("web3_clientVersion", []),
                           ("eth_getLogs", [{"address": world.dep.address, "fromBlock": "0x0", "toBlock": "latest"}])]:
        answer = server.rpc(method, params)
        assert "result" in answer, (method, answer)
    paused = world.dep.contract.functions.paused()._encode_transaction_data()
    call = server.rpc("eth_call", [{"to": world.dep.address, "data": paused}, "latest"])
    assert int(call["result"], 16) == 0
    assert "result" in server.rpc("eth_estimateGas", [{"from": POOL, "to": DEV[9], "value": "0x1"}])


def test_reverted_call_carries_its_revert_data(server, world):
    """A non-admin's grantRole reverts with AccessControlUnauthorizedAccount: the data comes back."""
    f = world.dep.contract.functions
    data = f.grantRole(f.ISSUER_ROLE().call(), POOL)._encode_transaction_data()
    for method in ("eth_call", "eth_estimateGas"):
        params = [{"from": POOL, "to": world.dep.address, "data": data}] + (["latest"] if method == "eth_call" else [])
        answer = server.rpc(method, params)
        assert "result" not in answer, answer
        err = answer["error"]
        assert err["code"] == 3 and "revert" in err["message"]
        assert err["data"].startswith("0xe2517d3f")  # AccessControlUnauthorizedAccount(address,bytes32)


def test_raw_transaction_signed_in_the_wallet(server, world):
    """The stand-in wallet's path: sign locally, send raw through /rpc, read the receipt through /rpc."""
    sender = Account.from_key(keys.dev_account(9).key)
    w3 = world.dep.chain.w3
    nonce = int(server.rpc("eth_getTransactionCount", [sender.address, "pending"])["result"], 16)
    tx = {"to": POOL, "value": 12345, "gas": 21_000, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9,
          "nonce": nonce, "chainId": 31337, "type": 2}
    raw = "0x" + bytes(sender.sign_transaction(tx).raw_transaction).hex()
    before = w3.eth.get_balance(POOL)
    tx_hash = server.rpc("eth_sendRawTransaction", [raw])["result"]
    receipt = server.rpc("eth_getTransactionReceipt", [tx_hash])["result"]
    assert receipt["status"] == "0x1"
    assert server.rpc("eth_getTransactionByHash", [tx_hash])["result"]["hash"] == tx_hash
    assert w3.eth.get_balance(POOL) == before + 12345
    again = server.rpc("eth_sendRawTransaction", [raw])
    assert "error" in again and "result" not in again  # the node's own refusal, passed on


def test_batch_keeps_order_and_ids(server):
    calls = [{"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
             {"jsonrpc": "2.0", "id": 2, "method": "eth_sendTransaction", "params": [{}]},
             {"jsonrpc": "2.0", "id": None, "method": "net_version"},
             "junk",
             {"jsonrpc": "1.0", "id": 5, "method": "eth_chainId"},
             {"jsonrpc": "2.0", "id": 6, "method": "eth_chainId", "params": {"a": 1}},
             {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"}]
    r = server.post("/rpc", calls)
    assert r.status_code == 200
    answers = r.json()
    assert [a["id"] for a in answers] == ["a", 2, None, None, 5, 6, 2]
    assert answers[0]["result"] == "0x7a69" and answers[2]["result"] == "31337"
    assert [a.get("error", {}).get("code") for a in answers] == [
        None, R.METHOD_NOT_FOUND, None, R.INVALID_REQUEST, R.INVALID_REQUEST, R.INVALID_PARAMS, None]
    assert answers[6]["result"].startswith("0x")


def test_batch_limits_and_malformed_bodies(server):
    too_many = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(R.MAX_BATCH + 1)]
    for body, code in [(json.dumps(too_many).encode(), R.INVALID_REQUEST), (b"[]", R.INVALID_REQUEST),
                       (b"{not json", R.PARSE_ERROR), (b"", R.PARSE_ERROR), (b"NaN", R.PARSE_ERROR),
                       (b"[" * 5000 + b"]" * 5000, R.PARSE_ERROR), (b'"eth_chainId"', R.INVALID_REQUEST),
                       (b'{"jsonrpc":"2.0","id":{"x":1},"method":"eth_chainId"}', R.INVALID_REQUEST),
                       (b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[1,2,3,4,5,6,7,8,9]}', R.INVALID_PARAMS)]:
        r = server.post("/rpc", raw=body)
        assert r.status_code == 200, (body[:40], r.status_code)
        assert r.json()["error"]["code"] == code, (body[:40], r.json())
    just_enough = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(R.MAX_BATCH)]
    assert len(server.post("/rpc", just_enough).json()) == R.MAX_BATCH


def test_dead_node_is_a_json_rpc_error():
    dead = R.WalletRpc(f"http://127.0.0.1:{free_port()}")
    answer = dead.handle(b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
    assert answer == {"jsonrpc": "2.0", "id": 1,
                      "error": {"code": R.INTERNAL_ERROR, "message": "the chain node does not answer; try again"}}
