"""The pass QR (`CP2:`): base45 per RFC 9285, the payload layout of V2-SPEC.md, decoding
errors that name the field, signature checks, the size budget (three budgets fit QR
version 15 at level M), paper coupons, and the municipality's settings. No chain needed."""

from __future__ import annotations

import json
import os
import random

import pytest
from eth_account import Account
from eth_utils import keccak

from citypass import base45, passqr, settings
from citypass import voucher as V
from citypass.errors import CityPassError

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PROVIDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DEADLINE = 1_800_000_000


def resident(label: str = "passqr") -> Account:
    return Account.from_key(keccak(text=f"citypass-passqr-test-{label}"))  # synthetic, never a person


def budget(serial: int, category: int = 0) -> int:
    # the layout of citypass.budget_id: serial << 128 | category << 80 | validFrom << 40 | validUntil
    return serial << 128 | category << 80 | 1_700_000_000 << 40 | 1_900_000_000


THREE = [(budget(1, 0), 15_000, 0), (budget(2, 1), 9_999, 3), (budget(3, 2), 4_250, 127)]


# ------------------------------------------------------------------ base45 (RFC 9285 section 4)
@pytest.mark.parametrize("raw, text", [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
    (b"", ""),
    (b"\x00", "00"),
    (b"\xff\xff", "FGW"),
])
def test_base45_rfc_vectors(raw, text):
    assert base45.encode(raw) == text
    assert base45.decode(text) == raw


@pytest.mark.parametrize("text, words", [
    ("GGW", "more than two bytes"),  # 65536 (RFC 9285 section 6: must be refused)
    ("ZZZ", "more than two bytes"),
    ("ZZ", "more than one byte"),
    ("ABCD", r"3n\+1"),
    ("ab8", "not in the base45 alphabet"),
])
def test_base45_refuses_invalid(text, words):
    with pytest.raises(base45.Base45Error, match=words):
        base45.decode(text)


def test_base45_round_trips():
    rng = random.Random(45)
    for n in range(200):
        raw = bytes(rng.randrange(256) for _ in range(n))
        text = base45.encode(raw)
        assert set(text) <= set(base45.ALPHABET) and len(text) == 3 * (n // 2) + 2 * (n % 2)
        assert base45.decode(text) == raw


# ------------------------------------------------------------------ the payload
def test_round_trip_and_signatures():
    key = resident()
    pq = passqr.sign_pass(key, CHAIN_ID, CONTRACT, THREE, DEADLINE)
    text = pq.encode()
    assert text.startswith("CP2:") and set(text[4:]) <= set(base45.ALPHABET)
    back = passqr.decode(text)
    assert back == pq
    assert back.holder == key.address and back.provider == passqr.ANY_PROVIDER and back.deadline == DEADLINE
    assert [(e.budget, e.max_amount, e.nonce) for e in back.entries] == THREE
    assert all(problem is None for _, problem in passqr.verify(back))
    for signed, (b, m, n) in zip(back.vouchers(), THREE):
        # each entry is exactly the EIP-712 voucher the holder signs, with the shared fields
        assert signed.voucher == V.Voucher(key.address, passqr.ANY_PROVIDER, b, m, n, DEADLINE)
        assert V.recover_signer(signed) == key.address
        assert V.compact_signature(signed) == next(e.signature for e in back.entries if e.budget == b)
    # the layout, byte by byte: header 56 bytes (with the count), then 92 per voucher
    data = base45.decode(text[4:])
    assert len(data) == 56 + 3 * 92
    assert data[0] == 2 and int.from_bytes(data[1:9], "big") == CHAIN_ID
    assert data[9:29].hex() == CONTRACT[2:].lower() and data[29:49].hex() == key.address[2:].lower()
    assert int.from_bytes(data[49:54], "big") == DEADLINE and data[54] == 0 and data[55] == 3
    assert int.from_bytes(data[56:76], "big") == THREE[0][0] and int.from_bytes(data[76:80], "big") == 15_000


def test_one_named_provider():
    pq = passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, THREE[:1], DEADLINE, provider=PROVIDER)
    back = passqr.decode(pq.encode())
    assert back.provider == PROVIDER and back.vouchers()[0].voucher.provider == PROVIDER
    assert base45.decode(pq.encode()[4:])[54] == 1


