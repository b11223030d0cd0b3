"""Hostile pass QR texts (`CP2:`) and QR images: each is refused with its reason before
any transaction.

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

from citypass import base45, passqr, wallet
from citypass import voucher as V
from citypass.clock import next_block_time
from tests.ops_helpers import World, enrol_and_credit, make_world, synthetic_account
from tests.ops_helpers import cli as run_cli

# ---------------------------------------------------------------------------- payloads that do not parse
SIGNER = synthetic_account("hostile-voucher-holder")
OTHER_KEY = synthetic_account("hostile-voucher-someone-else")
FAKE_CONTRACT = to_checksum_address(keccak(text="hostile-voucher-contract")[-20:])
PROVIDER = to_checksum_address(keccak(text="hostile-voucher-provider")[-20:])
GOOD = passqr.sign_pass(SIGNER.key, 31337, FAKE_CONTRACT, [(1 << 128, 1250, 3)], 1_900_000_000).encode()
RAW = base45.decode(GOOD[4:])  # 56 header bytes, then 92 for the one voucher


def with_bytes(offset: int, value: bytes, raw: bytes = RAW) -> str:
    return "CP2:" + base45.encode(raw[:offset] + value + raw[offset + len(value):])


class Bad(NamedTuple):
    id: str
    payload: str
    line: int | None  # where a batch file names it (None: a payload on its own)
    field: str
    fragment: str


BAD_PAYLOADS = [
    Bad("truncated", GOOD[:150], None, "entry 1 signature", "the payload ends after 97 bytes"),
    Bad("one character short", GOOD[:-1], None, "base45", "the last two characters"),
    Bad("one group short", GOOD[:-3], None, "entry 1 signature", "2 bytes short (the QR was cut off)"),
    Bad("two characters short", GOOD[:-2], None, "base45", "never has a length of 3n+1 (cut off?)"),
    Bad("wrong version", "CP3:" + GOOD[4:], None, "prefix", "a CP3 code; this program reads CP2 pass QR codes"),
    Bad("a v1 voucher", "CP1:31337:" + FAKE_CONTRACT[2:].upper() + ":...", None, "prefix", "a CP1 code"),
    Bad("not a voucher", "HELLO WORLD", None, "prefix", "not a CityPass pass QR (it should start with 'CP2:')"),
    Bad("extra byte", "CP2:" + base45.encode(RAW + b"\x00"), None, "payload", "1 bytes after the last of the 1 vouchers"),
    Bad("oversized", GOOD + "0" * 100_000, None, "payload",
        f"{len(GOOD) + 100_000:,} characters, more than a pass QR can have"),
    Bad("lower case", "CP2:" + GOOD[4:].lower(), None, "base45", "is not in the base45 alphabet"),
    Bad("group above two bytes", "CP2:" + GOOD[4:-3] + "ZZZ", None, "base45", "more than two bytes hold"),
    Bad("format 1", with_bytes(0, b"\x01"), None, "format", "1, this program reads format 2"),
    Bad("zero holder", with_bytes(29, bytes(20)), None, "holder", "the zero address cannot sign a voucher"),
    Bad("provider flag 7", with_bytes(54, b"\x07"), None, "providerFlag", "7, expected 0 (any provider) or 1"),
    Bad("count 0", with_bytes(55, b"\x00"), None, "count", "0, a pass QR holds 1 to 8 vouchers"),
    Bad("count 2 with one voucher", with_bytes(55, b"\x02"), None, "entry 2 budget", "the payload ends"),
    Bad("zero limit", with_bytes(76, bytes(4)), None, "entry 1 maxAmount", "0 cents"),
]


@pytest.mark.parametrize("case", BAD_PAYLOADS, ids=[b.id for b in BAD_PAYLOADS])
def test_bad_payload_names_its_field(case: Bad):
    with pytest.raises(passqr.PassQRError) as e:
        passqr.decode(case.payload)
    message = str(e.value)
    assert message.startswith(f"{case.field}: ") and case.fragment in message, message
    assert len(message) < 300  # one readable line, even for a huge payload


def test_the_good_payload_of_the_table_decodes():
    """The table's payloads are all made from this one: it must be valid for them to mean anything."""
    pq = passqr.decode(GOOD)
    assert V.recover_signer(pq.vouchers()[0]) == SIGNER.address and len(GOOD) < passqr.MAX_TEXT
    assert passqr.verify(pq) == [(1 << 128, None)]


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


