"""Off local dev chains, one plain key (EOA) is not made both registrar and issuer without
an explicit flag (issue 18): one person could enrol addresses they control and fund them up
to a budget's cap. A Safe may hold both. The chain here is an Anvil with chain id 4242,
which CityPass treats as a real network (no dev keys, no dev defaults)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from citypass import chain as C
from citypass import contract as K
from citypass import keys, proposals
from citypass.cli import main

PASSWORD = "synthetic-test-password"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: these tests run on their own node."""


@pytest.fixture(autouse=True)
def fast_keystores(monkeypatch):
    monkeypatch.setattr(keys, "KEYSTORE_ITERATIONS", 2**10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A chain CityPass does not take for a dev chain, with keystores for its keys."""
    port = _free_port()
    anvil = ROOT / ".venv" / "bin" / "anvil"
    proc = subprocess.Popen([str(anvil if anvil.exists() else "anvil"), "--chain-id", "4242", "--port", str(port),
                             "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        workdir = tmp_path_factory.mktemp("citypass-policy")
        keys.KEYSTORE_ITERATIONS = 2**10
        try:
            for name, index in (("it-office", 0), ("clerk", 3)):
                keys.create_keystore(workdir, name, keys.dev_account(index).key, password=PASSWORD)
        finally:
            keys.KEYSTORE_ITERATIONS = None
        yield url, workdir
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run(network, *args: str, code: int = 0) -> Result:
    url, workdir = network
    env = {"CITYPASS_RPC": None, "CITYPASS_FROM": None, "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None,
           "CITYPASS_VIA_SAFE": None, "CITYPASS_PASSWORD": PASSWORD}
    result = CliRunner(mix_stderr=False, env=env).invoke(
        main, ["--workdir", str(workdir), "--rpc", url, "--confirmations", "0", "--from", "it-office", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


ROLES = ["--budget-manager", "none", "--provider-manager", "none", "--treasurer", "none", "--pauser", "none"]


def test_deploy_refuses_one_plain_key_as_registrar_and_issuer(network):
    chain = C.connect(network[0])
    assert not chain.is_local_dev
    before = chain.w3.eth.block_number
    refused = run(network, "deploy", "--admin", "it-office", *ROLES, "--registrar", "clerk", "--issuer", "clerk", code=1)
    message = refused.stderr
    assert "is a plain key (no contract), and it would hold both the REGISTRAR and the ISSUER role" in message
    assert "enrol addresses they control and credit them up to a budget's cap" in message
    assert "Give both roles to a Safe" in message and "--allow-both-roles-on-one-key" in message
    assert "nothing was deployed" in message and chain.w3.eth.block_number == before
    allowed = run(network, "deploy", "--admin", "it-office", *ROLES, "--registrar", "clerk", "--issuer", "clerk",
                  "--allow-both-roles-on-one-key")
    assert "deployed CityPass" in allowed.stderr


def test_role_grant_refuses_the_second_of_the_two_roles_to_one_plain_key(network):
    run(network, "deploy", "--admin", "it-office", *ROLES, "--registrar", "none", "--issuer", "clerk")
    clerk = keys.dev_account(3).address
    chain = C.connect(network[0])
    dep = K.open_deployment(chain, workdir=network[1])
    refused = run(network, "role", "grant", "registrar", clerk, code=1)
    assert "would hold both the REGISTRAR and the ISSUER role" in refused.stderr and "nothing was sent" in refused.stderr
    assert not K.has_role(dep, "REGISTRAR", clerk)
    run(network, "role", "grant", "registrar", keys.dev_account(4).address)  # another person: fine
    run(network, "role", "grant", "registrar", clerk, "--allow-both-roles-on-one-key")
    assert K.has_role(dep, "REGISTRAR", clerk) and K.has_role(dep, "ISSUER", clerk)


def test_a_contract_account_may_hold_both_and_dev_chains_are_exempt(network, tmp_path):
    chain = C.connect(network[0])
    dep = K.open_deployment(chain, workdir=network[1])
    assert proposals.both_roles_refusal(chain, dep.address, ["ISSUER", "REGISTRAR"]) is None  # has code
    assert proposals.both_roles_refusal(chain, keys.dev_account(5).address, ["ISSUER"]) is None
    assert proposals.both_roles_refusal(chain, keys.dev_account(5).address, ["ISSUER", "REGISTRAR"])
    dev = C.connect(workdir=tmp_path)
    try:
        assert proposals.both_roles_refusal(dev, keys.dev_account(5).address, ["ISSUER", "REGISTRAR"]) is None
    finally:
        from citypass import node

        node.node_stop(tmp_path)
