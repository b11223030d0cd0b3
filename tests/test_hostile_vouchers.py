"""Hostile voucher payloads and QR images: each is refused with its reason before any
transaction.

Three tables: payloads that do not parse (library level, no chain; a representative part
also through `citypass redeem --batch`, where the line is named), payloads that parse but
are not for this chain, contract or holder (through `citypass redeem` and `voucher show` on
the embedded node), and image files (through the same two commands). "Nothing was sent" is
read from the chain: the provider's nonce, the block number and the provider's balance."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
from eth_utils import keccak, to_checksum_address

from citypass import voucher as V
from citypass import wallet
from tests.ops_helpers import World, enrol_and_credit, make_world, synthetic_account
from tests.ops_helpers import cli as run_cli

# ---------------------------------------------------------------------------- payloads that do not parse
SIGNER = synthetic_account("hostile-voucher-holder")
OTHER_KEY = synthetic_account("hostile-voucher-someone-else")
FAKE_CONTRACT = to_checksum_address(keccak(text="hostile-voucher-contract")[-20:])
PROVIDER = to_checksum_address(keccak(text="hostile-voucher-provider")[-20:])
GOOD = V.encode_payload(V.sign(V.build(SIGNER.address, PROVIDER, 1 << 128, 1250, nonce=3, deadline=1_900_000_000),
                               SIGNER.key, 31337, FAKE_CONTRACT))
FIELDS = GOOD.split(":")  # CP1, chain, contract, holder, provider, budget, amount, coPayment, nonce, deadline, sig


def with_field(index: int, value: str, payload: str = GOOD) -> str:
    parts = payload.split(":")
    parts[index] = value
    return ":".join(parts)


class Bad(NamedTuple):
    id: str
    payload: str
    line: int | None  # where a batch file names it (None: a payload on its own)
    field: str
    fragment: str


BAD_PAYLOADS = [
    Bad("truncated", GOOD[:150], None, "payload", "found 6 (cut off?)"),
    Bad("truncated in the signature", GOOD[:-3], None, "signature", "an odd number of hex digits (127)"),
    Bad("wrong version", "CP2:" + GOOD[4:], None, "payload", "a version 2 voucher (CP2:...); this program reads version 1"),
    Bad("not a voucher", "HELLO WORLD", None, "payload", "not a CityPass voucher (expected it to start with 'CP1:')"),
    Bad("extra field", GOOD + ":42", None, "payload", "expected 11 ':'-separated fields"),
    Bad("missing field", with_field(7, "").replace("::", ":"), None, "payload", "found 10 (cut off?)"),
    Bad("oversized", GOOD + "0" * 100_000, None, "payload",
        f"{len(GOOD) + 100_000:,} characters, more than a voucher can have (2,048)"),
    Bad("1,000-digit number", with_field(6, "9" * 1000), None, "amount", "1000 digits, more than a uint256 can hold"),
    Bad("amount above uint256", with_field(6, str(2**256)), None, "amount", "must be a whole number from 0 to 2**256-1"),
    Bad("negative amount", with_field(6, "-5"), None, "amount", "not a whole number: '-5'"),
    Bad("Unicode digits", with_field(6, "１２５０"), None, "amount", "not a whole number"),
    Bad("short address", with_field(3, FIELDS[3][:-1]), None, "holder", "not a 40-hex-digit address"),
    Bad("zero holder", with_field(3, "0" * 40), None, "holder", "the zero address cannot sign a voucher"),
    Bad("signature not hex", with_field(10, "ZZ" * 65), None, "signature", "not hex"),
    Bad("no signature", with_field(10, ""), None, "signature", "empty"),
]


@pytest.mark.parametrize("case", BAD_PAYLOADS, ids=[b.id for b in BAD_PAYLOADS])
def test_bad_payload_names_its_field(case: Bad):
    with pytest.raises(V.VoucherError) as e:
        V.decode_payload(case.payload)
    message = str(e.value)
    assert message.startswith(f"{case.field}: ") and case.fragment in message, message
    assert len(message) < 300  # one readable line, even for a huge payload


def test_the_good_payload_of_the_table_decodes():
    """The table's payloads are all made from this one: it must be valid for them to mean anything."""
    signed = V.decode_payload(GOOD)
    assert V.recover_signer(signed) == SIGNER.address and len(GOOD) < V.MAX_PAYLOAD_CHARS


