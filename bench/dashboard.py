"""The dashboard's figures, and what following a new block costs, at two sizes of history:

    python -m bench.dashboard [--residents 50000 --redemptions 100000] [--small 5000,10000]
                              [--loads 30] [--no-browser] [--json OUT]

Each chain: a fresh embedded Anvil (bench/world.py, 300M-gas blocks), two budgets (sport,
culture) credited to every resident, R redemptions through `redeemBatch` (500 vouchers a
transaction, contract v2 vouchers for up to the amount, signed here with coincurve: the
library's signer makes ~130 a second), 1 in 5,000 paid refundably one by one and refunded in
part, two providers settled. Then `citypass web`'s app in front of it (uvicorn in a thread,
real HTTP) on an event index built from that chain, and (largest chain only) Chromium.

- index_cold_sync_s: reading every event into a new event index, with its running totals;
- first_load_ms: the first POST /api/dashboard/summary of a fresh server (the snapshot from the
  running totals; the first chain check of every balance runs in the background when there are
  more than 5,000: first_chain_check_s is when it is done);
- load_ms p50/p95: a full answer again (cached snapshot: what a new visitor costs);
- recompute_ms p50/p95: on the server, the snapshot of a new block computed from the running
  totals (Snapshot.computed_ms: figures, checks, providers with their gas);
- poll_ms p50/p95: a poll with the current version (what every open page costs every 5 s);
- follow_block_ms (medians over 5 new blocks of one payment each): the index's sync of that
  block (events and running totals), the first answer that shows it (the snapshot recomputed),
  and the chain check of that block (counters, providers, and the balances it changed);
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "citypass" / "web" / "static"
sys.path.insert(0, str(ROOT / "tests" / "web"))

from bench.world import CULTURE, SPORT, make_world  # noqa: E402
from citypass import finance, node, redemption, tx  # noqa: E402
from citypass import voucher as V  # noqa: E402
from citypass.index import EventIndex  # noqa: E402

GAS_LIMIT = 300_000_000  # blocks with room for a 500-voucher redeemBatch or a 1,600-resident issuance
ISSUE_BATCH = 1_600
REDEEM_BATCH = 500
FULL = (50_000, 100_000)
SMALL = (5_000, 10_000)
TINY = ((60, 120), (30, 60))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


@dataclass(frozen=True)
class Resident:
    """A synthetic resident: a key derived from a label (never a real person)."""

    address: str
    key: bytes


def residents(tag: str, n: int) -> list[Resident]:
    out = []
    for i in range(n):
        secret = keccak(text=f"citypass-bench-dashboard-{tag}-{i}")
        public = PrivateKey(secret).public_key.format(compressed=False)[1:]
        out.append(Resident(to_checksum_address(keccak(public)[-20:]), secret))
    return out


def fast_sign(voucher: V.Voucher, key: bytes, chain_id: int, contract: str, compact: bool = True) -> bytes:
    """The voucher's EIP-712 signature, in EIP-2098 compact form (64 bytes, as
    V.compact_signature(V.sign(...)) makes it) or as r, s, v; ~40x faster than V.sign
    (coincurve directly)."""
    sig = PrivateKey(key).sign_recoverable(V.digest(voucher, chain_id, contract), hasher=None)
    if not compact:
        return sig[:64] + bytes([27 + sig[64]])
    s = int.from_bytes(sig[32:64], "big") | (sig[64] << 255)
    return sig[:32] + s.to_bytes(32, "big")


def build_chain(world: Any, n_residents: int, n_redemptions: int, say: Callable[[str], None] = print
                ) -> dict[str, Any]:
    f = world.f
    started = time.perf_counter()
    tx.send_many(world.chain, world.office, [f.defineCategory(SPORT, "sport"), f.defineCategory(CULTURE, "culture")])
    sport = world.new_budget(SPORT, "Sport 2026")
    culture = world.new_budget(CULTURE, "Cultuur 2026")
    people = residents(str(n_residents), n_residents)
    per_pass = -(-n_redemptions // n_residents)  # payments per resident
    say(f"  {n_residents:,} residents credited in two budgets ...")
    tx.send_many(world.chain, world.office, [
        f.enrollAndIssue(os.urandom(32), sport, world.valid_until, [p.address for p in people[i:i + ISSUE_BATCH]],
                         [600 * per_pass] * len(people[i:i + ISSUE_BATCH])) for i in range(0, n_residents, ISSUE_BATCH)])
    tx.send_many(world.chain, world.office, [
        f.issue(os.urandom(32), culture, [p.address for p in people[i:i + ISSUE_BATCH]],
                [400 * per_pass] * len(people[i:i + ISSUE_BATCH])) for i in range(0, n_residents, ISSUE_BATCH)])
    issued_s = time.perf_counter() - started
    now = world.chain.now()
    chain_id, contract = world.chain.chain_id, world.dep.address
    say(f"  {n_redemptions:,} vouchers signed ...")
    per_provider: dict[int, list[tuple[V.Voucher, bytes, int]]] = {}
    refundable: list[tuple[int, V.Voucher, bytes, int]] = []
    for r in range(n_redemptions):
        i, nonce = r % n_residents, r // n_residents
        k = r % len(world.providers)
        budget, amount = (sport, 550) if r % 3 else (culture, 350)
        v = V.build(people[i].address, world.providers[k].address, budget, 600, nonce=nonce, now=now)
        if r % 5_000 == 7:  # 1 in 5,000 paid refundably, one by one (batches are never refundable; a
            # single transaction costs a loaded Anvil ~1 s at 50,000 residents)
            refundable.append((k, v, fast_sign(v, people[i].key, chain_id, contract, compact=False), amount))
        else:
            per_provider.setdefault(k, []).append((v, fast_sign(v, people[i].key, chain_id, contract), amount))
    signed_s = time.perf_counter() - started - issued_s
    say(f"  {n_redemptions:,} redemptions sent ({REDEEM_BATCH} per redeemBatch) ...")
    failures: list[BaseException] = []

    def pay(k: int) -> None:
        try:
            scans = per_provider.get(k, [])
            fns = [f.redeemBatch([v.contract_args() for v, _, _ in part], [s for _, s, _ in part],
                                 [a for _, _, a in part], [0] * len(part))
                   for part in (scans[j:j + REDEEM_BATCH] for j in range(0, len(scans), REDEEM_BATCH))]
            # A fixed gas limit: estimating dozens of 500-voucher batches at once keeps a loaded Anvil
            # busy past the client's timeout; every batch is alike (~24,000 gas a voucher).
            for receipt in tx.send_many(world.chain, world.providers[k], fns, gas=REDEEM_BATCH * 32_000 + 200_000):
                skipped = world.dep.contract.events.VoucherSkipped().process_receipt(receipt, errors=_discard())
                assert not skipped, f"provider {k}: {len(skipped)} vouchers skipped, first {dict(skipped[0]['args'])}"
        except BaseException as exc:  # noqa: BLE001 - raised in the main thread below
            failures.append(exc)

    for k in per_provider:  # one provider after the other: five at once stall a loaded Anvil
        pay(k)
        if failures:
            break
    if failures:
        raise failures[0]
    for k, v, sig, amount in refundable:
        signed = V.SignedVoucher(v, sig, chain_id, contract)
        redemption.redeem(world.dep, world.providers[k], signed, amount, refundable=True)
        redemption.refund(world.dep, world.providers[k], v.holder, v.budget, v.nonce, 200)
    for k in (0, 1):
        finance.settle(world.dep, world.treasurer, world.providers[k].address, f"BENCH-{k}")
    return {"residents": n_residents, "redemptions": n_redemptions, "refunds": len(refundable), "settlements": 2,
            "sport": sport, "culture": culture, "people": people,
            "build_s": round(time.perf_counter() - started, 1), "issue_s": round(issued_s, 1),
            "sign_s": round(signed_s, 1)}


def _discard() -> Any:
    from web3.logs import DISCARD

    return DISCARD


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--residents", type=int, default=FULL[0])
    ap.add_argument("--redemptions", type=int, default=FULL[1])
    ap.add_argument("--small", default=f"{SMALL[0]},{SMALL[1]}", help="the smaller history: RESIDENTS,REDEMPTIONS")
    ap.add_argument("--loads", type=int, default=30)
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium figures")
    ap.add_argument("--tiny", action="store_true", help="tiny chains (the test that keeps this from rotting)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    a = ap.parse_args(argv)
    if a.tiny:
        sizes, loads, browser = list(TINY), 5, False
    else:
        small = tuple(int(x) for x in a.small.split(","))
        sizes, loads, browser = [(a.residents, a.redemptions), small], a.loads, not a.no_browser
    out = run(sizes, loads, browser, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(markdown(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def run(sizes: list[tuple[int, int]], loads: int, browser: bool, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The figures at each (residents, redemptions), the largest first (with the browser)."""
    runs = {}
    for n, (people, redemptions) in enumerate(sizes):
        say(f"dashboard: {people:,} residents, {redemptions:,} redemptions ...")
        runs[f"{people}x{redemptions}"] = measure(people, redemptions, loads, browser and n == 0, say)
    out: dict[str, Any] = {"runs": runs, "target_load_ms_p95": 300,
                           "page_gzip_bytes": {name: gz(STATIC / "dashboard" / name)
                                               for name in ("index.html", "dashboard.js", "dashboard.css")},
                           "shared_css_gzip_bytes": gz(STATIC / "assets" / "till.css")}
    out["follow_block_grows"] = follow_ratio(runs)
    return out


