"""Municipal roles held by Safe multisigs (issue 18), end to end through the `citypass`
command on an embedded Anvil: `deploy --dev-safes` makes the admin a 2-of-3 Safe of
dev:0-2 and the issuer and registrar another 2-of-3 Safe of dev:3-5; commands that need
those roles propose, owners sign with their own keys, `safe execute` runs it once.
Synthetic residents only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eth_account import Account
from eth_utils import keccak

from citypass import chain as C
from citypass import contract as K
from citypass import keys, node, proposals
from citypass import safe as S
from citypass.cli import main
from citypass.errors import CityPassError

PASSWORD = "synthetic-test-password"
DEV = [keys.dev_account(i).address for i in range(10)]
POOL = DEV[9]


def resident(label: str) -> str:
    return Account.from_key(keccak(text=f"citypass-safe-test-{label}")).address


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: these tests run on their own node."""


def run(workdir: Path, *args: str, code: int = 0) -> Result:
    env = {"CITYPASS_RPC": None, "CITYPASS_FROM": None, "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None,
           "CITYPASS_VIA_SAFE": None, "CITYPASS_PASSWORD": PASSWORD, "CITYPASS_ARTIFACT": None}
    result = CliRunner(mix_stderr=False, env=env).invoke(main, ["--workdir", str(workdir), *args], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"crashed: {result.exception!r}\n{result.stderr}")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == code, f"exit {result.exit_code} != {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def data(result: Result):
    return json.loads(result.stdout)


def error(result: Result) -> str:
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    return line


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """A deployment with the admin and the issuer (+ registrar) held by Safes, one budget
    and a provider; yields the work directory (the node stops afterwards)."""
    workdir = tmp_path_factory.mktemp("citypass-safe")
    try:
        out = data(run(workdir, "--json", "deploy", "--dev-safes"))
        run(workdir, "category", "define", "0", "sport")
        run(workdir, "budget", "create", "--category", "sport", "--valid-from", "2026-01-01", "--valid-until",
            "2030-12-31", "--cap", "250000", "--name", "Sport 2026")
        run(workdir, "provider", "add", POOL, "--categories", "sport", "--name", "Zwembad test")
        yield type("W", (), {"dir": workdir, "admin": out["safes"]["admin"]["safe"],
                             "issuer": out["safes"]["issuer"]["safe"], "out": out})
    finally:
        node.node_stop(workdir)


def chain_of(w) -> C.Chain:
    return C.connect(workdir=w.dir)


def dep_of(w) -> K.Deployment:
    return K.open_deployment(chain_of(w), workdir=w.dir)


def open_proposals(w) -> list[str]:
    chain = chain_of(w)
    return [p.id for p in proposals.load_all(w.dir, chain.chain_id) if proposals.is_open(chain, p)]


def test_deploy_makes_two_safes_and_prints_their_owners_and_threshold(w):
    safes = w.out["safes"]
    assert safes["admin"]["threshold"] == 2
    assert set(safes["admin"]["owners"]) == set(DEV[0:3]) and len(safes["admin"]["owners"]) == 3
    assert set(safes["issuer"]["owners"]) == set(DEV[3:6]) and safes["issuer"]["threshold"] == 2
    assert w.out["roles"]["issuer"] == w.out["roles"]["registrar"] == [w.issuer]  # enrollAndIssue needs both
    assert w.out["roles"]["admin"] == [w.admin]


def test_deploy_admin_checks_the_address_is_a_safe(w, tmp_path):
    # A second deployment on the same chain (its own address book): --admin the issuer Safe.
    other = tmp_path / "other"
    other.mkdir()
    chain = chain_of(w)
    args = ["--rpc", chain.rpc_url, "--json", "deploy"]
    out = run(other, *args, "--admin", w.admin)
    assert data(out)["safes"]["admin"] == {"safe": w.admin, "threshold": 2, "owners": w.out["safes"]["admin"]["owners"]}
    assert f"admin: Safe {w.admin}, 2 of 3 owners: " in out.stderr
    not_a_safe = run(other, *args, "--admin", dep_of(w).address, code=1)
    assert "is a contract but not a Safe" in error(not_a_safe)


