"""The JSON API of `citypass web` over a real server and an embedded Anvil: every route's
answer against what the chain says, and its refusals (4xx JSON naming the field)."""

from __future__ import annotations

import pytest

import dataclasses

from citypass import keys, passqr, tx, wallet
from citypass.reasons import Reason
from citypass.web import auth, i18n
from tests.web_helpers import (MUSEUM, MUSEUM_NAME, POOL, POOL_NAME, Server, make_world, pass_qr, redeem, resident,
                               stop_node)

OUTSIDER = resident("outsider").address


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own embedded node, not Brownie's."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("citypass-web-api"))
    w.redemption = redeem(w, w.alice, w.sport, 1250)  # type: ignore[attr-defined]
    yield w
    stop_node(w.workdir)


@pytest.fixture(scope="module")
def server(world):
    with Server(world.service) as s:
        yield s


def error(server: Server, name: str, body, status: int = 400) -> dict:
    answer = server.api(name, body, status=status)
    assert set(answer) == {"error"} and answer["error"]["message"], answer
    return answer["error"]


# ------------------------------------------------------------------ deployment, budgets, providers
def test_deployment(server, world):
    d = server.api("deployment")
    assert d["chain_id"] == 31337 and d["chain_id_hex"] == "0x7a69" and d["contract"] == world.dep.address
    assert d["rpc_url"] == server.base + "/rpc" and d["rpc_path"] == "/rpc"
    assert d["dev_chain"] is True and d["paused"] is False and d["contract_version"] == 2
    assert d["eip712"] == {"name": "CityPass", "version": "2"}
    assert any(k.startswith("dev:0 (") and "admin" in k for k in d["dev_keys"])
    assert d["block"] == world.dep.chain.w3.eth.block_number


def test_deployment_takes_no_fields(server):
    assert error(server, "deployment", {"x": 1})["field"] == "x"


def test_budgets(server, world):
    budgets = server.api("budgets")["budgets"]
    assert [(b["serial"], b["name"], b["category_name"]) for b in budgets] == [
        (1, "Sport 2026", "sport"), (2, "Cultuur 2026", "culture")]
    sport = budgets[0]
    assert sport["budget"] == str(world.sport) and sport["open"] is True
    assert sport["issued_cents"] == 3500 and sport["cap_cents"] == 1_000_000


def test_providers(server):
    providers = {p["address"]: p for p in server.api("providers")["providers"]}
    assert providers[POOL] == {"address": POOL, "name": POOL_NAME, "status": "active", "categories": [0],
                               "category_names": ["sport"], "max_amount_cents": 5000, "paused": False}
    assert providers[MUSEUM]["max_amount_cents"] == 0 and providers[MUSEUM]["name"] == MUSEUM_NAME


def test_provider_one(server, world):
    p = server.api("provider", {"address": POOL})
    assert p["approved"] is True and p["reason"] is None and int(p["gas_wei"]) > 0 and p["name"] == POOL_NAME
    stranger = server.api("provider", {"address": OUTSIDER})
    assert stranger["status"] == "none" and stranger["name"] is None and stranger["approved"] is False and stranger["reason"] == "NotAProvider"
    assert stranger["message"] == Reason.NotAProvider.message
    assert error(server, "provider", {"address": "0x12"})["field"] == "address"
    assert "missing" in error(server, "provider", {})["message"]
    bad_sum = POOL[:2] + POOL[2:].swapcase()
    assert "checksum" in error(server, "provider", {"address": bad_sum})["message"]



def test_a_provider_added_just_now_has_its_name(server, world):
    """The name comes from the event index, the status from the chain's state: an answer right
    after the provider was added (well within the index's sync interval) must show both."""
    shop = resident("web-api-new-shop").address
    assert server.api("provider", {"address": shop})["status"] == "none"  # the index has just synced
    f = world.dep.contract.functions  # dev:2 is the provider manager on dev chains
    tx.send(world.dep.chain, keys.dev_account(2), f.addProvider(shop, 1, 0, "Sportwinkel Zuid"))
    p = server.api("provider", {"address": shop})
    assert (p["status"], p["name"]) == ("active", "Sportwinkel Zuid")
    listed = {q["address"]: q["name"] for q in server.api("providers")["providers"]}
    assert listed[shop] == "Sportwinkel Zuid"