def follow_ratio(runs: dict[str, Any]) -> dict[str, Any]:
    """The new block's cost at the largest history over the smallest (1.0: no growth)."""
    keys = sorted(runs, key=lambda k: runs[k]["chain"]["events"])
    small, big = runs[keys[0]]["follow_block_ms"], runs[keys[-1]]["follow_block_ms"]
    history = runs[keys[-1]]["chain"]["events"] / max(1, runs[keys[0]]["chain"]["events"])
    return {"history_ratio": round(history, 1),
            **{k: round(big[k] / small[k], 2) if small[k] else None for k in
               ("index_sync_median", "answer_with_it_median", "chain_check_done_median")}}


def markdown(out: dict[str, Any]) -> str:
    lines = ["| dashboard | " + " | ".join(f"{r['chain']['residents']:,} residents, {r['chain']['redemptions']:,} "
                                          f"redemptions ({r['chain']['events']:,} events)" for r in out["runs"].values())
             + " |", "|---|" + "---:|" * len(out["runs"])]

    def row(label: str, get: Callable[[dict[str, Any]], Any]) -> None:
        lines.append(f"| {label} | " + " | ".join(str(get(r)) for r in out["runs"].values()) + " |")

    row("chain built (s)", lambda r: r["chain"]["build_s"])
    row("index built from the chain, cold (s)", lambda r: r["index_cold_sync_s"])
    row("first load of a fresh server (ms)", lambda r: r["first_load_ms"])
    row("first chain check of every balance done (s)", lambda r: r["first_chain_check_s"])
    row("load, cached snapshot, p50 / p95 (ms)", lambda r: f"{r['load_ms']['p50']} / {r['load_ms']['p95']}")
    row("snapshot of a new block on the server, p50 / p95 (ms; target ≤ 300)",
        lambda r: f"{r['recompute_ms']['p50']} / {r['recompute_ms']['p95']}")
    row("poll, p50 / p95 (ms)", lambda r: f"{r['poll_ms']['p50']} / {r['poll_ms']['p95']}")
    row("new block: index sync, median (ms)", lambda r: r["follow_block_ms"]["index_sync_median"])
    row("new block: first answer with it, median (ms)", lambda r: r["follow_block_ms"]["answer_with_it_median"])
    row("new block: its chain check done, median (ms)", lambda r: r["follow_block_ms"]["chain_check_done_median"])
    return "\n".join(lines)


