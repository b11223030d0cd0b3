"""Finance (/financien/) in a real browser, each officer with the wallet of their own role:
issuance from an uploaded CSV (an error: refused, nothing sent; fixed: issued once, with the
progress bar and the reconciliation; uploaded again: nothing sent), providers and their gas,
a settlement whose payment reference is then refused, and reclaim at the end of a budget."""

from __future__ import annotations

import time

import pytest
from backofficekit import address_of, office, officer_wallet_js  # noqa: F401
from passes import Entry, pass_qr
from tillkit import MUSEUM, POOL, resident

from citypass import keys
from citypass import contract as C
from citypass import tx as T
from citypass.chain import connect


@pytest.fixture
def issuer_registers(world):
    """The issuer also holds the registrar role here, so the file may enrol new residents."""
    world.cli("--from", "dev:0", "role", "grant", "registrar", address_of("ISSUER"))
    yield
    world.cli("--from", "dev:0", "role", "revoke", "registrar", address_of("ISSUER"))


@pytest.fixture(scope="module")
def dep(world):
    chain = connect(None, workdir=world.workdir)
    return C.open_deployment(chain, workdir=world.workdir)


def budget_totals(dep, budget: int) -> tuple[int, ...]:
    return tuple(dep.contract.functions.budgetTotals(budget).call())


def plan(o, path, budget: int, tranche: str = "") -> None:
    before = int(o.page.evaluate("() => Number(document.body.dataset.plans || 0)"))
    o.page.select_option("#issue-budget", str(budget))
    o.page.fill("#issue-tranche", tranche)
    o.page.set_input_files("#issue-file", str(path))
    o.page.click("#plan-button")
    o.page.wait_for_function(f"() => Number(document.body.dataset.plans || 0) > {before}")


def test_issuance_refused_then_issued_once_then_nothing_sent(office, server, world, dep, tmp_path, issuer_registers):
    today = time.strftime("%Y-%m-%d", time.gmtime(dep.chain.now()))
    budget = int(world.cli("budget", "create", "--category", "sport", "--valid-from", today, "--valid-until",
                           world.until, "--cap", "500", "--name", "Sport najaar")["id"])
    known = [resident("fin-issue-a"), resident("fin-issue-b")]
    world.cli("pass", "enroll", *(k.address for k in known), "--valid-until", world.until)
    new = resident("fin-issue-new")  # no pass yet: enrolled by the file
    o = office("ISSUER", "/financien/")
    assert o.page.is_visible("#issuance")
    assert o.page.is_hidden("#providers") and o.page.is_hidden("#settle") and o.page.is_hidden("#reclaim")
    o.state("financien-1-issuer")

    bad = tmp_path / "uitgifte-fout.csv"
    bad.write_text(f"holder,amount\n{known[0].address},25.00\n{known[1].address.lower()},25.00\n"
                   f"{new.address},12,50\n")
    plan(o, bad, budget)
    assert "kan niet worden uitgegeven" in o.page.inner_text("#plan-status")
    problems = o.page.inner_text("#problems-table")
    assert "3\tadres (holder)" in problems and "checksum" in problems
    assert "4\tbedrag (amount)" in problems and "decimale komma" in problems
    assert "decimal comma" not in problems  # Dutch only; the library's English sentence is in English mode
    assert o.page.is_hidden("#issue-button")
    assert o.sent() == [] and budget_totals(dep, budget)[1] == 0  # nothing sent
    o.state("financien-2-plan-refused")

    good = tmp_path / "uitgifte.csv"
    good.write_text(f"holder,amount\n{known[0].address},25.00\n{known[1].address},25.00\n{new.address},12.50\n")
    plan(o, good, budget)
    figures = o.page.inner_text("#plan-figures")
    for label, value in (("Regels", "3"), ("Inwoners", "3"), ("Nieuwe passen", "1"), ("Al ontvangen", "0")):
        assert f"{label}\n{value}" in figures, figures
    assert "62,50" in figures and "500,00" in figures and "437,50" in figures  # total, cap, left after
    assert o.sent() == []
    o.state("financien-3-plan")
    o.page.click("#issue-button")
    o.page.wait_for_selector("#recon:not([hidden])", timeout=60_000)
    assert "Alles klopt" in o.page.inner_text("#recon-status")
    batches = len(o.sent())
    assert batches == 2  # one credit batch (two passes), one enrol-and-credit batch (the new one)
    assert o.page.evaluate("() => document.getElementById('issue-progress').value") == batches
    assert budget_totals(dep, budget)[1] == 6250
    assert server.api("balances", {"holder": new.address})["pass"]["status"] == "active"
    o.state("financien-4-issued")

    plan(o, good, budget)  # the same file again: nothing left to send
    assert "al uitgegeven" in o.page.inner_text("#plan-status")
    assert "Al ontvangen\n3" in o.page.inner_text("#plan-figures")
    assert o.page.is_hidden("#issue-button")
    assert len(o.sent()) == batches and budget_totals(dep, budget)[1] == 6250
    o.state("financien-5-nothing-to-send")


