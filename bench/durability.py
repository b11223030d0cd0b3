"""What durability costs (issue 10): the durable embedded node (supervisor + journal +
snapshots) against a bare Anvil loaded from the same snapshot, in the same run.

    python -m bench.durability [--sizes 1000,10000] [--history 20] [--out FILE]

Per size: N synthetic residents, each credited and with `history` redemptions behind it
(built once on a durable node and kept as a backup under bench/.cache/, so later runs
restore it instead of rebuilding), then:
- snapshot size (bytes) and node start time (load the snapshot, serve);
- ms a write command (`citypass pass enroll`, its own process) takes more on the durable node;
- redemptions/s through the library's till path (`redeem_many`, 5 providers' vouchers in
  turn) with durability on and off, and what one redemption costs more (ms).
Synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from citypass import chain as chain_mod
from citypass import contract, keys, node, redemption, tx
from citypass import voucher as V
from citypass.artifact import load_artifact
from citypass.durable import store

from bench.world import DAY, SPORT, resident_key

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
CREDIT = 1_000_000  # cents per resident: enough for any history
ISSUE_STEP = 200
BATCH = 100  # vouchers per redeemBatch while building the history
MEASURE = 400  # redemptions per measured run (on and off)
CLI_RUNS = 5
ROUNDS = 3  # measured runs each, on and off alternating (medians: this machine is shared)


def _cache_file(size: int, history: int) -> Path:
    from eth_utils import keccak

    code = keccak(text=load_artifact()["bytecode"]).hex()[:12]
    return CACHE / f"durability-{size}x{history}-{code}.json"


def _sign(dep: Any, resident: Any, budget: int, amount: int, provider: str, nonce: int, now: int) -> Any:
    """A scan of `amount` cents, its voucher made out to `provider` and signed without a look
    at the chain's clock per voucher (set-up speed)."""
    v = V.build(resident.address, provider, budget, amount, nonce=nonce, ttl=3_600, now=now)
    return redemption.Scan(V.sign(v, resident.key, dep.chain.chain_id, dep.address), amount)


def _connect(workdir: Path) -> Any:
    return chain_mod.connect(workdir=workdir)


def build(size: int, history: int, workdir: Path, say: Any) -> dict[str, Any]:
    """Deploys, credits `size` residents and redeems `history` vouchers of each (redeemBatch),
    on a durable node; returns the facts the measurements need."""
    chain = _connect(workdir)
    admin, office, pm, treasurer = (keys.dev_account(i) for i in range(4))
    providers = [keys.dev_account(i) for i in range(5, 10)]
    dep = contract.deploy(chain, admin, admin=admin.address, budget_manager=office.address, provider_manager=pm.address,
                          registrar=office.address, issuer=office.address, treasurer=treasurer.address,
                          pauser=admin.address, workdir=workdir)
    f = dep.contract.functions
    now = chain.now()
    tx.send(chain, office, f.createBudget(SPORT, now - DAY, now + 4 * 365 * DAY, 10**15, "Bench durability"))
    budget = int(f.budgets().call()[-1])
    tx.send_many(chain, pm, [f.addProvider(p.address, 1 << SPORT, 0, f"Bench provider {i}")
                             for i, p in enumerate(providers)])
    residents = [resident_key(f"durable-{size}", i) for i in range(size)]
    fns = [f.enrollAndIssue(os.urandom(32), budget, now + 4 * 365 * DAY, [r.address for r in residents[i:i + ISSUE_STEP]],
                            [CREDIT] * len(residents[i:i + ISSUE_STEP])) for i in range(0, size, ISSUE_STEP)]
    tx.send_many(chain, office, fns)
    say(f"  {size:,} residents credited; building {size * history:,} redemptions of history")
    t0, done = time.monotonic(), 0
    for n in range(history):
        for p_index, provider in enumerate(providers):
            share = residents[p_index::len(providers)]
            now = chain.now()
            signed = [_sign(dep, r, budget, 100 + n, provider.address, n, now) for r in share]
            outcomes = redemption.redeem_batch(dep, provider, signed, chunk=BATCH)
            done += sum(o.redeemed for o in outcomes)
        say(f"  history round {n + 1}/{history}: {done:,} redeemed ({done / (time.monotonic() - t0):,.0f}/s)")
    return {"budget": budget, "contract": dep.address, "history": history, "size": size}


