"""Paper coupon sheets: the pass for a resident without a smartphone.

At the municipality's desk a fresh key is made in memory, the pass is enrolled and credited
(or an existing pass, with its credit, is migrated to the fresh key), the key signs a sheet of
coupons, the sheet is written as an A4 PDF, and the key is dropped: it is never written to
disk, so nobody holds it afterwards. A lost sheet is handled like a lost phone: migrating the
pass (`citypass pass migrate`, or `citypass coupons replace`) kills every coupon on it.

A coupon is the pass QR (`CP2:`, citypass.passqr) with one voucher: any provider approved for
the budget's category, up to the coupon's face value, one nonce of its own, valid until the
budget's end. One redemption uses the nonce up, whatever the amount, so sheets use small
denominations and the till warns when a clerk charges less than the face value.

The rules, once, as pure functions (the command line and the desk's web page both use them):

- `plan_sheet`: which coupons (denominations, count, nonces, deadline) for which credit; the
  coupons of a budget add up to exactly its credit on the sheet (never more), one unused nonce
  each. Each denomination is used until what is left is RESERVE_COUNT coupons of the next
  smaller one; the smallest until less than it is left; the last cents go on one coupon.
- `is_coupon`: how a till knows a scanned code is a paper coupon: exactly one voucher, for any
  provider, whose deadline is its budget's end (the budget id carries that end). A phone's pass
  QR lives 24 hours by default, never exactly until the budget's end.
- `check_number`: a six-digit number printed on each coupon and shown by the till, derived from
  the voucher's EIP-712 digest (so the till, which reads the voucher, computes the same number):
  the clerk checks that the code scanned is the coupon in the resident's hand.

The chain part (`make_sheet`, `replace_sheet`) writes the PDF *before* anything is sent: a PDF
that cannot be written costs nothing, and a credit on chain always has its sheet on disk. The
sheet's PDF carries its plan (holder, budgets, amounts) in its metadata, so running the same
command with the same `--out` again finishes what a crash interrupted, exactly once: the credit
goes through the issuance rules (exactly once per budget, tranche and holder), a migration
happens once per pass.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

from citypass import budget_id, passqr
from citypass import voucher as V
from citypass.errors import CityPassError, euros

DEFAULT_DENOMINATIONS = (1000, 500)  # cents: €10 and €5 coupons
RESERVE_COUNT = 4  # coupons of the next smaller denomination kept before using a larger one
MAX_COUPONS = 40  # per sheet (four A4 pages)
MAX_DENOMINATION = 10_000  # €100: a coupon is as good as cash to whoever holds it
MAX_DENOMINATIONS = 6
CHECK_DIGITS = 6
METADATA_TAG = "citypass-coupon-sheet/1"

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class CouponError(CityPassError):
    """A sheet that cannot be planned, written or finished; the message says why and what next."""


# ------------------------------------------------------------------ planning (pure)
@dataclass(frozen=True)
class PlannedCoupon:
    budget: int
    amount: int  # cents: the coupon's face value (the voucher's maxAmount)
    nonce: int
    deadline: int  # unix seconds: the budget's end

    @property
    def serial(self) -> int:
        return budget_id.decode(self.budget).serial


@dataclass(frozen=True)
class SheetPlan:
    credits: Mapping[int, int]  # budget -> cents the sheet covers
    coupons: tuple[PlannedCoupon, ...]

    @property
    def total(self) -> int:
        return sum(c.amount for c in self.coupons)

    def total_for(self, budget: int) -> int:
        return sum(c.amount for c in self.coupons if c.budget == budget)

    def count_for(self, budget: int) -> int:
        return sum(1 for c in self.coupons if c.budget == budget)

    def to_json(self) -> dict[str, Any]:
        return {"coupons": [{"budget": str(c.budget), "amount_cents": c.amount, "nonce": c.nonce,
                             "deadline": c.deadline} for c in self.coupons],
                "credits": {str(b): v for b, v in self.credits.items()}, "total_cents": self.total}


def parse_denominations(text: str) -> tuple[int, ...]:
    """'10,5' or '10.00,5,2.50' (euros, a dot for decimals) -> cents, largest first."""
    from citypass.money import parse_euros

    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise CouponError(f"denominations: {text!r}: give euro amounts separated by commas, like 10,5 "
                          "(a dot for decimals: 2.50)")
    out = []
    for p in parts:
        try:
            out.append(parse_euros(p))
        except ValueError as exc:
            raise CouponError(f"denominations: {p!r}: {exc}") from None
    return check_denominations(out)


def check_denominations(denominations: Iterable[int]) -> tuple[int, ...]:
    """Distinct, 1 cent .. MAX_DENOMINATION each, largest first; CouponError otherwise."""
    values = list(denominations)
    if not 1 <= len(values) <= MAX_DENOMINATIONS:
        raise CouponError(f"denominations: give 1 to {MAX_DENOMINATIONS} amounts, got {len(values)}")
    for d in values:
        if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
            raise CouponError(f"denominations: {d!r} is not an amount of more than 0 cents")
        if d > MAX_DENOMINATION:
            raise CouponError(f"denominations: {euros(d)} is more than {euros(MAX_DENOMINATION)}; a coupon is as good "
                              "as cash to whoever holds it, and a coupon is used once whatever the amount: use "
                              "small denominations")
    if len(set(values)) != len(values):
        raise CouponError("denominations: an amount is listed twice")
    return tuple(sorted(values, reverse=True))


def amounts_for(credit: int, denominations: Sequence[int] = DEFAULT_DENOMINATIONS) -> list[int]:
    """The face values of the coupons for `credit` cents, largest first; they add up to exactly
    `credit`. Each denomination is used until what is left is RESERVE_COUNT coupons of the next
    smaller one, so a resident has small coupons for small purchases; the smallest is used
    until less than it is left, and what remains (cents) goes on one last coupon."""
    denominations = check_denominations(denominations)
    if isinstance(credit, bool) or not isinstance(credit, int) or credit <= 0:
        raise CouponError(f"credit: {credit!r} cents; a sheet needs more than 0")
    out, left = [], credit
    for d, smaller in zip(denominations, denominations[1:]):
        while left - d >= RESERVE_COUNT * smaller:
            out.append(d)
            left -= d
    smallest = denominations[-1]
    while left >= smallest:
        out.append(smallest)
        left -= smallest
    if left:
        out.append(left)
    return out


def free_nonces(used: Collection[int], count: int) -> list[int]:
    """The `count` lowest nonces not in `used` (a fresh key has used none: 0, 1, 2, ...)."""
    out, n = [], 0
    used = set(used)
    while len(out) < count:
        if n not in used:
            out.append(n)
        n += 1
    return out


def plan_sheet(credits: Mapping[int, int], *, denominations: Sequence[int] = DEFAULT_DENOMINATIONS,
               used_nonces: Mapping[int, Collection[int]] | None = None, max_coupons: int = MAX_COUPONS,
               now: int | None = None) -> SheetPlan:
    """The coupons for `credits` (budget id -> cents), in budget order: face values by
    `amounts_for`, one unused nonce each (`used_nonces`: per budget, those the holder used;
    none for a fresh key), deadline = the budget's end. CouponError if a budget has ended
    (at `now`), a credit is not positive, or the sheet would need more than `max_coupons`."""
    if not credits:
        raise CouponError("credit: nothing to put on a sheet (no budget with credit)")
    coupons: list[PlannedCoupon] = []
    for budget in sorted(credits, key=lambda b: (budget_id.decode(b).serial, b)):
        cents = credits[budget]
        terms = budget_id.decode(budget)
        if terms.valid_until == 0 or terms.serial == 0:
            raise CouponError(f"budget: {budget} is not a CityPass budget id")
        if now is not None and now > terms.valid_until:
            raise CouponError(f"budget #{terms.serial} ended on {_date_en(terms.valid_until)}: its coupons would be "
                              "refused at every till")
        amounts = amounts_for(cents, denominations)
        nonces = free_nonces((used_nonces or {}).get(budget, ()), len(amounts))
        coupons += [PlannedCoupon(budget, a, n, terms.valid_until) for a, n in zip(amounts, nonces)]
    if len(coupons) > max_coupons:
        raise CouponError(f"the sheet would need {len(coupons)} coupons, more than the {max_coupons} a sheet holds: "
                          "use larger denominations (e.g. --denominations 20,10,5)")
    plan = SheetPlan(dict(credits), tuple(coupons))
    for budget, cents in credits.items():  # the rule the whole path rests on
        assert plan.total_for(budget) <= cents
    return plan


# ------------------------------------------------------------------ what a till reads (pure)
def is_coupon(pq: passqr.PassQR) -> bool:
    """A paper coupon: one voucher, any provider, valid exactly until its budget's end."""
    return (len(pq.entries) == 1 and int(pq.provider, 16) == 0
            and pq.deadline == budget_id.decode(pq.entries[0].budget).valid_until)


