"""Brownie scripts reach the embedded chain through the supervisor too (issue 10: one owner).

`citypass node brownie` starts the durable node of a work directory (or finds it running)
and points a Brownie network, `citypass` by default, at the supervisor's endpoint with
`brownie networks add|modify` (Brownie keeps it in ~/.brownie/network-config.yaml). Then

    brownie run scripts/deploy.py --network citypass

sends through the endpoint, which journals every transaction before Anvil sees it, like
any other client's. The endpoint keeps its port across restarts when it can
(citypass/node.py), so the network stays valid after a crash; if the port had to change,
`citypass node brownie` points the network at the new one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from citypass import node
from citypass.errors import CityPassError

NETWORK = "citypass"


def _brownie() -> str:
    found = shutil.which("brownie") or str(Path(sys.executable).parent / "brownie")
    if not os.access(found, os.X_OK):
        raise CityPassError("Brownie is not installed here (it comes with the dev set-up: `make setup`); "
                            "CityPass itself does not need it")
    return found


def _networks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_brownie(), "networks", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def point_brownie(workdir: Path | str, name: str = NETWORK) -> tuple[node.NodeInfo, int, bool]:
    """Starts the durable node of `workdir` if needed and points Brownie network `name` at
    its endpoint. Returns (node, chain id, whether the network was new)."""
    info, _ = node.node_start(workdir)
    chain_id = node.rpc_alive(info.rpc_url, timeout=10)
    if chain_id is None:
        raise CityPassError(f"the embedded node at {info.rpc_url} does not answer")
    settings = [f"host={info.rpc_url}", f"chainid={chain_id}"]
    modified = _networks("modify", name, *settings)
    if modified.returncode == 0 and "does not exist" not in modified.stdout + modified.stderr:
        return info, chain_id, False
    added = _networks("add", "CityPass", name, *settings, f"name=CityPass embedded chain ({Path(workdir)})")
    if added.returncode != 0 or "Error" in added.stdout + added.stderr:
        raise CityPassError(f"`brownie networks add` failed: {(added.stdout + added.stderr).strip()[-500:]}")
    return info, chain_id, True
