"""What durability costs (issue 10): the durable embedded node (supervisor + journal +
snapshots) against a bare Anvil loaded from the same snapshot, in the same run.

    python -m bench.durability [--sizes 1000x20,10000x20] [--rounds 5] [--measure 400] [--out FILE]

Per size: N synthetic residents, each credited and with `history` redemptions behind it,
built once on a bare Anvil and kept as a snapshot under build/bench-durability/ (keyed by
the contract's code), so later runs load it instead of rebuilding. Then:
- snapshot size (bytes) and node start time (the durable node loads the snapshot, serves);
- ms a write command (`citypass pass enroll`, its own process) takes more on the durable node;
- redemptions/s through the library's till path (`redeem_many`), with durability on and
  off, alternating, in two modes: the 5 providers one after another, and all 5 at once
  (5 tills, a thread and a connection each);
- where the durable path's time goes, per redemption: the node's CPU time (Anvil, and the
  supervisor), the endpoint's own counters (`citypass_status`: requests, time forwarding,
  journaling sends, journaling blocks before receipts, fsyncs);
- one snapshot as the timer takes it: how long writes stall and how often it comes (the
  timer's snapshots are kept out of the measured rounds, where one would land by chance).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from citypass import chain as chain_mod
from citypass import contract, keys, node, redemption, tx
from citypass import voucher as V
from citypass.artifact import load_artifact
from citypass.durable import store

from web3.logs import DISCARD

from bench.world import DAY, SPORT, resident_key

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench-durability"  # `make clean` removes it; the key is the contract's code
CREDIT = 1_000_000  # cents per resident: enough for any history
ISSUE_STEP = 200
BATCH = 100  # vouchers per redeemBatch while building the history
BATCH_GAS = 6_500_000  # ~50k gas per voucher in a batch: no estimate per transaction
PIPELINE = 20  # redeemBatch transactions in flight at once while building
MEASURE = 400  # redemptions per measured run (on and off)
CLI_RUNS = 3
ROUNDS = 5  # measured runs each, on and off alternating (medians: this machine is shared)


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
    """Deploys, credits `size` residents and redeems `history` vouchers of each (redeemBatch,
    pipelined), on a bare Anvil (the history is fixture data: building it durably would only
    be slower); returns the facts the measurements need. The caller dumps the state."""
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
    for i in range(0, len(fns), PIPELINE):
        tx.send_many(chain, office, fns[i:i + PIPELINE])
    say(f"  {size:,} residents credited; building {size * history:,} redemptions of history")
    t0, done = time.monotonic(), 0
    for n in range(history):
        for p_index, provider in enumerate(providers):
            share = residents[p_index::len(providers)]
            now = chain.now()
            signed = [_sign(dep, r, budget, 100 + n, provider.address, n, now) for r in share]
            batches = [f.redeemBatch([s.signed.voucher.contract_args() for s in part],
                                     [V.compact_signature(s.signed) for s in part], [s.amount for s in part],
                                     [0] * len(part))
                       for part in (signed[i:i + BATCH] for i in range(0, len(signed), BATCH))]
            for i in range(0, len(batches), PIPELINE):
                for receipt in tx.send_many(chain, provider, batches[i:i + PIPELINE], gas=BATCH_GAS):
                    done += sum(1 for _ in dep.contract.events.Redeemed().process_receipt(receipt, errors=DISCARD))
        say(f"  history round {n + 1}/{history}: {done:,} redeemed ({done / (time.monotonic() - t0):,.0f}/s)")
    if done != size * history:
        raise RuntimeError(f"history: {done:,} of {size * history:,} redemptions went through")
    return {"budget": budget, "contract": dep.address, "history": history, "size": size}


def build_cache(size: int, history: int, cache: Path, workdir: Path, say: Any) -> None:
    """Builds the chain once on a throwaway bare Anvil and keeps its state as a snapshot file
    that `citypass node restore` (and `anvil --load-state`) take."""
    say(f"{size:,} residents x {history} redemptions: building (once; cached in {CACHE})")
    t0 = time.monotonic()
    node.node_start(workdir, persist=False)
    try:
        facts = build(size, history, workdir, say)
        dump = _connect(workdir).rpc("anvil_dumpState")
    finally:
        node.node_stop(workdir)
    facts["build_seconds"] = time.monotonic() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    store.write_atomic(cache, store.state_from_dump(dump, {"gen": 1, "bench": facts}))
    cache.with_suffix(".facts").write_text(json.dumps(facts))
    say(f"  built in {facts['build_seconds']:.0f} s: {cache.stat().st_size / 1e6:.0f} MB")


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


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def _status(chain: Any) -> dict[str, float]:
    """The supervisor's counters (citypass_status): where the endpoint's time went."""
    st = chain.rpc("citypass_status")
    return {**st["timing"], "fsyncs": st["fsyncs"], "fsync_s": st["fsync_s"]}


def _redeem_round(chain: Any, facts: dict[str, Any], nonce: int, parallel: bool, pids: list[int]) -> dict[str, float]:
    """MEASURE vouchers (nonce `nonce` of the first residents) redeemed through `redeem_many`
    by the five providers: in turn (one till after another) or all five at once (five tills,
    one thread each). Signing is not timed. Returns the rate and, per redemption, the node's
    CPU time (Anvil, and the supervisor on the durable node) and the supervisor's counters."""
    dep = contract.open_deployment(chain, facts["contract"], workdir=chain.workdir)
    providers = [keys.dev_account(i) for i in range(5, 10)]
    residents = [resident_key(f"durable-{facts['size']}", i) for i in range(min(MEASURE, facts["size"]))]
    now = chain.now()
    per = [[_sign(dep, r, facts["budget"], 50, providers[p].address, nonce, now)
            for r in residents[p::len(providers)]] for p in range(len(providers))]
    counts = [0] * len(per)
    # A connection per till (thread), made before the clock starts.
    deps = [contract.open_deployment(chain_mod.connect(None if chain.embedded else chain.rpc_url,
                                                       workdir=chain.workdir), facts["contract"],
                                     workdir=chain.workdir) for _ in per] if parallel else [dep] * len(per)

    def till(p: int) -> None:
        outcomes = redemption.redeem_many(deps[p], providers[p], per[p])
        bad = [o for o in outcomes if not isinstance(o, redemption.Redemption)]
        if bad:
            raise RuntimeError(f"redemption refused while measuring: {bad[0]}")
        counts[p] = len(outcomes)

    durable = chain.embedded
    before = _status(chain) if durable else {}
    cpu0 = [_cpu_seconds(pid) for pid in pids]
    t0 = time.monotonic()
    if parallel:
        with ThreadPoolExecutor(len(per)) as pool:
            list(pool.map(till, range(len(per))))
    else:
        for p in range(len(per)):
            till(p)
    wall = time.monotonic() - t0
    n = sum(counts)
    out = {"rate": n / wall, "node_cpu_ms": 1000 * sum(_cpu_seconds(pid) - c for pid, c in zip(pids, cpu0)) / n}
    if durable:
        after = _status(chain)
        d = {k: after[k] - before.get(k, 0.0) for k in after}
        out.update({
            "supervisor_cpu_ms": 1000 * (_cpu_seconds(pids[0]) - cpu0[0]) / n,
            "requests_per_redemption": d["requests"] / n, "endpoint_ms": 1000 * d["request_s"] / n,
            "forward_ms": 1000 * (d["read_forward_s"] + d["send_forward_s"]) / n,
            "send_journal_ms": 1000 * d["send_journal_s"] / n, "receipt_record_ms": 1000 * d["receipt_record_s"] / n,
            "fsyncs_per_redemption": d["fsyncs"] / n, "fsync_ms": 1000 * d["fsync_s"] / n,
            "snapshots": d["snapshots"],
        })
    return out


