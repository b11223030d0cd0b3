"""The back office's built pages (citypass/web/static/balie/ and financien/) are exactly what a
fresh `make web` builds from web/src, and they load nothing from another origin."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "citypass" / "web" / "static"
PAGES = {"balie": {"index.html", "balie.js", "backoffice.css"}, "financien": {"index.html", "financien.js", "backoffice.css"}}


def test_shipped_back_office_equals_a_fresh_build(tmp_path):
    node = shutil.which("node")
    assert node, "node is needed to build the bundle (make setup installs the npm packages)"
    subprocess.run([node, str(ROOT / "toolchain" / "build-web.mjs"), "--out", str(tmp_path)], check=True, cwd=ROOT,
                   capture_output=True)
    for page, names in PAGES.items():
        fresh = {str(p.relative_to(tmp_path / page)) for p in (tmp_path / page).rglob("*") if p.is_file()}
        shipped = {str(p.relative_to(STATIC / page)) for p in (STATIC / page).rglob("*") if p.is_file()}
        assert fresh == shipped == names
        differ = [n for n in sorted(fresh) if not filecmp.cmp(tmp_path / page / n, STATIC / page / n, shallow=False)]
        assert differ == [], f"run `make web` and commit citypass/web/static/{page}: these differ: {differ}"


def test_the_back_office_loads_nothing_from_elsewhere():
    for page in PAGES:  # watched in the browser tests (Office.state: no request to another origin)
        for name in ("index.html", "backoffice.css"):
            text = (STATIC / page / name).read_text()
            for scheme in ("http://", "https://", "//fonts.", "//cdn"):
                assert scheme not in text.replace("http://www.w3.org/2000/svg", ""), f"{page}/{name} refers to {scheme}"
        html = (STATIC / page / "index.html").read_text()
        assert "<script>" not in html and "style=" not in html  # the CSP allows neither
