"""Sign-In with Ethereum for the back office (citypass/web/siwe.py): a message signs in once,
only on this site and chain, only before it expires, only for the key that signed it."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from citypass.web.siwe import SESSION_TTL, SignIn, SignInRefused, iso, message_text

DOMAIN, ORIGIN, CHAIN = "127.0.0.1:8600", "http://127.0.0.1:8600", 31337
OFFICER = Account.from_key(keccak(text="citypass-siwe-test-officer"))
OTHER = Account.from_key(keccak(text="citypass-siwe-test-other"))


@pytest.fixture(autouse=True)
def isolation():
    """No chain needed."""


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def signed(signin: SignIn, clock: Clock, *, key=OFFICER, address=None, domain=DOMAIN, uri=ORIGIN + "/balie/",
           chain_id=CHAIN, nonce=None, issued=None, expires=None, text_edit=None):
    nonce = nonce or signin.new_nonce()
    issued = clock.t if issued is None else issued
    expires = issued + 300 if expires is None else expires
    text = message_text(domain=domain, address=address or key.address, uri=uri, chain_id=chain_id, nonce=nonce,
                        issued_at=iso(issued), expiration_time=iso(expires))
    if text_edit:
        text = text_edit(text)
    sig = "0x" + bytes(Account.sign_message(encode_defunct(text=text), key.key).signature).hex()
    return text, sig


def verify(signin, text, sig):
    return signin.verify(text, sig, domain=DOMAIN, origin=ORIGIN, chain_id=CHAIN)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def signin(clock):
    return SignIn(clock=clock)


def refused(signin, text, sig, field):
    with pytest.raises(SignInRefused) as info:
        verify(signin, text, sig)
    assert info.value.field == field, str(info.value)
    return str(info.value)


def test_a_signed_message_signs_in(signin, clock):
    assert verify(signin, *signed(signin, clock)) == OFFICER.address


def test_a_replayed_message_is_refused(signin, clock):
    text, sig = signed(signin, clock)
    verify(signin, text, sig)
    assert "used before" in refused(signin, text, sig, "nonce")


def test_a_nonce_the_server_never_issued_is_refused(signin, clock):
    assert "not issued" in refused(signin, *signed(signin, clock, nonce="a1b2c3d4e5f6a7b8"), "nonce")


def test_a_refused_message_uses_its_nonce_up(signin, clock):
    nonce = signin.new_nonce()
    refused(signin, *signed(signin, clock, nonce=nonce, domain="evil.example"), "domain")
    refused(signin, *signed(signin, clock, nonce=nonce), "nonce")


def test_an_expired_message_is_refused(signin, clock):
    text, sig = signed(signin, clock, expires=clock.t + 60)
    clock.t += 61
    assert "expired" in refused(signin, text, sig, "expiration_time")


def test_a_message_without_expiry_is_refused(signin, clock):
    text, sig = signed(signin, clock, text_edit=lambda t: t.rsplit("\n", 1)[0])
    refused(signin, text, sig, "expiration_time")


def test_a_message_valid_for_too_long_is_refused(signin, clock):
    refused(signin, *signed(signin, clock, expires=clock.t + 86_400), "expiration_time")


def test_a_message_for_another_domain_is_refused(signin, clock):
    assert "evil.example" in refused(signin, *signed(signin, clock, domain="evil.example"), "domain")


def test_a_message_for_another_uri_is_refused(signin, clock):
    refused(signin, *signed(signin, clock, uri="https://evil.example/balie/"), "uri")


def test_a_message_for_another_chain_is_refused(signin, clock):
    refused(signin, *signed(signin, clock, chain_id=1), "chain")


def test_a_message_from_the_far_past_or_future_is_refused(signin, clock):
    refused(signin, *signed(signin, clock, issued=clock.t - 3600, expires=clock.t + 60), "issued_at")
    refused(signin, *signed(signin, clock, issued=clock.t + 3600), "issued_at")


def test_a_nonce_kept_too_long_is_refused(signin, clock):
    nonce = signin.new_nonce()
    clock.t += 400
    refused(signin, *signed(signin, clock, nonce=nonce), "nonce")


def test_another_key_cannot_sign_for_the_officer(signin, clock):
    refused(signin, *signed(signin, clock, key=OTHER, address=OFFICER.address), "signature")


def test_an_edited_message_is_refused(signin, clock):
    text, sig = signed(signin, clock)
    assert "not an EIP-4361" in refused(signin, text.replace("Version: 1", "Version: 2"), sig, "message")
    text, sig = signed(signin, clock)
    refused(signin, text + "\n", sig, "message")  # not canonical


def test_garbage_is_refused(signin):
    refused(signin, "hello" * 20, "0x00", "message")
    with pytest.raises(SignInRefused):
        signin.verify(None, "0x", domain=DOMAIN, origin=ORIGIN, chain_id=CHAIN)  # type: ignore[arg-type]


def test_sessions_end(signin, clock):
    s = signin.open(OFFICER.address, ("REGISTRAR",))
    assert signin.get(s.token).address == OFFICER.address
    assert signin.get("not-a-token") is None and signin.get(None) is None
    clock.t += SESSION_TTL + 1
    assert signin.get(s.token) is None
    s = signin.open(OFFICER.address, ("REGISTRAR",))
    signin.close(s.token)
    assert signin.get(s.token) is None