def _median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def measure(size: int, history: int, say: Any) -> dict[str, Any]:
    cache = _cache_file(size, history)
    with tempfile.TemporaryDirectory(prefix="citypass-durability-") as tmp:
        workdir = Path(tmp) / "w"
        if not cache.exists():
            build_cache(size, history, cache, Path(tmp) / "build", say)
        facts = json.loads(cache.with_suffix(".facts").read_text())
        build_s = facts.get("build_seconds")
        say(f"{size:,} residents x {history}: restoring {cache.name} ({cache.stat().st_size / 1e6:,.0f} MB)")
        # As `citypass node restore` does, without its stop and restart: the snapshot file
        # into a fresh chain folder, then the node starts from it (timed: the node start).
        folder = store.chain_dir(workdir)
        folder.mkdir(parents=True)
        shutil.copyfile(cache, store.snap_path(folder, 1))
        snap_bytes = cache.stat().st_size
        # The timer's snapshots are measured apart (below): in a round of a few hundred
        # redemptions one would land or not by chance, and dominate that round.
        os.environ["CITYPASS_SNAPSHOT_INTERVAL"] = "1000000"
        try:
            t0 = time.monotonic()
            info, _ = node.node_start(workdir)
            start_s = time.monotonic() - t0
        finally:
            del os.environ["CITYPASS_SNAPSHOT_INTERVAL"]
        say(f"  node started in {start_s:.1f} s")
        # the address book of the built chain travels with the facts
        contract.record_deployment(_connect(workdir), facts["contract"], 0, keys.dev_account(0).address, workdir)
        chain = _connect(workdir)
        port = node.free_port()
        bare = _bare_anvil(cache, port)
        try:
            bare_url = f"http://127.0.0.1:{port}"
            bare_chain = chain_mod.connect(bare_url, workdir=workdir)
            cli_on = _cli_ms(workdir, None, f"on-{size}")
            cli_off = _cli_ms(workdir, bare_url, f"off-{size}")
            # off, on, off, on, ...: the same vouchers' nonces on two copies of one chain
            rounds: dict[str, list[dict[str, float]]] = {"off": [], "on": [], "off_parallel": [], "on_parallel": []}
            nonce = history
            for k in range(ROUNDS):
                for parallel in (False, True):
                    for which, ch, pids in (("off", bare_chain, [bare.pid]), ("on", chain, [info.pid, info.anvil_pid])):
                        rounds[which + ("_parallel" if parallel else "")].append(
                            _redeem_round(ch, facts, nonce, parallel, pids))
                    nonce += 1
                say(f"  round {k + 1}/{ROUNDS}: " + ", ".join(f"{w} {r[-1]['rate']:.0f}/s" for w, r in rounds.items()))
            # One snapshot as the timer would take it: how long writes stall, and how often.
            before = _status(chain)
            chain.rpc("citypass_snapshot")
            after = _status(chain)
            stall = after["snapshot_stall_s"] - before["snapshot_stall_s"]
            snap_total = after["snapshot_s"] - before["snapshot_s"]
        finally:
            bare.terminate()
            bare.wait()
            node.node_stop(workdir)
        from citypass.durable import supervisor

        on, off = _median(rounds["on"], "rate"), _median(rounds["off"], "rate")
        on_p, off_p = _median(rounds["on_parallel"], "rate"), _median(rounds["off_parallel"], "rate")
        every = max(supervisor.SNAPSHOT_INTERVAL, supervisor.SNAPSHOT_DUTY * snap_total)
        out = {
            "residents": size, "history_per_resident": history, "redemptions_in_history": size * history,
            "build_seconds": build_s, "snapshot_bytes": snap_bytes, "node_start_seconds": start_s,
            "cli_write_ms_on": cli_on, "cli_write_ms_off": cli_off, "cli_overhead_ms": cli_on - cli_off,
            "redeem_per_second_on": on, "redeem_per_second_off": off,
            "redeem_overhead_ms": 1000 / on - 1000 / off, "throughput_cost": 1 - on / off,
            "parallel_redeem_per_second_on": on_p, "parallel_redeem_per_second_off": off_p,
            "parallel_throughput_cost": 1 - on_p / off_p,
            "snapshot_seconds": snap_total, "snapshot_stall_seconds": stall, "snapshot_every_seconds": every,
            "snapshot_share": stall / every,
            "throughput_cost_with_snapshots": 1 - on * (1 - stall / every) / off,
            "node_cpu_ms_per_redemption_on": _median(rounds["on"], "node_cpu_ms"),
            "node_cpu_ms_per_redemption_off": _median(rounds["off"], "node_cpu_ms"),
            "profile_on": {k: _median(rounds["on"], k) for k in rounds["on"][0] if k != "rate"},
            "profile_on_parallel": {k: _median(rounds["on_parallel"], k) for k in rounds["on_parallel"][0]
                                    if k != "rate"},
            "rounds": {w: [round(r["rate"], 1) for r in rs] for w, rs in rounds.items()},
            "load_average": os.getloadavg()[0],
        }
        say(f"  {json.dumps(out)}")
        return out


