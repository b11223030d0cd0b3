"""Throughput: issuance end to end through the CLI, and redemptions per second against the
ceiling of plain ETH transfers sent the same way on the same node."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from eth_account.signers.local import LocalAccount

from citypass import node
from citypass import passqr, redemption, tx
from citypass.clock import next_block_time
from citypass import voucher as V
from citypass.errors import CityPassError

from bench.world import DAY, SPORT, World, make_world, resident_address, resident_key

AMOUNT_CENTS = 15_000


@dataclass
class IssueRun:
    seconds: float  # wall time of the command
    node_cpu: float  # CPU seconds the node used meanwhile
    client_cpu: float  # CPU seconds of the `citypass issue` process
    transactions: int
    blocks: int


def issue_run(rows: int, tag: str, *, gas_limit: int = node.GAS_LIMIT, batch_size: int | None = None) -> IssueRun:
    """`citypass issue` on a CSV of `rows` new residents (enrol + credit), as the finance
    office runs it: a new process that reads, validates, plans, sends and reconciles. Each
    run gets a fresh chain, so sizes compare fairly (Anvil's work per block grows with its
    state). The budget's issued counter is checked afterwards."""
    with tempfile.TemporaryDirectory(prefix="citypass-bench-issue-") as folder:
        workdir = Path(folder)
        try:
            world = make_world(workdir, gas_limit=gas_limit)
            budget = world.new_budget(SPORT, f"Bench issuance {tag}")
            path = workdir / f"issue-{tag}.csv"
            lines = ["holder,amount"] + [f"{resident_address(tag, i)},{AMOUNT_CENTS // 100}.00" for i in range(rows)]
            path.write_text("\n".join(lines) + "\n")
            cmd = [sys.executable, "-m", "citypass", "--rpc", world.chain.rpc_url, "--workdir", str(workdir),
                   "--contract", world.dep.address, "--from", "dev:1", "issue", str(path), "--budget", str(budget)]
            if batch_size:
                cmd += ["--batch-size", str(batch_size)]
            pid = node.node_status(workdir).pid
            block0, node0 = world.chain.w3.eth.block_number, _cpu_seconds(pid)
            log = workdir / "issue.log"
            t0 = time.perf_counter()
            with open(log, "w") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"NO_COLOR": "1"})
                _, status, usage = os.wait4(proc.pid, 0)  # this process's own CPU time
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise CityPassError(f"`citypass issue` of {rows} rows failed:\n{log.read_text()[-2000:]}")
            result = IssueRun(seconds, _cpu_seconds(pid) - node0, usage.ru_utime + usage.ru_stime,
                              len(world.dep.events("BatchIssued")), world.chain.w3.eth.block_number - block0)
            issued = world.f.budgetTotals(budget).call()[1]
            if issued != rows * AMOUNT_CENTS:
                raise CityPassError(f"issuance of {rows} rows: budget issued {issued}, expected {rows * AMOUNT_CENTS}")
            return result
        finally:
            node.node_stop(workdir)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): what the node itself spent."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")





def _timed(jobs: Sequence[Callable[[], Any]]) -> float:
    """Runs the providers' jobs one after the other (each pipelines all of its transactions)
    and returns the wall time until the last receipt. Not side by side: five connections
    each pushing batches of hundreds of transactions made Anvil 1.7.1 spin at 100% CPU and
    stop answering (seen at 5 x 1,000), while one pipeline at a time keeps it saturated."""
    t0 = time.perf_counter()
    for job in jobs:
        job()
    return time.perf_counter() - t0


def transfers_per_second(world: World, count: int) -> float:
    """The ceiling: plain ETH transfers from the provider wallets through the same sending
    path (sign, pipelined submit, wait for every receipt), with the known gas of a transfer."""
    senders = world.providers
    share = count // len(senders)
    sink = resident_address("sink", 0)
    window = redemption.SEND_WINDOW  # the same windows as redeem_many sends in

    def job(p: LocalAccount) -> None:
        for start in range(0, share, window):
            tx.send_many(world.chain, p, [tx.Transfer(sink)] * min(window, share - start), value=1, gas=21_000)

    jobs = [lambda p=p: job(p) for p in senders]
    return share * len(senders) / _timed(jobs)


