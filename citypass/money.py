"""Euro amounts as integer cents, parsed exactly (no floats, no Decimal rounding)."""

from __future__ import annotations

import re
import unicodedata

MAX_CENTS = 2**128 - 1  # amounts are uint128 cents on chain
_MAX_DIGITS = len(str(MAX_CENTS // 100))  # more whole-euro digits than this cannot fit
_EUROS = re.compile(r"([0-9]+)(?:\.([0-9]{1,2}))?")


def cents_from_text(text: str) -> int:
    """'12' -> 1200, '12.5' -> 1250, '12.50' -> 1250. ASCII digits and a dot only; raises
    ValueError saying what is wrong otherwise, or if the amount does not fit on chain."""
    match = _EUROS.fullmatch(text)
    if match is None:
        raise ValueError(f"{_shown(text)} is not an amount in euros like 12.50 ({_why_not_euros(text)})")
    whole, fraction = match.group(1).lstrip("0") or "0", match.group(2) or ""
    # Length first: int() of thousands of digits is slow, and Python refuses it above 4,300.
    cents = int(whole) * 100 + int(fraction.ljust(2, "0")) if len(whole) <= _MAX_DIGITS else MAX_CENTS + 1
    if cents > MAX_CENTS:
        raise ValueError(f"{_shown(text)} is too large: the most an amount can be is {plain_euros(MAX_CENTS)} "
                         "(2**128-1 cents, what the contract stores)")
    return cents


def parse_euros(text: str, *, allow_zero: bool = False) -> int:
    """The one rule for an amount a person writes, in an issuance file or on the command
    line (`--amount`, `--cap`, ...): euros with a dot and at most 2 decimals (`12`, `12.5`,
    `12.50`), nothing else: no decimal comma (`12,50` could be twelve and a half or, with a
    thousands separator, 1,250), no currency sign, no spaces; more than 0 unless `allow_zero`.
    ValueError saying what is wrong otherwise."""
    cents = cents_from_text(text)
    if cents == 0 and not allow_zero:
        raise ValueError("must be more than 0")
    return cents


def _shown(text: str, limit: int = 40) -> str:
    """The text as quoted in a message, shortened if it is long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def _why_not_euros(text: str) -> str:
    """The most specific reason `text` is not an amount, for the error message."""
    odd = next((c for c in text if not c.isascii()), None)
    if odd is not None:
        name = unicodedata.name(odd, "")
        return (f"it contains {odd!r}, U+{ord(odd):04X}{' ' + name if name else ''}; "
                "write the digits 0-9 and a dot")
    if text.startswith("-"):
        return "it is negative; amounts are more than 0"
    if text.startswith("+"):
        return "no sign: write the number alone"
    if "," in text:
        return "a dot for decimals and no thousands separator: 1000.50, not 1.000,50"
    if "_" in text or " " in text:
        return "no digit separators: write 1000, not 1_000 or 1 000"
    if re.fullmatch(r"[0-9.]+[eE][-+]?[0-9]+", text):
        return "no exponent notation: write 1000, not 1e3"
    if re.fullmatch(r"[0-9]*\.[0-9]{3,}", text):
        return "at most 2 decimals: amounts are whole cents"
    if not text:
        return "it is empty"
    return "digits, a dot, at most 2 decimals"


def euros(cents: int) -> str:
    """For people: 1234567 -> '€12,345.67'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}€{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def plain_euros(cents: int) -> str:
    """For CSV and JSON: 1234567 -> '12345.67'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
