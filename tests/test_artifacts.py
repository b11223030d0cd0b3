"""The package's ABI and bytecode are those of a fresh compile (`brownie test` compiles
build/contracts first), so providers who install only the package run the real contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citypass import contract
from citypass.errors import CityPassError

BUILD = Path(__file__).resolve().parent.parent / "build" / "contracts" / "CityPass.json"
SYNC_HINT = "stale package artifacts: run `python -m citypass.contract --sync-artifacts`"


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's chain snapshot: these tests need no Brownie network."""


@pytest.fixture(scope="module")
def build() -> dict:
    assert BUILD.exists(), f"{BUILD} missing: run `brownie compile`"
    return json.loads(BUILD.read_text())


@pytest.fixture(scope="module")
def packaged() -> dict:
    return contract.load_artifact()


def test_abi_matches_fresh_compile(build, packaged):
    assert packaged["abi"] == build["abi"], SYNC_HINT


def test_bytecode_matches_fresh_compile(build, packaged):
    # Exact, metadata hash included: the package and the build come from the same sources.
    assert packaged["bytecode"] == build["bytecode"], SYNC_HINT
    assert packaged["deployedBytecode"] == build["deployedBytecode"], SYNC_HINT


def test_compiled_for_shanghai(packaged):
    """One bytecode for Anvil and Ganache 7.9, which stops at shanghai."""
    assert packaged["compiler"]["evm_version"] == "shanghai"


def test_sync_writes_only_what_the_package_needs(build, tmp_path):
    out = contract.sync_artifacts(BUILD, tmp_path / "CityPass.json")
    synced = json.loads(out.read_text())
    assert set(synced) <= set(contract.ARTIFACT_KEYS)
    assert synced["abi"] == build["abi"] and synced["bytecode"] == build["bytecode"]


def test_missing_artifacts_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(contract.ARTIFACT_ENV, str(tmp_path / "nowhere.json"))
    with pytest.raises(CityPassError, match="no compiled CityPass artifacts at .*make compile"):
        contract.load_artifact()


def test_sync_without_build_names_the_fix(tmp_path):
    with pytest.raises(CityPassError, match="brownie compile"):
        contract.sync_artifacts(tmp_path / "missing.json", tmp_path / "out.json")