# ------------------------------------------------------------------ balances, nonces
def test_balances(server, world):
    b = server.api("balances", {"holder": world.alice.address})
    assert b["pass"]["status"] == "active" and b["pass"]["current_address"] == world.alice.address
    left = {x["serial"]: x["left_cents"] for x in b["balances"]}
    assert left == {1: 2500 - 1250, 2: 2500}
    assert b["balances"][0]["name"] == "Sport 2026"
    nobody = server.api("balances", {"holder": OUTSIDER})
    assert nobody["pass"]["status"] == "none" and nobody["balances"] == []


def test_nonces(server, world):
    used = world.redemption.voucher.nonce
    answer = server.api("nonces", {"holder": world.alice.address, "items": [
        {"budget": str(world.sport), "nonce": used}, {"budget": str(world.sport), "nonce": used + 1},
        {"budget": str(world.culture), "nonce": 0}]})
    assert [i["used"] for i in answer["items"]] == [True, False, False]
    assert answer["hot_nonces"][str(world.sport)] == 1 << used
    assert error(server, "nonces", {"holder": world.alice.address, "items": []})["field"] == "items"
    assert error(server, "nonces", {"holder": world.alice.address, "items": [{"budget": "x", "nonce": 1}]})["field"] \
        == "items[0].budget"
    assert error(server, "nonces", {"holder": world.alice.address, "items": [{"budget": "1", "nonce": -1}]})["field"] \
        == "nonce"


# ------------------------------------------------------------------ the pre-check
def qr(world, holder, budget: int, cents: int, provider: str = passqr.ANY_PROVIDER, nonce: int | None = None) -> str:
    """The CP2 pass QR text with one voucher of `budget` for up to `cents`."""
    return pass_qr(world, holder, budget, cents, provider, nonce).encode()


def used_qr(world) -> str:
    """Alice's pass QR re-signed with the nonce her redemption used."""
    return qr(world, world.alice, world.sport, 1250, nonce=world.redemption.voucher.nonce)


def forged_qr(world, holder, signer, budget: int, cents: int) -> str:
    """A pass QR that names `holder` but carries `signer`'s signatures."""
    signed = pass_qr(world, signer, budget, cents)
    return passqr.encode(dataclasses.replace(signed, holder=holder.address))


def test_check_ok(server, world):
    text = qr(world, world.bob, world.sport, 700)
    assert text.startswith("CP2:")
    answer = server.api("check", {"qr": text, "provider": POOL})
    assert answer["holder"] == world.bob.address and answer["entitled"] is True and answer["provider_in_qr"] is None
    (entry,) = answer["entries"]
    assert entry["reason"] == "Ok" and entry["reason_code"] == 0 and entry["entitled"] is True
    assert entry["name"] == "Sport 2026" and entry["left_cents"] == 1000 and entry["max_amount_cents"] == 700
    assert entry["spendable_cents"] == 700 and entry["amount_cents"] == 700 and entry["nonce_used"] is False
    assert entry["voucher"] == {"holder": world.bob.address, "provider": passqr.ANY_PROVIDER,
                                "budget": str(world.sport), "maxAmount": 700, "nonce": entry["nonce"],
                                "deadline": answer["deadline"]}
    assert entry["signature"].startswith("0x") and len(entry["signature"]) == 2 + 130
    typed = server.api("check", {"qr": text, "provider": POOL, "amounts": {str(world.sport): 250}})
    assert typed["entries"][0]["amount_cents"] == 250 and typed["entries"][0]["reason"] == "Ok"


def test_check_a_pass_qr_with_two_budgets(server, world):
    """One QR, a voucher per budget: each judged for this provider (the pool takes only sport)."""
    text = wallet.pass_qr(world.dep, world.bob, budgets=[world.sport, world.culture], max_amount=400).encode()
    answer = server.api("check", {"qr": text, "provider": POOL})
    assert [(e["serial"], e["reason"]) for e in answer["entries"]] == [(1, "Ok"), (2, "CategoryNotApproved")]
    assert answer["entitled"] is True
    museum = server.api("check", {"qr": text, "provider": MUSEUM})
    assert [e["reason"] for e in museum["entries"]] == ["CategoryNotApproved", "Ok"]