def test_three_budgets_fit_qr_version_15_at_level_m(capsys):
    """V2-SPEC: a pass QR with three budgets must fit QR version <= 15 at error correction M."""
    anyone = passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, THREE, DEADLINE).encode()
    named = passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, THREE, DEADLINE, provider=PROVIDER).encode()
    eight = passqr.sign_pass(resident(), CHAIN_ID, CONTRACT,
                             [(budget(i + 1), 100, i) for i in range(8)], DEADLINE).encode()
    figures = {n: (len(t), passqr.qr_version(t)) for n, t in (("3 any", anyone), ("3 named", named), ("8 any", eight))}
    with capsys.disabled():
        print("\npass QR size at level M: " + "; ".join(f"{n}: {c} characters, version {v}" for n, (c, v) in figures.items()))
    assert len(anyone) == 4 + 3 * (56 + 3 * 92) // 2 == 502
    assert figures["3 any"][1] <= 15 and figures["3 named"][1] <= 15
    assert figures["3 any"] == (502, 14)  # measured: 502 alphanumeric characters need version 14 at M


def test_fields_out_of_range_are_refused_when_signing():
    with pytest.raises(passqr.PassQRError, match="entry 1 maxAmount"):
        passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, [(budget(1), 2**32, 0)], DEADLINE)
    with pytest.raises(passqr.PassQRError, match="entry 1 nonce"):
        passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, [(budget(1), 1, 2**32)], DEADLINE)
    with pytest.raises(passqr.PassQRError, match="entry 1 budget"):
        passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, [(2**160, 1, 0)], DEADLINE)
    with pytest.raises(passqr.PassQRError, match="deadline"):
        passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, [(budget(1), 1, 0)], 2**40)
    with pytest.raises(passqr.PassQRError, match="count"):
        passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, [(budget(i + 1), 1, 0) for i in range(9)], DEADLINE)


def _payload(**changes) -> bytes:
    data = bytearray(base45.decode(passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, THREE, DEADLINE).encode()[4:]))
    for offset, value in changes.items():
        data[int(offset[1:])] = value
    return bytes(data)


def _text(data: bytes) -> str:
    return "CP2:" + base45.encode(data)


@pytest.mark.parametrize("text, field", [
    ("CP1:CHAIN:...", "prefix: a CP1 code"),
    ("CP3:ABC", "prefix: a CP3 code"),
    ("hello", "prefix: not a CityPass pass QR"),
    ("CP2:00", "format: 0"),  # one byte: format 0
    ("CP2:ab8", "base45: character 1"),
    ("CP2:GGW", "base45: characters 1..3"),
    ("CP2:ABCD", "base45: 4 characters"),
])
def test_decode_names_the_bad_field(text, field):
    with pytest.raises(passqr.PassQRError, match=field.replace(".", r"\.").replace("(", r"\(")):
        passqr.decode(text)


def test_decode_names_the_bad_field_in_the_payload():
    good = _payload()
    cases = [
        (bytes([3]) + good[1:], "format: 3"),
        (good[:40], "holder: the payload ends after 40 bytes"),
        (good[:60], "entry 1 budget: the payload ends"),
        (good[:-10], "entry 3 signature: the payload ends"),
        (good + b"\x00", "payload: 1 bytes after the last of the 3 vouchers"),
        (_payload(o54=2), "providerFlag: 2"),
        (_payload(o55=0), "count: 0"),
        (_payload(o55=9), "count: 9"),
        (good[:1] + bytes(8) + good[9:], "chainId: 0"),
        (good[:29] + bytes(20) + good[49:], "holder: the zero address"),
        (good[:76] + bytes(4) + good[80:], "entry 1 maxAmount: 0 cents"),
        (good[:56 + 92] + good[56:76] + good[76 + 92:], "entry 2 budget: budget 1 appears twice"),
    ]
    for data, field in cases:
        with pytest.raises(passqr.PassQRError) as info:
            passqr.decode(_text(data))
        assert field in str(info.value), (field, str(info.value))