# ---------------------------------------------------------------------------- on the embedded node
PASSWORD = "synthetic-test-password"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("hostile-vouchers"))


@pytest.fixture(scope="module")
def holder(world: World):
    person = synthetic_account("hostile-voucher-resident")
    enrol_and_credit(world, [person], world.sport, 10_000, "hostile-vouchers")
    return person


def cli(w: World, *args: str):
    return run_cli(w, *args, env={"CITYPASS_PASSWORD": PASSWORD})


def good_voucher(w: World, holder, nonce: int = 0, amount: int = 500) -> V.SignedVoucher:
    v = V.build(holder.address, w.pool.address, w.sport, amount, nonce=nonce, now=w.chain.now(), ttl=3600)
    return V.sign(v, holder.key, w.chain.chain_id, w.dep.address)


def chain_mark(w: World) -> tuple[int, int, int]:
    """What a redemption would move: the pool's nonce, the block number, the pool's credit."""
    return (w.chain.w3.eth.get_transaction_count(w.pool.address), w.chain.w3.eth.block_number,
            w.f.balanceOf(w.pool.address, w.sport).call())


def refused(w: World, *args: str) -> str:
    """Runs the command; it must fail with one plain error and send nothing. Returns stderr."""
    before = chain_mark(w)
    r = cli(w, *args)
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert chain_mark(w) == before
    return r.stderr


BATCH_CASES = [b for b in BAD_PAYLOADS if b.id in {
    "truncated", "truncated in the signature", "wrong version", "oversized", "amount above uint256", "zero holder"}]


@pytest.mark.parametrize("case", BATCH_CASES, ids=[b.id for b in BATCH_CASES])
def test_redeem_batch_names_the_line_and_sends_nothing(world, holder, tmp_path, case: Bad):
    batch = tmp_path / "offline.txt"
    batch.write_text(f"{good_voucher(world, holder).encode()}\n{case.payload}\n")  # line 1 is fine
    err = refused(world, "--from", "dev:8", "redeem", "--batch", str(batch))
    assert f"{batch}: 1 bad line(s), nothing was sent" in err
    assert f"  line 2: {case.field}: " in err and case.fragment in err, err


def test_redeem_single_payload_exit_code_and_message(world, holder):
    case = next(b for b in BAD_PAYLOADS if b.id == "wrong version")
    with pytest.raises(V.VoucherError) as e:
        V.decode_payload(case.payload)
    assert refused(world, "--from", "dev:8", "redeem", case.payload).strip() == f"error: not a valid voucher: {e.value}"


class Foreign(NamedTuple):
    """A payload that parses, but that this node's contract must not be asked to redeem."""

    id: str
    make: Callable[[World, object], str]  # (world, holder) -> payload
    reason: Callable[[World, object], str]  # (world, holder) -> the fragment the refusal must contain


def _resign(w: World, holder, *, chain_id=None, contract=None, key=None, **changes) -> str:
    v = good_voucher(w, holder).voucher
    v = V.Voucher(**{**v.__dict__, **changes}) if changes else v
    return V.sign(v, key or holder.key, chain_id or w.chain.chain_id, contract or w.dep.address).encode()


def _flip_bit(w: World, holder) -> str:
    signed = good_voucher(w, holder)
    sig = bytearray(signed.signature)
    sig[10] ^= 0x01
    return V.SignedVoucher(signed.voucher, bytes(sig), signed.chain_id, signed.contract).encode()


