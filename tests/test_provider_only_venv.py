"""A provider installs only the citypass package (with its runtime dependencies): no
Brownie, no compiler, no Node. This builds such a virtualenv offline and runs the provider's
flows in it (`voucher show`, `redeem`, `balance`) against a running node.

Offline and fast: the package is built as a wheel (`pip wheel --no-build-isolation`), and
each runtime dependency installed in the dev venv is packed back into a wheel from its own
RECORD (the files pip installed), so `pip install --no-index --find-links` resolves the
package's real dependency tree without any index.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from citypass import keys, wallet
from tests.ops_helpers import World, enrol_and_credit, make_world, synthetic_account

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "synthetic-test-password"


def runtime_closure(root: str = "citypass") -> list[md.Distribution]:
    """The installed distributions `root` needs at run time (no extras), root excluded."""
    seen: dict[str, md.Distribution] = {}
    todo = [Requirement(root)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        dist = md.distribution(req.name)
        seen[name] = dist
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return [d for n, d in seen.items() if n != canonicalize_name(root)]


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def repack(dist: md.Distribution, out: Path) -> Path:
    """A wheel of an installed distribution, from the files its RECORD lists."""
    info = Path(str(dist._path))  # type: ignore[attr-defined]  # the .dist-info folder
    site = info.parent
    tags = [line.split(":", 1)[1].strip() for line in (info / "WHEEL").read_text().splitlines() if line.startswith("Tag:")]
    parts = [sorted({t.split("-")[i] for t in tags}) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = out / f"{name}-{dist.version}-{'-'.join('.'.join(p) for p in parts)}.whl"
    record_name = f"{info.name}/RECORD"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
        for f in dist.files or []:
            path = (site / f).resolve()
            arcname = str(f)
            if arcname.startswith("..") or "__pycache__" in arcname or arcname == record_name or not path.is_file():
                continue
            if arcname.startswith(info.name + "/") and Path(arcname).name in ("INSTALLER", "REQUESTED", "direct_url.json"):
                continue
            data = path.read_bytes()
            z.writestr(arcname, data)
            records.append(_record_line(arcname, data))
        z.writestr(record_name, "\n".join(records + [f"{record_name},,"]) + "\n")
    return wheel


@pytest.fixture(scope="module")
def provider_venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("provider-venv")
    wheels = base / "wheels"
    wheels.mkdir()
    for dist in runtime_closure():
        repack(dist, wheels)
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources, and
    # build/ is Brownie's.
    src = base / "src"
    shutil.copytree(ROOT / "citypass", src / "citypass", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(wheels), str(src)], check=True, capture_output=True, cwd=base)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
                    "--disable-pip-version-check", "citypass"], check=True, capture_output=True)
    return venv


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("provider-venv-chain"))


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "CITYPASS_PASSWORD": PASSWORD, "LANG": "C.UTF-8"}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_provider_flows_with_only_the_package(provider_venv: Path, world: World, tmp_path: Path):
    venv = provider_venv
    # the venv has the package and its dependencies, and nothing of the dev toolchain
    for missing in ("brownie", "solcx", "pytest"):
        r = run(venv, "python", "-c", f"import {missing}", cwd=tmp_path)
        assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr, missing
    r = run(venv, "python", "-c", "import citypass.contract as c; print(c.artifact_path())", cwd=tmp_path)
    assert r.returncode == 0 and str(venv) in r.stdout, r.stderr

    # a resident with credit shows the pass QR (signed on the test side, as the phone does)
    alice = synthetic_account("venv-resident")
    enrol_and_credit(world, [alice], world.sport, 5_000, "venv-sport")
    payload = wallet.pass_qr(world.dep, alice, ttl=600).encode()
    png = wallet.write_qr(payload, tmp_path / "v.png")
    # the provider's own wallet: an encrypted keystore file
    store = keys.create_keystore(tmp_path / "provider-home", "pool", world.pool.key, password=PASSWORD)
    common = ["citypass", "--rpc", world.chain.rpc_url, "--contract", world.dep.address, "--workdir", str(tmp_path / "cp")]

    shown = run(venv, *common, "voucher", "show", str(png), "--provider", world.pool.address, "--amount", "15",
                cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "OK: the voucher can be redeemed" in shown.stdout and "up to €50.00 in one payment" in shown.stdout

    redeemed = run(venv, *common, "--json", "--from", str(store.path), "redeem", str(png), "--amount", "15",
                   cwd=tmp_path)
    assert redeemed.returncode == 0, redeemed.stderr
    assert json.loads(redeemed.stdout)["amount"] == "15.00"

    again = run(venv, *common, "--from", str(store.path), "redeem", payload, "--amount", "1", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.strip() == "error: voucher refused: this voucher was already used (replayed)"

    bal = run(venv, *common, "--json", "balance", "--provider", world.pool.address, cwd=tmp_path)
    assert bal.returncode == 0, bal.stderr
    assert json.loads(bal.stdout)["total"] == "15.00"
    assert world.f.balanceOf(world.pool.address, world.sport).call() == 1_500
