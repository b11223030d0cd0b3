"""Budget ids: an ERC-1155 id that carries its budget's terms (see contracts/libraries/BudgetId.sol).

    bits 128..159 serial | 80..87 category | 40..79 validFrom | 0..39 validUntil
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

MAX_CATEGORY = 63
_MASK40 = (1 << 40) - 1


@dataclass(frozen=True)
class BudgetTerms:
    serial: int
    category: int
    valid_from: int  # unix seconds, inclusive
    valid_until: int  # unix seconds, inclusive

    @property
    def id(self) -> int:
        return encode(self.serial, self.category, self.valid_from, self.valid_until)

    def is_open(self, timestamp: int) -> bool:
        return self.valid_from <= timestamp <= self.valid_until

    def window_text(self) -> str:
        fmt = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: E731
        return f"{fmt(self.valid_from)} .. {fmt(self.valid_until)}"


def encode(serial: int, category: int, valid_from: int, valid_until: int) -> int:
    if not 0 <= category <= MAX_CATEGORY:
        raise ValueError(f"category must be 0..{MAX_CATEGORY}, got {category}")
    return (serial << 128) | (category << 80) | (valid_from << 40) | valid_until


def decode(budget_id: int) -> BudgetTerms:
    return BudgetTerms(
        serial=(budget_id >> 128) & 0xFFFFFFFF,
        category=(budget_id >> 80) & 0xFF,
        valid_from=(budget_id >> 40) & _MASK40,
        valid_until=budget_id & _MASK40,
    )
