"""Faults: the `citypass` process SIGKILLed at chosen points of an issuance or a settlement,
the embedded Anvil killed mid-issuance, providers redeeming while an issuance runs, and
transactions dropped, stuck below the base fee or overtaken at their nonce.

The kill points are drawn from a seeded RNG (the seed is printed; CITYPASS_FAULT_SEED=N
replays it). `make test` runs a short version; `make faults-long` (CITYPASS_LONG=1) runs
the full one: 5,000-row issuances, 12 kill points. After every fault the run is repeated and
the outcome is checked from chain state alone (tests/faults_helpers.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass

import pytest
from eth_utils import keccak, to_checksum_address

from citypass import finance, node, tx, wallet
from citypass import redemption
from citypass.errors import CityPassError
from citypass.faults import POINTS
from tests.faults_helpers import (
    LONG, SIGKILLED, batch_events, issued_exactly_once, new_budget, nonces_by_sender, residents_file,
    rerun_while_mining_stopped, run_citypass, seed, sent_count, start_citypass, start_python, txpool_empty,
)
from tests.ops_helpers import DAY, SPORT, World, enrol_and_credit, make_world, synthetic_account

SEED = seed()
KILL_ROWS = 5_000 if LONG else 120
KILL_BATCH = () if LONG else ("--batch-size", "10")  # long: the default size (200 rows: 25 batches)
KILL_BATCHES = -(-KILL_ROWS // (200 if LONG else 10))
# Batches go out a window at a time (issuance.execute); 4 in flight gives every kill point
# several visits per run, each window killed before, during and after its sends.
KILL_IN_FLIGHT = ("--in-flight", "4")
KILL_WINDOWS = -(-KILL_BATCHES // 4)
KILLS = 12 if LONG else len(POINTS)
RESTART_ROWS = 5_000 if LONG else 300
REDEEMING_PROVIDERS = 5
VOUCHERS_EACH = 30 if LONG else 6
CONCURRENT_ROWS = 5_000 if LONG else 200
RUN_TIMEOUT = 600


def _seeded(what: str) -> str:
    return f"seed {SEED} (replay: CITYPASS_FAULT_SEED={SEED}{' CITYPASS_LONG=1' if LONG else ''}), {what}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    print(f"\nfault tests: seed {SEED}, {'long' if LONG else 'short'} version")
    yield from make_world(tmp_path_factory.mktemp("faults"))


@pytest.fixture
def automine_back(world):
    """Whatever a test does to mining, the next one starts with automine."""
    yield world
    world.chain.rpc("evm_setIntervalMining", [0])
    world.chain.rpc("evm_setAutomine", [True])


@dataclass
class _Result:
    returncode: int
    stdout: str
    stderr: str


def _mine_again(w: World) -> None:
    w.chain.rpc("evm_setAutomine", [True])
    w.chain.rpc("evm_mine")


def _ok_run(r, why: str) -> None:
    assert r.returncode == 0, f"{why}: exit {r.returncode}\n{r.stderr[-3000:]}"
    assert "MISMATCH" not in r.stdout and r.stdout.count("ok: ") == 3, f"{why}: {r.stdout}"


# ---------------------------------------------------------------------------- killed issuance
def kill_plan(rng: random.Random) -> list[tuple[str, int, str, str | None]]:
    """(point, n, mining, second kill of the re-run or None): every point at least once
    (long: at least twice), n among the run's visits. With interval mining the killed run's
    last transaction may still be waiting in the pool when the re-run starts."""
    points = [POINTS[i % len(POINTS)] for i in range(KILLS)]
    rng.shuffle(points)
    plan = []
    interval_seen = False
    for point in points:
        n = rng.randint(1, min(KILL_WINDOWS, 3) if not LONG else KILL_WINDOWS)
        mining = "auto"
        if point in ("after-broadcast", "before-receipt") and (not interval_seen or rng.random() < 0.5):
            mining, interval_seen = "interval", True
        second = None
        if LONG and n < KILL_WINDOWS - 1 and rng.random() < 0.4:  # the re-run is killed too
            second = f"{rng.choice(POINTS)}:1"
        plan.append((point, n, mining, second))
    return plan


def test_issuance_killed_at_random_points_then_rerun_credits_everyone_once(automine_back, tmp_path):
    w = automine_back
    plan = kill_plan(random.Random(SEED))
    print(f"kill points ({KILL_ROWS} rows, {KILL_BATCHES} batches): {plan}")
    pending_at_rerun = 0
    for k, (point, n, mining, second) in enumerate(plan):
        why = _seeded(f"kill {k} at {point}:{n}, {mining} mining, second kill {second}")
        budget = new_budget(w, f"Faults kill {k}")
        path, amounts = residents_file(tmp_path, f"kill-{SEED}-{k}", KILL_ROWS)
        args = ("issue", str(path), "--budget", str(budget), *KILL_BATCH, *KILL_IN_FLIGHT)
        before = sent_count(w, w.issuer.address)
        if mining == "interval":
            w.chain.rpc("evm_setAutomine", [False])
            w.chain.rpc("evm_setIntervalMining", [1])
        killed = run_citypass(w, *args, fault=f"{point}:{n}", timeout=RUN_TIMEOUT)
        assert killed.returncode == SIGKILLED, f"{why}: not killed (exit {killed.returncode})\n{killed.stderr[-2000:]}"
        if second:
            again = run_citypass(w, *args, fault=second, timeout=RUN_TIMEOUT)
            assert again.returncode == SIGKILLED, f"{why}: re-run not killed\n{again.stderr[-2000:]}"
        if mining == "interval":
            # Mining stops: what the killed run broadcast stays in the pool while the re-run
            # plans; the re-run must wait for it, not send that batch again.
            w.chain.rpc("evm_setIntervalMining", [0])
            pending = txpool_empty(w)["pending"]
            pending_at_rerun += pending
            result = _Result(*rerun_while_mining_stopped(w, args, lambda: _mine_again(w)))
            if pending:
                assert "still in flight" in result.stderr, f"{why}: {result.stderr}"
        else:
            result = run_citypass(w, *args, timeout=RUN_TIMEOUT)
        _ok_run(result, why)
        issued_exactly_once(w, budget, amounts, before, why)
        if k == 0 or LONG:
            third = run_citypass(w, *args, timeout=RUN_TIMEOUT)
            _ok_run(third, why)
            assert "everything in this file was issued before: nothing to send" in third.stderr, why
            assert sent_count(w, w.issuer.address) - before == len(batch_events(w, budget)), why
    print(f"transactions waiting in the pool when a re-run started: {pending_at_rerun}")


# ---------------------------------------------------------------------------- node killed
@pytest.fixture
def own_world(tmp_path):
    yield from make_world(tmp_path / "restart")


@pytest.mark.parametrize("how", ["kill -9", "stop"] if LONG else ["kill -9"])
def test_node_killed_mid_issuance_then_restarted_rerun_finishes_exactly_once(own_world, tmp_path, how):
    w = own_world
    budget = new_budget(w, "Faults restart")
    path, amounts = residents_file(tmp_path, f"restart-{how[:4]}", RESTART_ROWS)
    args = ("issue", str(path), "--budget", str(budget), *(() if LONG else ("--batch-size", "10")), *KILL_IN_FLIGHT)
    info = node.node_status(w.workdir)
    node.node_stop(w.workdir)  # the set-up safely in the state file
    node.node_start(w.workdir, port=info.port)
    before = sent_count(w, w.issuer.address)
    total = sum(amounts.values())
    genesis = _genesis(w)

    run = start_citypass(w, *args)
    deadline = time.monotonic() + RUN_TIMEOUT
    seen = 0
    while seen < total // 3:
        assert run.poll() is None and time.monotonic() < deadline, \
            f"the issuance ended before the node was stopped: {run.communicate()[1][-2000:] if run.poll() is not None else ''}"
        seen = int(w.f.budgetTotals(budget).call()[1])
        time.sleep(0.02)
    info = node.node_status(w.workdir)
    if how == "kill -9":
        os.kill(info.pid, signal.SIGKILL)
        _wait_dead(info.pid)
    else:
        node.node_stop(w.workdir)
    _out, err = run.communicate(timeout=RUN_TIMEOUT)
    assert run.returncode != 0, "the issuance went on without its node?"
    assert "Traceback" not in err, err[-3000:]

    node.node_start(w.workdir, port=info.port)
    after_restart = int(w.f.budgetTotals(budget).call()[1])
    print(f"node {how} at {seen / 100:.2f} euro issued (seen by the test); after the restart the chain had "
          f"{after_restart / 100:.2f} euro; block 0 {'kept' if _genesis(w) == genesis else 'changed'} its hash")
    # The durable node loses nothing the test saw mined (its receipts were journaled first).
    assert seen <= after_restart <= total
    # The address book knows its deployment after the restart (no CITYPASS_CONTRACT needed).
    rerun = run_citypass(w, *args, timeout=RUN_TIMEOUT)
    _ok_run(rerun, f"re-run after node {how}")
    issued_exactly_once(w, budget, amounts, before, f"node {how}")


def _genesis(w: World) -> str:
    return w.chain.rpc("eth_getBlockByNumber", ["0x0", False])["hash"]


def _wait_dead(pid: int) -> None:
    try:
        os.waitpid(pid, 0)  # the node the test restarted is its child
    except ChildProcessError:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)


# ---------------------------------------------------------------------------- settlement
@pytest.fixture(scope="module")
def pool_with_credit(world):
    """The pool holds redeemed credit to settle."""
    residents = [synthetic_account(f"faults-settle-{i}") for i in range(3)]
    enrol_and_credit(world, residents, world.sport, 5_000, "faults-settle")
    for i, r in enumerate(residents):
        pq = wallet.pass_qr(world.dep, r, budgets=[world.sport])
        redemption.redeem(world.dep, world.pool, pq.vouchers()[0], 1_000 + i)
    return 1_000 + 1_001 + 1_002


SETTLE_KILLS = [("before-send", "auto"), ("after-broadcast", "auto"), ("before-receipt", "interval"),
                ("after-receipt", "auto")]


@pytest.mark.parametrize("point,mining", SETTLE_KILLS)
def test_settlement_killed_and_repeated_pays_a_reference_once(automine_back, pool_with_credit, point, mining):
    w = automine_back
    snap = w.snapshot()
    try:
        reference = f"FAULTS-{SEED}-{point}"
        ref = finance.reference_hash(reference)
        args = ("settle", "--provider", w.pool.address, "--reference", reference)
        before = sent_count(w, w.treasurer.address)
        settled_before = int(w.f.budgetTotals(w.sport).call()[2])
        if mining == "interval":
            w.chain.rpc("evm_setAutomine", [False])
            w.chain.rpc("evm_setIntervalMining", [1])
        killed = run_citypass(w, *args, fault=f"{point}:1")
        assert killed.returncode == SIGKILLED, killed.stderr
        if mining == "interval":
            w.chain.rpc("evm_setIntervalMining", [0])
            assert txpool_empty(w)["pending"] == 1  # the settlement waits in the pool
            code, _out, err = rerun_while_mining_stopped(w, args, lambda: _mine_again(w))
        else:
            r = run_citypass(w, *args)
            code, err = r.returncode, r.stderr
        if point == "before-send":  # nothing reached the node: the re-run pays
            assert code == 0 and "settled €30.03" in err, err
        else:  # the killed run paid: the re-run says so and sends nothing
            assert code == 1, err
            assert f"payment reference {finance.normalize_reference(reference)!r} was already used (provider {w.pool.address} was paid €30.03" in err
            assert "nothing was sent" in err
        if point == "before-send" or LONG:  # once paid, a reference stays refused
            third = run_citypass(w, *args)
            assert third.returncode == 1 and "was already used" in third.stderr
        events = w.dep.events("Settled", argument_filters={"paymentReference": ref})
        assert len({e.transactionHash for e in events}) == 1
        assert sum(int(e.args.amount) for e in events) == pool_with_credit
        assert int(w.f.budgetTotals(w.sport).call()[2]) - settled_before == pool_with_credit
        assert w.f.balanceOf(w.pool.address, w.sport).call() == 0
        assert sent_count(w, w.treasurer.address) - before == 1, "a settlement was sent twice"
    finally:
        w.chain.rpc("evm_setIntervalMining", [0])
        w.chain.rpc("evm_setAutomine", [True])
        w.revert(snap)


# ---------------------------------------------------------------------------- concurrency
def test_providers_redeem_while_an_issuance_runs(world, tmp_path):
    w = world
    providers = [synthetic_account(f"faults-provider-{p}") for p in range(REDEEMING_PROVIDERS)]
    for p in providers:
        w.chain.rpc("anvil_setBalance", [p.address, hex(10**20)])
        w.send(w.provider_manager, w.f.addProvider(p.address, 1 << SPORT, 0, p.address[:10]))
    residents = [[synthetic_account(f"faults-payer-{p}-{j}") for j in range(VOUCHERS_EACH)]
                 for p in range(REDEEMING_PROVIDERS)]
    payers = [r.address for rs in residents for r in rs]
    spend = new_budget(w, "Faults spend")
    w.send(w.issuer, w.f.enrollAndIssue(keccak(text=f"faults-payers-{SEED}"), spend, w.end + 365 * DAY, payers,
                                        [5_000] * len(payers)))

    # Each provider's list: its own vouchers, then one it must refuse for each reason kind.
    good: dict[tuple[str, int], tuple[int, int]] = {}  # (holder, nonce) -> (provider index, cents)
    lists: list[list[str]] = []
    def qr(resident, p: int, cents: int, nonce: int) -> str:  # a scan line: pass QR made out to provider p, amount
        pq = wallet.pass_qr(w.dep, resident, budgets=[spend], provider=providers[p].address, max_amount=cents,
                            nonces={spend: nonce}, ttl=3_600, force=True)
        return f"{pq.encode()},{cents}"

    signed = [[qr(r, p, 100 + j, 0) for j, r in enumerate(residents[p])] for p in range(REDEEMING_PROVIDERS)]
    for p in range(REDEEMING_PROVIDERS):
        for j, r in enumerate(residents[p]):
            good[(r.address, 0)] = (p, 100 + j)
        lists.append(signed[p]
                     + [signed[p][0],  # the same QR twice
                        signed[(p + 1) % REDEEMING_PROVIDERS][-1],  # bound to another provider
                        qr(residents[p][0], p, 9_000, 1)])  # more than the resident holds
    path, amounts = residents_file(tmp_path, f"concurrent-{SEED}", CONCURRENT_ROWS)
    issue_budget = new_budget(w, "Faults concurrent issue")
    first_block = w.chain.w3.eth.block_number + 1
    start_nonces = {a.address: sent_count(w, a.address) for a in [w.issuer, *providers]}

    issuing = start_citypass(w, "issue", str(path), "--budget", str(issue_budget), *KILL_BATCH, *KILL_IN_FLIGHT)
    tills = []
    for p in range(REDEEMING_PROVIDERS):
        (tmp_path / f"vouchers-{p}.txt").write_text("\n".join(lists[p]) + "\n")
        tills.append(start_python("-m", "tests.faults_helpers", "redeem", "--workdir", str(w.workdir),
                                  "--provider-label", f"faults-provider-{p}", "--mode", "single" if p < 3 else "batch",
                                  "--vouchers", str(tmp_path / f"vouchers-{p}.txt"), "--out", str(tmp_path / f"out-{p}.jsonl")))
    out, err = issuing.communicate(timeout=RUN_TIMEOUT)
    _ok_run(_Result(issuing.returncode, out, err), "concurrent issuance")
    for p, till in enumerate(tills):
        _o, e = till.communicate(timeout=RUN_TIMEOUT)
        assert till.returncode == 0, f"provider {p}: {e[-3000:]}"

    # Every voucher: redeemed exactly once, or refused with its reason.
    for p in range(REDEEMING_PROVIDERS):
        outcomes = [json.loads(line) for line in (tmp_path / f"out-{p}.jsonl").read_text().splitlines()]
        assert [o["voucher"] for o in outcomes] == lists[p]
        assert all(o["redeemed"] for o in outcomes[:VOUCHERS_EACH]), outcomes[:VOUCHERS_EACH]
        dup, other, over = outcomes[VOUCHERS_EACH:]
        assert not dup["redeemed"] and "already used" in dup["reason"], dup
        assert not other["redeemed"] and "provider" in other["reason"], other
        assert not over["redeemed"] and "credit" in over["reason"], over
    redeemed = w.dep.events("Redeemed", from_block=first_block)
    keys = [(to_checksum_address(e.args.holder), int(e.args.nonce)) for e in redeemed]
    assert sorted(keys) == sorted(good), "a voucher was redeemed twice, or one is missing"
    for p, provider in enumerate(providers):
        assert w.f.balanceOf(provider.address, spend).call() == sum(c for q, c in good.values() if q == p)
    issued_exactly_once(w, issue_budget, amounts, start_nonces[w.issuer.address], "concurrent issuance")

    # Nothing lost or stuck: an empty pool, and every sender's nonces contiguous.
    assert txpool_empty(w) == {"pending": 0, "queued": 0}
    for sender, nonces in nonces_by_sender(w, first_block, set(start_nonces)).items():
        assert nonces == list(range(start_nonces[sender], sent_count(w, sender))), (sender, nonces)
    print(f"concurrent: {len(amounts)} residents issued while {REDEEMING_PROVIDERS} providers redeemed "
          f"{len(redeemed)} vouchers and refused {3 * REDEEMING_PROVIDERS}")


# ---------------------------------------------------------------------------- dropped, stuck, overtaken
def _send_in_thread(w: World, fn, timeout: float = 20) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        try:
            result["receipt"] = tx.send(w.chain, w.issuer, fn, timeout=timeout)
        except CityPassError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _in_pool(w: World, sender: str, timeout: float = 10) -> dict:
    """The transaction `sender` has waiting in the pool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for by_sender in w.chain.rpc("txpool_content")["pending"].items():
            if to_checksum_address(by_sender[0]) == sender:
                return next(iter(by_sender[1].values()))
        time.sleep(0.02)
    raise AssertionError(f"no transaction of {sender} reached the pool")


