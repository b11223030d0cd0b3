"""Errors a user can act on: the lowest layer of the package (it imports only `money`).

`CityPassError` is a user mistake or a refusal by the chain: the CLI prints its message as
`error: <message>` and exits 1 (2 for `UsageError`), never with a traceback. Anything else
escaping the CLI is a bug in CityPass. Revert data is turned into sentences by `reverts`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from eth_utils import keccak

from citypass.money import euros  # noqa: F401  (re-exported: used across the package)

class CityPassError(Exception):
    """A user mistake or a refusal by the chain; the message says what and what to do next."""

    exit_code = 1


class UsageError(CityPassError):
    """A malformed command line or argument (exit code 2, like click's own usage errors)."""

    exit_code = 2


# Role hashes as the contract defines them; DEFAULT_ADMIN_ROLE is bytes32(0).
ROLE_NAMES = ("BUDGET_MANAGER", "PROVIDER_MANAGER", "REGISTRAR", "ISSUER", "TREASURER", "PAUSER")
ROLE_IDS: dict[str, bytes] = {"ADMIN": b"\x00" * 32} | {n: keccak(text=f"{n}_ROLE") for n in ROLE_NAMES}
_ROLE_BY_ID = {v: k for k, v in ROLE_IDS.items()}

PASS_STATUS = ("none", "active", "suspended", "revoked", "migrated", "provider")
PROVIDER_STATUS = ("none", "active", "suspended", "removed")


def role_name(role_id: bytes) -> str:
    return _ROLE_BY_ID.get(bytes(role_id), "0x" + bytes(role_id).hex())


def date_text(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def budget_text(budget_id: int) -> str:
    """A budget as people name it: its serial number ('budget #3'), from the id itself."""
    serial = (budget_id >> 128) & 0xFFFFFFFF
    return f"budget #{serial}" if serial else f"budget id {budget_id}"