def test_a_role_grant_through_the_2_of_3_admin_safe_needs_two_signatures(w):
    dep = dep_of(w)
    proposed = run(w.dir, "--json", "role", "grant", "pauser", w.admin)  # the admin Safe may pause too (below)
    p = data(proposed)
    assert p["safe"] == w.admin and p["status"] == "pending" and p["signatures"] == "0 of 2 (needs 2 more)"
    assert p["what"] == f"grant the pauser role to {w.admin}"
    assert "nothing was sent" in proposed.stderr and not K.has_role(dep, "PAUSER", w.admin)
    run(w.dir, "--from", "dev:0", "safe", "sign", p["proposal"][:12])  # a unique prefix of the hash will do
    refused = run(w.dir, "safe", "execute", p["proposal"], code=1)
    assert "has 1 of the 2 signatures" in error(refused) and "nothing was sent" in error(refused)
    assert not K.has_role(dep, "PAUSER", w.admin)
    again = run(w.dir, "--from", "dev:0", "safe", "sign", p["proposal"], code=1)
    assert "signed proposal" in error(again) and "already" in error(again)
    run(w.dir, "--from", "dev:2", "safe", "sign", p["proposal"])
    done = run(w.dir, "safe", "execute", p["proposal"])
    assert f"executed Safe transaction {p['proposal']} (nonce 0)" in done.stderr
    assert K.has_role(dep, "PAUSER", w.admin)
    assert "was executed already" in error(run(w.dir, "safe", "execute", p["proposal"], code=1))
    shown = data(run(w.dir, "--json", "safe", "show", p["proposal"]))
    assert shown["status"] == "executed" and shown["transactions"][0]["executed_in"].startswith("0x")


def test_a_wrong_owners_signature_is_refused_with_a_clear_message(w):
    p = data(run(w.dir, "--json", "role", "grant", "treasurer", resident("second-treasurer")))
    stranger = run(w.dir, "--from", "dev:7", "safe", "sign", p["proposal"], code=1)
    assert error(stranger) == (f"error: {DEV[7]} is not an owner of Safe {w.admin} (owners: "
                               f"{', '.join(data(run(w.dir, '--json', 'safe', 'info', w.admin))['owners'])}); "
                               "nothing was signed: sign with an owner's own key (--from)")
    # The issuer Safe's owner is no owner of the admin Safe either.
    assert "is not an owner of Safe" in error(run(w.dir, "--from", "dev:3", "safe", "sign", p["proposal"], code=1))
    # A signature slipped into the file by hand, from a key that owns nothing, does not count.
    run(w.dir, "--from", "dev:1", "safe", "sign", p["proposal"])
    path = proposals.directory(w.dir) / f"{p['proposal']}.json"
    raw = json.loads(path.read_text())
    forger = Account.from_key(keccak(text="citypass-safe-test-forger"))
    raw["txs"][0]["signatures"][forger.address] = "0x" + S.sign(forger, bytes.fromhex(p["proposal"][2:])).hex()
    path.write_text(json.dumps(raw))
    refused = run(w.dir, "safe", "execute", p["proposal"], code=1)
    assert f"{forger.address} signed, but is not an owner of Safe {w.admin}" in error(refused)
    assert "nothing was sent" in error(refused)
    assert not K.has_role(dep_of(w), "TREASURER", resident("second-treasurer"))
    run(w.dir, "safe", "discard", p["proposal"])
    assert p["proposal"] not in open_proposals(w)


