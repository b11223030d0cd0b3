"""The Safe pieces CityPass encodes itself (safe-eth-py does not fit beside Brownie's pins):
the EIP-712 SafeTx hash against the Safe contract's own getTransactionHash, signatures
recovered, and the packaged Safe artifacts against npm's build, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from citypass import chain as C
from citypass import keys, node
from citypass import safe as S
from citypass.errors import CityPassError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: these tests run on their own node."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("citypass-safe-hash")
    chain = C.connect(workdir=workdir)
    try:
        dev = [keys.load_account(f"dev:{i}", chain) for i in range(4)]
        info = S.create_safe(chain, dev[0], [d.address for d in dev[1:4]], 2, workdir=workdir)
        yield chain, info, dev
    finally:
        node.node_stop(workdir)


def test_the_packaged_safe_artifacts_are_npms_as_shipped(tmp_path):
    fresh = S.sync_artifacts(ROOT, tmp_path / "Safe.json")
    assert json.loads(fresh.read_text()) == json.loads(S.ARTIFACT.read_text()), \
        "stale Safe artifacts: run `python -m citypass.safe --sync-artifacts`"
    npm = json.loads((ROOT / S.NPM_BUILD / S.PARTS["Safe"]).read_text())
    assert S.artifacts()["Safe"]["bytecode"] == npm["bytecode"] and npm["contractName"] == "Safe"


@pytest.mark.parametrize("label, value, data, nonce", [
    ("empty call", 0, b"", 0),
    ("a role grant's size", 0, keccak(text="grant") * 3, 1),
    ("long data, value", 10**18, bytes(range(256)) * 9, 7),
    ("large nonce", 1, b"\x00", 2**64 + 3),
])
def test_the_safetx_hash_equals_the_safe_contracts(world, label, value, data, nonce):
    chain, info, dev = world
    tx = S.SafeTx(chain.chain_id, info.address, dev[0].address, data, nonce, value)
    assert tx.hash() == tx.hash_on_chain(chain), label
    other = S.SafeTx(chain.chain_id, info.address, dev[0].address, data, nonce + 1, value)
    assert other.hash() != tx.hash()  # the nonce is in the hash: one signature, one nonce


def test_a_safe_is_read_and_a_plain_key_or_another_contract_is_not_a_safe(world, tmp_path):
    chain, info, dev = world
    assert info.threshold == 2 and set(info.owners) == {d.address for d in dev[1:4]} and info.version == "1.4.1"
    with pytest.raises(S.NotASafe, match=r"no contract there.*\(a plain key\)"):
        S.safe_info(chain, dev[0].address)
    infra = S.find_infra(chain, chain.workdir)
    with pytest.raises(S.NotASafe, match="a contract but not a Safe"):
        S.safe_info(chain, infra.factory)
    with pytest.raises(S.NotASafe, match="never set up"):
        S.safe_info(chain, infra.singleton)  # the singleton itself has no owners


def test_an_owners_signature_recovers_to_the_owner(world):
    chain, info, dev = world
    h = S.SafeTx(chain.chain_id, info.address, dev[0].address, b"\x01", 0).hash()
    sig = S.sign(dev[1], h)
    assert len(sig) == 65 and sig[64] in (27, 28) and S.recover(h, sig) == dev[1].address
    stranger = Account.from_key(keccak(text="citypass-safe-test-stranger"))
    assert S.recover(h, S.sign(stranger, h)) == stranger.address
    with pytest.raises(CityPassError, match="65 bytes"):
        S.recover(h, sig[:64])
    assert S.pack_signatures({dev[2].address: b"b" * 65, dev[1].address: b"a" * 65})[:65] == (
        b"a" * 65 if int(dev[1].address, 16) < int(dev[2].address, 16) else b"b" * 65)


def test_the_typed_data_a_browser_wallet_signs_hashes_to_the_safetx_hash(world):
    """eth_signTypedData_v4 of SafeTx.typed_data() is the owner's signature of hash()."""
    from eth_account.messages import encode_typed_data
    chain, info, dev = world
    tx = S.SafeTx(chain.chain_id, info.address, dev[0].address, bytes(range(40)), 5, 3)
    signed = Account.sign_message(encode_typed_data(full_message=tx.typed_data()), dev[1].key)
    sig = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])
    assert S.recover(tx.hash(), sig) == dev[1].address and sig == S.sign(dev[1], tx.hash())
    json.dumps(tx.typed_data())  # JSON-safe for the page
