"""Issuance through a Safe on /financien/ (issue 16, the four-eyes issue), in a real browser: an
owner of the Safe that holds the issuer role signs in (the SIWE role check counts a role held by a
Safe whose owners include the officer), uploads the file (refused with its problems; fixed: the
plan), proposes it (nothing is sent), signs it in their own wallet (EIP-712, eth_signTypedData_v4);
the second owner signs in elsewhere, sees the proposal, signs and executes it from their wallet;
the page reads the chain and shows the reconciliation. Direct writes stay refused (the officer's
own address does not hold the role), and so do the Safe routes for anyone who owns no such Safe."""

from __future__ import annotations

import time

import pytest
from backofficekit import address_of, office, officer_wallet_js, session_for  # noqa: F401
from eth_account import Account
from eth_account.messages import encode_typed_data
from tillkit import resident

from citypass import contract as C
from citypass import keys
from citypass.chain import connect

OWNER_A, OWNER_B = "NOBODY", "PAUSER"  # dev:9 (no role of its own) and dev:6 (the pauser): the Safe's owners


@pytest.fixture
def issuer_safe(world):
    """A 2-of-2 Safe of dev:9 (holds nothing itself) and dev:6, given the issuer role."""
    made = world.cli("safe", "create", "--owner", "dev:9", "--owner", "dev:6", "--threshold", "2")
    safe = made["safe"]
    world.cli("--from", "dev:0", "role", "grant", "issuer", safe)
    yield safe
    world.cli("--from", "dev:0", "role", "revoke", "issuer", safe)


@pytest.fixture(scope="module")
def dep(world):
    chain = connect(None, workdir=world.workdir)
    return C.open_deployment(chain, workdir=world.workdir)


def issued(dep, budget: int) -> int:
    return dep.contract.functions.budgetTotals(budget).call()[1]


def new_budget(world, dep, name: str) -> int:
    today = time.strftime("%Y-%m-%d", time.gmtime(dep.chain.now()))
    return int(world.cli("budget", "create", "--category", "culture", "--valid-from", today, "--valid-until",
                         world.until, "--cap", "300", "--name", name)["id"])


def enrolled(world, *labels: str) -> list:
    people = [resident(label) for label in labels]
    world.cli("pass", "enroll", *(p.address for p in people), "--valid-until", world.until)
    return people


def plan(o, path, budget: int) -> None:
    before = int(o.page.evaluate("() => Number(document.body.dataset.plans || 0)"))
    o.page.select_option("#issue-budget", str(budget))
    o.page.set_input_files("#issue-file", str(path))
    o.page.click("#plan-button")
    o.page.wait_for_function(f"() => Number(document.body.dataset.plans || 0) > {before}")


def click_and_wait(o, selector: str, counter: str) -> None:
    before = int(o.page.evaluate(f"() => Number(document.body.dataset.{counter} || 0)"))
    o.page.click(selector)
    o.page.wait_for_function(f"() => Number(document.body.dataset.{counter} || 0) > {before}", timeout=60_000)


def test_an_owner_of_the_issuer_safe_signs_in_and_is_told_how_to_issue_through_it(office, server, issuer_safe):
    owner = keys.dev_account(9).address
    s = session_for(server, OWNER_A, "financien")
    assert s.signin_status == 200, s.signin_body
    assert s.signin_body["roles"] == [] and s.signin_body["via_safe"] == [{"role": "ISSUER", "safe": issuer_safe}]
    assert s.signin_body["address"] == owner
    # the officer's own address holds no role: a direct issuance route is refused
    r = s.post(f"{server.base}/api/backoffice/finance/issuance/plan", json={"csv": "holder,amount\n", "budget": "1"})
    assert r.status_code == 403
    o = office(OWNER_A, "/financien/")
    note = o.page.inner_text("#via-safe")
    assert issuer_safe in note and "uitgifte" in note and "vier stappen" in note and "kan nog niet" not in note
    assert "geen eigen rol, alleen via een Safe" in o.page.inner_text("#officer-text")
    assert o.page.is_hidden("#no-role") and o.page.is_visible("#issuance") and o.page.is_visible("#proposals")
    assert "voorstel voor de Safe" in o.page.inner_text("#issuance-text")
    o.state("financien-safe-1-owner-signed-in")
    o.page.click("#lang")
    assert "four steps" in o.page.inner_text("#via-safe") and "issuer" in o.page.inner_text("#via-safe")
    o.page.click("#lang")