def test_providers_add_update_suspend_and_gas(office, server, world):
    o = office("PROVIDER_MANAGER", "/financien/")
    assert o.page.is_visible("#providers") and o.page.is_hidden("#issuance")
    assert "Zwembad De Wetering" in o.page.inner_text("#provider-rows")
    shop = resident("fin-provider-shop").address  # a fresh wallet: no ETH, no pass
    o.page.fill("#add-address", shop)
    o.page.fill("#add-name", "Sportwinkel Noord")
    o.page.check("#add-cat-0")
    o.page.fill("#add-limit", "40")
    o.state("financien-6-provider-form")
    o.page.click("#add-form button[type=submit]")
    o.wait_status("#provider-status", "Sportwinkel Noord")
    p = server.api("provider", {"address": shop})
    assert (p["name"], p["status"], p["categories"], p["max_amount_cents"]) == ("Sportwinkel Noord", "active", [0], 4000)
    o.page.select_option("#manage-provider", shop)
    o.page.select_option("#manage-action", "update")
    o.page.fill("#manage-limit", "60,00")
    o.page.check("#manage-cat-1")
    o.page.click("#manage-form button[type=submit]")
    o.wait_status("#provider-status", "bijgewerkt")
    p = server.api("provider", {"address": shop})
    assert (p["categories"], p["max_amount_cents"]) == ([0, 1], 6000)
    o.page.select_option("#manage-provider", shop)
    o.page.select_option("#manage-action", "suspend")
    o.page.click("#manage-form button[type=submit]")
    o.wait_status("#provider-status", "bijgewerkt")
    assert server.api("provider", {"address": shop})["status"] == "suspended"
    # gas: the new provider holds nothing, so it is topped up from the officer's wallet
    o.page.fill("#gas-below", "0.5")
    o.page.fill("#gas-to", "0.75")
    o.page.click("#gas-form button[type=submit]")
    o.page.wait_for_selector("#gas-send:not([hidden])")
    assert "Sportwinkel Noord" in o.page.inner_text("#gas-list")
    o.state("financien-7-gas-plan")
    o.page.click("#gas-send")
    o.wait_status("#gas-status", "aangevuld")
    assert int(server.api("provider", {"address": shop})["gas_wei"]) == 75 * 10**16
    o.page.click("#gas-form button[type=submit]")  # again: nobody is below the threshold any more
    o.wait_status("#gas-status", "genoeg gas")
    o.state("financien-8-providers-done")