def check_number(digest: bytes) -> str:
    """Six digits from a voucher's EIP-712 digest: its first 8 bytes, big-endian, mod 10**6,
    zero-padded (web/src/till/coupon.js computes the same)."""
    if len(digest) != 32:
        raise CouponError(f"digest: {len(digest)} bytes, expected 32")
    return f"{int.from_bytes(digest[:8], 'big') % 10**CHECK_DIGITS:0{CHECK_DIGITS}d}"


def show_check_number(number: str) -> str:
    """'482913' -> '482 913', as printed and as the till shows it."""
    return f"{number[:3]} {number[3:]}"


def coupon_check_number(pq: passqr.PassQR) -> str:
    return check_number(V.digest(pq.voucher(pq.entries[0]), pq.chain_id, pq.contract))


# ------------------------------------------------------------------ the key and signing
def _fresh_key() -> bytearray:
    """32 random bytes that are a valid secp256k1 key, in a mutable buffer (wiped after use)."""
    while True:
        key = bytearray(secrets.token_bytes(32))
        if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            return key


def _wipe(buffer: bytearray) -> None:
    for i in range(len(buffer)):
        buffer[i] = 0


@dataclass(frozen=True)
class Coupon:
    planned: PlannedCoupon
    qr: passqr.PassQR
    text: str  # CP2:...
    check: str  # six digits


