"""The municipality/admin half of the `citypass` command, end to end on an embedded Anvil
(one per module, in a temp workdir), and on Ganache through --rpc.

Every bad input must give one `error:` line (or click's usage message) and the right exit
code, never a traceback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from eth_utils import keccak

from citypass import keys, node
from citypass.chain import connect
from citypass.cli import main

PASSWORD = "synthetic-test-password"
DEV = [keys.dev_account(i).address for i in range(10)]
POOL, MUSEUM, LIBRARY = DEV[7], DEV[8], DEV[9]
ROOT = Path(__file__).resolve().parent.parent


def resident(label: str) -> str:
    """Synthetic residents: addresses of keys derived from a label, never real people."""
    return Account.from_key(keccak(text=f"citypass-cli-test-{label}")).address


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: these tests run on their own node."""


@pytest.fixture(autouse=True)
def fast_keystores(monkeypatch):
    monkeypatch.setattr(keys, "KEYSTORE_ITERATIONS", 2**10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("citypass-cli")


def run(workdir: Path | None, *args: str, code: int = 0, env: dict | None = None, input: str | None = None) -> Result:
    """Runs `citypass --workdir W args...`; checks the exit code and that no traceback leaked."""
    base_env = {"CITYPASS_RPC": None, "CITYPASS_FROM": None, "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None,
                "CITYPASS_PASSWORD": PASSWORD, "CITYPASS_ARTIFACT": None}
    runner = CliRunner(mix_stderr=False, env=base_env | (env or {}))
    argv = (["--workdir", str(workdir)] if workdir is not None else []) + list(args)
    result = runner.invoke(main, argv, input=input, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"crashed: {result.exception!r}\n{result.stderr}"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == code, f"exit {result.exit_code} != {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def data(result: Result):
    return json.loads(result.stdout)


def error_line(result: Result) -> str:
    """The one error line of a failed command (click's usage errors end with `Error: ...`)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error: ", "Error: "))]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def deployed(workdir):
    run(workdir, "node", "start")
    out = data(run(workdir, "--json", "deploy"))
    yield out
    node.node_stop(workdir)


# ------------------------------------------------------------------ node, accounts, deploy, info
def test_node_status_start_stop(tmp_path):
    assert data(run(tmp_path, "--json", "node", "status")) == {"running": False, "workdir": str(tmp_path)}
    started = data(run(tmp_path, "--json", "node", "start"))
    try:
        assert started["running"] and started["started"]
        again = data(run(tmp_path, "--json", "node", "start"))
        assert not again["started"] and again["rpc"] == started["rpc"]
        status = data(run(tmp_path, "--json", "node", "status"))
        assert status["running"] and status["pid"] == started["pid"]
    finally:
        stopped = run(tmp_path, "node", "stop")
    assert "state saved" in stopped.stderr
    assert not data(run(tmp_path, "--json", "node", "status"))["running"]
    assert "was not running" in run(tmp_path, "node", "stop").stderr


def test_deploy_gives_each_role_its_own_dev_account(deployed, workdir):
    roles = deployed["roles"]
    holders = [roles[r][0] for r in ("admin", "budget-manager", "provider-manager", "registrar", "issuer", "treasurer", "pauser")]
    assert holders == DEV[:7]
    book = json.loads((workdir / "addressbook.json").read_text())
    assert book["31337"]["address"] == deployed["contract"]


def test_info(deployed, workdir):
    info = data(run(workdir, "--json", "info"))
    assert info["contract"] == deployed["contract"] and info["chain_id"] == 31337
    assert info["paused"] is False and info["admin"] == DEV[0] and info["admin_delay_days"] == 3
    text = run(workdir, "info").stdout
    assert f"contract:" in text and deployed["contract"] in text


def test_accounts(workdir):
    created = data(run(workdir, "--json", "account", "new", "treasurer-2"))
    key = "0x" + keccak(text="citypass-cli-test-import").hex()
    imported = data(run(workdir, "--json", "account", "import", "pool-kiosk", input=key + "\n"))
    assert imported["address"] == Account.from_key(key).address
    listed = data(run(workdir, "--json", "account", "list"))
    assert {(e["name"], e["address"]) for e in listed} >= {
        ("treasurer-2", created["address"]), ("pool-kiosk", imported["address"])}
    r = run(workdir, "account", "new", "treasurer-2", code=1)
    assert error_line(r) == "error: an account named 'treasurer-2' exists already (" + str(workdir / "keys" / "treasurer-2.json") + ")"
    r = run(workdir, "account", "import", "junk", input="0x1234\n", code=1)
    assert "not a valid private key" in error_line(r)


# ------------------------------------------------------------------ categories and budgets
def test_categories_and_budgets(deployed, workdir):
    run(workdir, "category", "define", "0", "sport")
    run(workdir, "category", "define", "1", "culture")
    assert data(run(workdir, "--json", "category", "list")) == [
        {"category": 0, "name": "sport"}, {"category": 1, "name": "culture"}]
    b = data(run(workdir, "--json", "budget", "create", "--category", "sport", "--valid-from", "2026-01-01",
                 "--valid-until", "2027-12-31", "--cap", "250000.00", "--name", "Sport 2026-27"))
    assert b["serial"] == 1 and b["cap"] == "250000.00" and b["valid_until"] == "2027-12-31" and b["category"] == 0
    run(workdir, "budget", "create", "--category", "1", "--valid-from", "2026-01-01", "--valid-until", "2027-12-31",
        "--cap", "1000", "--name", "Culture 2026-27")
    listed = data(run(workdir, "--json", "budget", "list"))
    assert [(x["serial"], x["name"]) for x in listed] == [(1, "Sport 2026-27"), (2, "Culture 2026-27")]
    shown = data(run(workdir, "--json", "budget", "show", "#2"))
    assert shown["id"] == listed[1]["id"] and shown["outstanding"] == "0.00"
    assert data(run(workdir, "--json", "budget", "show", listed[0]["id"]))["serial"] == 1
    capped = data(run(workdir, "--json", "budget", "set-cap", "2", "--cap", "1500.50"))
    assert capped["cap"] == "1500.50"
    table = run(workdir, "budget", "list").stdout
    assert "€250,000.00" in table and "0 (sport)" in table


@pytest.mark.parametrize("args, code, message", [
    (["--category", "swimming"], 2, "category 'swimming': not a number 0..63 nor a defined category"),
    (["--category", "0,1"], 2, "a budget has exactly one category"),
    (["--cap", "12.345"], 2, "'12.345' is not an amount in euros"),
    (["--cap", "-5"], 2, "'-5' is not an amount in euros"),
    (["--cap", "0"], 2, "must be more than 0"),
    (["--valid-from", "2026-13-01"], 2, "'2026-13-01' is not a date in the form YYYY-MM-DD"),
    (["--valid-until", "2020-12-31", "--valid-from", "2020-01-01"], 2, "--valid-until 2020-12-31 is in the past"),
    (["--valid-until", "2025-12-31"], 2, "--valid-until must not be before --valid-from"),
])
def test_budget_create_bad_input(deployed, workdir, args, code, message):
    base = {"--category": "0", "--valid-from": "2026-01-01", "--valid-until": "2027-06-30", "--cap": "100",
            "--name": "Bad"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = [x for kv in base.items() for x in kv]
    r = run(workdir, "budget", "create", *argv, code=code)
    assert message in error_line(r)


def test_budget_errors(deployed, workdir):
    r = run(workdir, "budget", "show", "99", code=1)
    assert error_line(r).startswith("error: budget 99 does not exist on the contract at")
    r = run(workdir, "budget", "show", "sport", code=2)
    assert "give its number" in error_line(r)
    r = run(workdir, "--from", "dev:7", "budget", "create", "--category", "0", "--valid-from", "2026-01-01",
            "--valid-until", "2027-01-01", "--cap", "10", "--name", "x", code=1)
    assert error_line(r) == f"error: account {DEV[7]} lacks the BUDGET_MANAGER role"
    r = run(workdir, "budget", "set-cap", "1", "--cap", "0.00", code=2)
    assert "must be more than 0" in error_line(r)


# ------------------------------------------------------------------ providers
def test_provider_lifecycle(deployed, workdir):
    run(workdir, "category", "define", "2", "education")
    p = data(run(workdir, "--json", "provider", "add", POOL, "--categories", "sport", "--max", "50",
                 "--name", "Swimming pool"))
    assert p == {"address": POOL, "name": "Swimming pool", "status": "active", "categories": [0],
                 "max_per_payment": "50.00", "paused": False}
    m = data(run(workdir, "--json", "provider", "add", MUSEUM.lower(), "--categories", "culture,2", "--name", "Museum"))
    assert m["address"] == MUSEUM and m["categories"] == [1, 2] and m["max_per_payment"] is None
    u = data(run(workdir, "--json", "provider", "update", POOL, "--max", "75.50"))
    assert u["max_per_payment"] == "75.50" and u["categories"] == [0]
    u = data(run(workdir, "--json", "provider", "update", POOL, "--categories", "0,2", "--max", "none"))
    assert u["categories"] == [0, 2] and u["max_per_payment"] is None
    assert data(run(workdir, "--json", "provider", "suspend", POOL))["status"] == "suspended"
    assert data(run(workdir, "--json", "provider", "reinstate", POOL))["status"] == "active"
    assert data(run(workdir, "--json", "provider", "remove", MUSEUM))["status"] == "removed"
    listed = data(run(workdir, "--json", "provider", "list"))
    assert [(x["address"], x["status"]) for x in listed] == [(POOL, "active"), (MUSEUM, "removed")]
    assert "0 (sport), 2 (education)" in run(workdir, "provider", "list").stdout


def test_provider_errors(deployed, workdir):
    # One mistyped character: re-casing it (the old "expected 0x..." hint) would give a valid
    # checksum for the wrong address, so no address is ever suggested.
    typo = POOL[:-1] + ("0" if POOL[-1] != "0" else "1")
    r = run(workdir, "provider", "add", typo, "--categories", "0", code=2)
    line = error_line(r)
    assert "the EIP-55 checksum does not match" in line and "copy the address again" in line
    assert [a for a in re.findall(r"0x[0-9a-fA-F]{40}", r.stderr) if a != typo] == [], line
    assert "expected" not in line
    r = run(workdir, "provider", "add", "0x12345", "--categories", "0", code=2)
    assert "'0x12345' is not an Ethereum address" in error_line(r)
    r = run(workdir, "provider", "suspend", LIBRARY, code=1)
    assert error_line(r) == f"error: {LIBRARY} is not a registered provider"
    r = run(workdir, "provider", "remove", MUSEUM, code=1)
    assert error_line(r) == f"error: provider {MUSEUM} was removed; a removed provider cannot change status"
    r = run(workdir, "provider", "add", POOL, "--categories", "0", "--name", "Pool", code=1)
    assert error_line(r) == f"error: {POOL} is already a registered provider"
    r = run(workdir, "provider", "add", LIBRARY, "--categories", "64", "--name", "Library", code=2)
    assert "category 64: categories are 0..63" in error_line(r)
    r = run(workdir, "provider", "update", LIBRARY, "--max", "5", code=1)
    assert error_line(r) == f"error: {LIBRARY} is not a registered provider"


# ------------------------------------------------------------------ passes
def test_pass_lifecycle(deployed, workdir, tmp_path):
    alice, bob, carol, dave, new_phone = (resident(x) for x in ("alice", "bob", "carol", "dave", "alice-new"))
    listing = tmp_path / "passes.txt"
    listing.write_text(f"# synthetic residents\n{carol}\n\n{dave.lower()}  # lower case is fine\n")
    out = data(run(workdir, "--json", "pass", "enroll", alice, bob, "--file", str(listing), "--valid-until", "2027-06-30"))
    assert out["enrolled"] == [alice, bob, carol, dave] and out["valid_until"] == "2027-06-30"
    shown = data(run(workdir, "--json", "pass", "show", alice))
    assert shown["status"] == "active" and shown["valid_until"] == "2027-06-30" and shown["balances"] == []
    assert data(run(workdir, "--json", "pass", "renew", alice, bob, "--valid-until", "2027-12-31"))["renewed"] == [alice, bob]
    assert data(run(workdir, "--json", "pass", "suspend", bob))["status"] == "suspended"
    assert data(run(workdir, "--json", "pass", "reinstate", bob))["status"] == "active"
    assert data(run(workdir, "--json", "pass", "revoke", carol))["status"] == "revoked"
    moved = data(run(workdir, "--json", "pass", "migrate", alice, new_phone))
    assert moved["address"] == new_phone and moved["status"] == "active" and moved["valid_until"] == "2027-12-31"
    old = data(run(workdir, "--json", "pass", "show", alice))
    assert old["status"] == "migrated" and old["migrated_to"] == new_phone and old["current_address"] == new_phone
    assert "migrated to:" in run(workdir, "pass", "show", alice).stdout


def test_pass_errors(deployed, workdir, tmp_path):
    erin, frank = resident("erin"), resident("frank")
    dup = tmp_path / "dup.txt"
    dup.write_text(f"{erin}\n{frank}\n{erin.lower()}\n")
    r = run(workdir, "pass", "enroll", "--file", str(dup), "--valid-until", "2027-01-01", code=2)
    assert error_line(r) == f"error: {dup} line 3: {erin} is listed twice (first at {dup} line 1)"
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{erin}\nnot-an-address\n")
    r = run(workdir, "pass", "enroll", "--file", str(bad), "--valid-until", "2027-01-01", code=2)
    assert error_line(r) == f"error: {bad} line 2: 'not-an-address' is not an Ethereum address (0x followed by 40 hex digits)"
    assert data(run(workdir, "--json", "pass", "show", erin))["status"] == "none"  # nothing was sent
    r = run(workdir, "pass", "enroll", resident("bob"), "--valid-until", "2027-01-01", code=1)
    assert error_line(r) == f"error: {resident('bob')} already has a city pass"
    r = run(workdir, "pass", "enroll", POOL, "--valid-until", "2027-01-01", code=1)
    assert error_line(r) == f"error: {POOL} is a registered provider, so it cannot get a city pass"
    r = run(workdir, "pass", "suspend", frank, code=1)
    assert error_line(r) == f"error: {frank} has no city pass"
    r = run(workdir, "pass", "reinstate", resident("bob"), code=1)
    assert error_line(r) == f"error: the pass of {resident('bob')} is active, not suspended"
    r = run(workdir, "pass", "enroll", "--valid-until", "2027-01-01", code=2)
    assert "give at least one address" in error_line(r)
    r = run(workdir, "pass", "enroll", frank, "--valid-until", "2001-01-01", code=1)
    assert "is in the past" in error_line(r)
    r = run(workdir, "pass", "migrate", erin, erin, code=2)
    assert "same address" in error_line(r)


def test_role_holders_are_not_enrolled_unless_intended(deployed, workdir):
    manager = deployed["roles"]["budget-manager"][0]
    r = run(workdir, "pass", "enroll", resident("gina"), manager, "--valid-until", "2027-01-01", code=1)
    assert error_line(r) == (f"error: {manager} holds the BUDGET_MANAGER role: one person with a municipal role and a "
                             "pass defeats the four-eyes principle; nothing was sent (pass --allow-role-holders if it "
                             "is intended)")
    assert data(run(workdir, "--json", "pass", "show", resident("gina")))["status"] == "none"
    out = data(run(workdir, "--json", "pass", "enroll", manager, "--valid-until", "2027-01-01", "--allow-role-holders"))
    assert out["enrolled"] == [manager]


# ------------------------------------------------------------------ roles and pause
def test_roles(deployed, workdir):
    extra = resident("second-issuer")
    run(workdir, "role", "grant", "issuer", extra)
    roles = data(run(workdir, "--json", "role", "list"))
    assert roles["issuer"] == sorted([DEV[4], extra]) and roles["admin"] == [DEV[0]]
    r = run(workdir, "role", "grant", "ISSUER_ROLE", extra, code=1)
    assert error_line(r) == f"error: {extra} already has the ISSUER role"
    run(workdir, "role", "revoke", "issuer", extra)
    assert data(run(workdir, "--json", "role", "list"))["issuer"] == [DEV[4]]
    r = run(workdir, "role", "revoke", "issuer", extra, code=1)
    assert error_line(r) == f"error: {extra} does not have the ISSUER role"
    r = run(workdir, "--from", "dev:1", "role", "grant", "pauser", extra, code=1)
    assert error_line(r) == f"error: account {DEV[1]} lacks the ADMIN role"
    r = run(workdir, "role", "grant", "admin", extra, code=2)
    assert "two-step admin transfer" in error_line(r)
    r = run(workdir, "role", "grant", "mayor", extra, code=2)
    assert "unknown role 'mayor'" in error_line(r)


def test_pause_and_unpause(deployed, workdir):
    assert data(run(workdir, "--json", "pause")) == {"paused": True}
    assert data(run(workdir, "--json", "info"))["paused"] is True
    r = run(workdir, "pause", code=1)
    assert error_line(r) == "error: CityPass is already paused"
    run(workdir, "unpause")
    r = run(workdir, "unpause", code=1)
    assert error_line(r) == "error: CityPass is not paused"


def test_keystore_signer_without_eth_or_password(deployed, workdir):
    account = data(run(workdir, "--json", "account", "new", "pauser-2"))["address"]
    run(workdir, "role", "grant", "pauser", account)
    r = run(workdir, "--from", "pauser-2", "pause", code=1, env={"CITYPASS_PASSWORD_PAUSER_2": "wrong"})
    assert error_line(r).startswith("error: wrong password for account 'pauser-2'")
    r = run(workdir, "--from", "pauser-2", "pause", code=1)
    assert error_line(r) == f"error: account {account} has no ETH to pay gas on chain 31337"
    r = run(workdir, "--from", "nobody", "pause", code=1)
    assert "no account 'nobody'" in error_line(r)


def test_two_step_admin_transfer(deployed, workdir):
    started = data(run(workdir, "--json", "role", "transfer-admin", LIBRARY))
    assert started["admin"] == DEV[0] and started["pending_admin"] == LIBRARY
    assert data(run(workdir, "--json", "info"))["pending_admin"] == LIBRARY
    r = run(workdir, "role", "accept-admin", code=1)
    assert error_line(r).startswith("error: the admin transfer is not possible before ")
    chain = connect(workdir=workdir, start_node=False)
    chain.advance_time(3 * 86_400 + 60)
    assert data(run(workdir, "--json", "role", "accept-admin")) == {
        "admin": LIBRARY, "pending_admin": None, "accept_after": None}
    r = run(workdir, "--from", "dev:0", "role", "grant", "pauser", LIBRARY, code=1)
    assert error_line(r) == f"error: account {DEV[0]} lacks the ADMIN role"
    r = run(workdir, "role", "accept-admin", code=1)
    assert error_line(r) == "error: no admin transfer is pending"
    # hand it back, so the module's other tests keep dev:0 as admin whatever their order
    run(workdir, "role", "transfer-admin", DEV[0])
    chain.advance_time(3 * 86_400 + 60)
    assert data(run(workdir, "--json", "role", "accept-admin"))["admin"] == DEV[0]


# ------------------------------------------------------------------ environment mistakes
def test_dead_rpc(tmp_path):
    port = node.free_port()
    r = run(tmp_path, "--rpc", f"http://127.0.0.1:{port}", "info", code=1)
    assert error_line(r) == f"error: cannot reach a node at http://127.0.0.1:{port}: connection refused (is it running?)"


def test_no_deployment_and_no_code(deployed, workdir, tmp_path):
    rpc = data(run(workdir, "--json", "node", "status"))["rpc"]
    r = run(tmp_path, "--rpc", rpc, "info", code=1)
    assert error_line(r).startswith("error: no CityPass deployed on chain 31337")
    r = run(workdir, "--contract", "0x000000000000000000000000000000000000dEaD", "info", code=1)
    assert error_line(r) == "error: no contract at 0x000000000000000000000000000000000000dEaD on chain 31337: wrong chain or address?"


def test_no_artifacts(deployed, workdir, tmp_path):
    r = run(workdir, "info", code=1, env={"CITYPASS_ARTIFACT": str(tmp_path / "missing.json")})
    assert error_line(r).startswith(f"error: no compiled CityPass artifacts at {tmp_path / 'missing.json'}")


def test_usage_errors_exit_2(workdir):
    r = run(workdir, "provider", "frobnicate", code=2)
    assert "No such command 'frobnicate'" in error_line(r)
    assert "Usage:" in run(workdir, "pass", "--help").stdout


# ------------------------------------------------------------------ Ganache through --rpc
@pytest.fixture(scope="module")
def ganache(tmp_path_factory):
    binary = shutil.which("ganache") or str(ROOT / "node_modules" / ".bin" / "ganache")
    assert Path(binary).exists(), "ganache missing: run `make setup`"
    port = node.free_port()
    log = tmp_path_factory.mktemp("ganache") / "ganache.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "--port", str(port), "--chain.hardfork", "shanghai", "--wallet.deterministic",
                                 "--logging.quiet"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while node.rpc_alive(url) is None:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_ganache_deploy_and_admin(ganache, deployed, workdir, tmp_path):
    # the anvil workdir's address book has no CityPass for Ganache's chain id: wrong chain
    r = run(workdir, "--rpc", ganache, "budget", "list", code=1)
    assert error_line(r).startswith("error: no CityPass deployed on chain 1337")
    out = data(run(tmp_path, "--rpc", ganache, "--json", "deploy"))
    assert out["chain_id"] == 1337 and out["roles"]["pauser"] == [DEV[6]]
    p = data(run(tmp_path, "--rpc", ganache, "--json", "provider", "add", POOL, "--categories", "0,1", "--max", "20",
                  "--name", "Pool"))
    assert p["status"] == "active" and p["categories"] == [0, 1]
    r = run(tmp_path, "--rpc", ganache, "--from", "dev:5", "pause", code=1)
    assert error_line(r) == f"error: account {DEV[5]} lacks the PAUSER role"
    assert data(run(tmp_path, "--rpc", ganache, "--json", "info"))["providers"] == 1