def test_check_refusals(server, world):
    short = server.api("check", {"qr": qr(world, world.bob, world.sport, 1500), "provider": POOL})
    (entry,) = short["entries"]
    assert entry["spendable_cents"] == 1000  # what the pass holds: the till offers that
    short = server.api("check", {"qr": qr(world, world.bob, world.sport, 1500), "provider": POOL,
                                 "amounts": {str(world.sport): 1500}})
    (entry,) = short["entries"]
    assert short["entitled"] is False and entry["reason"] == "InsufficientCredit"
    assert entry["params"]["left"] == "€10,00" and entry["params"]["short"] == "€5,00"
    assert i18n.sentence("InsufficientCredit", "nl", **entry["params"]) == \
        "Onvoldoende tegoed: nog €10,00 over. Vraag de klant €5,00 bij te betalen."
    above = server.api("check", {"qr": qr(world, world.bob, world.sport, 500), "provider": POOL,
                                 "amounts": {str(world.sport): 501}})
    assert above["entries"][0]["reason"] == "AboveVoucherLimit" and above["entries"][0]["reason_code"] == 21
    assert server.api("check", {"qr": used_qr(world), "provider": POOL})["entries"][0]["reason"] == "NonceUsed"
    other = server.api("check", {"qr": qr(world, world.bob, world.sport, 100, POOL), "provider": MUSEUM})
    assert other["provider_in_qr"] == POOL
    assert other["entries"][0]["reason"] == "WrongProvider" and "made out to provider" in other["entries"][0]["message"]


def test_check_without_a_wallet(server, world):
    """No provider yet (no wallet connected): the provider-independent checks still answer."""
    def verdict(body):
        answer = server.api("check", body if isinstance(body, dict) else {"qr": body})
        assert answer["provider"] is None and answer["provider_checked"] is False
        return answer["entries"][0]["reason"]

    assert verdict(qr(world, world.bob, world.sport, 700)) == "Ok"
    assert verdict({"qr": qr(world, world.bob, world.sport, 1500), "amounts": {str(world.sport): 1500}}) \
        == "InsufficientCredit"
    assert verdict({"qr": qr(world, world.bob, world.sport, 500), "amounts": {str(world.sport): 501}}) \
        == "AboveVoucherLimit"
    used = used_qr(world)
    assert verdict(used) == "NonceUsed"
    assert verdict(forged_qr(world, world.alice, world.bob, world.sport, 100)) == "BadSignature"
    stranger = resident("no-pass")
    no_pass = passqr.sign_pass(stranger.key, 31337, world.dep.address, [(world.sport, 100, 0)],
                               world.dep.chain.now() + 3600)
    assert verdict(no_pass.encode()) == "NoPass"
    # and with the wallet connected, the same vouchers get the chain's own verdict
    assert server.api("check", {"qr": used, "provider": POOL})["entries"][0]["reason"] == "NonceUsed"
    forged = server.api("check", {"qr": forged_qr(world, world.alice, world.bob, world.sport, 100), "provider": POOL})
    assert forged["entries"][0]["reason"] == "BadSignature"


def test_check_bad_qr(server, world):
    good = qr(world, world.bob, world.sport, 700)
    for text, words in [("", "empty"), ("hello", "not a CityPass pass QR"), ("CP2:ABC", "qr: "),
                        ("CP1:" + "0" * 50, "should start with CP2:"), ("x" * 5000, "more than a QR code holds"),
                        (good[:-6], "qr: "), (good + "A", "qr: ")]:
        err = error(server, "check", {"qr": text, "provider": POOL})
        assert err["field"] == "qr" and words in err["message"], (text[:20], err)
    other_chain = passqr.sign_pass(world.bob.key, 5, world.dep.address, [(world.sport, 100, 0)], 2**39).encode()
    assert "chain 5" in error(server, "check", {"qr": other_chain, "provider": POOL})["message"]
    elsewhere = passqr.sign_pass(world.bob.key, 31337, POOL, [(world.sport, 100, 0)], 2**39).encode()
    assert "CityPass contract at" in error(server, "check", {"qr": elsewhere, "provider": POOL})["message"]
    assert error(server, "check", {"qr": 5, "provider": POOL})["field"] == "qr"
    assert error(server, "check", {"qr": good, "provider": "pool"})["field"] == "provider"
    assert error(server, "check", {"qr": good, "provider": POOL, "amounts": {"x": 1}})["field"] == "amounts.x"
    err = error(server, "check", {"qr": good, "provider": POOL, "amounts": {"12": -5}})
    assert err["field"] == "amounts.12" and "out of range" in err["message"]