def _amount_raised(w: World, holder) -> str:
    return with_field(6, "9999", good_voucher(w, holder).encode())  # 5.00 -> 99.99 after signing


def _cut_signature(w: World, holder) -> str:
    payload = good_voucher(w, holder).encode()
    return payload[: -50]  # 40 whole bytes of the 65 are left


OTHER_CONTRACT = to_checksum_address(keccak(text="hostile-voucher-another-deployment")[-20:])
NOT_HOLDER = "the signature does not match the holder"

FOREIGN = [
    Foreign("wrong chain", lambda w, h: _resign(w, h, chain_id=1),
            lambda w, h: f"this voucher is for chain 1, but the node is chain {w.chain.chain_id}"),
    Foreign("another deployment", lambda w, h: _resign(w, h, contract=OTHER_CONTRACT),
            lambda w, h: f"this voucher is for the CityPass contract at {OTHER_CONTRACT}, not the one at {w.dep.address}"),
    Foreign("tampered signature", _flip_bit, lambda w, h: f"{NOT_HOLDER} {h.address}"),
    Foreign("tampered amount", _amount_raised, lambda w, h: f"{NOT_HOLDER} {h.address}: the voucher was altered"),
    Foreign("signed with another key", lambda w, h: _resign(w, h, key=OTHER_KEY.key), lambda w, h: f"{NOT_HOLDER} {h.address}"),
    Foreign("truncated signature (whole bytes)", _cut_signature,
            lambda w, h: f"the signature is 40 bytes, but the holder {h.address} signs with a key (65 bytes)"),
    Foreign("zero amount", lambda w, h: _resign(w, h, amount=0), lambda w, h: "voucher refused: the amount is zero"),
    Foreign("deadline passed", lambda w, h: _resign(w, h, deadline=w.chain.now() - 1),
            lambda w, h: "the voucher's deadline has passed"),
]


@pytest.mark.parametrize("case", FOREIGN, ids=[f.id for f in FOREIGN])
def test_foreign_voucher_is_refused_with_its_reason(world, holder, case: Foreign):
    payload = case.make(world, holder)
    reason = case.reason(world, holder)
    assert reason in refused(world, "--from", "dev:8", "redeem", payload)
    assert reason in refused(world, "voucher", "show", payload)


def test_json_gives_the_reason_code(world, holder):
    """For a till app: an altered voucher carries the chain's code (BadSignature), found
    without asking the chain; a voucher for another chain has no chain code."""
    import json

    tampered = json.loads(cli(world, "--json", "voucher", "show", _amount_raised(world, holder)).stdout)
    assert (tampered["ok"], tampered["reason"]) == (False, "BadSignature")
    assert tampered["message"].startswith(f"{NOT_HOLDER} {holder.address}")
    other_chain = json.loads(cli(world, "--json", "voucher", "show", _resign(world, holder, chain_id=1)).stdout)
    assert (other_chain["ok"], other_chain["reason"]) == (False, None) and "chain 1" in other_chain["message"]


def test_foreign_table_control_the_untampered_voucher_redeems(world, holder):
    """The positive control: the voucher every row above starts from is redeemed by the same
    command (so the refusals are the rows' doing)."""
    snap = world.snapshot()
    try:
        r = cli(world, "--from", "dev:8", "redeem", good_voucher(world, holder).encode())
        assert r.exit_code == 0, r.stderr
        assert world.f.balanceOf(world.pool.address, world.sport).call() == 500
    finally:
        world.revert(snap)


# ---------------------------------------------------------------------------- QR images
def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _two_codes(path: Path, payload: str) -> Path:
    from PIL import Image

    one = wallet.write_qr(payload, path.with_name("one.png"))
    with Image.open(one) as img:
        both = Image.new("L", (img.width * 2, img.height), 255)
        both.paste(img, (0, 0))
        both.paste(img, (img.width, 0))
    both.save(path)
    return path


def _blank(path: Path) -> Path:
    from PIL import Image

    Image.new("L", (300, 300), 255).save(path)
    return path