def test_settlement_then_the_same_reference_is_refused(office, server, world):
    chain_id, contract = server.api("deployment")["chain_id"], server.api("deployment")["contract"]
    who = world.new_resident("fin-settle", sport="30.00", culture="20.00")
    deadline = int(time.time()) + 3600
    world.cli("--from", "dev:8", "redeem", pass_qr(who, chain_id, contract, [Entry(world.culture, 2_000, 11)], deadline),
              "--amount", "7.50")
    world.cli("--from", "dev:7", "redeem", pass_qr(who, chain_id, contract, [Entry(world.sport, 2_000, 12)], deadline),
              "--amount", "4.00")
    o = office("TREASURER", "/financien/")
    assert o.page.is_visible("#settle") and o.page.is_hidden("#providers")
    o.page.select_option("#settle-provider", MUSEUM)
    o.page.click("#settle-form button[type=submit]")
    o.page.wait_for_selector("#owed:not([hidden])")
    owed = o.page.inner_text("#owed")
    assert "Museum aan de Gracht" in owed and "Cultuur 2026" in owed and "7,50" in owed
    reference = f"INV-{int(time.time())}-001"
    o.page.fill("#settle-reference", reference.lower())  # the same reference, however it is typed
    o.state("financien-9-owed")
    o.page.click("#settle-button")
    o.wait_status("#settle-status", "Afgerekend", reference)
    assert server.api("provider", {"address": MUSEUM}) and "7,50" in o.page.inner_text("#settle-status")
    o.state("financien-10-settled")
    sent = len(o.sent())
    o.page.select_option("#settle-provider", POOL)
    o.page.click("#settle-form button[type=submit]")
    o.page.wait_for_function("() => document.getElementById('owed-heading').textContent.includes('Zwembad')")
    o.page.fill("#settle-reference", f"  {reference} ")
    o.page.click("#settle-button")
    o.wait_status("#settle-status", "al gebruikt", "Er is niets verstuurd", "Museum aan de Gracht")  # names the earlier payment
    assert len(o.sent()) == sent
    o.state("financien-11-reference-refused")


def test_reclaim_at_the_end_of_a_budget(office, server, world, dep):
    now = dep.chain.now()
    manager = keys.dev_account(1)
    T.send(dep.chain, manager, dep.contract.functions.createBudget(0, now - 60, now + 90, 10_000, "Sport zomerkamp"))
    budget = dep.contract.functions.budgets().call()[-1]
    who = resident("fin-reclaim")
    world.cli("pass", "enroll", who.address, "--valid-until", world.until)
    rows = world.workdir / "reclaim.csv"
    rows.write_text(f"holder,amount\n{who.address},15.00\n")
    world.cli("issue", str(rows), "--budget", str(budget))
    o = office("BUDGET_MANAGER", "/financien/")
    o.page.select_option("#reclaim-budget", str(budget))
    o.page.click("#reclaim-form button[type=submit]")
    o.page.wait_for_selector("#reclaim-preview.bo-warn")
    assert "loopt nog" in o.page.inner_text("#reclaim-preview")
    assert o.page.is_hidden("#reclaim-button")
    world.cli("node", "advance", "3m")
    o.page.click("#reclaim-form button[type=submit]")
    o.page.wait_for_function("() => document.getElementById('reclaim-preview').textContent.includes('vernietigd')")
    assert "15,00" in o.page.inner_text("#reclaim-preview") and "1 inwoner" in o.page.inner_text("#reclaim-preview")
    o.state("financien-12-reclaim-preview")
    o.page.click("#reclaim-button")
    o.wait_status("#reclaim-status", "Teruggenomen", "15,00")
    assert budget_totals(dep, budget)[3] == 1500
    o.state("financien-13-reclaimed")


def test_each_role_sees_only_its_own_work(office):
    o = office("REGISTRAR", "/financien/", sign_in=False)
    o.page.click("#signin-button")
    o.page.wait_for_selector("#signin-status.bo-error")
    assert "Uw rol mag dit niet" in o.page.inner_text("#signin-status")
    for section in ("#issuance", "#providers", "#settle", "#reclaim"):
        assert o.page.is_hidden(section)
    o.state("financien-14-wrong-role")
    o.page.click("#lang")  # English one click away
    assert "Sign in with your role's wallet" in o.page.inner_text("#signin")
    assert o.page.get_attribute("html", "lang") == "en"
    o.state("financien-15-english")
