"""`make bench` at tiny sizes, so the benchmark cannot rot: it runs end to end, writes every
figure the issue asks for with the right types, and judges the targets from those figures.
(The figures themselves are measured by `make bench` at full size, not asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GAS_KEYS = ["redeem", "redeem_named_provider", "redeem_refundable", "refund", "redeem_batch_per_voucher",
            "issue_new_resident", "issue_existing_resident", "settle", "reclaim_per_holder",
            "baseline_erc1155_mint_per_holder", "baseline_erc1155_transfer", "baseline_erc20_permit_transfer",
            "pause_10_providers", "unpause_10_providers", "pause_100_providers", "unpause_100_providers"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--out", str(out)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text()), run.stdout


def test_every_figure_is_there_with_its_type(tiny):
    results, _ = tiny
    for key in GAS_KEYS:
        assert isinstance(results["gas"][key], int) and results["gas"][key] > 0, key
    t = results["throughput"]
    assert set(t["issue_seconds_by_rows"]) == {"20", "40", "100"}
    assert all(isinstance(v, (int, float)) and v > 0 for v in t["issue_seconds_by_rows"].values())
    for key in ("redeem_per_second", "anvil_transfer_per_second", "issue_100_seconds"):
        assert isinstance(t[key], (int, float)) and t[key] > 0, key


def test_gas_figures_are_whole_transactions(tiny):
    g = tiny[0]["gas"]
    # A transaction costs at least 21,000; a marginal per-resident figure has no such floor
    # but must stay above a cold storage write (20,000) for a new balance.
    for key in ("redeem", "settle", "baseline_erc1155_transfer", "baseline_erc20_permit_transfer"):
        assert g[key] > 21_000, key
    for key in ("issue_new_resident", "issue_existing_resident", "baseline_erc1155_mint_per_holder"):
        assert 20_000 < g[key] < 60_000, key
    assert g["redeem_batch_per_voucher"] < g["redeem"]  # the batch shares the transaction's base cost
    assert g["redeem_refundable"] > g["redeem"]  # the chain stores what a refundable scan debited


def test_targets_are_judged_from_the_figures(tiny):
    results, table = tiny
    g, t = results["gas"], results["throughput"]
    judged = {x["target"]: x["holds"] for x in results["targets"]}
    assert judged["gas.redeem ≤ 52,500 (50,000, or 52,500 with the O(1) pause's read)"] == (g["redeem"] <= 52_500)
    assert judged["gas.redeem_batch_per_voucher ≤ 26,000"] == (g["redeem_batch_per_voucher"] <= 26_000)
    # pause and unpause cost the same with 10 and 100 providers (contract v2: O(1))
    assert judged["gas.pause does not grow with the number of providers"] == (
        g["pause_10_providers"] == g["pause_100_providers"])
    assert judged["gas.unpause does not grow with the number of providers"] == (
        g["unpause_10_providers"] == g["unpause_100_providers"])
    assert "| pause with 100 providers |" in table
    assert judged["gas.redeem < gas.baseline_erc20_permit_transfer"] == (g["redeem"] < g["baseline_erc20_permit_transfer"])
    key = "gas.issue_existing_resident ≤ gas.baseline_erc1155_mint_per_holder + 2,100"
    assert judged[key] == (g["issue_existing_resident"] - g["baseline_erc1155_mint_per_holder"] <= 2_100)
    key = "throughput.redeem_per_second ≥ 50% of anvil_transfer_per_second"
    assert judged[key] == (t["redeem_per_second"] >= 0.5 * t["anvil_transfer_per_second"])
    assert f"| {g['redeem']:,} | {g['baseline_erc20_permit_transfer']:,} |" in table


def test_the_dashboard_is_measured_on_two_sizes_of_its_own_chain(tiny):
    results, table = tiny
    runs = results["dashboard"]["runs"]
    assert set(runs) == {"60x120", "30x60"}
    for r in runs.values():
        c = r["chain"]
        assert c["events"] > c["redemptions"] * 2 and c["balances"] >= c["residents"] * 2  # the bench's own chain
        for key in ("load_ms", "recompute_ms", "poll_ms"):
            assert 0 < r[key]["p50"] <= r[key]["p95"], key
        f = r["follow_block_ms"]
        assert all(f[k] > 0 for k in ("index_sync_median", "answer_with_it_median", "chain_check_done_median"))
        assert r["index_cold_sync_s"] > 0 and r["first_load_ms"] > 0
    grows = results["dashboard"]["follow_block_grows"]
    assert grows["history_ratio"] > 1.5
    judged = {x["target"]: (x["holds"], x["measured"]) for x in results["web_targets"]}
    big = runs["60x120"]
    load = next(k for k in judged if k.startswith("dashboard: a load on the server"))
    assert judged[load][0] == (big["recompute_ms"]["p95"] <= 300) and "60 residents, 120 redemptions" in load
    follow = next(k for k in judged if k.startswith("dashboard: following a new block"))
    assert judged[follow][0] == all(v <= 2 for k, v in grows.items() if k != "history_ratio")
    assert "| new block: index sync, median (ms) |" in table


def test_the_till_is_measured_in_the_same_run(tiny):
    results, table = tiny
    t = results["till"]
    assert t["scan_to_verdict"]["n"] == 3 and t["scan_to_verdict"]["p95_ms"] > 0
    assert t["pay_to_paid"]["n"] == 2 and t["pay_to_paid"]["p95_ms"] > 0
    assert t["cli_redeem"]["n"] == 2
    judged = {x["target"]: x["holds"] for x in results["web_targets"]}
    assert judged["till: scan to verdict p95 ≤ 500 ms"] == (t["scan_to_verdict"]["p95_ms"] <= 500)
    assert judged["till: pay to paid p95 ≤ 1,500 ms"] == (t["pay_to_paid"]["p95_ms"] <= 1_500)
    assert "| scan to verdict (3 camera scans) |" in table


def test_the_web_parts_can_be_left_out(tmp_path):
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"gas": {"redeem": 1}}))
    run = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--only-web", "--no-dashboard", "--no-till",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-2000:]
    kept = json.loads(out.read_text())
    assert kept["gas"] == {"redeem": 1} and "dashboard" not in kept and "till" not in kept


def test_the_node_only_limit_is_measured_beside_each_figure(tiny):
    """Issue 17: issuance and redemptions against the same transactions pre-signed and sent raw
    on the same chain state; the targets are judged on the ratios, the seconds kept as info."""
    results, table = tiny
    t = results["throughput"]
    for rows in ("20", "40", "100"):
        assert t["issue_node_only_seconds_by_rows"][rows] > 0
        ratio = t["issue_seconds_by_rows"][rows] / t["issue_node_only_seconds_by_rows"][rows]
        assert abs(t["issue_over_node_only_by_rows"][rows] - ratio) <= 0.1 * ratio  # (both figures are rounded)
    assert t["redeem_presigned_per_second"] > 0 and t["redeem_over_presigned"] > 0
    judged = {x["target"]: x["holds"] for x in results["targets"]}
    for rows in ("20", "40", "100"):
        key = (f"issuance of {int(rows):,} rows: issue_seconds / node_only_seconds ≤ 1.3 "
               "(same batches pre-signed, sent raw, same state)")
        assert judged[key] == (t["issue_over_node_only_by_rows"][rows] <= 1.3)
    assert not any("≤ 60 s" in k for k in judged)  # seconds are info, not a target
    assert "the same redeem transactions pre-signed, sent raw" in table