def fund_holders(world: World, budget: int, holders: Sequence[str], cents: int) -> None:
    """Enrols and credits `holders` (not timed: this is the set-up for redemption). Batches
    of 250 stay well under the block gas limit: on Anvil's automine, two pipelined
    transactions that each reserve a whole block can leave the second one pending."""
    step = 250
    fns = [world.f.enrollAndIssue(os.urandom(32), budget, world.valid_until, list(holders[i:i + step]),
                                  [cents] * len(holders[i:i + step]))
           for i in range(0, len(holders), step)]
    tx.send_many(world.chain, world.office, fns)


def redemption_figures(world: World, count: int, transfers: int, tag: str) -> dict[str, float]:
    """`count` vouchers, each signed by its resident and redeemed as a single scan by one of
    the five providers (each pipelining its share, see _timed), all confirmed; and the
    ceiling, `transfers` plain transfers, measured right before on the same state (Anvil's
    work per block grows with its state, so both must see the same one).

    redeem_per_second counts from the residents' first signature to the last receipt, one
    `redeem` transaction per voucher; redeem_batch_per_second the same with `redeemBatch`.
    The *_cpu_seconds say where the time went: the node, or this Python process."""
    budget = world.new_budget(SPORT, f"Bench redemption {tag}")
    residents = [resident_key(tag, i) for i in range(count)]
    fund_holders(world, budget, [r.address for r in residents], 1_000)
    pid = node.node_status(world.workdir).pid
    node0, self0, block0 = _cpu_seconds(pid), time.process_time(), world.chain.w3.eth.block_number
    out = {"anvil_transfer_per_second": transfers_per_second(world, transfers)}
    out["transfer_node_cpu_seconds"] = _cpu_seconds(pid) - node0
    out["transfer_client_cpu_seconds"] = time.process_time() - self0
    out["transfer_blocks"] = world.chain.w3.eth.block_number - block0
    providers = world.providers
    chain_id, contract = world.chain.chain_id, world.dep.address
    share = count // len(providers)
    # The next block's time (the gas benchmark moved the chain's clock past a budget's end).
    deadline = next_block_time(world.chain) + DAY

    def voucher(r: Any, nonce: int) -> V.SignedVoucher:  # a pass QR voucher: any provider, up to €3
        return V.sign(V.Voucher(r.address, passqr.ANY_PROVIDER, budget, 300, nonce, deadline), r.key, chain_id, contract)

    def till(index: int, provider: LocalAccount, signed: list[V.SignedVoucher] | None) -> None:
        mine = residents[index * share:(index + 1) * share]
        if signed is None:
            signed = [voucher(r, 0) for r in mine]
        outcomes = redemption.redeem_many(world.dep, provider, [redemption.Scan(s, 300) for s in signed])
        refused = [o for o in outcomes if not isinstance(o, redemption.Redemption)]
        if refused:
            raise CityPassError(f"{len(refused)} of {len(signed)} vouchers were refused; the first: {refused[0]}")

    node0, self0, block0 = _cpu_seconds(pid), time.process_time(), world.chain.w3.eth.block_number
    out["redeem_per_second"] = len(providers) * share / _timed([lambda i=i, p=p: till(i, p, None)
                                                                for i, p in enumerate(providers)])
    out["redeem_node_cpu_seconds"] = _cpu_seconds(pid) - node0
    out["redeem_client_cpu_seconds"] = time.process_time() - self0
    out["redeem_blocks"] = world.chain.w3.eth.block_number - block0
    # The same vouchers' next payment (nonce 1), collected and redeemed with redeemBatch
    # (100 per transaction), signing included: how a provider with a queue catches up.
    def batch(index: int, provider: LocalAccount) -> None:
        signed = [voucher(r, 1) for r in residents[index * share:(index + 1) * share]]
        skipped = [o for o in redemption.redeem_batch(world.dep, provider, [redemption.Scan(s, 300) for s in signed])
                   if not o.redeemed]
        if skipped:
            raise CityPassError(f"{len(skipped)} of {len(signed)} vouchers were skipped; the first: {skipped[0].message}")

    out["redeem_batch_per_second"] = len(providers) * share / _timed([lambda i=i, p=p: batch(i, p)
                                                                      for i, p in enumerate(providers)])
    return out