def good_qr(w: World, holder, *, nonce: int = 0, max_amount: int = 500, chain_id: int | None = None,
            contract: str | None = None, key=None, deadline: int | None = None, provider: str = passqr.ANY_PROVIDER
            ) -> passqr.PassQR:
    """A pass QR of the holder's sport credit, signed by `key` (default: the holder's) but
    always naming `holder` as the holder."""
    deadline = next_block_time(w.chain) + 3_600 if deadline is None else deadline
    chain_id, contract = chain_id or w.chain.chain_id, contract or w.dep.address
    v = V.Voucher(holder.address, provider, w.sport, max_amount, nonce, deadline)
    signed = V.sign(v, (key or holder).key, chain_id, contract)
    return passqr.PassQR(chain_id, to_checksum_address(contract), holder.address, deadline, to_checksum_address(provider),
                         (passqr.Entry(w.sport, max_amount, nonce, passqr.to_compact(signed.signature)),))


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
    "truncated", "two characters short", "wrong version", "oversized", "zero holder", "count 0"}]


@pytest.mark.parametrize("case", BATCH_CASES, ids=[b.id for b in BATCH_CASES])
def test_redeem_batch_names_the_line_and_sends_nothing(world, holder, tmp_path, case: Bad):
    batch = tmp_path / "offline.txt"
    batch.write_text(f"{good_qr(world, holder).encode()},5\n{case.payload},5\n")  # line 1 is fine
    err = refused(world, "--from", "dev:8", "redeem", "--batch", str(batch))
    assert f"{batch}: 1 bad line(s), nothing was sent" in err
    assert f"  line 2: {case.field}: " in err and case.fragment in err, err


def test_redeem_single_payload_exit_code_and_message(world, holder):
    case = next(b for b in BAD_PAYLOADS if b.id == "wrong version")
    with pytest.raises(passqr.PassQRError) as e:
        passqr.decode(case.payload)
    err = refused(world, "--from", "dev:8", "redeem", case.payload, "--amount", "5").strip()
    assert err == f"error: not a valid pass QR: {e.value}"


class Foreign(NamedTuple):
    """A pass QR that parses, but that this node's contract must not be asked to redeem."""

    id: str
    make: Callable[[World, object], str]  # (world, holder) -> QR text
    reason: Callable[[World, object], str]  # (world, holder) -> the fragment the refusal must contain
    amount: str = "5"


def _flip_bit(w: World, holder) -> str:
    raw = bytearray(base45.decode(good_qr(w, holder).encode()[4:]))
    raw[56 + 28 + 10] ^= 0x01  # a bit of the signature's r
    return "CP2:" + base45.encode(bytes(raw))


def _limit_raised(w: World, holder) -> str:
    raw = bytearray(base45.decode(good_qr(w, holder).encode()[4:]))
    raw[76:80] = (9_999).to_bytes(4, "big")  # maxAmount 5.00 -> 99.99 after signing
    return "CP2:" + base45.encode(bytes(raw))


OTHER_CONTRACT = to_checksum_address(keccak(text="hostile-voucher-another-deployment")[-20:])
NOT_HOLDER = "the signature does not match the holder"

FOREIGN = [
    Foreign("wrong chain", lambda w, h: good_qr(w, h, chain_id=1).encode(),
            lambda w, h: f"this voucher is for chain 1, but the node is chain {w.chain.chain_id}"),
    Foreign("another deployment", lambda w, h: good_qr(w, h, contract=OTHER_CONTRACT).encode(),
            lambda w, h: f"this voucher is for the CityPass contract at {OTHER_CONTRACT}, not the one at {w.dep.address}"),
    Foreign("tampered signature", _flip_bit, lambda w, h: f"{NOT_HOLDER} {h.address}"),
    Foreign("tampered limit", _limit_raised, lambda w, h: f"{NOT_HOLDER} {h.address}: the voucher was altered"),
    Foreign("signed with another key", lambda w, h: good_qr(w, h, key=OTHER_KEY).encode(),
            lambda w, h: f"{NOT_HOLDER} {h.address}"),
    Foreign("made out to another provider", lambda w, h: good_qr(w, h, provider=w.museum.address).encode(),
            lambda w, h: f"this voucher is made out to provider {w.museum.address}, not to this wallet {w.pool.address}"),
    Foreign("above the voucher's limit", lambda w, h: good_qr(w, h).encode(),
            lambda w, h: "voucher refused: " + __import__("citypass.reasons").reasons.Reason.AboveVoucherLimit.message,
            amount="5.01"),
    Foreign("deadline passed", lambda w, h: good_qr(w, h, deadline=w.chain.now() - 1).encode(),
            lambda w, h: "the voucher's deadline has passed"),
]


@pytest.mark.parametrize("case", FOREIGN, ids=[f.id for f in FOREIGN])
def test_foreign_voucher_is_refused_with_its_reason(world, holder, case: Foreign):
    payload = case.make(world, holder)
    reason = case.reason(world, holder)
    assert reason in refused(world, "--from", "dev:8", "redeem", payload, "--amount", case.amount)
    assert reason in refused(world, "voucher", "show", payload, "--provider", world.pool.address, "--amount", case.amount)