def test_issuance_proposed_signed_by_both_owners_executed_once(office, server, world, dep, issuer_safe, tmp_path):
    budget = new_budget(world, dep, "Cultuur via Safe")
    a, b = enrolled(world, "safe-issue-a", "safe-issue-b")
    c = resident("safe-issue-c")
    owner_a = office(OWNER_A, "/financien/")
    o = owner_a
    assert "Er wachten geen voorstellen" in o.page.inner_text("#proposals")

    bad = tmp_path / "cultuur-fout.csv"
    bad.write_text(f"holder,amount\n{a.address},40.00\n{b.address.lower()},35.00\n{c.address},12,50\n")
    plan(o, bad, budget)
    assert "kan niet worden uitgegeven" in o.page.inner_text("#plan-status")
    problems = o.page.inner_text("#problems-table")
    assert "3\tadres (holder)" in problems and "geen EIP-55-checksum" in problems
    assert "4\tbedrag (amount)" in problems and "decimale komma" in problems
    assert o.page.is_hidden("#propose-button") and o.page.is_hidden("#issue-button")
    assert server_proposals(server, OWNER_A) == []  # nothing proposed
    o.state("financien-safe-2-plan-refused")

    good = tmp_path / "cultuur.csv"
    good.write_text(f"holder,amount\n{a.address},40.00\n{b.address},35.00\n")
    plan(o, good, budget)
    figures = o.page.inner_text("#plan-figures")
    assert "Regels\n2" in figures and "75,00" in figures and "300,00" in figures and "225,00" in figures
    assert o.page.is_visible("#propose-button") and o.page.is_hidden("#issue-button")
    o.state("financien-safe-3-plan")
    click_and_wait(o, "#propose-button", "proposed")
    assert "Het voorstel is gemaakt; er is niets verstuurd" in o.page.inner_text("#propose-status")
    card = o.page.inner_text("#proposal-list")
    assert "0 van 2 handtekeningen" in card and "cultuur.csv" in card and "75,00" in card and "Cultuur via Safe" in card
    assert o.page.is_hidden("#propose-button")
    assert issued(dep, budget) == 0 and o.sent() == []  # proposing sends nothing
    o.state("financien-safe-4-proposed")

    o.page.evaluate("() => { window.__officerWallet.badSignature = true; }")  # a broken wallet first
    click_and_wait(o, "#proposal-list .bo-sign", "signed")
    assert "geen bruikbare handtekening" in o.page.inner_text("#proposal-0-status")
    assert "0 van 2 handtekeningen" in o.page.inner_text("#proposal-list")  # nothing stored
    o.state("financien-safe-4b-bad-signature-refused")
    o.page.evaluate("() => { window.__officerWallet.badSignature = false; }")
    click_and_wait(o, "#proposal-list .bo-sign", "signed")
    card = o.page.inner_text("#proposal-list")
    assert "1 van 2 handtekeningen" in card and "(u)" in card and "Er ontbreken nog 1" in card
    assert o.page.locator("#proposal-list .bo-execute").count() == 0 and o.page.locator("#proposal-list .bo-sign").count() == 0
    assert o.sent() == [] and issued(dep, budget) == 0
    o.state("financien-safe-5-signed-by-a")

    o = office(OWNER_B, "/financien/")  # the second owner, in another browser
    card = o.page.inner_text("#proposal-list")
    assert "1 van 2 handtekeningen" in card and "cultuur.csv" in card and "Uitgifte van €\xa075,00" in card
    assert "Uw handtekening ontbreekt" in card
    o.page.click("#proposal-list details summary")
    details = o.page.inner_text("#proposal-list details")
    assert issuer_safe in details and "batch-id 0x" in details and "SHA-256" in details
    o.state("financien-safe-6-owner-b-sees-it")
    o.page.click("#lang")
    assert "1 of 2 signatures" in o.page.inner_text("#proposal-list")
    o.state("financien-safe-6-owner-b-sees-it-english")
    o.page.click("#lang")
    click_and_wait(o, "#proposal-list .bo-sign", "signed")
    assert "2 van 2 handtekeningen" in o.page.inner_text("#proposal-list")
    assert o.page.is_visible("#proposal-list .bo-execute")
    o.state("financien-safe-7-signed-by-both")
    click_and_wait(o, "#proposal-list .bo-execute", "executed")
    recon = o.page.inner_text("#safe-recon")
    assert "Uitgevoerd en alles klopt" in recon and "✗" not in recon, recon
    assert "elke transactie van het voorstel is door de Safe uitgevoerd" in recon
    assert len(o.sent()) == 1  # one credit batch, one execTransaction from B's wallet
    assert issued(dep, budget) == 7500  # the budget's issued total on chain equals the file
    assert "Er wachten geen voorstellen" in o.page.inner_text("#proposals")
    o.state("financien-safe-8-executed")

    # executing and confirming again sends nothing: the page's routes say it is done
    s = session_for(server, OWNER_B, "financien")
    proposal_id = o.page.evaluate("() => document.querySelector('#safe-recon-heading').textContent")
    done = [p for p in all_proposals(dep) if p.details.get("file") == "cultuur.csv" and p.safe == issuer_safe]
    assert len(done) == 1 and done[0].id[:10] in proposal_id
    again = s.post(f"{server.base}/api/backoffice/finance/safe/execute", json={"proposal": done[0].id}).json()
    assert again["executed"] is True and again["txs"] == []
    confirm = s.post(f"{server.base}/api/backoffice/finance/safe/confirm", json={"proposal": done[0].id}).json()
    assert confirm["recon"]["ok"] and confirm["proposal"]["status"] == "executed"
    assert issued(dep, budget) == 7500

    o = owner_a  # the same file again: already credited, nothing to propose
    plan(o, good, budget)
    assert "al uitgegeven" in o.page.inner_text("#plan-status") and "Al ontvangen\n2" in o.page.inner_text("#plan-figures")
    assert o.page.is_hidden("#propose-button")
    assert "Er wachten geen voorstellen" in o.page.inner_text("#proposals")  # B executed it meanwhile
    r = session_for(server, OWNER_A, "financien").post(f"{server.base}/api/backoffice/finance/safe/propose", json={
        "csv": good.read_text(), "budget": str(budget), "file": "cultuur.csv"}).json()
    assert r["ok"] and r["proposal"] is None and r["batches"] == []
    assert server_proposals(server, OWNER_A) == [] and issued(dep, budget) == 7500
    o.state("financien-safe-9-nothing-to-propose")


