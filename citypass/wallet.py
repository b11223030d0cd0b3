"""The resident's side: pick a voucher nonce, sign the pass QR, show it as a QR code.

Nonces are unordered and counted per (holder, budget): the wallet takes the lowest unused
one, so an unused QR code never blocks later ones. Nonces below HOT_NONCES (128) are flags
the contract keeps next to the balance (`hotNonces`); higher ones live in `nonceBitmap`
(Permit2 layout: bit n & 255 of word n >> 8, with n = nonce - 128).

QR codes: the pass QR text (see citypass.passqr) is base45, all QR alphanumeric, so segno
uses the compact alphanumeric mode; error correction M survives a scratched phone
screen; `QR_SCALE` pixels per module keep a version-10 code about 400 px wide, which phone
and till scanners read at arm's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from citypass import budget_id, passqr
from citypass import settings as S
from citypass import voucher as V
from citypass.clock import next_block_time
from citypass.errors import CityPassError, euros
from citypass.reasons import Reason

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


@dataclass(frozen=True)
class Refusal:
    """Why the wallet will not sign a voucher for one budget (what `--force` overrides)."""

    budget: int
    reason: Reason
    message: str


class SignRefused(CityPassError):
    """The wallet's pre-checks refuse to sign; `refusals` say why, per budget."""

    def __init__(self, refusals: Sequence[Refusal]):
        self.refusals = list(refusals)
        super().__init__("not signed: " + "; ".join(r.message for r in self.refusals)
                         + " (--force signs anyway)")


def _precheck(dep: Any, holder: str, budget: int, max_amount: int, provider: str, balance: int,
              now: int) -> Refusal | None:
    """What the wallet can tell before signing (the till's checkVoucher judges the rest)."""
    from citypass.contract import provider_info

    terms = budget_id.decode(budget)
    where = f"budget #{terms.serial}"
    if balance == 0:
        return Refusal(budget, Reason.InsufficientCredit, f"{where}: the pass holds no credit in this budget")
    if max_amount > balance:
        return Refusal(budget, Reason.InsufficientCredit,
                       f"{where}: {euros(max_amount)} is more than the {euros(balance)} left on the pass")
    if now > terms.valid_until:
        return Refusal(budget, Reason.BudgetEnded, f"{where}: {Reason.BudgetEnded.message}")
    if int(provider, 16) != 0:
        p = provider_info(dep, provider, names={})
        if p.status == "none":
            return Refusal(budget, Reason.NotAProvider, f"{where}: {provider} is not a registered provider")
        if terms.category not in p.categories:
            return Refusal(budget, Reason.CategoryNotApproved,
                           f"{where}: provider {provider} is not approved for category {terms.category}")
        if p.max_amount and max_amount > p.max_amount:
            return Refusal(budget, Reason.AboveProviderLimit,
                           f"{where}: {euros(max_amount)} is above the provider's limit of {euros(p.max_amount)} per payment")
    return None


