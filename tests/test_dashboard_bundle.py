"""The dashboard's built page (citypass/web/static/dashboard/) is exactly what a fresh
`make web` builds from web/src/dashboard, and it loads nothing from another origin."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "citypass" / "web" / "static" / "dashboard"


@pytest.fixture(autouse=True)
def isolation():
    """No chain needed."""


def test_shipped_dashboard_equals_a_fresh_build(tmp_path):
    node = shutil.which("node")
    assert node, "node is needed to build the bundle (make setup installs the npm packages)"
    subprocess.run([node, str(ROOT / "toolchain" / "build-web.mjs"), "--out", str(tmp_path)], check=True, cwd=ROOT,
                   capture_output=True)
    fresh = {str(p.relative_to(tmp_path / "dashboard")) for p in (tmp_path / "dashboard").rglob("*") if p.is_file()}
    shipped = {str(p.relative_to(SHIPPED)) for p in SHIPPED.rglob("*") if p.is_file()}
    assert fresh == shipped == {"index.html", "dashboard.js", "dashboard.css"}
    differ = [n for n in sorted(fresh) if not filecmp.cmp(tmp_path / "dashboard" / n, SHIPPED / n, shallow=False)]
    assert differ == [], f"run `make web` and commit citypass/web/static/dashboard: these differ: {differ}"


def test_the_dashboard_loads_nothing_from_elsewhere():
    for name in ("index.html", "dashboard.css", "dashboard.js"):
        text = (SHIPPED / name).read_text()
        for scheme in ("http://", "https://", "//fonts.", "//cdn"):
            assert scheme not in text.replace("http://www.w3.org/2000/svg", ""), f"{name} refers to {scheme}"
    page = (SHIPPED / "index.html").read_text()
    assert "<script>" not in page and "style=" not in page  # the CSP allows neither
    assert 'src="/dashboard/dashboard.js"' in page and 'href="/assets/till.css"' in page
