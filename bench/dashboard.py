"""The dashboard's figures on a chain of N residents (default 1,000), in one run:

    python -m bench.dashboard [--residents 1000] [--loads 30] [--json OUT]

The chain: a fresh embedded Anvil (bench/world.py), two budgets (sport, culture) credited to
every resident, one payment per resident at one of five providers (contract v2: vouchers for
up to the amount, scanned with the amount typed; redeemBatch), 2% of them paid refundably one
by one instead (batches are never refundable) and refunded in part, two providers settled. Then `citypass web`'s app in front of it (uvicorn in a
thread, real HTTP) and Chromium for the page.

- index_cold_sync_s: reading every event of the chain into a new event index;
- first_load_ms: the first POST /api/dashboard/summary (the snapshot computed: summary,
  reconciliation, the chain checks, providers, charts);
- load_ms p50/p95: a full answer again (cached snapshot; what a new visitor costs);
- poll_ms p50/p95: a poll with the current version (what every open page costs every 5 s);
- follow_block_ms: one new payment; the index's sync of that block (grows with the block, not
  the history), then the first answer that shows it (the snapshot is recomputed from the whole
  indexed history, so this part grows with the chain), and when the chain check of that block
  (every balance against balanceOfBatch, in the background) is done;
- first_paint_ms / figures_ms: in Chromium, first contentful paint and the moment every figure
  is drawn (body[data-ready]), from navigation start, median of 3 fresh page loads;
- page_gzip_bytes: the dashboard's own HTML, JS and CSS gzipped (the shared /assets/till.css
  apart).
Synthetic residents only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "citypass" / "web" / "static"
sys.path.insert(0, str(ROOT / "tests" / "web"))

from bench.world import CULTURE, SPORT, make_world, resident_key  # noqa: E402
from citypass import finance, node, redemption, tx  # noqa: E402
from citypass import voucher as V  # noqa: E402
from citypass.index import EventIndex  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def build_chain(world: Any, residents: int) -> dict[str, Any]:
    f = world.f
    started = time.perf_counter()
    tx.send_many(world.chain, world.office, [f.defineCategory(SPORT, "sport"), f.defineCategory(CULTURE, "culture")])
    sport = world.new_budget(SPORT, "Sport 2026")
    culture = world.new_budget(CULTURE, "Cultuur 2026")
    people = [resident_key("dashboard", i) for i in range(residents)]
    step = 250
    tx.send_many(world.chain, world.office, [
        f.enrollAndIssue(os.urandom(32), sport, world.valid_until, [p.address for p in people[i:i + step]],
                         [2_500] * len(people[i:i + step])) for i in range(0, residents, step)])
    tx.send_many(world.chain, world.office, [
        f.issue(os.urandom(32), culture, [p.address for p in people[i:i + step]], [1_000] * len(people[i:i + step]))
        for i in range(0, residents, step)])
    now = world.chain.now()
    chain_id, contract = world.chain.chain_id, world.dep.address
    scans_by_provider: dict[int, list[redemption.Scan]] = {}
    for i, p in enumerate(people):
        k = i % len(world.providers)
        budget, amount = (sport, 1_200) if i % 3 else (culture, 700)
        v = V.build(p.address, world.providers[k].address, budget, 2_000, nonce=0, now=now)  # up to 20.00
        scans_by_provider.setdefault(k, []).append(redemption.Scan(V.sign(v, p.key, chain_id, contract), amount))
    # 2% of each provider's scans are paid refundably (one transaction each), the rest in batches
    refundable = {k: scans[: max(1, len(scans) // 50)] for k, scans in scans_by_provider.items()}
    failures: list[BaseException] = []

    def pay(k: int) -> None:
        try:
            for sc in refundable[k]:
                redemption.redeem(world.dep, world.providers[k], sc.signed, sc.amount, refundable=True)
            skipped = [o for o in redemption.redeem_batch(world.dep, world.providers[k],
                                                          scans_by_provider[k][len(refundable[k]):]) if not o.redeemed]
            assert not skipped, f"provider {k}: {len(skipped)} scans skipped, first {skipped[0]}"
        except BaseException as exc:  # noqa: BLE001 - raised in the main thread below
            failures.append(exc)

    threads = [threading.Thread(target=pay, args=(k,)) for k in scans_by_provider]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    refunds = 0
    for k, scans in refundable.items():
        for sc in scans:
            v = sc.signed.voucher
            redemption.refund(world.dep, world.providers[k], v.holder, v.budget, v.nonce, 200)
            refunds += 1
    for k in (0, 1):
        finance.settle(world.dep, world.treasurer, world.providers[k].address, f"BENCH-{k}")
    return {"residents": residents, "redemptions": residents, "refunds": refunds, "settlements": 2,
            "sport": sport, "culture": culture, "people": people, "build_s": round(time.perf_counter() - started, 1)}


def browser_figures(base: str, loads: int = 3) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    from tillkit import CHROMIUM, chromium_args

    paints, ready = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args())
        try:
            for _ in range(loads):
                ctx = b.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                page.goto(base + "/dashboard/")
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                fcp = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || -1")
                paints.append(float(fcp))
                ready.append(float(page.evaluate("performance.getEntriesByName('cp-figures')[0].startTime")))
                ctx.close()
        finally:
            b.close()
    return {"first_paint_ms": round(statistics.median(paints), 1), "figures_ms": round(statistics.median(ready), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--residents", type=int, default=1_000)
    ap.add_argument("--loads", type=int, default=30)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    a = ap.parse_args()
    out = measure(a.residents, a.loads)
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")


def measure(residents: int, loads: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from web_helpers import Server

    from citypass.web.api import Service

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="citypass-bench-dashboard-") as tmp:
        workdir = Path(tmp)
        world = make_world(workdir)
        try:
            chain = build_chain(world, residents)
            people = chain.pop("people")
            results["chain"] = {k: v for k, v in chain.items() if k not in ("sport", "culture")}
            index = EventIndex.open(world.dep, workdir)
            t0 = time.perf_counter()
            index.sync()
            results["index_cold_sync_s"] = round(time.perf_counter() - t0, 3)
            results["events"] = index.count()
            results["blocks"] = index.tip
            service = Service(world.chain, world.dep, index, [])
            with Server(service) as s:
                def load(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
                    t = time.perf_counter()
                    answer = s.api("dashboard/summary", body)
                    return (time.perf_counter() - t) * 1000, answer

                ms, first = load({})
                assert first["ok"], [c for c in first["checks"] if not c["ok"]]
                results["first_load_ms"] = round(ms, 1)
                results["answer_bytes"] = len(json.dumps(first))
                full = [load({})[0] for _ in range(loads)]
                poll = [load({"have": first["version"]})[0] for _ in range(loads)]
                results["load_ms"] = {"p50": round(pct(full, 0.5), 1), "p95": round(pct(full, 0.95), 1)}
                results["poll_ms"] = {"p50": round(pct(poll, 0.5), 1), "p95": round(pct(poll, 0.95), 1)}
                syncs, follows, checks = [], [], []
                for i in range(5):
                    before = load({})[1]["totals"]["redeemed_cents"]
                    v = V.build(people[i].address, world.providers[0].address, chain["sport"], 100, nonce=1 + i,
                                now=world.chain.now())
                    redemption.redeem(world.dep, world.providers[0],
                                      V.sign(v, people[i].key, world.chain.chain_id, world.dep.address), 100)
                    t = time.perf_counter()
                    index.sync()  # the index reads the new block (the server would within a second)
                    syncs.append((time.perf_counter() - t) * 1000)
                    ms, answer = load({})  # the snapshot again, over the whole history
                    assert answer["totals"]["redeemed_cents"] == before + 100 and answer["ok"]
                    follows.append(ms)
                    t = time.perf_counter()
                    while answer["chain_check_pending"]:  # the chain check of that block, in the background
                        time.sleep(0.01)
                        answer = s.api("dashboard/summary", {})
                    checks.append((time.perf_counter() - t) * 1000 + ms)
                results["follow_block_ms"] = {"index_sync_median": round(statistics.median(syncs), 1),
                                              "answer_with_it_median": round(statistics.median(follows), 1),
                                              "answer_with_it_max": round(max(follows), 1),
                                              "chain_check_done_median": round(statistics.median(checks), 1)}
                results.update(browser_figures(s.base))
        finally:
            node.node_stop(workdir)
    results["page_gzip_bytes"] = {name: gz(STATIC / "dashboard" / name)
                                  for name in ("index.html", "dashboard.js", "dashboard.css")}
    results["shared_css_gzip_bytes"] = gz(STATIC / "assets" / "till.css")
    return results


if __name__ == "__main__":
    main()