def measure(residents_n: int, redemptions_n: int, loads: int, browser: bool = False,
            say: Callable[[str], None] = print) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from web_helpers import Server

    from citypass.web.api import Service

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="citypass-bench-dashboard-") as tmp:
        workdir = Path(tmp)
        world = make_world(workdir, gas_limit=GAS_LIMIT)
        try:
            chain = build_chain(world, residents_n, redemptions_n, say)
            people = chain.pop("people")
            results["chain"] = {k: v for k, v in chain.items() if k not in ("sport", "culture")}
            say("  event index from the chain ...")
            index = EventIndex.open(world.dep, workdir)
            t0 = time.perf_counter()
            index.sync()
            results["index_cold_sync_s"] = round(time.perf_counter() - t0, 2)
            results["chain"]["events"] = index.count()
            results["chain"]["blocks"] = index.tip
            results["chain"]["balances"] = index.aggregates.summary([]).balance_count
            service = Service(world.chain, world.dep, index, [])
            with Server(service) as s:
                def load(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
                    t = time.perf_counter()
                    answer = s.api("dashboard/summary", body)
                    return (time.perf_counter() - t) * 1000, answer

                t_first = time.perf_counter()
                ms, first = load({})
                results["first_load_ms"] = round(ms, 1)
                while first["chain_check_pending"]:  # the first check of every balance, in the background
                    time.sleep(0.05)
                    first = load({})[1]
                results["first_chain_check_s"] = round(time.perf_counter() - t_first, 2)
                assert first["ok"], [c for c in first["checks"] if not c["ok"]]
                results["answer_bytes"] = len(json.dumps(first))
                say("  loads ...")
                full = [load({})[0] for _ in range(loads)]
                poll = [load({"have": first["version"]})[0] for _ in range(loads)]
                results["load_ms"] = {"p50": round(pct(full, 0.5), 1), "p95": round(pct(full, 0.95), 1)}
                results["poll_ms"] = {"p50": round(pct(poll, 0.5), 1), "p95": round(pct(poll, 0.95), 1)}
                say("  new blocks ...")
                syncs, follows, checks, computed = [], [], [], []
                nonce0 = -(-redemptions_n // residents_n)
                for i in range(max(5, loads // 2)):
                    before = load({})[1]["totals"]["redeemed_cents"]
                    who = people[i % len(people)]
                    v = V.build(who.address, world.providers[0].address, chain["sport"], 10, nonce=nonce0 + i,
                                now=world.chain.now())
                    signed = V.SignedVoucher(v, fast_sign(v, who.key, world.chain.chain_id, world.dep.address,
                                                          compact=False), world.chain.chain_id, world.dep.address)
                    redemption.redeem(world.dep, world.providers[0], signed, 10)
                    t = time.perf_counter()
                    index.sync()  # the index reads the new block (the server would within a second)
                    syncs.append((time.perf_counter() - t) * 1000)
                    ms, answer = load({})  # the snapshot of the new block, from the running totals
                    assert answer["totals"]["redeemed_cents"] == before + 10 and answer["ok"]
                    follows.append(ms)
                    computed.append(float(answer["computed_ms"]))  # the server's own time for it
                    t = time.perf_counter()
                    while answer["chain_check_pending"]:  # the chain check of that block, in the background
                        time.sleep(0.005)
                        answer = s.api("dashboard/summary", {})
                    checks.append((time.perf_counter() - t) * 1000 + ms)
                    assert answer["ok"], [c for c in answer["checks"] if not c["ok"]]
                results["recompute_ms"] = {"p50": round(pct(computed, 0.5), 1), "p95": round(pct(computed, 0.95), 1),
                                           "n": len(computed)}
                results["follow_block_ms"] = {"index_sync_median": round(statistics.median(syncs), 1),
                                              "answer_with_it_median": round(statistics.median(follows), 1),
                                              "answer_with_it_max": round(max(follows), 1),
                                              "chain_check_done_median": round(statistics.median(checks), 1),
                                              "n": len(syncs)}
                if browser:
                    say("  Chromium ...")
                    results.update(browser_figures(s.base))
        finally:
            node.node_stop(workdir)
    return results


if __name__ == "__main__":
    sys.exit(main())