def pass_qr(
    dep: Any,
    account: Any,
    *,
    budgets: Sequence[int] | None = None,
    provider: str = passqr.ANY_PROVIDER,
    max_amount: int | None = None,
    ttl: int | None = None,
    deadline: int | None = None,
    settings: S.Settings | None = None,
    nonces: dict[int, int] | None = None,
    force: bool = False,
) -> passqr.PassQR:
    """The pass QR the phone shows: one voucher per budget (default: every budget the pass
    holds credit in), each for min(balance, the per-scan limit, and the provider's limit if
    the QR is made out to one provider) unless `max_amount` is given, with the lowest unused nonce of that budget (the same on every refresh until it
    is used), valid `ttl` seconds (default: the municipality's setting, 24 h) from the time
    the next block will have. Refuses (SignRefused) what the wallet can already tell will
    fail, unless `force`."""
    from citypass.contract import budgets as all_budgets

    settings = settings or S.Settings()
    holder = account.address
    f = dep.contract.functions
    ids = [b.id for b in all_budgets(dep)]
    if budgets is None:
        held = f.balanceOfBatch([holder] * len(ids), ids).call() if ids else []
        chosen = [(bid, int(a)) for bid, a in zip(ids, held) if a]
        if not chosen:
            raise CityPassError(f"the pass {holder} holds no credit in any budget: nothing to sign")
    else:
        unknown = [b for b in budgets if b not in ids]
        if unknown:
            raise CityPassError(f"budget {unknown[0]} does not exist on the contract at {dep.address}")
        held = f.balanceOfBatch([holder] * len(budgets), list(budgets)).call()
        chosen = [(bid, int(a)) for bid, a in zip(budgets, held)]
    if len(chosen) > passqr.MAX_ENTRIES:
        raise CityPassError(f"the pass holds credit in {len(chosen)} budgets; a pass QR carries at most "
                            f"{passqr.MAX_ENTRIES}: choose them with --budget")
    now = next_block_time(dep.chain)
    if deadline is None:
        ttl = settings.pass_qr_ttl_seconds if ttl is None else ttl
        if ttl <= 0:
            raise CityPassError(f"ttl: must be more than 0 seconds, got {ttl}")
        deadline = now + ttl
    entries, refusals = [], []
    provider_limit = 0
    if int(provider, 16) != 0:
        from citypass.contract import provider_info

        provider_limit = provider_info(dep, provider, names={}).max_amount
    for bid, balance in chosen:
        limit = max_amount if max_amount is not None else min(balance, settings.scan_limit_cents)
        if max_amount is None and provider_limit:  # made out to one provider: no more than it may take
            limit = min(limit, provider_limit)
        if limit <= 0:
            if max_amount is not None:
                raise CityPassError(f"amount: must be more than 0 cents, got {max_amount}")
            refusals.append(Refusal(bid, Reason.InsufficientCredit,
                                    f"budget #{budget_id.decode(bid).serial}: the pass holds no credit in this budget"))
            continue
        problem = _precheck(dep, holder, bid, limit, provider, balance, now)
        if problem:
            refusals.append(problem)
        nonce = (nonces or {}).get(bid)
        entries.append((bid, limit, next_nonce(dep, holder, bid) if nonce is None else nonce))
    if refusals and not force:
        raise SignRefused(refusals)
    if not entries:
        raise SignRefused(refusals)
    try:
        return passqr.sign_pass(account.key, dep.chain.chain_id, dep.address, entries, deadline, provider)
    except (passqr.PassQRError, V.VoucherError) as exc:
        raise CityPassError(str(exc)) from None


def paper_coupon(dep: Any, account: Any, budget: int, max_amount: int, *, nonce: int | None = None,
                 provider: str = passqr.ANY_PROVIDER) -> passqr.PassQR:
    """One paper coupon: a pass QR with one voucher of `budget`, valid until the budget's
    end (a sheet gives each coupon its own nonce)."""
    terms = budget_id.decode(budget)
    if max_amount <= 0:
        raise CityPassError(f"amount: must be more than 0 cents, got {max_amount}")
    try:
        return passqr.coupon(account.key, dep.chain.chain_id, dep.address, budget, max_amount,
                             next_nonce(dep, account.address, budget) if nonce is None else nonce,
                             terms.valid_until, provider)
    except (passqr.PassQRError, V.VoucherError) as exc:
        raise CityPassError(str(exc)) from None


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
        raise CityPassError(f"{path}: {len(codes)} QR codes in the image; show one pass QR at a time")
    return codes[0].text


def load_pass_qr(text_or_png: str) -> passqr.PassQR:
    """A pass QR from its text (`CP2:...`), or from a PNG of its QR code."""
    text = text_or_png.strip()
    source = ""
    if not re.match(r"CP[0-9]+:", text.upper()):  # another version is named by passqr.decode
        if _looks_like_a_file(text):
            source, text = f"{text}: its QR code is ", read_qr(text)
        else:
            raise CityPassError(
                f"{text[:40]!r} is neither a pass QR (it starts with '{passqr.PREFIX}') nor an image file"
            )
    try:
        return passqr.decode(text)
    except passqr.PassQRError as exc:
        raise CityPassError(f"{source}not a valid pass QR: {exc}") from None


def _looks_like_a_file(text: str) -> bool:
    if Path(text).suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for a file, or with a NUL in it
        return False