def test_an_altered_amount_fails_the_signature_check():
    good = bytearray(_payload())
    good[79] ^= 0x01  # entry 1's maxAmount, lowest byte
    pq = passqr.decode(_text(bytes(good)))
    problems = dict(passqr.verify(pq))
    assert problems[THREE[0][0]] is not None and "entry 1 signature" in problems[THREE[0][0]]
    assert problems[THREE[1][0]] is None and problems[THREE[2][0]] is None


def test_compact_signatures():
    key = resident()
    signed = V.sign(V.Voucher(key.address, passqr.ANY_PROVIDER, budget(1), 500, 0, DEADLINE), key.key, CHAIN_ID, CONTRACT)
    compact = passqr.to_compact(signed.signature)
    assert len(compact) == 64 and passqr.from_compact(compact) == signed.signature
    assert passqr.to_compact(compact) == compact
    with pytest.raises(passqr.PassQRError, match="65-byte"):
        passqr.to_compact(b"\x01" * 100)
    high_s = signed.signature[:32] + (passqr._SECP256K1_N - int.from_bytes(signed.signature[32:64], "big")).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(passqr.PassQRError, match="low-s"):
        passqr.to_compact(high_s)


def test_paper_coupon_is_one_voucher_until_the_budgets_end():
    b = budget(4, 1)
    end = b & (2**40 - 1)
    pq = passqr.coupon(resident("coupon"), CHAIN_ID, CONTRACT, b, 2_500, 7, end)
    back = passqr.decode(pq.encode())
    assert len(back.entries) == 1 and back.deadline == end == 1_900_000_000
    assert back.for_budget(b).voucher.max_amount == 2_500
    with pytest.raises(passqr.PassQRError, match="no voucher for budget #5"):
        back.for_budget(budget(5))


def test_text_is_qr_alphanumeric_and_case_is_kept():
    text = passqr.sign_pass(resident(), CHAIN_ID, CONTRACT, THREE, DEADLINE).encode()
    import segno

    assert segno.make_qr(text, error="m", boost_error=False).mode == "alphanumeric"
    assert passqr.decode("  " + text + "\n") == passqr.decode(text)


# ------------------------------------------------------------------ settings
def test_settings_default_and_saved(tmp_path):
    assert settings.load(tmp_path) == settings.Settings(86_400, 15_000)
    settings.update(tmp_path, pass_qr_ttl_seconds=3_600)
    assert settings.load(tmp_path).pass_qr_ttl_seconds == 3_600
    assert json.loads((tmp_path / "settings.json").read_text()) == {"pass_qr_ttl_seconds": 3_600, "scan_limit_cents": 15_000}


@pytest.mark.parametrize("content, words", [
    ('{"pass_qr_ttl": 5}', "unknown setting(s) pass_qr_ttl"),
    ('{"pass_qr_ttl_seconds": 0}', "pass_qr_ttl_seconds: must be a whole number from 1"),
    ('{"scan_limit_cents": "150"}', "scan_limit_cents: must be a whole number"),
    ("[1]", "must be a JSON object"),
    ("{", "cannot read the settings"),
])
def test_bad_settings_are_named(tmp_path, content, words):
    (tmp_path / "settings.json").write_text(content)
    with pytest.raises(CityPassError) as info:
        settings.load(tmp_path)
    assert words in str(info.value) and str(tmp_path / "settings.json") in str(info.value)
    assert os.path.exists(tmp_path / "settings.json")
