"""The till's figures in a real browser, side by side in one run:

    python -m bench.till [--scans 50] [--pays 20] [--json OUT]

- scan to verdict: from the camera frame that holds the pass QR to the verdict on screen
  (decode + /api/check + drawing), p50/p95 over --scans scans of Chromium's fake camera;
  target p95 <= 500 ms. The camera is scanned every 120 ms, so a code waits up to that long
  for its frame: reported beside it.
- pay to paid: from pressing "Afrekenen" to "Betaald" (fresh check, the wallet signing and
  sending through /rpc, the receipt, the new balance), p50/p95 over --pays payments on the
  embedded chain; target p95 <= 1.5 s. Beside it, the CLI's `citypass redeem` in the same run.
- page weight: the till's JavaScript and CSS gzipped (target <= 300 KB), the QR decoder's
  wasm separately.

Everything runs on a fresh embedded Anvil in a temporary folder, with `citypass web` in front
of it and the stand-in wallet of the browser tests (tests/web) signing with a dev key.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "citypass" / "web" / "static"
sys.path.insert(0, str(ROOT / "tests" / "web"))

import media  # noqa: E402
from passes import Entry, pass_qr  # noqa: E402
from tillkit import BUILD, CHROMIUM, POOL, POOL_KEY, WebServer, World, bundle_wallet, chromium_args  # noqa: E402

from citypass import node  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def page_weight() -> dict[str, Any]:
    files = {name: STATIC / name for name in ("assets/till.js", "assets/till.css", "till/index.html")}
    fonts = sorted((STATIC / "assets" / "fonts").glob("*.woff2"))
    return {
        "js_css_html_gzip_bytes": sum(gz(p) for p in files.values()),
        "per_file_gzip_bytes": {name: gz(p) for name, p in files.items()},
        "fonts_bytes": sum(p.stat().st_size for p in fonts),
        "wasm_bytes": (STATIC / "assets/zxing_reader.wasm").stat().st_size,
        "wasm_gzip_bytes": gz(STATIC / "assets/zxing_reader.wasm"),
    }


def run(scans: int, pays: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"page_weight": page_weight()}
    with tempfile.TemporaryDirectory(prefix="citypass-bench-till-") as tmp:
        workdir = Path(tmp) / "chain"
        workdir.mkdir()
        world = World(workdir)
        server = WebServer(workdir)
        try:
            d = server.api("deployment")
            results["contract_version"] = d.get("contract_version")
            holder = world.new_resident("bench", sport="5000.00")
            now = d["time"]
            code = pass_qr(holder, d["chain_id"], d["contract"], [Entry(world.sport, 5_000, 900_000)], now + 3_600)
            camera = BUILD / "bench-camera.y4m"
            media.write_y4m(camera, code)
            wallet = bundle_wallet()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args(camera))
                ctx = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
                ctx.grant_permissions(["camera"], origin=server.base)
                cfg = {"key": POOL_KEY, "chainId": d["chain_id"], "rpcPath": "/rpc", "mode": "ok"}
                ctx.add_init_script(script=f"window.__standInWallet = {json.dumps(cfg)};\n{wallet}")
                page = ctx.new_page()
                page.set_default_timeout(20_000)
                page.goto(server.base + "/till/")
                page.wait_for_selector("body[data-ready='1']")
                page.click("#wallet-buttons button")
                page.wait_for_selector("#provider-info:not([hidden])")
                results["scan_to_verdict"] = scan_to_verdict(page, scans)
                results["scan_verdict_kind"] = results["scan_to_verdict"].pop("kind")
                page.click("#camera")
                if d.get("contract_version") == 2 and pays:
                    results["pay_to_paid"] = pay_to_paid(page, world, holder, d, pays)
                    results["cli_redeem"] = cli_redeem(world, holder, d, min(pays, 10))
                else:
                    results["pay_to_paid"] = "blocked: the server runs contract v1 (CP2 vouchers need v2)"
                browser.close()
        finally:
            server.stop()
            node.node_stop(workdir)
    return results


def scan_to_verdict(page: Any, scans: int) -> dict[str, Any]:
    page.click("#camera")
    times = []
    kind = ""
    for i in range(scans):
        page.wait_for_function(f"() => Number(document.body.dataset.verdicts || 0) > {i}")
        times.append(float(page.evaluate("() => Number(document.body.dataset.verdictMs)")))
        if not kind:
            entitled = page.locator("#entries li[data-reason='Ok']").count() > 0
            kind = "entitled (full check)" if entitled else "refused: " + page.inner_text("#verdict-status").strip()[:120]
        page.click("#next")  # the next customer: the same code is read again as a new scan
    return {"n": scans, "p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95), "max_ms": max(times),
            "plus_frame_wait_ms": "0..120 (the camera is scanned every 120 ms)", "target_p95_ms": 500, "kind": kind}


def pay_to_paid(page: Any, world: World, holder: Any, d: dict[str, Any], pays: int) -> dict[str, Any]:
    times = []
    for i in range(pays):
        code = pass_qr(holder, d["chain_id"], d["contract"], [Entry(world.sport, 5_000, 1_000 + i)], int(time.time()) + 3_600)
        before = int(page.evaluate("() => Number(document.body.dataset.verdicts || 0)"))
        page.fill("#typed", code)
        page.click("#typed-form button[type=submit]")
        page.wait_for_function(f"() => Number(document.body.dataset.verdicts || 0) > {before}")
        page.fill("#amount", "1,00")
        page.wait_for_selector("#precheck .utrecht-alert--ok")
        page.click("#pay")
        page.wait_for_selector("#paid")
        times.append(float(page.evaluate("() => Number(document.body.dataset.payMs)")))
        page.click("#next")
    return {"n": pays, "p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95), "max_ms": max(times), "target_p95_ms": 1500}


def cli_redeem(world: World, holder: Any, d: dict[str, Any], n: int) -> dict[str, Any]:
    """`citypass redeem` of the same kind of voucher (the pass QR text), as a subprocess."""
    times = []
    for i in range(n):
        code = pass_qr(holder, d["chain_id"], d["contract"], [Entry(world.sport, 5_000, 2_000 + i)], int(time.time()) + 3_600)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "citypass", "--workdir", str(world.workdir), "--from", "dev:7",
                               "redeem", code, "--amount", "1.00"], capture_output=True, text=True, cwd=ROOT)
        times.append((time.perf_counter() - start) * 1000)
        if done.returncode:
            return {"error": (done.stderr or done.stdout).strip()[-300:]}
    return {"n": n, "p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95), "note": "whole CLI process (Python start-up included)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=50)
    ap.add_argument("--pays", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    results = run(args.scans, args.pays)
    w = results["page_weight"]
    print(f"page weight: till JS+CSS+HTML {w['js_css_html_gzip_bytes'] / 1024:.1f} KB gzipped (target <= 300 KB); "
          f"QR decoder wasm {w['wasm_bytes'] / 1024:.0f} KB ({w['wasm_gzip_bytes'] / 1024:.0f} KB gzipped), fonts {w['fonts_bytes'] / 1024:.0f} KB")
    s = results["scan_to_verdict"]
    print(f"scan to verdict ({s['n']} camera scans, {results['scan_verdict_kind']}): p50 {s['p50_ms']:.0f} ms, "
          f"p95 {s['p95_ms']:.0f} ms, max {s['max_ms']:.0f} ms (target p95 <= 500 ms; plus 0..120 ms until the frame is scanned)")
    pay = results["pay_to_paid"]
    if isinstance(pay, dict):
        print(f"pay to paid ({pay['n']} payments): p50 {pay['p50_ms']:.0f} ms, p95 {pay['p95_ms']:.0f} ms (target p95 <= 1500 ms)")
        cli = results["cli_redeem"]
        print("CLI redeem: " + (f"p50 {cli['p50_ms']:.0f} ms, p95 {cli['p95_ms']:.0f} ms ({cli['note']})" if "p50_ms" in cli else cli["error"]))
    else:
        print(f"pay to paid: {pay}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
