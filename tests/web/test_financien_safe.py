"""Sign-in as an owner of a Safe that holds a role (issue 16, the four-eyes issue): the SIWE role
check counts a role held by a Safe whose owners include the officer, the session says which role
through which Safe, and the page says what it cannot do for that role yet (proposing, signing and
executing through the Safe: the command line does that for now). Direct writes stay refused: the
officer's own address does not hold the role."""

from __future__ import annotations

import pytest
from backofficekit import address_of, office, officer_wallet_js, session_for  # noqa: F401

from citypass import keys


@pytest.fixture
def issuer_safe(world):
    """A 2-of-2 Safe of dev:9 (holds nothing itself) and dev:6, given the issuer role."""
    made = world.cli("safe", "create", "--owner", "dev:9", "--owner", "dev:6", "--threshold", "2")
    safe = made["safe"]
    world.cli("--from", "dev:0", "role", "grant", "issuer", safe)
    yield safe
    world.cli("--from", "dev:0", "role", "revoke", "issuer", safe)


def test_an_owner_of_the_issuer_safe_signs_in_and_is_told_what_is_not_here_yet(office, server, issuer_safe):
    owner = keys.dev_account(9).address
    s = session_for(server, "NOBODY", "financien")
    assert s.signin_status == 200, s.signin_body
    assert s.signin_body["roles"] == [] and s.signin_body["via_safe"] == [{"role": "ISSUER", "safe": issuer_safe}]
    assert s.signin_body["address"] == owner
    # the officer's own address holds no role: a direct issuance route is refused
    r = s.post(f"{server.base}/api/backoffice/finance/issuance/plan", json={"csv": "holder,amount\n", "budget": "1"})
    assert r.status_code == 403
    o = office("NOBODY", "/financien/")
    note = o.page.inner_text("#via-safe")
    assert issuer_safe in note and "uitgifte" in note and "kan nog niet op deze pagina" in note
    assert "geen eigen rol, alleen via een Safe" in o.page.inner_text("#officer-text")
    assert o.page.is_hidden("#no-role") and o.page.is_hidden("#issuance")
    o.state("financien-safe-1-owner-signed-in")
    o.page.click("#lang")
    assert "cannot be done on this page yet" in o.page.inner_text("#via-safe")
    o.page.click("#lang")


def test_without_the_safe_the_same_wallet_is_refused(server):
    s = session_for(server, "NOBODY", "financien")
    assert s.signin_status == 403 and address_of("NOBODY") in s.signin_body["error"]["message"]