def test_issuing_a_csv_through_the_issuer_safe_credits_once_whatever_is_re_run(w, tmp_path):
    holders = [resident(f"issue-{i}") for i in range(3)]
    csv = tmp_path / "sport.csv"
    csv.write_text("holder,amount\n" + "".join(f"{h},{10 + i}.50\n" for i, h in enumerate(holders)))
    dep = dep_of(w)
    budget = dep.contract.functions.budgets().call()[0]
    issued = lambda: dep.contract.functions.budgetTotals(budget).call()[1]  # noqa: E731
    before = issued()
    first = run(w.dir, "--json", "issue", str(csv), "--budget", "1")
    p = data(first)
    assert p["what"].startswith("issue €34.50 of Sport 2026 (budget #1) to 3 residents (3 new passes) from sport.csv")
    assert p["details"]["file_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert p["details"]["new_passes"] == 3 and p["details"]["budget_totals"] == ["#1 Sport 2026: €34.50"]
    assert len(p["details"]["batch_ids"]) == 1 and issued() == before
    # Re-runs while it waits for signatures: no second proposal.
    for signer in (None, "dev:3"):
        if signer:
            run(w.dir, "--from", signer, "safe", "sign", p["proposal"])
        again = run(w.dir, "--json", "issue", str(csv), "--budget", "1")
        assert data(again)["proposal"] == p["proposal"] and "proposed already" in again.stderr
        assert [x for x in open_proposals(w) if x == p["proposal"]] == [p["proposal"]]
    # An edited file of the same budget and tranche waits too (one open issuance per tranche).
    edited = tmp_path / "edited.csv"
    edited.write_text(csv.read_text() + f"{resident('issue-late')},5.00\n")
    assert "proposed already" in run(w.dir, "issue", str(edited), "--budget", "1").stderr
    signed = run(w.dir, "--from", "dev:5", "safe", "sign", p["proposal"])
    assert "sport.csv" in signed.stderr and "file sha256: " + p["details"]["file_sha256"] in signed.stderr
    # A second copy of the same batch at another nonce (e.g. from another machine's work
    # directory), signed too: the chain's batch id stops it after the first executes.
    chain = chain_of(w)
    original = proposals.find(w.dir, p["proposal"], chain.chain_id)
    t = original.txs[0]
    copy_tx = S.SafeTx(chain.chain_id, w.issuer, t.to, bytes.fromhex(t.data[2:]), t.nonce + 1)
    copy = proposals.Proposal("0x" + copy_tx.hash().hex(), chain.chain_id, w.issuer, "issue", "a copy",
                              [proposals.ProposedTx(t.to, t.data, t.nonce + 1, "0x" + copy_tx.hash().hex(), t.what)],
                              block=original.block)
    proposals.save(w.dir, copy)
    for owner in ("dev:3", "dev:4"):
        run(w.dir, "--from", owner, "safe", "sign", copy.id)
    run(w.dir, "safe", "execute", p["proposal"])
    assert issued() == before + 3450
    for h, cents in zip(holders, (1050, 1150, 1250)):
        assert dep.contract.functions.balanceOf(h, budget).call() == cents
    refused = run(w.dir, "safe", "execute", copy.id, code=1)
    assert "the call would be refused now" in error(refused) and "nothing was sent" in error(refused)
    assert issued() == before + 3450
    run(w.dir, "safe", "discard", copy.id)
    # After execution a re-run finds everything issued on chain: nothing proposed, nothing sent.
    rerun = run(w.dir, "issue", str(csv), "--budget", "1")
    assert "everything in this file was issued before: nothing to send" in rerun.stderr
    assert "ok: every holder in the file received exactly its amount in this tranche" in rerun.stdout
    assert issued() == before + 3450 and not open_proposals(w)


def test_an_issuance_of_several_batches_is_one_proposal_signed_once_executed_in_nonce_order(w, tmp_path):
    holders = [resident(f"batches-{i}") for i in range(5)]
    csv = tmp_path / "batches.csv"
    csv.write_text("holder,amount\n" + "".join(f"{h},2.00\n" for h in holders))
    p = data(run(w.dir, "--json", "issue", str(csv), "--budget", "1", "--batch-size", "2", "--tranche", "autumn"))
    assert [t["nonce"] for t in p["transactions"]] == [p["transactions"][0]["nonce"] + i for i in range(3)]
    assert p["what"].startswith("issue €10.00 of Sport 2026 (budget #1, tranche 'autumn') to 5 residents (5 new passes)")
    assert len(p["details"]["batch_ids"]) == 3 and p["details"]["tranche"] == "autumn"
    for owner in ("dev:4", "dev:5"):
        run(w.dir, "--from", owner, "safe", "sign", p["proposal"])  # one signature covers every batch
    done = run(w.dir, "safe", "execute", p["proposal"])
    assert done.stderr.count("executed Safe transaction") == 3
    dep = dep_of(w)
    budget = dep.contract.functions.budgets().call()[0]
    assert [dep.contract.functions.balanceOf(h, budget).call() for h in holders] == [200] * 5
    assert "nothing to send" in run(w.dir, "issue", str(csv), "--budget", "1", "--tranche", "autumn").stderr


def test_pause_through_a_safe_and_directly_through_the_pauser_key(w):
    dep = dep_of(w)
    paused = dep.contract.functions.paused
    assert K.has_role(dep, "PAUSER", DEV[6])
    direct = run(w.dir, "pause")  # the emergency stop: the pauser's own key, at once
    assert "signing as dev:6" in direct.stderr and paused().call()
    run(w.dir, "--from", "dev:6", "unpause")
    assert not paused().call()
    if not K.has_role(dep, "PAUSER", w.admin):  # granted by the role-grant test; alone, grant it here
        run(w.dir, "--from", "dev:0", "safe", "sign", data(run(w.dir, "--json", "role", "grant", "pauser", w.admin))["proposal"])
        run(w.dir, "--from", "dev:1", "safe", "sign", open_proposals(w)[0])
        run(w.dir, "safe", "execute", open_proposals(w)[0])
    p = data(run(w.dir, "--json", "--via-safe", w.admin, "pause"))
    assert p["what"] == "pause CityPass (emergency stop: no credit moves)" and not paused().call()
    run(w.dir, "--from", "dev:1", "safe", "sign", p["proposal"])
    run(w.dir, "--from", "dev:2", "safe", "sign", p["proposal"])
    run(w.dir, "safe", "execute", p["proposal"])
    assert paused().call()
    run(w.dir, "unpause")
    assert not paused().call()
    wrong = run(w.dir, "--via-safe", w.issuer, "pause", code=1)
    assert f"Safe {w.issuer} lacks the PAUSER role" in error(wrong)


def test_budget_and_provider_commands_propose_when_their_role_is_held_by_a_safe(w, tmp_path):
    # A second CityPass on the same chain whose budget manager, provider manager and
    # treasurer are the admin Safe (a work directory of its own: its own proposals).
    other = tmp_path / "other"
    other.mkdir()
    base = ("--rpc", chain_of(w).rpc_url)
    run(other, *base, "deploy", "--budget-manager", w.admin, "--provider-manager", w.admin, "--treasurer", w.admin)

    def approved(*args: str) -> dict:
        p = data(run(other, *base, "--json", *args))
        run(other, *base, "--from", "dev:0", "safe", "sign", p["proposal"])
        run(other, *base, "--from", "dev:2", "safe", "sign", p["proposal"])
        run(other, *base, "safe", "execute", p["proposal"])
        return p

    assert approved("category", "define", "0", "sport")["what"] == "name category 0 'sport'"
    created = approved("budget", "create", "--category", "sport", "--valid-from", "2026-01-01", "--valid-until",
                       "2030-12-31", "--cap", "1000", "--name", "Sport Safe")
    assert created["what"] == ("create budget 'Sport Safe' (category 0, 2026-01-01 00:00 UTC .. 2030-12-31 23:59 UTC, "
                               "cap €1,000.00)")
    assert [b["name"] for b in data(run(other, *base, "--json", "budget", "list"))] == ["Sport Safe"]
    assert approved("provider", "add", POOL, "--categories", "sport", "--name", "Zwembad Safe")["what"] == (
        f"register provider 'Zwembad Safe' ({POOL})")
    assert data(run(other, *base, "--json", "provider", "list"))[0]["status"] == "active"
    refused = run(other, *base, "settle", "--provider", POOL, "--reference", "INV-1", code=1)
    assert error(refused) == f"error: provider {POOL} holds no credit to settle; nothing was proposed"
    cap = run(other, *base, "budget", "set-cap", "1", "--cap", "0.01")  # the chain allows it: proposed
    assert "proposed Safe transaction" in cap.stderr
    second = run(other, *base, "budget", "create", "--category", "sport", "--valid-from", "2026-01-01",
                 "--valid-until", "2030-12-31", "--cap", "5", "--name", "Sport Safe")
    assert "proposed Safe transaction" in second.stderr  # a second budget of the same name is allowed
    dup = run(other, *base, "budget", "create", "--category", "sport", "--valid-from", "2026-01-01",
              "--valid-until", "2030-12-31", "--cap", "5", "--name", "Sport Safe")
    assert "proposed already" in dup.stderr  # the same call, still waiting
    for p in proposals.load_all(other, chain_of(w).chain_id):
        if proposals.is_open(chain_of(w), p):
            run(other, *base, "safe", "discard", p.id)


def test_the_admin_moves_to_another_safe_in_two_steps_through_the_safes(w):
    dep = dep_of(w)
    f = dep.contract.functions
    new = data(run(w.dir, "--json", "safe", "create", "--owner", "dev:6", "--owner", "dev:7", "--owner", "dev:8",
                   "--threshold", "2"))["safe"]

    def through_admin_safe(*args: str) -> None:
        p = data(run(w.dir, "--json", "role", *args))["proposal"]
        run(w.dir, "--from", "dev:0", "safe", "sign", p)
        run(w.dir, "--from", "dev:1", "safe", "sign", p)
        run(w.dir, "safe", "execute", p)

    through_admin_safe("transfer-admin", new)
    assert f.pendingDefaultAdmin().call()[0] == new
    through_admin_safe("cancel-admin")
    assert int(f.pendingDefaultAdmin().call()[0], 16) == 0
    through_admin_safe("transfer-admin", new)
    early = data(run(w.dir, "--json", "role", "accept-admin"))  # proposed now, executable after the delay
    run(w.dir, "--from", "dev:6", "safe", "sign", early["proposal"])
    run(w.dir, "--from", "dev:8", "safe", "sign", early["proposal"])
    too_soon = run(w.dir, "safe", "execute", early["proposal"], code=1)
    assert "the call would be refused now" in error(too_soon) and f.defaultAdmin().call() == w.admin
    run(w.dir, "node", "advance", "4d")
    run(w.dir, "safe", "execute", early["proposal"])
    assert f.defaultAdmin().call() == new and K.has_role(dep, "ADMIN", new) and not K.has_role(dep, "ADMIN", w.admin)


def test_a_signature_made_in_a_browser_wallet_is_checked_before_it_is_stored(w):
    """proposals.add_signatures (the back office's path, issue 16): a signature of the typed data
    counts only if it recovers to the signer, a current owner, over that very transaction."""
    from eth_account.messages import encode_typed_data

    chain = chain_of(w)
    p = data(run(w.dir, "--json", "role", "grant", "treasurer", resident("browser-treasurer")))
    prop = proposals.find(w.dir, p["proposal"], chain.chain_id)
    (tx_hash, typed), = proposals.typed_data(chain, prop).items()

    def signed_by(key: bytes, message: dict) -> bytes:
        s = Account.sign_message(encode_typed_data(full_message=message), key)
        return s.r.to_bytes(32, "big") + s.s.to_bytes(32, "big") + bytes([s.v])

    # whichever Safe holds the admin role by now (an earlier test may have moved it)
    owners = S.safe_info(chain, prop.safe).owners
    dev = [keys.dev_account(i) for i in range(10)]
    owner, second = [a for a in dev if a.address in owners][:2]
    stranger = next(a for a in dev if a.address not in owners)
    with pytest.raises(CityPassError, match="is not an owner of Safe"):
        proposals.add_signatures(chain, w.dir, prop, stranger.address, {tx_hash: signed_by(stranger.key, typed)})
    other = dict(typed, message=dict(typed["message"], nonce=str(int(typed["message"]["nonce"]) + 7)))
    with pytest.raises(CityPassError, match="not .* signature of that transaction"):
        proposals.add_signatures(chain, w.dir, prop, owner.address, {tx_hash: signed_by(owner.key, other)})
    with pytest.raises(CityPassError, match="not .* signature of that transaction"):  # another owner's key
        proposals.add_signatures(chain, w.dir, prop, owner.address, {tx_hash: signed_by(second.key, typed)})
    assert proposals.find(w.dir, p["proposal"], chain.chain_id).txs[0].signatures == {}  # nothing stored
    assert proposals.add_signatures(chain, w.dir, prop, owner.address,
                                    {tx_hash: signed_by(owner.key, typed)}) == (1, S.safe_info(chain, prop.safe).threshold)
    assert list(proposals.find(w.dir, p["proposal"], chain.chain_id).txs[0].signatures) == [owner.address]
    run(w.dir, "safe", "discard", p["proposal"])
