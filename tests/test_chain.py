"""The package core: the embedded node, keys, sending transactions, revert messages.

Runs on its own embedded Anvil (one per module, in a temp dir, on a free port), not on
Brownie's network, so it also works under plain pytest.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from citypass import chain as C
from citypass import contract, keys, node, tx
from citypass.errors import ROLE_IDS, CityPassError, UsageError
from citypass.reverts import _MESSAGES, explain_revert, type_of
from citypass.reasons import Reason

DAY = 86_400


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: these tests run on their own node."""


@pytest.fixture(autouse=True)
def fast_keystores(monkeypatch):
    """A light scrypt work factor: the default takes ~1 s per keystore."""
    monkeypatch.setattr(keys, "KEYSTORE_ITERATIONS", 2**10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("citypass-core")


@pytest.fixture(scope="module")
def chain(workdir):
    # No periodic dumps on this node: test_state_survives_a_restart then shows that a clean
    # stop saves the state by itself (test_state_survives_a_crash covers the periodic dump).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(node, "STATE_INTERVAL", 3600)
        ch = C.connect(workdir=workdir)
    yield ch
    node.node_stop(workdir)


@pytest.fixture(scope="module")
def dep(chain, workdir):
    roles = contract.dev_roles()
    return contract.deploy(chain, keys.dev_account(0), workdir=workdir, **roles)


@pytest.fixture(scope="module")
def budget(chain, dep):
    now = chain.now()
    r = tx.send(chain, keys.dev_account(1), dep.contract.functions.createBudget(0, now - DAY, now + 30 * DAY, 100_000, "Sport test"))
    return dep.contract.events.BudgetCreated().process_receipt(r)[0].args.budget


def fresh_holder(label: str) -> str:
    return Account.from_key(keccak(text=f"citypass-core-test-{label}")).address


# ------------------------------------------------------------------ node and chain
def test_connect_starts_the_embedded_node_once(chain, workdir):
    info = node.node_status(workdir)
    assert info is not None and info.rpc_url == chain.rpc_url
    again = C.connect(workdir=workdir)
    assert again.rpc_url == chain.rpc_url  # attached, not a second node
    assert chain.chain_id == 31337 and chain.is_local_dev and chain.embedded
    assert info.port not in (8545, 8561, 8562, 8563, 8564, 8565)


def test_node_start_reports_the_running_node(chain, workdir):
    info, started = node.node_start(workdir)
    assert not started and info.rpc_url == chain.rpc_url


def test_state_survives_a_restart(chain, dep, budget, workdir):
    node.node_stop(workdir)  # a clean stop: Anvil dumps its state on SIGTERM
    assert node.node_status(workdir) is None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(node, "STATE_INTERVAL", 3600)
        restarted = C.connect(workdir=workdir)
    reopened = contract.open_deployment(restarted, workdir=workdir)
    assert reopened.address == dep.address
    assert [b.id for b in contract.budgets(reopened)] == [budget]
    assert contract.budgets(reopened)[0].name == "Sport test"  # events survive too
    # the module's chain fixture must keep working against the new node
    chain.rpc_url = restarted.rpc_url
    chain.w3, chain.session = restarted.w3, restarted.session
    dep.chain = chain
    dep.contract = contract.contract_at(chain, dep.address)


def test_state_survives_a_crash(tmp_path, monkeypatch):
    """A killed node (no clean dump on exit) keeps what the periodic dump saved."""
    monkeypatch.setattr(node, "STATE_INTERVAL", 1)
    ch = C.connect(workdir=tmp_path)
    try:
        dep = contract.deploy(ch, keys.dev_account(0), workdir=tmp_path, **contract.dev_roles())
        time.sleep(2.5)
        os.kill(node.node_status(tmp_path).pid, signal.SIGKILL)
        node.node_stop(tmp_path)  # reaps the process, clears the record
        again = C.connect(workdir=tmp_path)
        assert contract.open_deployment(again, workdir=tmp_path).address == dep.address
    finally:
        node.node_stop(tmp_path)


def test_connect_without_start_refuses_when_stopped(tmp_path):
    with pytest.raises(CityPassError, match="not running: run `citypass node start`"):
        C.connect(workdir=tmp_path, start_node=False)


def test_dead_rpc_is_one_clear_error():
    port = node.free_port()
    with pytest.raises(CityPassError, match=f"cannot reach a node at http://127.0.0.1:{port}"):
        C.connect(f"http://127.0.0.1:{port}")


def test_rpc_must_be_a_url():
    with pytest.raises(CityPassError, match="http"):
        C.connect("localhost:8545")


def test_anvil_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(node.shutil, "which", lambda name: None)
    monkeypatch.setattr(node, "_PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(node.sys, "executable", str(tmp_path / "python"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CityPassError, match=r"Anvil not found: run `make setup` or pass --rpc URL"):
        node.find_anvil()


def test_advance_time_moves_the_chain_clock(chain):
    before = chain.now()
    assert chain.advance_time(3600) >= before + 3600


# ------------------------------------------------------------------ keys
def test_dev_accounts_are_anvils(chain):
    assert keys.dev_account(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert keys.load_account("dev:3", chain).address == keys.dev_account(3).address


def test_dev_accounts_refused_off_dev_chains(chain):
    public = C.Chain(w3=chain.w3, chain_id=11155111, rpc_url="http://example.invalid")
    with pytest.raises(CityPassError, match="public Anvil dev key, refused on chain 11155111"):
        keys.load_account("dev:0", public)
    with pytest.raises(UsageError, match="dev:0 .. dev:9"):
        keys.load_account("dev:12", chain)


def test_keystore_roundtrip(chain, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYPASS_PASSWORD_POOL_1", "synthetic-test-password")
    entry = keys.create_keystore(tmp_path, "pool-1")
    assert oct(entry.path.stat().st_mode & 0o777) == "0o600"
    assert [e.address for e in keys.list_keystores(tmp_path)] == [entry.address]
    assert "synthetic" not in entry.path.read_text()  # encrypted, password not stored
    account = keys.load_account("pool-1", chain, workdir=tmp_path)
    assert account.address == entry.address
    by_path = keys.load_account(str(entry.path), chain, workdir=tmp_path / "elsewhere")
    assert by_path.address == entry.address


def test_keystore_errors(chain, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYPASS_PASSWORD", "right")
    key = keccak(text="citypass-core-test-import")
    entry = keys.create_keystore(tmp_path, "imported", "0x" + key.hex())
    assert entry.address == Account.from_key(key).address
    with pytest.raises(CityPassError, match="exists already"):
        keys.create_keystore(tmp_path, "imported")
    with pytest.raises(CityPassError, match="is in keystore 'imported' already"):
        keys.create_keystore(tmp_path, "again", key)
    with pytest.raises(CityPassError, match="not a valid private key"):
        keys.create_keystore(tmp_path, "bad", "0x1234")
    with pytest.raises(UsageError, match="account name"):
        keys.create_keystore(tmp_path, "no spaces please")
    with pytest.raises(CityPassError, match="no account 'missing'.*known: imported"):
        keys.load_account("missing", chain, workdir=tmp_path)
    keys._unlocked.clear()
    with pytest.raises(CityPassError, match="wrong password for account 'imported'"):
        keys.load_account("imported", chain, workdir=tmp_path, password="wrong")
    monkeypatch.delenv("CITYPASS_PASSWORD")
    monkeypatch.setattr(keys.sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(CityPassError, match="set CITYPASS_PASSWORD_IMPORTED or CITYPASS_PASSWORD"):
        keys.load_account("imported", chain, workdir=tmp_path)


# ------------------------------------------------------------------ transactions
def test_refusal_is_explained_before_sending(chain, dep):
    stranger = keys.dev_account(7)
    nonce = chain.w3.eth.get_transaction_count(stranger.address)
    with pytest.raises(CityPassError, match=f"account {stranger.address} lacks the PAUSER role"):
        tx.send(chain, stranger, dep.contract.functions.pause())
    assert chain.w3.eth.get_transaction_count(stranger.address) == nonce  # nothing was sent


def test_failure_after_sending_is_explained(chain, dep):
    """With gas given there is no estimate: the chain's refusal comes back from the receipt."""
    stranger = keys.dev_account(7)
    with pytest.raises(CityPassError, match=f"failed in block \\d+: account {stranger.address} lacks the PAUSER role"):
        tx.send(chain, stranger, dep.contract.functions.pause(), gas=100_000)
    with pytest.raises(CityPassError, match="failed in block \\d+: out of gas"):
        tx.send(chain, keys.dev_account(6), dep.contract.functions.pause(), gas=22_000)


def test_no_eth_is_one_clear_error(chain, dep):
    broke = Account.from_key(keccak(text="citypass-core-test-broke"))
    tx.send(chain, keys.dev_account(0), dep.contract.functions.grantRole(ROLE_IDS["PAUSER"], broke.address))
    with pytest.raises(CityPassError, match=f"account {broke.address} has no ETH to pay gas on chain 31337"):
        tx.send(chain, broke, dep.contract.functions.pause())


def test_send_returns_a_decodable_receipt(chain, dep):
    holder = fresh_holder("single")
    receipt = tx.send(chain, keys.dev_account(3), dep.contract.functions.enrollPasses([holder], chain.now() + DAY))
    assert receipt.status == 1
    (event,) = dep.contract.events.PassEnrolled().process_receipt(receipt)
    assert event.args.holder == holder


def test_legacy_gas_price_for_nodes_without_1559(chain, dep, monkeypatch):
    """fees() falls back to a gas price when blocks have no base fee; such a tx signs the old way."""
    blocks = lambda calls, raise_errors=True: [{"number": "0x1"}, None]  # noqa: E731
    monkeypatch.setattr(chain, "rpc_batch", blocks)
    monkeypatch.setattr(chain, "rpc", lambda method, params=None: hex(3 * 10**9))
    assert tx.fees(chain) == {"gasPrice": 3 * 10**9}
    monkeypatch.undo()
    monkeypatch.setattr(tx, "fees", lambda ch: {"gasPrice": 2 * 10**9})
    receipt = tx.send(chain, keys.dev_account(6), dep.contract.functions.pause())
    assert receipt.status == 1 and receipt.type == 0 and receipt.effectiveGasPrice == 2 * 10**9
    tx.send(chain, keys.dev_account(6), dep.contract.functions.unpause())


def test_send_many_pipelines(chain, dep):
    """All 300 are handed to the node before any receipt is awaited, with consecutive nonces
    (the speed this gives is measured by `make bench`, not asserted here)."""
    holders = [fresh_holder(f"many-{i}") for i in range(300)]
    until = chain.now() + 365 * DAY
    registrar = keys.dev_account(3)
    first_nonce = chain.w3.eth.get_transaction_count(registrar.address)
    sent = []
    receipts = tx.send_many(chain, registrar, [dep.contract.functions.enrollPasses([h], until) for h in holders],
                            on_sent=lambda i, h: sent.append((i, h)))
    assert [i for i, _ in sent] == list(range(300))
    assert all(r.status == 1 for r in receipts)
    assert ["0x" + bytes(r.transactionHash).hex() for r in receipts] == [h for _, h in sent]
    nonces = [int(chain.rpc("eth_getTransactionByHash", [h])["nonce"], 16) for _, h in sent]
    assert nonces == list(range(first_nonce, first_nonce + 300))
    assert [contract.pass_info(dep, h).status for h in holders[::50]] == ["active"] * 6


def test_send_many_validates_all_before_sending_any(chain, dep):
    registrar = keys.dev_account(3)
    taken = fresh_holder("many-0")  # enrolled above
    calls = [dep.contract.functions.enrollPasses([fresh_holder(f"v-{i}")], chain.now() + DAY) for i in range(3)]
    calls.insert(2, dep.contract.functions.enrollPasses([taken], chain.now() + DAY))
    nonce = chain.w3.eth.get_transaction_count(registrar.address)
    with pytest.raises(CityPassError, match=f"call 3 of 4 would fail, nothing was sent: {taken} already has a city pass"):
        tx.send_many(chain, registrar, calls)
    assert chain.w3.eth.get_transaction_count(registrar.address) == nonce


def test_confirmations_wait_for_blocks(chain, dep):
    """With N confirmations the receipt's block has N blocks on top (mined here by a helper)."""
    import threading

    def mine():
        for _ in range(2):
            time.sleep(0.3)
            chain.rpc("evm_mine")

    miner = threading.Thread(target=mine)
    miner.start()
    receipt = tx.send(chain, keys.dev_account(3), dep.contract.functions.enrollPasses([fresh_holder("conf")], chain.now() + DAY),
                      confirmations=2)
    miner.join()
    assert chain.w3.eth.block_number >= receipt.blockNumber + 2


# ------------------------------------------------------------------ contract reads and address book
def test_addressbook_records_chain_block_and_genesis(chain, dep, workdir):
    book = json.loads((workdir / "addressbook.json").read_text())
    entry = book["31337"]
    assert entry["address"] == dep.address and entry["block"] == dep.block
    assert entry["genesis"] == chain.rpc("eth_getBlockByNumber", ["0x0", False])["hash"]


def test_open_deployment_errors(chain, dep, tmp_path):
    with pytest.raises(CityPassError, match="no CityPass deployed on chain 31337 .*run `citypass deploy`"):
        contract.open_deployment(chain, workdir=tmp_path)
    with pytest.raises(CityPassError, match="no contract at 0x0000000000000000000000000000000000001234"):
        contract.open_deployment(chain, "0x0000000000000000000000000000000000001234")
    with pytest.raises(UsageError, match="bad checksum"):
        contract.open_deployment(chain, dep.address[:-1] + ("a" if dep.address[-1] != "a" else "b").swapcase())
    # Identity is the deployment transaction and the code, not block 0 (it changes at each restart).
    (tmp_path / "addressbook.json").write_text(json.dumps({"31337": {"address": dep.address, "block": 0, "genesis": "0x" + "ab" * 32}}))
    assert contract.open_deployment(chain, workdir=tmp_path).address == dep.address
    (tmp_path / "addressbook.json").write_text(json.dumps({"31337": {"address": dep.address, "block": 0, "tx": "0x" + "ab" * 32}}))
    with pytest.raises(CityPassError, match="the node was reset.*`citypass deploy` starts a new, empty contract"):
        contract.open_deployment(chain, workdir=tmp_path)


def test_find_budget_by_serial_or_id(dep, budget):
    assert contract.find_budget(dep, "1").id == budget
    assert contract.find_budget(dep, str(budget)).serial == 1
    with pytest.raises(CityPassError, match="budget 9 does not exist"):
        contract.find_budget(dep, "9")


# ------------------------------------------------------------------ revert messages
def _sample(kind: str):
    if kind == "address":
        return "0x" + "11" * 20
    if kind == "bool":
        return True
    if kind == "string":
        return "x"
    if kind.startswith("bytes"):
        return b"\x01" * int(kind[5:] or 1)
    return 3


def test_every_contract_error_has_a_sentence():
    abi = contract.load_artifact()["abi"]
    errors = [e for e in abi if e["type"] == "error"]
    assert errors
    for e in errors:
        types = [type_of(p) for p in e["inputs"]]
        data = keccak(text=f"{e['name']}({','.join(types)})")[:4] + abi_encode(types, [_sample(t) for t in types])
        text = explain_revert(data)
        assert e["name"] in _MESSAGES, f"no message for {e['name']}"
        assert "the contract refused" not in text and "unknown error" not in text, (e["name"], text)


def test_role_and_reason_messages():
    role_error = keccak(text="AccessControlUnauthorizedAccount(address,bytes32)")[:4]
    data = role_error + abi_encode(["address", "bytes32"], ["0x" + "22" * 20, keccak(text="ISSUER_ROLE")])
    assert explain_revert(data) == "account 0x2222222222222222222222222222222222222222 lacks the ISSUER role"
    refused = keccak(text="CreditMoveRefused(uint8,address,address,uint256)")[:4]
    data = refused + abi_encode(["uint8", "address", "address", "uint256"], [Reason.PassExpired, "0x" + "33" * 20, "0x" + "44" * 20, 1 << 128])
    assert Reason.PassExpired.message in explain_revert("0x" + data.hex())
    assert "budget #1" in explain_revert(data)


def test_builtin_and_unknown_reverts():
    error = keccak(text="Error(string)")[:4] + abi_encode(["string"], ["plain reason"])
    assert explain_revert(error) == "the transaction was reverted: plain reason"
    panic = keccak(text="Panic(uint256)")[:4] + abi_encode(["uint256"], [0x11])
    assert "overflow" in explain_revert(panic)
    assert "without a reason" in explain_revert(b"")
    assert "unknown error data 0xdeadbeef" in explain_revert("0xdeadbeef")


def test_dev_keys_need_a_development_node_not_just_its_chain_id():
    """A private Besu/geth network may use chain id 1337 too: dev keys and time travel are only
    for nodes that say they are Anvil, Ganache or Hardhat."""
    from web3 import Web3

    from citypass.chain import Chain

    def chain(chain_id: int, client: str) -> Chain:
        return Chain(w3=Web3(), chain_id=chain_id, rpc_url="http://127.0.0.1:1", client=client)

    assert chain(31337, "anvil/v1.7.1").is_local_dev
    assert chain(1337, "Ganache/v7.9.2/EthereumJS TestRPC/v7.9.2/ethereum-js").is_local_dev
    assert not chain(1337, "besu/v24.1.0/linux-x86_64/openjdk-java-17").is_local_dev
    assert not chain(1337, "").is_local_dev
    assert not chain(1, "anvil/v1.7.1").is_local_dev
