"""The packaged CityPass artifact (ABI, bytecode, compiler settings): read it, or refresh it
from a Brownie build. Low in the package: it imports only `errors`, so revert decoding and
contract access can both use it."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from citypass.errors import CityPassError

ARTIFACT_ENV = "CITYPASS_ARTIFACT"  # override the packaged artifact (tests, custom builds)
ARTIFACT_KEYS = ("contractName", "abi", "bytecode", "deployedBytecode", "compiler")


def artifact_path() -> Path:
    override = os.environ.get(ARTIFACT_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("citypass") / "artifacts" / "CityPass.json"))


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CityPassError(
            f"no compiled CityPass artifacts at {path}: run `make compile` "
            "(or `brownie compile` then `python -m citypass.contract --sync-artifacts`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CityPassError(f"the CityPass artifacts at {path} are unreadable: {exc}") from None
    if not isinstance(data, dict) or not data.get("abi") or not data.get("bytecode"):
        raise CityPassError(f"the CityPass artifacts at {path} have no ABI or bytecode: recompile")
    return data


def load_artifact() -> dict[str, Any]:
    """{'abi', 'bytecode', 'deployedBytecode', 'compiler', ...} of CityPass (package data)."""
    return _load(str(artifact_path()))


def sync_artifacts(build: Path | str = "build/contracts/CityPass.json", target: Path | str | None = None) -> Path:
    """Copies ABI, bytecode and compiler settings from a Brownie build into the package."""
    source = Path(build)
    try:
        data = json.loads(source.read_text())
    except FileNotFoundError:
        raise CityPassError(f"{source} not found: run `brownie compile` first") from None
    out = {k: data[k] for k in ARTIFACT_KEYS if k in data}
    if not out.get("bytecode"):
        raise CityPassError(f"{source} has no bytecode")
    dest = Path(target) if target else Path(__file__).parent / "artifacts" / "CityPass.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    _load.cache_clear()
    return dest