class BadImage(NamedTuple):
    id: str
    make: Callable[[Path, World, object], Path]  # (path to write, world, holder) -> the file to show
    reason: Callable[[Path, World], str]


def _qr(text_of: Callable[[World, object], str]) -> Callable[[Path, World, object], Path]:
    return lambda p, w, h: wallet.write_qr(text_of(w, h), p)


BAD_IMAGES = [
    BadImage("QR holding non-voucher text", _qr(lambda w, h: "HTTPS://EXAMPLE.ORG/PAY"),
             lambda p, w: f"{p}: its QR code is not a valid voucher: payload: not a CityPass voucher"),
    BadImage("QR holding an oversized payload", _qr(lambda w, h: good_voucher(w, h).encode() + "0" * 2500),
             lambda p, w: f"{p}: its QR code is not a valid voucher: payload: 2,8"),
    BadImage("QR holding a truncated payload", _qr(lambda w, h: good_voucher(w, h).encode()[:120]),
             lambda p, w: f"{p}: its QR code is not a valid voucher: payload: expected 11"),
    BadImage("QR holding a wrong-version payload", _qr(lambda w, h: "CP9:" + good_voucher(w, h).encode()[4:]),
             lambda p, w: "a version 9 voucher"),
    BadImage("QR of a voucher for another chain", _qr(lambda w, h: _resign(w, h, chain_id=10)),
             lambda p, w: f"this voucher is for chain 10, but the node is chain {w.chain.chain_id}"),
    BadImage("QR of a tampered voucher", _qr(_amount_raised), lambda p, w: NOT_HOLDER),
    BadImage("image that is not a QR code", lambda p, w, h: _blank(p), lambda p, w: f"{p}: no readable QR code in the image"),
    BadImage("two QR codes in one image", lambda p, w, h: _two_codes(p, good_voucher(w, h).encode()),
             lambda p, w: f"{p}: 2 QR codes in the image; show one voucher at a time"),
    BadImage("cut-off PNG", lambda p, w, h: p.write_bytes(wallet.write_qr(good_voucher(w, h).encode(), p).read_bytes()[:300]) and p,
             lambda p, w: f"{p}: cannot read the image, it is damaged or cut off"),
    BadImage("PNG claiming 30000x30000 pixels", lambda p, w, h: p.write_bytes(_png_claiming(30_000, 30_000)) and p,
             lambda p, w: f"{p}: the image claims more pixels than any QR code photo has"),
    BadImage("PNG claiming 10000x6000 pixels", lambda p, w, h: p.write_bytes(_png_claiming(10_000, 6_000)) and p,
             lambda p, w: f"{p}: the image is 10,000x6,000 pixels, too large"),
    BadImage("non-image file", lambda p, w, h: p.write_text("CP1 is what a voucher starts with") and p,
             lambda p, w: f"{p}: not an image file"),
    BadImage("file that does not exist", lambda p, w, h: p, lambda p, w: f"{p}: no such file"),
]


@pytest.mark.parametrize("case", BAD_IMAGES, ids=[b.id for b in BAD_IMAGES])
def test_bad_image_is_refused_with_its_reason(world, holder, tmp_path, case: BadImage):
    path = case.make(tmp_path / "voucher.png", world, holder)
    reason = case.reason(path, world)
    assert reason in refused(world, "--from", "dev:8", "redeem", str(path))
    assert reason in refused(world, "voucher", "show", str(path))


def test_good_qr_image_control(world, holder, tmp_path):
    """The positive control of the image table: a QR code written the way `voucher sign --qr`
    writes it is read back and passes the chain's check."""
    payload = good_voucher(world, holder).encode()
    path = wallet.write_qr(payload, tmp_path / "voucher.png")
    assert wallet.read_qr(path) == payload
    r = cli(world, "voucher", "show", str(path))
    assert r.exit_code == 0 and "OK: the voucher can be redeemed" in r.stdout, (r.stdout, r.stderr)