# ------------------------------------------------------------------ takings and history (event index)
def test_takings(server, world):
    t = server.api("takings", {"provider": POOL})
    assert t["count"] == 1 and t["redeemed_cents"] == 1250 and t["net_cents"] == 1250
    (item,) = t["items"]
    assert t["signed"] is False and "holder" not in item  # who paid: only for the provider's own till
    assert item["kind"] == "redemption" and item["name"] == "Sport 2026"
    assert item["tx"] == world.redemption.tx_hash and item["nonce"] == world.redemption.voucher.nonce
    assert server.api("takings", {"provider": MUSEUM})["items"] == []
    earlier = server.api("takings", {"provider": POOL, "from": t["from"] - 86_400, "to": t["from"]})
    assert earlier["count"] == 0
    assert error(server, "takings", {"provider": POOL, "from": 10, "to": 5})["field"] == "to"
    assert error(server, "takings", {"provider": POOL, "from": 0, "to": 40 * 86_400})["field"] == "to"


def test_takings_with_holders_only_for_the_provider(server, world):
    from citypass import keys

    pool_key = keys.dev_account(7).key
    ts, sig = auth.sign_request(pool_key, POOL, "/api/takings", 31337, world.dep.address)
    t = server.api("takings", {"provider": POOL, "time": ts, "signature": sig})
    assert t["signed"] is True and t["items"][0]["holder"] == world.alice.address
    ts, sig = auth.sign_request(world.alice.key, POOL, "/api/takings", 31337, world.dep.address)
    err = error(server, "takings", {"provider": POOL, "time": ts, "signature": sig}, status=401)
    assert err["field"] == "signature" and "provider" in err["message"]
    ts, sig = auth.sign_request(pool_key, POOL, "/api/history", 31337, world.dep.address)  # another route's
    assert error(server, "takings", {"provider": POOL, "time": ts, "signature": sig}, status=401)["field"] == "signature"
    assert error(server, "takings", {"provider": POOL, "signature": sig})["field"] == "time"


def test_takings_follow_new_redemptions(server, world):
    before = server.api("takings", {"provider": MUSEUM})["count"]
    redeem(world, world.bob, world.culture, 300, MUSEUM)
    import time
    time.sleep(1.1)  # the index syncs at most once a second per request
    after = server.api("takings", {"provider": MUSEUM})
    assert after["count"] == before + 1 and after["items"][-1]["amount_cents"] == 300


def signed_history(server, world, key, holder, **override):
    ts, sig = auth.sign_request(key, holder, "/api/history", 31337, world.dep.address)
    body = {"holder": holder, "time": ts, "signature": sig} | override
    return server.post("/api/history", body)


def test_history_only_for_the_holder(server, world):
    r = signed_history(server, world, world.alice.key, world.alice.address)
    assert r.status_code == 200, r.text
    kinds = [(i["kind"], i["name"], i["amount_cents"]) for i in r.json()["items"]]
    assert kinds == [("issued", "Sport 2026", 2500), ("issued", "Cultuur 2026", 2500),
                     ("redemption", "Sport 2026", 1250)]
    assert r.json()["items"][2]["provider"] == POOL
    # a provider (or anyone) signing for alice, a stale or a replayed-elsewhere request: 401
    for response, field in [
        (signed_history(server, world, world.bob.key, world.alice.address), "signature"),
        (signed_history(server, world, world.alice.key, world.alice.address, time=1), "time"),
        (signed_history(server, world, world.alice.key, world.alice.address, signature="0x" + "00" * 65), "signature"),
        (signed_history(server, world, world.alice.key, world.alice.address, signature="nonsense"), "signature"),
    ]:
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized" and response.json()["error"]["field"] == field
    ts, sig = auth.sign_request(world.alice.key, world.alice.address, "/api/other", 31337, world.dep.address)
    r = server.post("/api/history", {"holder": world.alice.address, "time": ts, "signature": sig})
    assert r.status_code == 401
    assert server.post("/api/history", {"holder": world.alice.address}).status_code == 400


