"""The municipality's settings, kept in the work directory (`<workdir>/settings.json`).

    pass_qr_ttl_seconds   how long a pass QR stays valid after the phone signs it
                          (default 86,400 = 24 hours: an offline till can still submit
                          the day's scans, and an old screenshot soon stops working)
    scan_limit_cents      the most one scan of a pass QR may take from one budget
                          (default 15,000 = €150); the QR says min(balance, this limit)

A missing file means the defaults. A file that cannot be read, or a value out of range,
is an error naming the file and the key: a typo must not silently give the default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from citypass.errors import CityPassError

FILE_NAME = "settings.json"
MAX_TTL_SECONDS = 366 * 86_400
MAX_SCAN_LIMIT_CENTS = 2**32 - 1  # the pass QR carries maxAmount as a u32


@dataclass(frozen=True)
class Settings:
    pass_qr_ttl_seconds: int = 86_400
    scan_limit_cents: int = 15_000

    def __post_init__(self) -> None:
        for name, top in (("pass_qr_ttl_seconds", MAX_TTL_SECONDS), ("scan_limit_cents", MAX_SCAN_LIMIT_CENTS)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise CityPassError(f"setting {name}: must be a whole number from 1 to {top:,}, got {value!r}")


def path(workdir: Path | str) -> Path:
    return Path(workdir) / FILE_NAME


def load(workdir: Path | str) -> Settings:
    p = path(workdir)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CityPassError(f"{p}: cannot read the settings ({exc})") from None
    if not isinstance(raw, dict):
        raise CityPassError(f"{p}: the settings must be a JSON object")
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CityPassError(f"{p}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        return Settings(**raw)
    except CityPassError as exc:
        raise CityPassError(f"{p}: {exc}") from None


def save(workdir: Path | str, settings: Settings) -> Path:
    p = path(workdir)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def update(workdir: Path | str, **changes: int) -> Settings:
    new = replace(load(workdir), **changes)
    save(workdir, new)
    return new