def _enrol_call(w: World, label: str):
    holder = to_checksum_address(keccak(text=f"faults-stuck-{label}")[-20:])
    return holder, w.f.enrollPasses([holder], w.end)


def test_dropped_transaction_is_broadcast_again_unchanged(automine_back, monkeypatch):
    w = automine_back
    monkeypatch.setattr(tx, "STUCK_AFTER", 0.3)
    holder, fn = _enrol_call(w, "dropped")
    before = sent_count(w, w.issuer.address)
    w.chain.rpc("evm_setAutomine", [False])
    thread, result = _send_in_thread(w, fn)
    sent = _in_pool(w, w.issuer.address)
    w.chain.rpc("anvil_dropTransaction", [sent["hash"]])
    time.sleep(1.0)  # the sender looks after it (a few STUCK_AFTER)
    w.chain.rpc("evm_mine")
    thread.join(30)
    assert "receipt" in result, result
    assert "0x" + bytes(result["receipt"]["transactionHash"]).hex() == sent["hash"]  # the same signed bytes
    assert sent_count(w, w.issuer.address) == before + 1
    assert w.f.passOf(holder).call()[0] == 1


def test_transaction_below_the_base_fee_is_replaced_at_its_nonce(automine_back, monkeypatch):
    w = automine_back
    monkeypatch.setattr(tx, "STUCK_AFTER", 0.3)
    holder, fn = _enrol_call(w, "underpriced")
    before = sent_count(w, w.issuer.address)
    w.chain.rpc("evm_setAutomine", [False])
    thread, result = _send_in_thread(w, fn)
    sent = _in_pool(w, w.issuer.address)
    w.chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(int(sent["maxFeePerGas"], 16) * 10)])
    w.chain.rpc("evm_mine")  # the base fee jumps above what the transaction offers
    assert w.chain.rpc("eth_getTransactionReceipt", [sent["hash"]]) is None
    time.sleep(1.0)
    w.chain.rpc("evm_mine")
    thread.join(30)
    assert "receipt" in result, result
    mined = w.chain.rpc("eth_getTransactionByHash", ["0x" + bytes(result["receipt"]["transactionHash"]).hex()])
    assert mined["hash"] != sent["hash"] and mined["nonce"] == sent["nonce"]
    assert int(mined["maxFeePerGas"], 16) > int(sent["maxFeePerGas"], 16)
    assert sent_count(w, w.issuer.address) == before + 1
    assert w.f.passOf(holder).call()[0] == 1