# ------------------------------------------------------------------ messages
def test_messages_cover_every_reason():
    names = {r.name for r in Reason} | {"AboveVoucherLimit", "WrongProvider"}
    for lang in ("nl", "en"):
        cat = i18n.catalogue(lang)
        assert set(cat["reasons"]) == names
        for name, m in cat["reasons"].items():
            assert m["title"] and m["text"] and m["next"], (lang, name)
    assert i18n.euro_text(350) == "€3,50" and i18n.euro_text(123456, "en") == "€1,234.56"
    assert i18n.euro_text(123456) == "€1.234,56"


def test_messages_route(server):
    nl = server.api("messages", {"lang": "nl"})
    assert nl["reasons"]["InsufficientCredit"]["text"] == "Onvoldoende tegoed: nog {left} over."
    assert nl["codes"]["WrongProvider"] == 22
    assert server.api("messages")["lang"] == "nl"
    assert server.api("messages", {"lang": "en"})["reasons"]["Ok"]["title"] == "Valid"
    assert error(server, "messages", {"lang": "de"})["field"] == "lang"


def test_unknown_route(server):
    err = error(server, "nothing", {}, status=404)
    assert "routes:" in err["message"] and err["code"] == "not_found"


def test_citypass_web_command(world):
    """`citypass web` itself: starts on loopback over the work directory's chain and serves the API."""
    import os
    import subprocess
    import sys
    import time

    import requests

    from tests.web_helpers import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}
    proc = subprocess.Popen([sys.executable, "-m", "citypass", "--workdir", str(world.workdir), "web", "--port", str(port),
                             "--rebuild-index"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # a loaded machine needs seconds just to start Python and import web3
        r = None
        while r is None:
            try:
                r = requests.post(base + "/api/deployment", json={}, timeout=2)
            except requests.ConnectionError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "`citypass web` did not answer within 60 s"
                time.sleep(0.05)
        assert r.status_code == 200 and r.json()["contract"] == world.dep.address and r.json()["dev_chain"] is True
        assert r.json()["rpc_url"] == base + "/rpc"
        assert requests.post(base + "/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine"}).json()["error"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "development chain: public Anvil dev keys hold dev:0" in err and "Traceback" not in err
    assert "event index: " in err and " events up to block " in err


def test_provider_free_verdicts_in_order(world):
    """Each provider-independent rule on its own (the chain's state given as arguments)."""
    from citypass import budget_id
    from citypass.web import vouchers

    now = world.dep.chain.now()
    (s,) = vouchers.decode(world.dep, qr(world, world.bob, world.sport, 500))
    terms = budget_id.decode(world.sport)
    ok = dict(now=now, paused=False, pass_status="active", pass_valid_until=now + 86_400, left=1000, nonce_used=False)

    def verdict(amount=500, **change):
        return vouchers.check_without_provider(world.dep, s, amount, **(ok | change))[0].name

    assert verdict() == "Ok"
    assert verdict(now=s.deadline + 1) == "VoucherExpired"
    assert verdict(amount=0) == "ZeroAmount"
    assert verdict(amount=501) == "AboveVoucherLimit"
    assert verdict(amount=501, left=100) == "AboveVoucherLimit"  # the limit before the credit, as on chain
    assert verdict(nonce_used=True) == "NonceUsed"
    assert verdict(paused=True) == "Paused"
    assert verdict(now=terms.valid_from - 1) == "BudgetNotStarted"
    assert verdict(now=terms.valid_from - 1, pass_status="suspended") == "PassSuspended"  # the pass first, as on chain
    late = dataclasses.replace(s, deadline=terms.valid_until + 10**6)  # only the rule's input changes
    assert vouchers.check_without_provider(world.dep, late, 500, **(ok | dict(
        now=terms.valid_until + 1, pass_valid_until=terms.valid_until + 10**6)))[0].name == "BudgetEnded"
    for status, reason in [("none", "NoPass"), ("suspended", "PassSuspended"), ("revoked", "PassRevoked"),
                           ("migrated", "PassMigrated"), ("provider", "TransferNotAllowed")]:
        assert verdict(pass_status=status) == reason
    assert verdict(pass_valid_until=now - 1) == "PassExpired"
    assert verdict(left=499) == "InsufficientCredit"
    assert verdict(nonce_used=True, paused=True) == "NonceUsed"  # the first rule that fails is the one said
