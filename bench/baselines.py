"""The comparison contracts in bench/contracts: compiled with the same compiler and settings
as CityPass (brownie-config.yaml), through the solc-js adapter, and cached by content."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from citypass import tx
from citypass.chain import Chain
from citypass.errors import CityPassError

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "bench" / "contracts").glob("*.sol"))
CACHE = ROOT / "build" / "bench"
ADAPTER = ROOT / "toolchain" / "solc-adapter.js"


def _settings() -> dict[str, Any]:
    """CityPass's compiler settings, read from brownie-config.yaml so both sides match."""
    solc = yaml.safe_load((ROOT / "brownie-config.yaml").read_text())["compiler"]
    return {
        "evmVersion": solc["evm_version"],
        "viaIR": bool(solc["solc"].get("viaIR", False)),
        "optimizer": solc["solc"]["optimizer"],
        "remappings": solc["solc"]["remappings"],
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }


def compile_baselines() -> dict[str, dict[str, Any]]:
    """{contract name: {"abi", "bytecode"}}; compiled once per change of sources or settings."""
    request = {
        "language": "Solidity",
        "sources": {str(p.relative_to(ROOT)): {"content": p.read_text()} for p in SOURCES},
        "settings": _settings(),
    }
    text = json.dumps(request, sort_keys=True)
    cached = CACHE / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    run = subprocess.run(["node", str(ADAPTER), "--standard-json"], input=text, capture_output=True,
                         text=True, cwd=ROOT, check=False)
    if run.returncode != 0:
        raise CityPassError(f"compiling the baselines failed: {run.stderr.strip()[:500]}")
    out = json.loads(run.stdout)
    errors = [e["formattedMessage"] for e in out.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise CityPassError("compiling the baselines failed:\n" + "\n".join(errors))
    contracts = {name: {"abi": c["abi"], "bytecode": c["evm"]["bytecode"]["object"]}
                 for unit in out["contracts"].values() for name, c in unit.items()
                 if name.startswith("Baseline")}
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(contracts))
    return contracts


def deploy(chain: Chain, account: Any, artifact: dict[str, Any]) -> Any:
    """Deploys a baseline and returns the web3 contract at its address."""
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = tx.send(chain, account, factory.constructor())
    return chain.w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