def test_transaction_whose_nonce_another_took_is_reported_not_resent(automine_back, monkeypatch):
    w = automine_back
    monkeypatch.setattr(tx, "STUCK_AFTER", 0.3)
    holder, fn = _enrol_call(w, "overtaken")
    before = sent_count(w, w.issuer.address)
    w.chain.rpc("evm_setAutomine", [False])
    thread, result = _send_in_thread(w, fn)
    sent = _in_pool(w, w.issuer.address)
    w.chain.rpc("anvil_dropTransaction", [sent["hash"]])
    other = w.issuer.sign_transaction({  # e.g. another tool using the same key
        "chainId": w.chain.chain_id, "nonce": int(sent["nonce"], 16), "to": w.issuer.address, "value": 0,
        "gas": 21_000, "maxFeePerGas": 4 * int(sent["maxFeePerGas"], 16),
        "maxPriorityFeePerGas": 2 * int(sent["maxPriorityFeePerGas"], 16) + 1})
    w.chain.rpc("eth_sendRawTransaction", ["0x" + bytes(other.raw_transaction).hex()])
    w.chain.rpc("evm_mine")
    thread.join(30)
    assert "error" in result, result
    message = str(result["error"])
    assert f"another transaction from that account took nonce {int(sent['nonce'], 16)}" in message
    assert "It was not re-sent" in message
    w.chain.rpc("evm_mine")
    assert sent_count(w, w.issuer.address) == before + 1  # only the other one
    assert w.f.passOf(holder).call()[0] == 0