@dataclass(frozen=True)
class Sheet:
    holder: str
    chain_id: int
    contract: str
    plan: SheetPlan
    coupons: tuple[Coupon, ...]


def sign_sheet(plan: SheetPlan, key: Any, chain_id: int, contract: str) -> Sheet:
    """Every coupon of `plan` signed by `key` (bytes, hex or a LocalAccount): the holder is
    the key's address."""
    from eth_account import Account

    raw = bytes(getattr(key, "key", key)) if not isinstance(key, str) else key
    holder = Account.from_key(raw).address
    out = []
    for c in plan.coupons:
        pq = passqr.coupon(raw, chain_id, contract, c.budget, c.amount, c.nonce, c.deadline)
        out.append(Coupon(c, pq, pq.encode(), coupon_check_number(pq)))
    return Sheet(holder, chain_id, pq.contract if out else contract, plan, tuple(out))


def sheet_from_codes(plan: SheetPlan, codes: Sequence[str], chain_id: int, contract: str) -> Sheet:
    """A sheet whose coupons were signed elsewhere (the desk's page keeps the key in the
    browser): code i must be the plan's coupon i (budget, face value, nonce, the budget's end,
    any provider) for this chain and contract, all by one holder, each signature the holder's.
    CouponError naming the coupon otherwise; nothing here needs the key."""
    from eth_utils import to_checksum_address

    if len(codes) != len(plan.coupons):
        raise CouponError(f"codes: {len(codes)} signed coupons for a plan of {len(plan.coupons)}")
    out, holder = [], None
    for i, (planned, text) in enumerate(zip(plan.coupons, codes), start=1):
        try:
            pq = passqr.decode(text)
        except passqr.PassQRError as exc:
            raise CouponError(f"coupon {i}: {exc}") from None
        e = pq.entries[0]
        if not is_coupon(pq) or (e.budget, e.max_amount, e.nonce, pq.deadline) != (
                planned.budget, planned.amount, planned.nonce, planned.deadline):
            raise CouponError(f"coupon {i}: not the planned coupon ({euros(planned.amount)} of budget #{planned.serial}, "
                              f"nonce {planned.nonce}, valid until the budget's end, any provider)")
        if pq.chain_id != chain_id or pq.contract != to_checksum_address(contract):
            raise CouponError(f"coupon {i}: signed for chain {pq.chain_id}, contract {pq.contract}")
        holder = holder or pq.holder
        if pq.holder != holder:
            raise CouponError(f"coupon {i}: signed by {pq.holder}, the other coupons by {holder}: one sheet, one key")
        if passqr.verify(pq)[0][1] is not None:
            raise CouponError(f"coupon {i}: its signature is not the holder's")
        out.append(Coupon(planned, pq, pq.encode(), coupon_check_number(pq)))
    return Sheet(holder or "", chain_id, to_checksum_address(contract), plan, tuple(out))


def sign_with_fresh_key(plan: SheetPlan, chain_id: int, contract: str) -> Sheet:
    """A fresh key made in memory signs the sheet and is wiped; only its address remains."""
    key = _fresh_key()
    try:
        return sign_sheet(plan, bytes(key), chain_id, contract)
    finally:
        _wipe(key)
        del key


# ------------------------------------------------------------------ the PDF
_MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december")