def test_the_safe_routes_refuse_non_owners_and_signatures_that_are_not_the_owners(server, world, dep, issuer_safe):
    budget = new_budget(world, dep, "Cultuur weigeringen")
    (c,) = enrolled(world, "safe-refusals-c")
    owner = session_for(server, OWNER_A, "financien")
    made = owner.post(f"{server.base}/api/backoffice/finance/safe/propose", json={
        "csv": f"holder,amount\n{c.address},10.00\n", "budget": str(budget), "file": "weigeringen.csv"}).json()
    p = made["proposal"]
    assert (p["signed"], p["threshold"], p["status"]) == (0, 2, "pending")
    try:
        # a direct issuer that owns no Safe: every Safe route is refused
        stranger = session_for(server, "ISSUER", "financien")
        for route, body in (("propose", {"csv": f"holder,amount\n{c.address},10.00\n", "budget": str(budget)}),
                            ("proposals", {}), ("sign", {"proposal": p["id"], "signatures": {}}),
                            ("execute", {"proposal": p["id"]}), ("confirm", {"proposal": p["id"]})):
            r = stranger.post(f"{server.base}/api/backoffice/finance/safe/{route}", json=body)
            assert r.status_code == 403, (route, r.text)
            assert address_of("ISSUER") in r.json()["error"]["message"]

        (tx_hash, typed), = p["typed_data"].items()
        url = f"{server.base}/api/backoffice/finance/safe/sign"
        r = owner.post(url, json={"proposal": p["id"], "signatures": {tx_hash: "0x1234"}})
        assert r.status_code == 400 and r.json()["error"]["code"] == "signature_malformed"
        assert "65 bytes" in r.json()["error"]["message"] and "nothing was stored" in r.json()["error"]["message"]
        not_owner = Account.sign_message(encode_typed_data(full_message=typed), keys.dev_account(4).key)
        r = owner.post(url, json={"proposal": p["id"], "signatures": {tx_hash: "0x" + bytes(not_owner.signature).hex()}})
        assert r.status_code == 400 and r.json()["error"]["code"] == "signature_refused"
        assert "is not" in r.json()["error"]["message"] and "nothing was signed" in r.json()["error"]["message"]
        r = owner.post(f"{server.base}/api/backoffice/finance/safe/execute", json={"proposal": p["id"]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "not_enough_signatures"
        (listed,) = [x for x in owner.post(f"{server.base}/api/backoffice/finance/safe/proposals", json={}).json()["proposals"]
                     if x["id"] == p["id"]]
        assert listed["signed"] == 0 and listed["signed_by"] == []  # nothing was stored
        assert issued(dep, budget) == 0
        # the owner's own signature of that very transaction counts
        mine = Account.sign_message(encode_typed_data(full_message=typed), keys.dev_account(9).key)
        r = owner.post(url, json={"proposal": p["id"], "signatures": {tx_hash: "0x" + bytes(mine.signature).hex()}})
        assert r.status_code == 200 and r.json()["proposal"]["signed"] == 1
    finally:
        world.cli("safe", "discard", p["id"])


def all_proposals(dep):
    from citypass import proposals

    return proposals.load_all(dep.chain.workdir, dep.chain.chain_id)


def server_proposals(server, role: str) -> list:
    s = session_for(server, role, "financien")
    r = s.post(f"{server.base}/api/backoffice/finance/safe/proposals", json={})
    assert r.status_code == 200, r.text
    return r.json()["proposals"]


def test_without_the_safe_the_same_wallet_is_refused(server):
    s = session_for(server, OWNER_A, "financien")
    assert s.signin_status == 403 and address_of(OWNER_A) in s.signin_body["error"]["message"]
