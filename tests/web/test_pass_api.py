"""The pass app's server side without a browser: the address QR parser (citypass/address.py)
and the CLI that reads it at the desk, and /api/pass/history, which answers only a fresh,
never-seen request signed by the holder's own key for this server."""

from __future__ import annotations

import time

import pytest
import requests
from click.testing import CliRunner
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

import media
from citypass.address import AddressQRError, address_qr, parse_address_qr, pass_address
from citypass.cli import main
from citypass.web import pass_api
from citypass.web.errors import ApiError

ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55's own example (all caps digits)
MIXED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_parse_address_qr_reads_the_agreed_format_and_says_what_is_wrong():
    assert parse_address_qr(f"ethereum:{MIXED}@31337") == (MIXED, 31337)
    assert parse_address_qr(f"  ethereum:{MIXED.lower()}@1\n") == (MIXED, 1)
    assert parse_address_qr(f"ethereum:{MIXED}") == (MIXED, None)
    assert parse_address_qr(MIXED.lower()) == (MIXED, None)
    assert parse_address_qr(address_qr(MIXED.lower(), 10)) == (MIXED, 10)
    assert address_qr(MIXED.lower(), 10) == f"ethereum:{MIXED}@10"
    typo = MIXED[:-1] + "D"  # one letter in the wrong case
    cases = {
        f"ethereum:{typo}@1": "checksum",
        "ethereum:0x1234@1": "40 hex digits",
        f"ethereum:{MIXED}@main": "chain id",
        f"ethereum:{MIXED}@0": "0 is no chain",
        f"ethereum:{MIXED}/transfer?address=0x1": "payment request",
        "CP2:ABC": r"pass QR \(for the till\)",
        "https://example.org": "not an address QR",
        "": "empty",
    }
    for text, words in cases.items():
        with pytest.raises(AddressQRError, match=words):
            parse_address_qr(text)


def test_pass_address_refuses_another_chains_code():
    assert pass_address(f"ethereum:{MIXED}@31337", 31337) == MIXED
    assert pass_address(MIXED.lower(), 31337) == MIXED
    with pytest.raises(AddressQRError, match="argument 1: the address QR is for chain 31337, this is chain 5"):
        pass_address(f"ethereum:{MIXED}@31337", 5, "argument 1")


def sign_request(private_key, origin, chain_id, contract, *, timestamp=None, nonce=None):
    """The request body as the pass app makes it (web/src/pass/main.js historyText)."""
    import secrets

    holder = Account.from_key(private_key).address
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16) if nonce is None else nonce
    text = pass_api.request_text(holder, origin, chain_id, contract, ts, nonce)
    signed = Account.sign_message(encode_defunct(text=text), private_key)
    return {"holder": holder, "time": ts, "nonce": nonce, "signature": "0x" + bytes(signed.signature).hex()}


def test_enroll_refuses_a_bad_address_qr_before_sending_anything(world):
    runner = CliRunner(mix_stderr=False, env={"CITYPASS_RPC": None, "CITYPASS_FROM": None,
                                              "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None})
    who = Account.from_key(keccak(text="citypass-pass-api-wrong-chain")).address
    result = runner.invoke(main, ["--workdir", str(world.workdir), "pass", "enroll", f"ethereum:{who}@5",
                                  "--valid-until", world.until])
    assert result.exit_code == 2 and "argument 1" in result.stderr and "chain 5" in result.stderr
    photo = world.workdir / "wrong-chain.png"
    photo.write_bytes(media.png(f"ethereum:{who}@5"))
    result = runner.invoke(main, ["--workdir", str(world.workdir), "pass", "enroll", str(photo),
                                  "--valid-until", world.until])
    assert result.exit_code == 2 and "argument 1 (its QR code)" in result.stderr and "chain 5" in result.stderr
    blank = world.workdir / "not-an-address.png"
    blank.write_bytes(media.png("hello"))
    result = runner.invoke(main, ["--workdir", str(world.workdir), "pass", "enroll", str(blank),
                                  "--valid-until", world.until])
    assert result.exit_code == 2 and "not an address QR" in result.stderr
    status = world.cli("pass", "show", who)
    assert status["status"] == "none"  # nothing was enrolled


# ------------------------------------------------------------------ the signed history
def test_verify_accepts_the_holders_fresh_request_once():
    key = keccak(text="citypass-pass-api-holder")
    origin, chain, contract = "http://127.0.0.1:8000", 31337, MIXED
    replays = pass_api.Replays()
    body = sign_request(key, origin, chain, contract)
    assert pass_api.verify(dict(body), origin, chain, contract, replays) == Account.from_key(key).address
    with pytest.raises(ApiError, match="replay"):
        pass_api.verify(dict(body), origin, chain, contract, replays)
    stale = sign_request(key, origin, chain, contract, timestamp=int(time.time()) - 3600)
    with pytest.raises(ApiError, match="time"):
        pass_api.verify(stale, origin, chain, contract, replays)
    fresh = sign_request(key, origin, chain, contract)
    for other in [("http://evil.example", chain, contract), (origin, 1, contract), (origin, chain, ADDRESS)]:
        with pytest.raises(ApiError, match="not signed by the holder"):
            pass_api.verify(dict(fresh), *other, replays)
    someone_else = sign_request(keccak(text="someone else"), origin, chain, contract)
    forged = {**someone_else, "holder": Account.from_key(key).address}
    with pytest.raises(ApiError, match="not signed by the holder"):
        pass_api.verify(forged, origin, chain, contract, replays)
    with pytest.raises(ApiError, match="nonce"):
        pass_api.verify({**fresh, "nonce": "1"}, origin, chain, contract, replays)


def test_history_route_answers_only_the_holder(server, world):
    d = server.api("deployment")
    who = world.new_resident("pass-api-history", sport="7.00", culture="")
    url = server.base + "/api/pass/history"
    body = sign_request(who.key, server.base, d["chain_id"], d["contract"])
    answer = requests.post(url, json=body, timeout=30)
    assert answer.ok, answer.text
    items = answer.json()["items"]
    assert [(i["kind"], i["amount_cents"], i["name"]) for i in items] == [("issued", 700, "Sport 2026")]
    again = requests.post(url, json=body, timeout=30)
    assert again.status_code == 401 and "replay" in again.json()["error"]["message"]
    unsigned = requests.post(url, json={"holder": who.address}, timeout=30)
    assert unsigned.status_code == 400 and "missing" in unsigned.json()["error"]["message"]
    wrong_key = sign_request(keccak(text="not the holder"), server.base, d["chain_id"], d["contract"])
    stolen = requests.post(url, json={**wrong_key, "holder": who.address}, timeout=30)
    assert stolen.status_code == 401 and "only for the pass holder" in stolen.json()["error"]["message"]
    config = requests.post(server.base + "/api/pass/config", json={}, timeout=30).json()
    assert config["chain_id"] == d["chain_id"] and config["pass_qr_ttl_seconds"] == 86_400
    assert config["scan_limit_cents"] == 15_000
    page = requests.get(server.base + "/pass/", timeout=30)
    assert page.ok and "/pass/pass.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
