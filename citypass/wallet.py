"""The resident's side: pick a voucher nonce, sign a voucher, show it as a QR code.

Nonces are unordered and counted per (holder, budget): the wallet takes the lowest unused
one, so an unused QR code never blocks later ones. Nonces below HOT_NONCES (128) are flags
the contract keeps next to the balance (`hotNonces`); higher ones live in `nonceBitmap`
(Permit2 layout: bit n & 255 of word n >> 8, with n = nonce - 128).

QR codes: the payload (see citypass.voucher.encode_payload) is upper-case alphanumeric text,
so segno uses the compact alphanumeric mode; error correction M survives a scratched phone
screen; `QR_SCALE` pixels per module keep a version-10 code about 400 px wide, which phone
and till scanners read at arm's length.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from citypass import voucher as V
from citypass.errors import CityPassError

HOT_NONCES = 128
QR_SCALE = 6
QR_BORDER = 4  # the quiet zone the QR standard asks for
MAX_QR_IMAGE_PIXELS = 50_000_000  # a 50-megapixel phone photo; decoding more only costs time
MAX_COLD_WORDS = 1024  # 262,272 vouchers per budget before a wallet gives up


def lowest_clear_bit(word: int, width: int = 256) -> int | None:
    """Index of the lowest 0 bit of `word` below `width`, or None if all are set."""
    free = ~word & ((1 << width) - 1)
    return (free & -free).bit_length() - 1 if free else None


def next_nonce(dep: Any, holder: str, budget: int) -> int:
    """The lowest nonce `holder` has not used for `budget` (hot flags first, then the bitmap)."""
    f = dep.contract.functions
    hot = lowest_clear_bit(int(f.hotNonces(holder, budget).call()), HOT_NONCES)
    if hot is not None:
        return hot
    for word_pos in range(MAX_COLD_WORDS):
        bit = lowest_clear_bit(int(f.nonceBitmap(holder, budget, word_pos).call()))
        if bit is not None:
            return HOT_NONCES + word_pos * 256 + bit
    raise CityPassError(f"{holder} has used more than {HOT_NONCES + MAX_COLD_WORDS * 256} vouchers for this budget")


def sign_voucher(
    dep: Any,
    account: Any,
    budget: int,
    amount: int,
    provider: str,
    *,
    co_payment: int = 0,
    ttl: int = V.DEFAULT_TTL_SECONDS,
    nonce: int | None = None,
) -> V.SignedVoucher:
    """A voucher from `account` (the pass holder's key) for `provider`, valid `ttl` seconds
    from the chain's clock (not this computer's: a dev chain's clock may have been moved)."""
    if ttl <= 0:
        raise CityPassError(f"ttl: must be more than 0 seconds, got {ttl}")
    try:
        v = V.build(
            account.address, provider, budget, amount,
            nonce=next_nonce(dep, account.address, budget) if nonce is None else nonce,
            co_payment=co_payment, ttl=ttl, now=dep.chain.now(),
        )
    except V.VoucherError as exc:
        raise CityPassError(str(exc)) from None
    return V.sign(v, account.key, dep.chain.chain_id, dep.address)


def write_qr(payload: str, path: str | Path, *, scale: int = QR_SCALE) -> Path:
    """Writes `payload` as a QR code PNG (error correction M)."""
    import segno

    path = Path(path)
    qr = segno.make_qr(payload, error="m", boost_error=False)
    try:
        qr.save(str(path), kind="png", scale=scale, border=QR_BORDER)
    except OSError as exc:
        raise CityPassError(f"cannot write the QR code to {path}: {exc.strerror or exc}") from None
    return path


def read_qr(path: str | Path) -> str:
    """The text of the (one) QR code in an image file."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_QR_IMAGE_PIXELS:
                raise CityPassError(f"{path}: the image is {image.width:,}x{image.height:,} pixels, too large for a "
                                    f"voucher's QR code (at most {MAX_QR_IMAGE_PIXELS:,}); crop it to the code")
            gray = image.convert("L")
    except FileNotFoundError:
        raise CityPassError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise CityPassError(f"{path}: not an image file (PNG, JPEG, ...)") from None
    except Image.DecompressionBombError:  # a few KB of PNG can claim gigabytes of pixels
        raise CityPassError(f"{path}: the image claims more pixels than any QR code photo has") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a damaged file
        raise CityPassError(f"{path}: cannot read the image, it is damaged or cut off ({exc})") from None
    codes = [c for c in zxingcpp.read_barcodes(gray) if c.format == zxingcpp.BarcodeFormat.QRCode and c.valid]
    if not codes:
        raise CityPassError(f"{path}: no readable QR code in the image")
    if len(codes) > 1:
        raise CityPassError(f"{path}: {len(codes)} QR codes in the image; show one voucher at a time")
    return codes[0].text


def load_voucher(text_or_png: str) -> V.SignedVoucher:
    """A signed voucher from its payload text, or from a PNG of its QR code."""
    text = text_or_png.strip()
    source = ""
    if not re.match(r"CP[0-9]+:", text.upper()):  # another version is named by decode_payload
        if _looks_like_a_file(text):
            source, text = f"{text}: its QR code is ", read_qr(text)
        else:
            raise CityPassError(
                f"{text[:40]!r} is neither a voucher payload (it starts with '{V.PAYLOAD_PREFIX}:') nor an image file"
            )
    try:
        return V.decode_payload(text)
    except V.VoucherError as exc:
        raise CityPassError(f"{source}not a valid voucher: {exc}") from None


def _looks_like_a_file(text: str) -> bool:
    if Path(text).suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for a file, or with a NUL in it
        return False
