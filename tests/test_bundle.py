"""The browser bundle shipped in the package (citypass/web/static/) is exactly what a fresh
`make web` builds from web/src and the pinned npm packages (esbuild's output is deterministic)."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "citypass" / "web" / "static"
BUILT = ("assets", "till")  # the folders toolchain/build-web.mjs writes


@pytest.fixture(autouse=True)
def isolation():
    """No chain needed."""


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for d in BUILT for p in (root / d).rglob("*") if p.is_file()}


def test_shipped_bundle_equals_a_fresh_build(tmp_path):
    node = shutil.which("node")
    assert node, "node is needed to build the bundle (make setup installs the npm packages)"
    subprocess.run([node, str(ROOT / "toolchain" / "build-web.mjs"), "--out", str(tmp_path)], check=True, cwd=ROOT,
                   capture_output=True)
    fresh, shipped = files(tmp_path), files(STATIC)
    assert fresh == shipped, f"only in a fresh build: {sorted(fresh - shipped)}; only shipped: {sorted(shipped - fresh)}"
    differ = [name for name in sorted(fresh) if not filecmp.cmp(tmp_path / name, STATIC / name, shallow=False)]
    assert differ == [], f"run `make web` and commit citypass/web/static: these differ from a fresh build: {differ}"


def test_the_till_loads_nothing_from_elsewhere():
    """No CDN: every URL in the shipped pages and styles is on the page's own origin."""
    for name in ("till/index.html", "till/hulp.html", "assets/till.css", "till/manifest.webmanifest"):
        text = (STATIC / name).read_text()
        for scheme in ("http://", "https://", "//fonts.", "//cdn"):
            assert scheme not in text.replace("http://www.w3.org/2000/svg", ""), f"{name} refers to {scheme}"
    script = (STATIC / "assets" / "till.js").read_text()
    assert "/assets/zxing_reader.wasm" in script  # the decoder's wasm comes from CityPass itself
