"""The pass app shipped in the package (citypass/web/static/pass/) is exactly what a fresh
`make web` builds from web/src/pass, it loads nothing from elsewhere, and its service worker
keeps every file the app needs offline."""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "citypass" / "web" / "static" / "pass"


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_shipped_pass_app_equals_a_fresh_build(tmp_path):
    node = shutil.which("node")
    assert node, "node is needed to build the bundle (make setup installs the npm packages)"
    subprocess.run([node, str(ROOT / "toolchain" / "build-web.mjs"), "--out", str(tmp_path)], check=True, cwd=ROOT,
                   capture_output=True)
    fresh_root = tmp_path / "pass"
    fresh, shipped = files(fresh_root), files(SHIPPED)
    assert fresh == shipped, f"only in a fresh build: {sorted(fresh - shipped)}; only shipped: {sorted(shipped - fresh)}"
    differ = [n for n in sorted(fresh) if not filecmp.cmp(fresh_root / n, SHIPPED / n, shallow=False)]
    assert differ == [], f"run `make web` and commit citypass/web/static/pass: these differ from a fresh build: {differ}"


def test_the_pass_app_loads_nothing_from_elsewhere_and_caches_all_of_itself():
    for name in ("index.html", "pass.css", "pass.js", "manifest.webmanifest"):
        text = (SHIPPED / name).read_text()
        for url in re.findall(r"https?://[^\s\"')]+", text):
            # the SVG namespace, and viem's documentation link inside its error messages (text, never fetched)
            assert url.startswith(("http://www.w3.org/", "https://viem.sh")), f"{name} refers to {url}"
    manifest = json.loads((SHIPPED / "manifest.webmanifest").read_text())
    assert manifest["start_url"] == "/pass/" and manifest["display"] == "standalone"
    sizes = {i["sizes"] for i in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    worker = (SHIPPED / "sw.js").read_text()
    cached = set(json.loads(re.search(r"(\[\"/pass/[^\]]*\])", worker).group(1)))
    wanted = {"/pass/" + n for n in files(SHIPPED) if n not in ("index.html", "sw.js")} | {"/pass/"}
    assert wanted <= cached, f"not kept for offline use: {sorted(wanted - cached)}"
    for icon in manifest["icons"]:
        assert (SHIPPED / icon["src"].removeprefix("/pass/")).is_file()