def test_json_gives_the_reason_code(world, holder):
    """For a till app: an altered voucher carries the chain's code (BadSignature), found
    without asking the chain; a voucher for another chain has no chain code."""
    import json

    def show(text: str) -> dict:
        return json.loads(cli(world, "--json", "voucher", "show", text, "--provider", world.pool.address).stdout)

    tampered = show(_limit_raised(world, holder))["vouchers"][0]
    assert (tampered["ok"], tampered["reason"]) == (False, "BadSignature")
    assert tampered["message"].startswith(f"{NOT_HOLDER} {holder.address}")
    other_chain = show(good_qr(world, holder, chain_id=1).encode())["vouchers"][0]
    assert (other_chain["ok"], other_chain["reason"]) == (False, None) and "chain 1" in other_chain["message"]
    wrong_provider = show(good_qr(world, holder, provider=world.museum.address).encode())["vouchers"][0]
    assert (wrong_provider["ok"], wrong_provider["reason"]) == (False, "WrongProvider")


def test_foreign_table_control_the_untampered_voucher_redeems(world, holder):
    """The positive control: the voucher every row above starts from is redeemed by the same
    command (so the refusals are the rows' doing)."""
    snap = world.snapshot()
    try:
        r = cli(world, "--from", "dev:8", "redeem", good_qr(world, holder).encode(), "--amount", "5")
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
             lambda p, w: f"{p}: its QR code is not a valid pass QR: prefix: not a CityPass pass QR"),
    BadImage("QR holding an oversized payload", _qr(lambda w, h: good_qr(w, h).encode() + "0" * 2500),
             lambda p, w: f"{p}: its QR code is not a valid pass QR: payload: 2,7"),
    BadImage("QR holding a truncated payload", _qr(lambda w, h: good_qr(w, h).encode()[:120]),
             lambda p, w: f"{p}: its QR code is not a valid pass QR: entry 1 maxAmount: the payload ends after 77 bytes"),
    BadImage("QR holding a wrong-version payload", _qr(lambda w, h: "CP9:" + good_qr(w, h).encode()[4:]),
             lambda p, w: "prefix: a CP9 code"),
    BadImage("QR of a voucher for another chain", _qr(lambda w, h: good_qr(w, h, chain_id=10).encode()),
             lambda p, w: f"this voucher is for chain 10, but the node is chain {w.chain.chain_id}"),
    BadImage("QR of a tampered voucher", _qr(_limit_raised), lambda p, w: NOT_HOLDER),
    BadImage("image that is not a QR code", lambda p, w, h: _blank(p), lambda p, w: f"{p}: no readable QR code in the image"),
    BadImage("two QR codes in one image", lambda p, w, h: _two_codes(p, good_qr(w, h).encode()),
             lambda p, w: f"{p}: 2 QR codes in the image; show one pass QR at a time"),
    BadImage("cut-off PNG", lambda p, w, h: p.write_bytes(wallet.write_qr(good_qr(w, h).encode(), p).read_bytes()[:300]) and p,
             lambda p, w: f"{p}: cannot read the image, it is damaged or cut off"),
    BadImage("PNG claiming 30000x30000 pixels", lambda p, w, h: p.write_bytes(_png_claiming(30_000, 30_000)) and p,
             lambda p, w: f"{p}: the image claims more pixels than any QR code photo has"),
    BadImage("PNG claiming 10000x6000 pixels", lambda p, w, h: p.write_bytes(_png_claiming(10_000, 6_000)) and p,
             lambda p, w: f"{p}: the image is 10,000x6,000 pixels, too large"),
    BadImage("non-image file", lambda p, w, h: p.write_text("CP2 is what a pass QR starts with") and p,
             lambda p, w: f"{p}: not an image file"),
    BadImage("file that does not exist", lambda p, w, h: p, lambda p, w: f"{p}: no such file"),
]


@pytest.mark.parametrize("case", BAD_IMAGES, ids=[b.id for b in BAD_IMAGES])
def test_bad_image_is_refused_with_its_reason(world, holder, tmp_path, case: BadImage):
    path = case.make(tmp_path / "voucher.png", world, holder)
    reason = case.reason(path, world)
    assert reason in refused(world, "--from", "dev:8", "redeem", str(path), "--amount", "5")
    assert reason in refused(world, "voucher", "show", str(path), "--provider", world.pool.address)


def test_good_qr_image_control(world, holder, tmp_path):
    """The positive control of the image table: a QR code written the way `voucher sign --qr`
    writes it is read back and passes the chain's check."""
    payload = good_qr(world, holder).encode()
    path = wallet.write_qr(payload, tmp_path / "voucher.png")
    assert wallet.read_qr(path) == payload
    r = cli(world, "voucher", "show", str(path), "--provider", world.pool.address)
    assert r.exit_code == 0 and "OK: the voucher can be redeemed" in r.stdout, (r.stdout, r.stderr)