def _bare_anvil(snapshot: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([node.find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--gas-limit",
                             str(node.GAS_LIMIT), "--accounts", "10", "--quiet", "--load-state", str(snapshot)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while node.rpc_alive(f"http://127.0.0.1:{port}", timeout=1) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the bare Anvil did not load the snapshot")
        time.sleep(0.1)
    return proc


def _cli_ms(workdir: Path, rpc: str | None, tag: str) -> float:
    """Median wall time of `citypass pass enroll NEW` (a write, its own process)."""
    times = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}
    for i in range(CLI_RUNS):
        holder = resident_key(f"cli-{tag}", i).address
        args = [sys.executable, "-m", "citypass", "--workdir", str(workdir), *(["--rpc", rpc] if rpc else []),
                "--from", "dev:1", "pass", "enroll", holder, "--valid-until", "2099-12-31"]
        t0 = time.monotonic()
        r = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)
        times.append(time.monotonic() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"citypass pass enroll failed: {r.stderr[-500:]}")
    return statistics.median(times) * 1000


def _redeem_rate(chain: Any, facts: dict[str, Any], nonce: int) -> float:
    """Redemptions/s: MEASURE vouchers (nonce `nonce` of the first residents), redeemed
    through `redeem_many` by the five providers in turn; signing not timed."""
    dep = contract.open_deployment(chain, facts["contract"], workdir=chain.workdir)
    providers = [keys.dev_account(i) for i in range(5, 10)]
    residents = [resident_key(f"durable-{facts['size']}", i) for i in range(min(MEASURE, facts["size"]))]
    now = chain.now()
    per = [[_sign(dep, r, facts["budget"], 50, providers[p].address, nonce, now)
            for r in residents[p::len(providers)]] for p in range(len(providers))]
    t0 = time.monotonic()
    count = 0
    for p, signed in enumerate(per):
        outcomes = redemption.redeem_many(dep, providers[p], signed)
        bad = [o for o in outcomes if not isinstance(o, redemption.Redemption)]
        if bad:
            raise RuntimeError(f"redemption refused while measuring: {bad[0]}")
        count += len(outcomes)
    return count / (time.monotonic() - t0)


def measure(size: int, history: int, say: Any) -> dict[str, Any]:
    cache = _cache_file(size, history)
    with tempfile.TemporaryDirectory(prefix="citypass-durability-") as tmp:
        workdir = Path(tmp) / "w"
        if cache.exists():
            say(f"{size:,} residents: restoring {cache.name}")
            facts = json.loads(cache.with_suffix(".facts").read_text())
            t0 = time.monotonic()
            node.node_restore(workdir, cache)
            build_s = None
            say(f"  restored in {time.monotonic() - t0:.1f} s")
        else:
            say(f"{size:,} residents x {history} redemptions: building (once; cached in {CACHE})")
            t0 = time.monotonic()
            facts = build(size, history, workdir, say)
            build_s = time.monotonic() - t0
            CACHE.mkdir(exist_ok=True)
            node.node_backup(workdir, cache)
            cache.with_suffix(".facts").write_text(json.dumps(facts))
        # the address book of the built chain travels with the facts
        contract.record_deployment(_connect(workdir), facts["contract"], 0, keys.dev_account(0).address, workdir)
        snap_bytes = cache.stat().st_size
        node.node_stop(workdir)
        t0 = time.monotonic()
        node.node_start(workdir)
        start_s = time.monotonic() - t0
        chain = _connect(workdir)
        port = node.free_port()
        bare = _bare_anvil(cache, port)
        try:
            bare_url = f"http://127.0.0.1:{port}"
            bare_chain = chain_mod.connect(bare_url, workdir=workdir)
            cli_on = _cli_ms(workdir, None, f"on-{size}")
            cli_off = _cli_ms(workdir, bare_url, f"off-{size}")
            # off, on, off, on, ...: the same vouchers' nonces on two copies of one chain
            rates: dict[str, list[float]] = {"off": [], "on": []}
            gen0 = chain.rpc("citypass_status")["gen"]
            for k in range(2 * ROUNDS):
                which, ch = (("off", bare_chain), ("on", chain))[k % 2]
                rates[which].append(_redeem_rate(ch, facts, history + k // 2))
            snapshots = chain.rpc("citypass_status")["gen"] - gen0
        finally:
            bare.terminate()
            bare.wait()
            node.node_stop(workdir)
        on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
        out = {
            "residents": size, "history_per_resident": history, "redemptions_in_history": size * history,
            "build_seconds": build_s, "snapshot_bytes": snap_bytes, "node_start_seconds": start_s,
            "cli_write_ms_on": cli_on, "cli_write_ms_off": cli_off, "cli_overhead_ms": cli_on - cli_off,
            "redeem_per_second_on": on, "redeem_per_second_off": off,
            "redeem_overhead_ms": 1000 / on - 1000 / off, "throughput_cost": 1 - on / off,
            "redeem_rates_on": rates["on"], "redeem_rates_off": rates["off"],
            "snapshots_while_redeeming": snapshots, "load_average": os.getloadavg()[0],
        }
        say(f"  {json.dumps(out)}")
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.durability", description=__doc__.splitlines()[0])
    # 10,000 residents get 4 redemptions each by default: 20 each (200,000 redemptions) takes
    # ~45 min to build here and its snapshot would be ~800 MB (Anvil dumps every block,
    # transaction and receipt: ~4 KB per redemption). Ask for it with --sizes 10000x20.
    parser.add_argument("--sizes", default="1000x20,10000x4", help="RESIDENTSxHISTORY,... (or RESIDENTS)")
    parser.add_argument("--history", type=int, default=20, help="redemptions per resident where --sizes gives none")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "durability.json")
    a = parser.parse_args(argv)
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    runs = [(int(n), int(h or a.history)) for n, _, h in (item.partition("x") for item in a.sizes.split(","))]
    results = [measure(n, h, say) for n, h in runs]
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| residents | history | snapshot | node start | CLI write on/off (+ms) | redemptions/s on/off | +ms per redemption "
          "| cost | snapshots while redeeming | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['residents']:,} | {r['history_per_resident']} | {r['snapshot_bytes'] / 1e6:.1f} MB "
              f"| {r['node_start_seconds']:.1f} s | {r['cli_write_ms_on']:.0f}/{r['cli_write_ms_off']:.0f} "
              f"(+{r['cli_overhead_ms']:.0f}) | {r['redeem_per_second_on']:.0f}/{r['redeem_per_second_off']:.0f} "
              f"| {r['redeem_overhead_ms']:.2f} | {r['throughput_cost']:.0%} | {r['snapshots_while_redeeming']} "
              f"| {r['load_average']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