def date_nl(ts: int) -> str:
    """A budget's last day in Dutch: '31 december 2026' (budgets end at 23:59:59 UTC)."""
    d = datetime.fromtimestamp(int(ts), timezone.utc)
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _date_en(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%d")


def euro_nl(cents: int) -> str:
    """1250 -> '€12,50'; 125000 -> '€1.250,00'."""
    whole, rest = divmod(int(cents), 100)
    return f"€{whole:,}".replace(",", ".") + f",{rest:02d}"


@dataclass(frozen=True)
class SheetInfo:
    """What a sheet's PDF says about itself (its metadata): enough to finish it or check it."""

    kind: str  # "new" (enrol and credit) or "replace" (migrate `source` to `holder`)
    chain_id: int
    contract: str
    holder: str
    credits: Mapping[int, int]
    source: str | None = None  # replace: the pass whose credit moves to this sheet
    tranche: str = ""  # new: the issuance tranche of the credit
    pass_valid_until: int = 0  # new: the pass's validity
    coupons: int = 0
    # every coupon as (budget, face value in cents, nonce, check number), in the sheet's order
    listed: tuple[tuple[int, int, int, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"tag": METADATA_TAG, "kind": self.kind, "chain_id": self.chain_id, "contract": self.contract,
                "holder": self.holder, "credits": {str(b): v for b, v in self.credits.items()},
                "source": self.source, "tranche": self.tranche, "pass_valid_until": self.pass_valid_until,
                "coupons": self.coupons, "listed": [[str(b), a, n, c] for b, a, n, c in self.listed]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SheetInfo":
        return cls(str(data["kind"]), int(data["chain_id"]), str(data["contract"]), str(data["holder"]),
                   {int(b): int(v) for b, v in dict(data["credits"]).items()}, data.get("source"),
                   str(data.get("tranche", "")), int(data.get("pass_valid_until", 0)), int(data.get("coupons", 0)),
                   tuple((int(b), int(a), int(n), str(c)) for b, a, n, c in data.get("listed", ())))

    def with_coupons(self, sheet: "Sheet") -> "SheetInfo":
        from dataclasses import replace

        return replace(self, coupons=len(sheet.coupons), listed=tuple(
            (c.planned.budget, c.planned.amount, c.planned.nonce, c.check) for c in sheet.coupons))


# A4 layout, in millimetres
_MARGIN = 12.0
_COLS = 2
_CELL_H = 48.0
_FIRST_PAGE_ROWS = 4  # the first page has the instructions on top
_PAGE_ROWS = 5
_QR_MM = 40.0


def _pages(count: int) -> list[range]:
    first = _COLS * _FIRST_PAGE_ROWS
    out = [range(0, min(count, first))]
    start = first
    while start < count:
        out.append(range(start, min(count, start + _COLS * _PAGE_ROWS)))
        start += _COLS * _PAGE_ROWS
    return out


INSTRUCTIONS_NL = (
    "Zo betaalt u met een bon:",
    "1. Knip de bonnen los langs de stippellijnen. Neem ze mee als u iets gaat doen.",
    "2. Geef bij de kassa één bon. De kassa scant de QR-code en ziet hetzelfde controlenummer.",
    "3. Elke bon kunt u één keer gebruiken. Kost het minder dan de bon? Dan blijft de rest op uw pas.",
    "   Die rest kunt u aan de balie van de gemeente op een nieuw vel laten zetten.",
    "4. Bewaar dit vel goed, zoals geld. Kwijt? Ga naar de balie van de gemeente: zij maken",
    "   de oude bonnen ongeldig en geven u een nieuw vel met het tegoed dat u nog had.",
)


def render_pdf(sheet: Sheet, info: SheetInfo, budget_names: Mapping[int, str] | None = None,
               category_names: Mapping[int, str] | None = None) -> bytes:
    """The A4 sheet: on every coupon its QR code, the amount, the budget, 'geldig tot', the
    check number and 'bon N van M'; plain Dutch instructions on the first page; the sheet's
    plan (`info`) in the PDF's metadata. Deterministic: the same sheet gives the same bytes."""
    import segno
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas

    names = dict(budget_names or {})
    cats = dict(category_names or {})
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, invariant=1, pageCompression=1)
    c.setTitle("CityPass bonnen")
    c.setAuthor("Gemeente, CityPass")
    c.setSubject("Bonnen van de CityPass; elke bon is één keer te gebruiken")
    c.setKeywords(METADATA_TAG + " " + json.dumps(info.to_json(), separators=(",", ":"), sort_keys=True))
    width, height = A4
    total = len(sheet.coupons)
    pages = _pages(total)
    short_holder = f"{sheet.holder[:6]}…{sheet.holder[-4:]}"

    def budget_name(b: int) -> str:
        return names.get(b) or f"Budget {budget_id.decode(b).serial}"

    for page_no, indexes in enumerate(pages, start=1):
        top = height - _MARGIN * mm
        if page_no == 1:
            c.setFont("Helvetica-Bold", 20)
            c.drawString(_MARGIN * mm, top - 8 * mm, "CityPass: uw bonnen")
            c.setFont("Helvetica", 11)
            parts = []
            for b in sheet.plan.credits:
                cat = cats.get(budget_id.decode(b).category)
                parts.append(f"{budget_name(b)}: {sheet.plan.count_for(b)} bonnen, samen {euro_nl(sheet.plan.total_for(b))}"
                             + (f", te gebruiken voor {cat}" if cat else ""))
            y = top - 15 * mm
            for line in parts:
                c.drawString(_MARGIN * mm, y, line)
                y -= 5 * mm
            y -= 2 * mm
            c.setFont("Helvetica-Bold", 11)
            c.drawString(_MARGIN * mm, y, INSTRUCTIONS_NL[0])
            c.setFont("Helvetica", 10.5)
            for line in INSTRUCTIONS_NL[1:]:
                y -= 5 * mm
                c.drawString(_MARGIN * mm, y, line)
            grid_top = y - 5 * mm
        else:
            c.setFont("Helvetica-Bold", 12)
            c.drawString(_MARGIN * mm, top - 5 * mm, "CityPass: uw bonnen (vervolg)")
            grid_top = top - 10 * mm
        c.setFont("Helvetica", 8)
        c.setFillGray(0.35)
        c.drawString(_MARGIN * mm, 7 * mm, f"Vel {page_no} van {len(pages)} · pas {short_holder} · alleen geldig bij "
                                           "aanbieders die meedoen met de CityPass")
        c.setFillGray(0)
        cell_w = (width - 2 * _MARGIN * mm) / _COLS
        for slot, index in enumerate(indexes):
            row, col = divmod(slot, _COLS)
            x0 = _MARGIN * mm + col * cell_w
            y0 = grid_top - (row + 1) * _CELL_H * mm
            _draw_coupon(c, segno, mm, sheet.coupons[index], index + 1, total, budget_name(sheet.coupons[index].planned.budget),
                         x0, y0, cell_w, _CELL_H * mm)
        c.showPage()
    c.save()
    return buf.getvalue()


def _draw_coupon(c: Any, segno: Any, mm: float, coupon: Coupon, number: int, total: int, budget: str,
                 x0: float, y0: float, w: float, h: float) -> None:
    # the cut line
    c.saveState()
    c.setDash(2, 2)
    c.setStrokeGray(0.55)
    c.setLineWidth(0.6)
    c.rect(x0, y0, w, h)
    c.restoreState()
    # the QR code, drawn as vector modules (sharp on any printer), with its quiet zone
    qr = segno.make_qr(coupon.text, error="m", boost_error=False)
    matrix = [list(r) for r in qr.matrix]
    n = len(matrix)
    size = _QR_MM * mm
    module = size / (n + 8)
    qx, qy = x0 + 2 * mm, y0 + (h - size) / 2
    c.setFillGray(0)
    for r, cells in enumerate(matrix):
        col = 0
        while col < n:
            if cells[col]:
                start = col
                while col < n and cells[col]:
                    col += 1
                c.rect(qx + (start + 4) * module, qy + size - (r + 5) * module, (col - start) * module, module,
                       stroke=0, fill=1)
            else:
                col += 1
    # the words
    tx = qx + size + 3 * mm
    top = y0 + h - 5 * mm
    room = x0 + w - tx - 2 * mm
    c.setFont("Helvetica", 7.5)
    c.setFillGray(0.35)
    c.drawString(tx, top, _fit(c, f"Bon {number} van {total} · één keer te gebruiken", "Helvetica", 7.5, room))
    c.setFillGray(0)
    c.setFont("Helvetica-Bold", 22)
    c.drawString(tx, top - 9 * mm, euro_nl(coupon.planned.amount))
    c.setFont("Helvetica-Bold", 11)
    c.drawString(tx, top - 15 * mm, _fit(c, budget, "Helvetica-Bold", 11, room))
    c.setFont("Helvetica", 8.5)
    c.drawString(tx, top - 20.5 * mm, "Geldig tot en met")
    c.setFont("Helvetica-Bold", 10)
    c.drawString(tx, top - 25 * mm, date_nl(coupon.planned.deadline))
    c.setFont("Helvetica", 8.5)
    c.drawString(tx, top - 31 * mm, "Controlenummer:")
    c.setFont("Courier-Bold", 15)
    c.drawString(tx, top - 37 * mm, show_check_number(coupon.check))


def _fit(c: Any, text: str, font: str, size: float, room: float) -> str:
    while text and c.stringWidth(text, font, size) > room:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


_KEYWORDS = re.compile(rb"/Keywords \((" + re.escape(METADATA_TAG.encode()) + rb" [^)]*)\)")


def read_sheet_info(path: str | Path) -> SheetInfo:
    """The plan a sheet's PDF (written by render_pdf) carries; CouponError if it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CouponError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    found = _KEYWORDS.search(data)
    if not data.startswith(b"%PDF") or found is None:
        raise CouponError(f"{path}: exists, and is not a CityPass coupon sheet; choose another --out file")
    try:
        text = found.group(1).decode("ascii").split(" ", 1)[1].replace("\\(", "(").replace("\\)", ")")
        return SheetInfo.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise CouponError(f"{path}: a CityPass coupon sheet whose metadata cannot be read ({exc})") from None


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` through a temporary file in the same folder, fsynced, then
    renamed: the file is either whole or absent. CouponError if it cannot be written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise CouponError(f"cannot write the sheet to {path}: {exc.strerror or exc}; nothing was sent, the key is "
                          "gone and no coupon of it exists: run the command again with a writable --out") from None
    return path


# ------------------------------------------------------------------ on the chain
Note = Callable[[str], None]


@dataclass
class SheetResult:
    sheet_path: Path
    info: SheetInfo
    finished_before: bool = False  # the sheet existed and the chain was already done: nothing sent
    sent: list[str] = field(default_factory=list)  # what this run sent, one line each
    balances: Mapping[int, int] = field(default_factory=dict)  # the pass's credit per budget of the sheet, now

    def to_json(self) -> dict[str, Any]:
        return {"pass": self.info.holder, "sheet": str(self.sheet_path), "kind": self.info.kind,
                "from_pass": self.info.source, "coupons": self.info.coupons,
                "total": _plain(sum(self.info.credits.values())), "total_cents": sum(self.info.credits.values()),
                "budgets": [{"budget": str(b), "serial": budget_id.decode(b).serial, "sheet_cents": v,
                             "on_pass_cents": int(self.balances.get(b, 0))} for b, v in self.info.credits.items()],
                "finished_before": self.finished_before, "sent": self.sent}


def _plain(cents: int) -> str:
    from citypass.money import plain_euros

    return plain_euros(cents)


def _names(dep: Any) -> tuple[dict[int, str], dict[int, str]]:
    from citypass import contract as C

    return {b.id: b.name for b in C.budgets(dep)}, C.category_names(dep)


def _check_out(out: Path) -> None:
    if out.suffix.lower() != ".pdf":
        raise CouponError(f"--out {out}: the sheet is a PDF; give a file name ending in .pdf")
    if not out.parent.is_dir():
        raise CouponError(f"--out {out}: the folder {out.parent} does not exist")


def _write_sheet(dep: Any, plan: SheetPlan, make_info: Callable[[str], SheetInfo], out: Path) -> tuple[Sheet, SheetInfo]:
    sheet = sign_with_fresh_key(plan, dep.chain.chain_id, dep.address)
    info = make_info(sheet.holder).with_coupons(sheet)
    names, cats = _names(dep)
    write_atomic(out, render_pdf(sheet, info, names, cats))
    return sheet, info


def _same_chain(dep: Any, info: SheetInfo, out: Path) -> None:
    if info.chain_id != dep.chain.chain_id or info.contract.lower() != dep.address.lower():
        raise CouponError(f"{out}: a sheet for chain {info.chain_id}, contract {info.contract}, not for this one "
                          f"(chain {dep.chain.chain_id}, {dep.address}); choose another --out file")


def make_sheet(dep: Any, registrar: Any, issuer: Any, budget: int, amount: int, out: str | Path, *,
               denominations: Sequence[int] = DEFAULT_DENOMINATIONS, tranche: str = "",
               pass_valid_until: int | None = None, allow_role_holders: bool = False,
               note: Note = lambda _m: None) -> SheetResult:
    """A new resident's sheet: a fresh key signs coupons for `amount` cents of `budget`, the PDF
    is written to `out`, then the registrar enrols the key's address and the issuer credits it
    (citypass.issuance: exactly once per budget, tranche and holder).

    If `out` exists and is this kind of sheet, nothing new is signed: the run finishes what that
    sheet still needs on chain (a re-run after a crash), or says it was done."""
    from citypass import contract as C
    from citypass.clock import next_block_time

    out = Path(out)
    _check_out(out)
    if out.exists():
        info = read_sheet_info(out)
        _same_chain(dep, info, out)
        if info.kind != "new" or info.credits != {budget: amount} or info.tranche != tranche:
            raise CouponError(
                f"{out} exists: it is a sheet of pass {info.holder} ({_describe(info)}), not of {euros(amount)} of "
                f"budget #{budget_id.decode(budget).serial}"
                + (f" in tranche {tranche!r}" if tranche else "")
                + "; nothing was sent. Choose another --out file for a new sheet")
        note(f"{out} exists: the sheet of pass {info.holder}; finishing what it still needs on chain")
        return _finish_new(dep, registrar, issuer, info, out, allow_role_holders, note, resumed=True)

    b = C.find_budget(dep, budget)
    now = next_block_time(dep.chain)
    valid_until = b.valid_until if pass_valid_until is None else pass_valid_until
    if now > b.valid_until:
        raise CouponError(f"budget #{b.serial} ended on {_date_en(b.valid_until)}; no coupons can be made for it")
    if valid_until < now:
        raise CouponError(f"the pass would be valid until {_date_en(valid_until)}, which is in the past")
    if b.issued + amount > b.cap:
        raise CouponError(f"{euros(amount)} would bring budget #{b.serial} to {euros(b.issued + amount)}, above its cap "
                          f"of {euros(b.cap)} ({euros(max(0, b.cap - b.issued))} left); nothing was sent")
    C.require_role(dep, "REGISTRAR", registrar.address)
    C.require_role(dep, "ISSUER", issuer.address)
    plan = plan_sheet({b.id: amount}, denominations=denominations, now=now)
    _, info = _write_sheet(dep, plan, lambda holder: SheetInfo(
        "new", dep.chain.chain_id, dep.address, holder, {b.id: amount}, None, tranche, valid_until,
        len(plan.coupons)), out)
    note(f"wrote {out}: {len(plan.coupons)} coupons, {euros(plan.total)}, for the new pass {info.holder}; "
         "the key that signed them is gone")
    return _finish_new(dep, registrar, issuer, info, out, allow_role_holders, note, resumed=False)


def _describe(info: SheetInfo) -> str:
    parts = ", ".join(f"{euros(v)} of budget #{budget_id.decode(b).serial}" for b, v in info.credits.items())
    return f"{parts}{', from pass ' + info.source if info.source else ''}"


def _unfinished(out: Path, info: SheetInfo, what: str, exc: Exception) -> CouponError:
    return CouponError(
        f"{what} failed: {exc}\n"
        f"The sheet {out} (pass {info.holder}) is written, but its coupons are not usable until this is done. "
        f"Run the same command again (same --out): it finishes the sheet and never credits it twice. "
        f"If you give up instead, destroy the printed sheet and delete {out}.")


def _finish_new(dep: Any, registrar: Any, issuer: Any, info: SheetInfo, out: Path, allow_role_holders: bool,
                note: Note, *, resumed: bool) -> SheetResult:
    from citypass import contract as C
    from citypass import issuance as I
    from citypass import tx

    ((budget, amount),) = info.credits.items()
    holder = info.holder
    result = SheetResult(out, info)
    p = C.pass_info(dep, holder)
    if p.status == "migrated":
        raise CouponError(f"{out}: its pass {holder} was migrated to {p.migrated_to} (the sheet was replaced or "
                          "reported lost): its coupons no longer work; nothing was sent")
    try:
        if p.status == "none":
            C.require_role(dep, "REGISTRAR", registrar.address)
            receipt = tx.send(dep.chain, registrar, dep.contract.functions.enrollPasses([holder], info.pass_valid_until))
            line = (f"enrolled the pass {holder}, valid until {_date_en(info.pass_valid_until)} "
                    f"(tx 0x{bytes(receipt.transactionHash).hex()}, block {receipt.blockNumber})")
            note(line)
            result.sent.append(line)
        elif p.status != "active":
            raise CouponError(f"the pass {holder} is {p.status}")
    except CityPassError as exc:
        raise _unfinished(out, info, f"enrolling the pass {holder} (registrar {registrar.address})", exc) from None
    try:
        rows = [I.Row(1, holder, amount)]
        state = I.read_state(dep, rows, budget, info.tranche)
        plan = I.validate(out, I.read_budget(dep, budget), state, tranche=info.tranche, parsed=(rows, []),
                          allow_role_holders=allow_role_holders)
        if plan.sends:
            results = I.execute(dep, issuer, plan)
            for r in results:
                if r.tx_hash:
                    line = f"credited {euros(r.send.total)} of budget #{budget_id.decode(budget).serial} (tx {r.tx_hash})"
                    note(line)
                    result.sent.append(line)
    except CityPassError as exc:
        raise _unfinished(out, info, f"crediting {euros(amount)} to the pass {holder} (issuer {issuer.address})", exc) from None
    result.finished_before = resumed and not result.sent
    result.balances = _balances(dep, holder, info.credits)
    # Right after this run credited it, the pass holds at least the sheet (later, spent coupons lower it).
    short = [b for b in info.credits if result.balances.get(b, 0) < info.credits[b]]
    if short and result.sent:
        raise CouponError(f"the pass {holder} holds {euros(result.balances.get(budget, 0))} of budget "
                          f"#{budget_id.decode(budget).serial}, less than the {euros(amount)} on the sheet {out} "
                          "(coupons of it were used already?); check with `citypass pass show`")
    return result


def _balances(dep: Any, holder: str, credits: Mapping[int, int]) -> dict[int, int]:
    ids = list(credits)
    return {b: int(v) for b, v in zip(ids, dep.contract.functions.balanceOfBatch([holder] * len(ids), ids).call())}


def replace_sheet(dep: Any, registrar: Any, old: str, out: str | Path, *,
                  denominations: Sequence[int] = DEFAULT_DENOMINATIONS, note: Note = lambda _m: None) -> SheetResult:
    """A sheet for the credit of an existing pass `old` (credited by an issuance, or an earlier
    sheet or phone that was lost): a fresh key signs coupons for what `old` holds in every open
    budget, the PDF is written to `out`, then the registrar migrates `old` to the key's address,
    which kills every coupon and QR code of `old`. Re-running with the same `out` finishes it."""
    from citypass import contract as C
    from citypass.clock import next_block_time

    out = Path(out)
    _check_out(out)
    old = C.checksum(old, "pass")
    if out.exists():
        info = read_sheet_info(out)
        _same_chain(dep, info, out)
        if info.kind != "replace" or (info.source or "").lower() != old.lower():
            raise CouponError(f"{out} exists: it is a sheet of pass {info.holder} ({_describe(info)}), not one replacing "
                              f"{old}; nothing was sent. Choose another --out file")
        note(f"{out} exists: the sheet replacing {old}; finishing what it still needs on chain")
        return _finish_replace(dep, registrar, info, out, note, resumed=True)
    p = C.pass_info(dep, old)
    if p.status == "migrated":
        raise CouponError(f"the pass {old} was migrated to {p.migrated_to} already; its credit lives there now: "
                          f"replace that one (`citypass coupons replace {p.current_address} --out ...`)")
    if p.status == "suspended":
        raise CouponError(f"the pass {old} is suspended: a sheet for it would be refused at every till; reinstate it "
                          "first (`citypass pass reinstate`)")
    if p.status != "active":
        raise CouponError(f"the pass {old} is {p.status}: "
                          + ("no pass was enrolled at this address" if p.status == "none" else "it cannot be migrated"))
    now = next_block_time(dep.chain)
    if p.valid_until < now:
        raise CouponError(f"the pass {old} expired on {_date_en(p.valid_until)}: its coupons would be refused; renew it "
                          "first (`citypass pass renew`)")
    credits = {b: v for b, v in p.balances.items() if budget_id.decode(b).valid_until >= now}
    if not credits:
        raise CouponError(f"the pass {old} holds no credit in an open budget: nothing to put on a sheet")
    C.require_role(dep, "REGISTRAR", registrar.address)
    plan = plan_sheet(credits, denominations=denominations, now=now)
    _, info = _write_sheet(dep, plan, lambda holder: SheetInfo(
        "replace", dep.chain.chain_id, dep.address, holder, credits, old, "", 0, len(plan.coupons)), out)
    note(f"wrote {out}: {len(plan.coupons)} coupons, {euros(plan.total)}, for the new pass {info.holder}; "
         "the key that signed them is gone")
    return _finish_replace(dep, registrar, info, out, note, resumed=False)


def _finish_replace(dep: Any, registrar: Any, info: SheetInfo, out: Path, note: Note, *, resumed: bool) -> SheetResult:
    from citypass import contract as C
    from citypass import tx

    old, new = info.source or "", info.holder
    result = SheetResult(out, info)
    p = C.pass_info(dep, old)
    try:
        if p.migrated_to is not None and p.migrated_to != new:
            raise CouponError(f"the pass {old} moved to {p.migrated_to}, not to this sheet's pass {new}: the sheet "
                              f"{out} holds no credit; destroy it and delete the file")
        # more budgets than one call takes, or credit that arrived at the old pass later, follow
        for step in C.migration_steps(dep, old, new):
            if step.moves_pass:
                C.require_role(dep, "REGISTRAR", registrar.address)
            receipt = tx.send(dep.chain, registrar, step.fn)
            line = (f"migrated the pass {old} to {new} ({step.budgets} budget(s)): the old sheet's coupons and the old "
                    f"QR codes stop working (tx 0x{bytes(receipt.transactionHash).hex()}, block {receipt.blockNumber})"
                    if step.moves_pass else
                    f"moved {step.budgets} more budget(s) of {old} to {new} (tx 0x{bytes(receipt.transactionHash).hex()})")
            note(line)
            result.sent.append(line)
    except CityPassError as exc:
        raise _unfinished(out, info, f"migrating the pass {old} to {new} (registrar {registrar.address})", exc) from None
    result.finished_before = resumed and not result.sent
    result.balances = _balances(dep, new, info.credits)
    short = [b for b in info.credits if result.balances.get(b, 0) < info.credits[b]]
    if short and result.sent:  # checked right after this run's migration (later, spent coupons lower it)
        b = short[0]
        raise CouponError(
            f"the pass {new} holds {euros(result.balances.get(b, 0))} of budget #{budget_id.decode(b).serial}, less than "
            f"the {euros(info.credits[b])} on the sheet {out}: credit of the old pass was spent while the sheet was "
            f"made, so its last coupons would be refused; make a new sheet with `citypass coupons replace {new} --out ...`")
    return result


# ------------------------------------------------------------------ which coupons still work
@dataclass(frozen=True)
class CouponStatus:
    number: int  # 1.. as printed ("Bon 3 van 7")
    budget: int
    amount: int
    nonce: int
    check: str
    status: str  # "unused" | "used" | "dead" (the pass moved: a replaced or lost sheet) | "ended" | "blocked"


def sheet_status(dep: Any, info: SheetInfo) -> list[CouponStatus]:
    """Each coupon of a sheet and whether it still works, from the chain: its nonce used, the
    pass migrated (every coupon dead), suspended or revoked (blocked), or the budget ended."""
    from citypass import contract as C
    from citypass.clock import next_block_time
    from citypass.tx import call_many

    p = C.pass_info(dep, info.holder)
    used = call_many(dep.chain, dep.contract, "isNonceUsed", [(info.holder, b, n) for b, _, n, _ in info.listed])
    now = next_block_time(dep.chain)
    out = []
    for i, ((b, amount, nonce, check), (is_used,)) in enumerate(zip(info.listed, used), start=1):
        if is_used:
            status = "used"
        elif p.status == "migrated":
            status = "dead"
        elif p.status != "active":
            status = "blocked"
        elif now > budget_id.decode(b).valid_until:
            status = "ended"
        else:
            status = "unused"
        out.append(CouponStatus(i, b, amount, nonce, check, status))
    return out
