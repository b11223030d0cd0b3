"""Euro amounts as integer cents, parsed exactly (no floats, no Decimal rounding)."""

from __future__ import annotations

import re

MAX_CENTS = 2**128 - 1  # amounts are uint128 cents on chain
_EUROS = re.compile(r"([0-9]+)(?:\.([0-9]{1,2}))?")


def cents_from_text(text: str) -> int:
    """'12' -> 1200, '12.5' -> 1250, '12.50' -> 1250. ASCII digits and a dot only; raises
    ValueError otherwise or if the amount does not fit on chain."""
    match = _EUROS.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an amount in euros like 12.50 (digits, a dot, at most 2 decimals)")
    whole, fraction = match.group(1), match.group(2) or ""
    cents = int(whole) * 100 + int(fraction.ljust(2, "0"))
    if cents > MAX_CENTS:
        raise ValueError(f"{text!r} is too large")
    return cents


def euros(cents: int) -> str:
    """For people: 1234567 -> '€12,345.67'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}€{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def plain_euros(cents: int) -> str:
    """For CSV and JSON: 1234567 -> '12345.67'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