def main(argv: list[str] | None = None) -> int:
    global MEASURE, ROUNDS
    parser = argparse.ArgumentParser(prog="python -m bench.durability", description=__doc__.splitlines()[0])
    # 50,000 residents x 20 (a million redemptions) is not in the default: at the ~50/s the
    # 10,000-resident history was built at here (2 shared cores, loaded), it would take ~5.5 h,
    # and Anvil's snapshot of it would be ~4 GB (it dumps every block, transaction and receipt).
    parser.add_argument("--sizes", default="1000x20,10000x20", help="RESIDENTSxHISTORY,... (or RESIDENTS)")
    parser.add_argument("--history", type=int, default=20, help="redemptions per resident where --sizes gives none")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measured rounds per mode (medians)")
    parser.add_argument("--measure", type=int, default=MEASURE, help="redemptions per round")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "durability.json")
    a = parser.parse_args(argv)
    MEASURE, ROUNDS = a.measure, a.rounds
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    runs = [(int(n), int(h or a.history)) for n, _, h in (item.partition("x") for item in a.sizes.split(","))]
    results = []
    for n, h in runs:
        results.append(measure(n, h, say))
        a.out.write_text(json.dumps(results, indent=2) + "\n")  # each size as soon as it is measured
    print("| residents | history | snapshot | node start | CLI write on/off (+ms) | redemptions/s on/off (cost) "
          "| 5 tills at once on/off (cost) | node CPU ms/redemption on/off | snapshot stall, every | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['residents']:,} | {r['history_per_resident']} | {r['snapshot_bytes'] / 1e6:.0f} MB "
              f"| {r['node_start_seconds']:.1f} s | {r['cli_write_ms_on']:.0f}/{r['cli_write_ms_off']:.0f} "
              f"(+{r['cli_overhead_ms']:.0f}) | {r['redeem_per_second_on']:.0f}/{r['redeem_per_second_off']:.0f} "
              f"({r['throughput_cost']:.0%}) | {r['parallel_redeem_per_second_on']:.0f}/"
              f"{r['parallel_redeem_per_second_off']:.0f} ({r['parallel_throughput_cost']:.0%}) "
              f"| {r['node_cpu_ms_per_redemption_on']:.1f}/{r['node_cpu_ms_per_redemption_off']:.1f} "
              f"| {r['snapshot_stall_seconds']:.1f} s, {r['snapshot_every_seconds']:.0f} s "
              f"| {r['load_average']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
