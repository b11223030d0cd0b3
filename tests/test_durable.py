"""The embedded chain never loses what CityPass said was done (issue 10).

Every test runs on its own durable embedded node (citypass/durable/supervisor.py) and kills
it with SIGKILL (supervisor and Anvil at once: no clean-up, like a power cut) right after a
success or at random moments, restarts it and checks the chain from its state alone. The
CityPass process is killed too: a client process of its own (forked from a zygote, so it
starts at once) or the `citypass` command, alone or at the same moment as the node.

Each effect is a pair of small functions in EFFECTS below (the one place to adapt when a
contract function changes): one makes the write, one checks it is on chain. `make test`
runs short versions; `make faults-long` (CITYPASS_LONG=1, part of `make fuzz`) runs more
kills and restarts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from eth_utils import keccak, to_checksum_address

from citypass import chain as C
from citypass import contract as K
from citypass import finance, keys, node, redemption, tx, wallet
from citypass.durable import store
from citypass.errors import ROLE_IDS, CityPassError
from tests.ops_helpers import DAY, SPORT, World, cli, enrol_and_credit, make_world, synthetic_account

LONG = os.environ.get("CITYPASS_LONG") == "1"
SEED = int(os.environ.get("CITYPASS_FAULT_SEED") or random.SystemRandom().randrange(1_000_000))
ROOT = Path(__file__).resolve().parent.parent
Check = Callable[[World], None]


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: these tests run on their own node."""


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.delenv("CITYPASS_NODE_FAULT", raising=False)
    monkeypatch.setenv("CITYPASS_SNAPSHOT_INTERVAL", "3600")  # only the snapshots a test asks for
    yield from make_world(tmp_path / "chain")


# ---------------------------------------------------------------------------- kill and restart
def kill_node(w: World) -> None:
    """SIGKILL of the supervisor; its Anvil dies with it. Waits until both are gone."""
    info = node.node_status(w.workdir)
    assert info is not None and info.durable, "no durable node runs"
    os.kill(info.pid, signal.SIGKILL)
    _wait_dead(info.pid)
    if info.anvil_pid:
        _wait_dead(info.anvil_pid)


def _wait_dead(pid: int) -> None:
    try:
        os.waitpid(pid, 0)  # the supervisor is this test's child
        return
    except ChildProcessError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def restart(w: World) -> None:
    """Starts the node again (every restart must succeed) and points the world at it; the
    address book must still know its deployment (no "node was reset")."""
    node.node_start(w.workdir)
    w.chain = C.connect(workdir=w.workdir, start_node=False)
    w.dep = K.open_deployment(w.chain, workdir=w.workdir)
    assert w.dep.address == w.dep.address


def replay_problems(w: World) -> list[str]:
    """Lines where the supervisor said a replayed block came out differently."""
    log = Path(w.workdir) / node.LOG_FILE
    return [line for line in log.read_text(errors="replace").splitlines() if "replay: block" in line]


def holder(label: str) -> str:
    return to_checksum_address(keccak(text=f"durable-{SEED}-{label}")[-20:])


def pauser() -> Any:
    return keys.dev_account(6)


# ---------------------------------------------------------------------------- the effects (one place)
def _resident(w: World, label: str, cents: int = 5_000) -> Any:
    r = synthetic_account(f"durable-{SEED}-{label}")
    enrol_and_credit(w, [r], w.sport, cents, f"durable-{SEED}-{label}")
    return r


# Each effect is a pair: `do(w, label)` makes the write and returns the facts its check needs
# (JSON, so a client process can report them on its stdout), `check(w, label, facts)` asserts
# it is on chain. `effect(w, name, label)` does one here and returns its check.
Facts = dict[str, Any]


def do_issue(w: World, label: str) -> Facts:
    h = holder(label)
    w.send(w.issuer, w.f.enrollPasses([h], w.end + 365 * DAY))
    w.send(w.issuer, w.f.issue(keccak(text=f"durable-issue-{SEED}-{label}"), w.sport, [h], [1_234]))
    return {}


def check_issue(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.balanceOf(holder(label), w.sport).call(), 1_234, f"issue {label}")


def do_enrol(w: World, label: str) -> Facts:
    w.send(w.issuer, w.f.enrollPasses([holder(label)], w.end + 365 * DAY))
    return {}


def check_enrol(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.passOf(holder(label)).call()[0], 1, f"enrol {label}: pass status")


def _voucher(w: World, r: Any, limit: int, ttl: int | None = None) -> Any:
    """The resident's pass QR voucher for Sport (any provider), up to `limit` cents."""
    return wallet.pass_qr(w.dep, r, budgets=[w.sport], max_amount=limit, ttl=ttl).for_budget(w.sport)


def _resident_account(label: str) -> Any:
    return synthetic_account(f"durable-{SEED}-{label}")


def do_redeem(w: World, label: str) -> Facts:
    r = _resident(w, label)
    redemption.redeem(w.dep, w.pool, _voucher(w, r, 700), 700)
    return {}


def check_redeem(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.balanceOf(_resident_account(label).address, w.sport).call(), 5_000 - 700, f"redeem {label}: resident balance")


def do_redeem_batch(w: World, label: str) -> Facts:
    rs = [_resident(w, f"{label}-{i}") for i in range(3)]
    scans = [redemption.Scan(_voucher(w, r, 300 + i), 300 + i) for i, r in enumerate(rs)]
    outcomes = redemption.redeem_batch(w.dep, w.pool, scans)
    assert all(o.redeemed for o in outcomes), outcomes
    return {}


def check_redeem_batch(w: World, label: str, facts: Facts) -> None:
    for i in range(3):
        _eq(w.f.balanceOf(_resident_account(f"{label}-{i}").address, w.sport).call(), 5_000 - 300 - i,
            f"redeem batch {label}: resident {i}")


def do_refund(w: World, label: str) -> Facts:
    r = _resident(w, label)
    signed = _voucher(w, r, 900)
    redemption.redeem(w.dep, w.pool, signed, 900, refundable=True)
    redemption.refund(w.dep, w.pool, r.address, w.sport, signed.voucher.nonce, 400)
    return {}


def check_refund(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.balanceOf(_resident_account(label).address, w.sport).call(), 5_000 - 900 + 400, f"refund {label}")


def do_settle(w: World, label: str) -> Facts:
    r = _resident(w, label)
    redemption.redeem(w.dep, w.pool, _voucher(w, r, 250), 250)
    finance.settle(w.dep, w.treasurer, w.pool.address, f"DURABLE-{SEED}-{label}")
    return {}


def check_settle(w: World, label: str, facts: Facts) -> None:
    ref = finance.reference_hash(f"DURABLE-{SEED}-{label}")
    _eq(len(w.dep.events("Settled", argument_filters={"paymentReference": ref})), 1, f"settle {label}: Settled events")


def do_reclaim(w: World, label: str) -> Facts:
    now = w.chain.now()
    w.send(w.budget_manager, w.f.createBudget(SPORT, now - DAY, now + 600, 10**9, f"Durable reclaim {label}"))
    budget = int(w.f.budgets().call()[-1])
    w.send(w.issuer, w.f.enrollAndIssue(keccak(text=f"durable-reclaim-{SEED}-{label}"), budget, w.end + 365 * DAY,
                                        [holder(label)], [777]))
    w.chain.advance_time(700)
    result = finance.reclaim(w.dep, w.budget_manager, budget)
    assert result.total == 777, result
    return {"budget": budget}


def check_reclaim(w: World, label: str, facts: Facts) -> None:
    budget = facts["budget"]
    _eq(w.f.balanceOf(holder(label), budget).call(), 0, f"reclaim {label}: holder balance")
    _eq(int(w.f.budgetTotals(budget).call()[3]), 777, f"reclaim {label}: reclaimed total")


def do_revoke(w: World, label: str) -> Facts:
    h = holder(label)
    w.send(w.issuer, w.f.enrollPasses([h], w.end + 365 * DAY))
    w.send(w.issuer, w.f.revokePass(h))
    return {}


def check_revoke(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.passOf(holder(label)).call()[0], 3, f"revoke {label}: pass status")


def do_migrate(w: World, label: str) -> Facts:
    a, b = holder(f"{label}-old"), holder(f"{label}-new")
    w.send(w.issuer, w.f.enrollPasses([a], w.end + 365 * DAY))
    w.send(w.issuer, w.f.migratePass(a, b, []))
    return {}


def check_migrate(w: World, label: str, facts: Facts) -> None:
    _eq(to_checksum_address(w.f.migratedTo(holder(f"{label}-old")).call()), holder(f"{label}-new"), f"migrate {label}")


def do_provider_suspend(w: World, label: str) -> Facts:
    p = holder(label)
    w.send(w.provider_manager, w.f.addProvider(p, 1 << SPORT, 0, f"Durable {label}"))
    w.send(w.provider_manager, w.f.setProviderStatus(p, 2))
    return {}


def check_provider_suspend(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.providerOf(holder(label)).call()[0], 2, f"provider suspend {label}")


def do_role_grant(w: World, label: str) -> Facts:
    w.send(w.admin, w.f.grantRole(ROLE_IDS["PAUSER"], holder(label)))
    return {}


def check_role_grant(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.hasRole(ROLE_IDS["PAUSER"], holder(label)).call(), True, f"role grant {label}")


def do_pause(w: World, label: str) -> Facts:
    receipt = tx.send(w.chain, pauser(), w.f.pause())
    return {"block": receipt.blockNumber, "tx": "0x" + bytes(receipt.transactionHash).hex()}


def check_pause(w: World, label: str, facts: Facts) -> None:
    if not facts.get("unpaused"):  # the first check: still paused; then unpause for the next effects
        _eq(w.f.paused().call(), True, f"pause {label}")
        tx.send(w.chain, pauser(), w.f.unpause())
        facts["unpaused"] = True
    mined = w.chain.rpc("eth_getTransactionReceipt", [facts["tx"]])  # still on chain, still a success
    _eq((mined or {}).get("status"), "0x1", f"pause {label}: its transaction")
    _eq(int(mined["blockNumber"], 16), facts["block"], f"pause {label}: its block")


def do_budget_create(w: World, label: str) -> Facts:
    now = w.chain.now()
    receipt = w.send(w.budget_manager, w.f.createBudget(SPORT, now - DAY, now + 30 * DAY, 10**6,
                                                        f"Durable budget {label}"))
    return {"budget": w.dep.contract.events.BudgetCreated().process_receipt(receipt)[0].args.budget}


def check_budget_create(w: World, label: str, facts: Facts) -> None:
    _eq(int(w.f.budgetTotals(facts["budget"]).call()[0]), 10**6, f"budget create {label}: its cap")


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}


def cli_enrol_args(w: World, label: str) -> list[str]:
    return [sys.executable, "-m", "citypass", "--workdir", str(w.workdir), "--from", "dev:3",
            "pass", "enroll", holder(label), "--valid-until", "2099-12-31"]


def do_cli_enrol(w: World, label: str) -> Facts:
    """Through the `citypass` command in its own process: success = exit 0."""
    r = subprocess.run(cli_enrol_args(w, label), capture_output=True, text=True, cwd=ROOT, env=cli_env())
    assert r.returncode == 0, r.stderr
    return {}


def check_cli_enrol(w: World, label: str, facts: Facts) -> None:
    _eq(w.f.passOf(holder(label)).call()[0], 1, f"CLI enrol {label}")


EFFECTS: dict[str, tuple[Callable[[World, str], Facts], Callable[[World, str, Facts], None]]] = {
    "issue": (do_issue, check_issue), "enrol": (do_enrol, check_enrol), "redeem": (do_redeem, check_redeem),
    "redeem batch": (do_redeem_batch, check_redeem_batch), "refund": (do_refund, check_refund),
    "settle": (do_settle, check_settle), "reclaim": (do_reclaim, check_reclaim), "pass revoke": (do_revoke, check_revoke),
    "pass migrate": (do_migrate, check_migrate), "provider suspend": (do_provider_suspend, check_provider_suspend),
    "role grant": (do_role_grant, check_role_grant), "pause": (do_pause, check_pause),
    "budget create": (do_budget_create, check_budget_create), "CLI enrol": (do_cli_enrol, check_cli_enrol),
}
# Cheap effects for the random streams (no time moves, no pause).
STREAM = ("issue", "enrol", "redeem", "pass revoke", "pass migrate", "provider suspend", "role grant", "budget create")


def checker(name: str, label: str, facts: Facts) -> Check:
    return lambda w: EFFECTS[name][1](w, label, facts)


def effect(w: World, name: str, label: str) -> Check:
    """Makes effect `name` here (in this process) and returns its check."""
    return checker(name, label, EFFECTS[name][0](w, label))


def effect_enrol(w: World, label: str) -> Check:
    return effect(w, "enrol", label)


def _eq(got: Any, want: Any, what: str) -> None:
    assert got == want, f"seed {SEED}: {what}: {got!r} on chain, {want!r} was reported done"


def check_all(w: World, checks: list[tuple[str, Check]]) -> int:
    for _name, check in checks:
        check(w)
    return len(checks)


# ---------------------------------------------------------------------------- 1. after a success
def test_kill_right_after_each_kind_of_success_loses_nothing(world):
    w = world
    checks: list[tuple[str, Check]] = []
    for k, name in enumerate(EFFECTS):
        check = effect(w, name, f"point-{k}")
        kill_node(w)  # right after the success
        restart(w)
        checks.append((name, check))
        check_all(w, checks)  # this effect and every earlier one
    assert not replay_problems(w), replay_problems(w)[:5]
    print(f"kill points: {len(EFFECTS)} kills, {len(EFFECTS)} restarts, 0 effects lost ({', '.join(EFFECTS)})")


# ---------------------------------------------------------------------------- 1b. the CityPass process too
# A CityPass client process is forked from a "zygote" (started once: it has imported the library,
# so a client starts in milliseconds, not seconds). The client writes one JSON line per event
# to its stdout: {"pid"}, {"done": name, "label", "facts"} right after each success, {"error"}.
# The test reads the lines and kills: the client alone, or the client and the node at once.
def _world_in_client(spec: dict[str, Any]) -> World:
    workdir = Path(spec["workdir"])
    chain = C.connect(workdir=workdir, start_node=False)
    dep = K.open_deployment(chain, workdir=workdir)
    dev = [keys.load_account(f"dev:{i}", chain) for i in range(10)]
    return World(workdir, chain, dep, dev[0], dev[1], dev[2], dev[3], dev[5], dev[8], dev[9],
                 spec["sport"], spec["culture"], spec["end"])


def _say(**line: Any) -> None:
    os.write(1, (json.dumps(line) + "\n").encode())  # one write: a line is never torn


def _client(spec: dict[str, Any]) -> None:
    """The client's work: `effects` one after another (or, with `stream`, random effects until
    it is killed), each reported right after its success; then unreported writes, so a kill
    finds it busy, as a CLI or web server would be."""
    try:
        w = _world_in_client(spec)
        _say(pid=os.getpid())
        rng = random.Random(spec["seed"])
        names = list(spec.get("effects") or [])
        j = 0
        while names or spec.get("stream"):
            name = names.pop(0) if names else rng.choice(STREAM)
            label = f"{spec['prefix']}-{j}"
            facts = EFFECTS[name][0](w, label)
            _say(done=name, label=label, facts=facts)
            j += 1
        while True:
            w.send(w.issuer, w.f.enrollPasses([holder(f"{spec['prefix']}-busy-{j}")], w.end))
            j += 1
    except BaseException:  # noqa: BLE001 (reported; the test decides whether it matters)
        import traceback

        _say(error=traceback.format_exc())
        os._exit(1)


def _zygote() -> None:
    """Reads one JSON spec per line on stdin; forks a client for each and reports its end."""
    for line in sys.stdin:
        spec = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _client(spec)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        _say(exited=pid, status=status)


class Clients:
    """The zygote of this test and the lines its clients report."""

    def __init__(self) -> None:
        import queue

        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.test_durable import _zygote; _zygote()"
        env = {**cli_env(), "CITYPASS_FAULT_SEED": str(SEED)}
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=ROOT, env=env, text=True, bufsize=1)
        self.lines: "queue.Queue[dict[str, Any]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put({"zygote_gone": True})

    def next(self, timeout: float = 120) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        assert "zygote_gone" not in line, "the zygote died"
        return line

    def start(self, w: World, prefix: str, *, effects: list[str] = (), stream: bool = False, seed: int = 0) -> int:
        """Forks a client; returns its pid once it is connected."""
        self.proc.stdin.write(json.dumps({"workdir": str(w.workdir), "sport": w.sport, "culture": w.culture,
                                          "end": w.end, "prefix": prefix, "effects": list(effects),
                                          "stream": stream, "seed": seed}) + "\n")
        line = self.next()
        assert "pid" in line, f"seed {SEED}: the client did not start: {line.get('error', line)}"
        return line["pid"]

    def until_exit(self, pid: int) -> list[dict[str, Any]]:
        """Every line the client wrote (a killed client's are still in the pipe), to its end."""
        got = []
        while True:
            line = self.next()
            if line.get("exited") == pid:
                return got
            got.append(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture
def clients():
    c = Clients()
    yield c
    c.close()


def kill_at_once(pids: list[int]) -> None:
    """SIGKILL of every pid, back to back (microseconds apart)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def node_pids(w: World) -> list[int]:
    info = node.node_status(w.workdir)
    assert info is not None and info.durable, "no durable node runs"
    return [info.pid, info.anvil_pid]


def wait_node_dead(pids: list[int]) -> None:
    for pid in pids:
        _wait_dead(pid)


def _done(lines: list[dict[str, Any]]) -> list[tuple[str, Check]]:
    return [(l["done"], checker(l["done"], l["label"], l["facts"])) for l in lines if "done" in l]


def _run_to_success(clients: Clients, w: World, name: str, label: str) -> tuple[int, dict[str, Any]]:
    """Starts a client that makes effect `name`; returns once it reported success (it goes
    on with unreported writes)."""
    pid = clients.start(w, label, effects=[name])
    line = clients.next()
    assert "done" in line, f"seed {SEED}: {name} failed in the client: {line.get('error', line)}"
    return pid, line


def _cli_to_success(w: World, label: str) -> subprocess.Popen:
    """`citypass pass enroll` in its own process, returned as soon as it printed its success
    (before it exits)."""
    proc = subprocess.Popen(cli_enrol_args(w, label), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=cli_env(), text=True)
    for line in proc.stderr:
        if "enrolled 1 pass(es)" in line:
            return proc
    raise AssertionError(f"the CLI did not report success: {proc.wait()}")


def test_kill_of_the_client_and_the_node_at_once_right_after_each_success_loses_nothing(world, clients):
    """Each kind of write in a CityPass process of its own; at its success the process and the
    node (supervisor and Anvil) are SIGKILLed at once; after the restart every effect so far
    must be on chain. The `citypass` command itself too, killed as it prints its success."""
    w = world
    checks: list[tuple[str, Check]] = []
    kills = 0
    for k, name in enumerate([*EFFECTS, "citypass command"]):
        label = f"both-{k}"
        if name == "citypass command":
            proc = _cli_to_success(w, label)
            pids, client = node_pids(w), proc.pid
            kill_at_once([client, *pids])
            proc.wait()
            checks.append((name, checker("CLI enrol", label, {})))
        else:
            pids = node_pids(w)
            client, line = _run_to_success(clients, w, name, label)
            kill_at_once([client, *pids])
            clients.until_exit(client)
            checks.append((name, checker(name, line["label"], line["facts"])))
        wait_node_dead(pids)
        kills += 1
        restart(w)
        check_all(w, checks)  # this effect and every earlier one
    assert not replay_problems(w), replay_problems(w)[:5]
    print(f"client + node at once: {kills} kills, {kills} restarts, 0 of {len(checks)} effects lost")


def test_kill_of_the_client_alone_right_after_each_success_loses_nothing(world, clients):
    """The CityPass process is SIGKILLed right after each success, the node runs on: the
    effect is on chain at once, and still after a later kill of the node."""
    w = world
    checks: list[tuple[str, Check]] = []
    for k, name in enumerate([*EFFECTS, "citypass command"]):
        label = f"client-{k}"
        if name == "citypass command":
            proc = _cli_to_success(w, label)
            kill_at_once([proc.pid])
            proc.wait()
            checks.append((name, checker("CLI enrol", label, {})))
        else:
            client, line = _run_to_success(clients, w, name, label)
            kill_at_once([client])
            clients.until_exit(client)
            checks.append((name, checker(name, line["label"], line["facts"])))
        checks[-1][1](w)
    kill_node(w)
    restart(w)
    check_all(w, checks)
    print(f"client alone: {len(checks)} kills, 0 of {len(checks)} effects lost; then 1 node kill, 1 restart, 0 lost")


def test_random_kills_of_the_client_and_of_client_and_node_at_once_lose_nothing(world, clients):
    """Clients run a stream of random writes; at a random moment the client alone, or the
    client and the node at once (in random order), are SIGKILLed. After each kill every write
    a client reported done must be on chain (after a restart where the node died)."""
    w = world
    rng = random.Random(SEED + 1)
    rounds = 40 if LONG else 12
    checks: list[tuple[str, Check]] = []
    stats = {"both": 0, "client": 0, "restarts": 0, "reported": 0}
    for k in range(rounds):
        both = k % 3 != 2
        pids = node_pids(w)
        client = clients.start(w, f"rand-{k}", stream=True, seed=rng.randrange(10**9))
        time.sleep(rng.uniform(0.05, 2.5))
        victims = [client, *pids] if both else [client]
        if both:
            rng.shuffle(victims)
        kill_at_once(victims)
        lines = clients.until_exit(client)
        errors = [l["error"] for l in lines if "error" in l]
        assert both or not errors, f"seed {SEED}: the client failed before it was killed: {errors[0]}"
        done = _done(lines)
        checks += done
        stats["reported"] += len(done)
        stats["both" if both else "client"] += 1
        if both:
            wait_node_dead(pids)
            restart(w)
            stats["restarts"] += 1
        check_all(w, done if k % 4 else checks)  # this round's, and every 4th round all so far
    check_all(w, checks)
    assert stats["reported"] >= rounds, stats  # the kills did not all land before any success
    assert not replay_problems(w), replay_problems(w)[:5]
    print(f"seed {SEED}: random client kills: {stats}, 0 lost")


# ---------------------------------------------------------------------------- 2+3. random kills, during saves
def _stream(w: World, rng: random.Random, kills: int, fault_kills: list[str], monkeypatch) -> dict[str, int]:
    """Runs effects one after another while a killer thread SIGKILLs the node at random
    moments (snapshots every 0.2 s, so many kills land during a save) and, between, the
    supervisor kills itself at chosen points of a save (CITYPASS_NODE_FAULT). After each
    kill: restart (must succeed) and every effect reported done must be on chain."""
    monkeypatch.setenv("CITYPASS_SNAPSHOT_INTERVAL", "0.2")
    node.node_stop(w.workdir)
    restart(w)
    checks: list[tuple[str, Check]] = []
    stats = {"kills": 0, "fault kills": 0, "restarts": 0, "reported": 0, "interrupted": 0, "lost": 0}
    plan = ["random"] * kills + fault_kills
    marks = [0]
    rng.shuffle(plan)
    for k, what in enumerate(plan):
        if what != "random":
            monkeypatch.setenv("CITYPASS_NODE_FAULT", what)
            node.node_stop(w.workdir)
            restart(w)
            monkeypatch.delenv("CITYPASS_NODE_FAULT")
        killed = threading.Event()
        info = node.node_status(w.workdir)

        def killer(delay: float = rng.uniform(0.05, 1.5), pid: int = info.pid) -> None:
            time.sleep(delay)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed.set()

        if what == "random":
            threading.Thread(target=killer, daemon=True).start()
        j = 0
        while True:
            name = rng.choice(STREAM)
            try:
                check = effect(w, name, f"stream-{k}-{j}")
            except (CityPassError, requests.RequestException, AssertionError, ValueError) as exc:
                alive = node.node_status(w.workdir)
                if alive is not None:
                    raise
                stats["interrupted"] += 1
                del exc
                break
            j += 1
            checks.append((name, check))
            stats["reported"] += 1
            if what != "random":  # a save now (the timer's may be far off on a grown state)
                try:
                    node.node_backup(w.workdir, w.workdir.parent / "stream-backup.json")
                except (CityPassError, requests.RequestException):
                    pass
                if node.node_status(w.workdir) is None:
                    break
            if what != "random" and j > 200:
                raise AssertionError(f"seed {SEED}: fault {what} never hit")
        _wait_dead(info.pid)
        if info.anvil_pid:
            _wait_dead(info.anvil_pid)
        stats["kills" if what == "random" else "fault kills"] += 1
        t0 = time.monotonic()
        restart(w)
        if os.environ.get("CITYPASS_DURABLE_TIMING"):
            print(f"kill {k} ({what}): {j} effects, restart {time.monotonic() - t0:.2f} s")
        stats["restarts"] += 1
        # Every write reported since the restart before the previous one, and every 5th
        # restart all of them (checking all after each restart takes minutes at the end).
        check_all(w, checks if k % 5 == 4 else checks[marks[-2] if len(marks) > 1 else 0:])
        marks.append(len(checks))
    check_all(w, checks)
    return stats


def test_random_kills_and_kills_during_saves_lose_nothing_and_always_restart(world, monkeypatch):
    rng = random.Random(SEED)
    points = ["snapshot-dump", "snapshot-write", "snapshot-rename", "journal-switch"]
    faults = [f"{p}:{1 + i % 2}" for i, p in enumerate(points * (3 if LONG else 1))]
    stats = _stream(world, rng, 40 if LONG else 26, faults, monkeypatch)
    print(f"seed {SEED}: {stats}")
    assert not replay_problems(world), replay_problems(world)[:5]
    assert stats["kills"] + stats["fault kills"] >= 30
    assert stats["restarts"] == stats["kills"] + stats["fault kills"]
    # no temp file is ever taken for a snapshot, and the newest snapshot always loads
    assert not list(store.chain_dir(world.workdir).glob("*.tmp.json"))


# ---------------------------------------------------------------------------- 3b. restarts
def test_twenty_restarts_with_writes_between_never_refuse_the_deployment(world):
    w = world
    checks: list[tuple[str, Check]] = []
    restarts = 40 if LONG else 20
    for k in range(restarts):
        checks.append(("enrol", effect_enrol(w, f"restart-{k}")))
        if k % 4 == 1:
            kill_node(w)
        elif k % 4 == 3:  # Anvil alone dies: its supervisor stops too, the next start replays
            info = node.node_status(w.workdir)
            os.kill(info.anvil_pid, signal.SIGKILL)
            _wait_dead(info.pid)
        else:
            node.node_stop(w.workdir)
        restart(w)  # open_deployment: refuses if the address book no longer knows the chain
        r = cli(w, "info")
        assert r.exit_code == 0 and "reset" not in r.stderr, r.stderr
    check_all(w, checks)
    print(f"{restarts} restarts (1/4 kill -9 of the supervisor, 1/4 of Anvil alone, 1/2 clean stops), "
          f"{len(checks)} writes, none lost")


def test_a_really_reset_chain_is_called_reset_and_deploy_says_it_starts_empty(world):
    w = world
    address = w.dep.address
    node.node_stop(w.workdir)
    aside = w.workdir / "chain-moved-away"
    store.chain_dir(w.workdir).rename(aside)  # a new, empty chain
    node.node_start(w.workdir)
    chain = C.connect(workdir=w.workdir, start_node=False)
    with pytest.raises(CityPassError, match="the node was reset.*`citypass deploy` starts a new, empty contract"):
        K.open_deployment(chain, workdir=w.workdir)
    assert chain.w3.eth.get_code(address) == b""


# ---------------------------------------------------------------------------- 4. time
def test_time_moved_on_the_dev_chain_survives_kills_and_stops(world):
    w = world
    before = w.chain.now()
    r = cli(w, "node", "advance", "31d")
    assert r.exit_code == 0, r.stderr
    moved = w.chain.now()
    assert moved >= before + 31 * DAY
    kill_node(w)
    restart(w)
    assert w.chain.now() >= moved
    # a new block is dated after its parent, and about 31 days ahead of the wall clock
    effect_enrol(w, "after-time")
    latest = w.chain.w3.eth.get_block("latest")
    parent = w.chain.w3.eth.get_block(latest.number - 1)
    assert latest.timestamp >= parent.timestamp >= moved
    assert latest.timestamp >= time.time() + 31 * DAY - 60
    node.node_stop(w.workdir)
    restart(w)
    assert w.chain.now() >= latest.timestamp
    r = cli(w, "node", "advance", "soon")
    assert r.exit_code == 2 and "duration 'soon'" in r.stderr


def test_a_journaled_redemption_is_replayed_at_its_own_time_after_its_deadline_passed(world, tmp_path):
    w = world
    r = _resident(w, "deadline")
    node.node_backup(w.workdir, tmp_path / "before.json")  # a snapshot: the restart loads it, then replays
    signed = _voucher(w, r, 600, ttl=5)
    redeemed = redemption.redeem(w.dep, w.pool, signed, 600)
    block = w.chain.w3.eth.get_transaction_receipt(redeemed.tx_hash).blockNumber
    stamp = w.chain.w3.eth.get_block(block).timestamp
    w.chain.advance_time(3 * DAY)  # the voucher's deadline is long past now
    assert w.chain.now() > signed.voucher.deadline
    snaps = store.snapshots(store.chain_dir(w.workdir))
    if snaps:  # the redemption is only in the journal, not in a snapshot
        newest = json.loads(store.snap_path(store.chain_dir(w.workdir), snaps[0]).read_bytes())
        best = newest["best_block_number"]
        assert (int(best, 0) if isinstance(best, str) else int(best)) < block
    time.sleep(max(0.0, signed.voucher.deadline + 1 - time.time()))  # past it on the wall clock too
    kill_node(w)
    restart(w)
    events = w.dep.events("Redeemed", argument_filters={"holder": r.address})
    assert len(events) == 1 and events[0].blockNumber == block
    assert w.chain.w3.eth.get_block(block).timestamp == stamp
    assert w.f.balanceOf(r.address, w.sport).call() == 5_000 - 600
    assert w.chain.now() >= stamp + 3 * DAY
    assert not replay_problems(w), replay_problems(w)[:5]


# ---------------------------------------------------------------------------- 5. backup and restore
def test_backup_of_a_running_node_and_restore_round_trip(world, tmp_path):
    w = world
    kept = effect_enrol(w, "before-backup")
    backup = tmp_path / "pilot-backup.json"
    r = cli(w, "node", "backup", str(backup))
    assert r.exit_code == 0 and backup.exists(), r.stderr
    after = holder("after-backup")
    w.send(w.issuer, w.f.enrollPasses([after], w.end))
    r = cli(w, "node", "restore", str(backup))
    assert r.exit_code == 0, r.stderr
    restart(w)
    kept(w)
    assert w.f.passOf(after).call()[0] == 0  # written after the backup: not in it
    assert list(w.workdir.glob("chain-before-restore-*")), "the replaced chain was deleted"
    kill_node(w)
    restart(w)  # a restored chain is as durable as any
    kept(w)
    bad = tmp_path / "torn.json"
    bad.write_bytes(backup.read_bytes()[:1000])
    r = cli(w, "node", "restore", str(bad))
    assert r.exit_code == 1 and "not a readable snapshot" in r.stderr
    kept(w)


# ---------------------------------------------------------------------------- 6. from outside the library
def test_a_raw_transaction_posted_to_the_endpoint_by_a_wallet_is_durable(world):
    """A browser wallet signs itself and posts eth_sendRawTransaction to the endpoint."""
    w = world
    url = node.node_status(w.workdir).rpc_url
    h = holder("wallet")

    def post(method: str, params: list) -> Any:
        answer = requests.post(url, json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).json()
        assert "error" not in answer, answer
        return answer["result"]

    registrar = w.issuer
    built = w.f.enrollPasses([h], w.end).build_transaction({
        "from": registrar.address, "nonce": int(post("eth_getTransactionCount", [registrar.address, "pending"]), 16),
        "gas": 200_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": 31337})
    signed = registrar.sign_transaction(built)
    tx_hash = post("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    receipt = None
    while receipt is None:
        receipt = post("eth_getTransactionReceipt", [tx_hash])
    assert receipt["status"] == "0x1"
    kill_node(w)
    restart(w)
    assert w.f.passOf(h).call()[0] == 1
    url = node.node_status(w.workdir).rpc_url
    refused = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction",
                                       "params": [{"from": registrar.address, "to": h}]}).json()
    assert "sign locally" in refused["error"]["message"]


def test_node_status_shows_the_endpoint_and_persist_false_stays_a_bare_node(world, tmp_path):
    r = cli(world, "--json", "node", "status")
    status = json.loads(r.stdout)
    assert status["running"] and status["durable"] and status["rpc"].startswith("http://127.0.0.1:")
    info, started = node.node_start(tmp_path / "bench", persist=False)
    try:
        assert started and not info.durable and not store.chain_dir(tmp_path / "bench").exists()
    finally:
        node.node_stop(tmp_path / "bench")


# ---------------------------------------------------------------------------- 7. Brownie scripts too
def test_a_brownie_script_reaches_the_chain_through_the_supervisor_and_its_transaction_survives(world, tmp_path):
    """`citypass node brownie` points a Brownie network at the supervisor's endpoint; a
    Brownie script's deployment is journaled there: the node is killed right after the script
    reported it, and after the restart the contract is on chain (a script that went to Anvil
    behind the supervisor's back would have lost it)."""
    import yaml

    w = world
    (tmp_path / "home").mkdir()
    env = {**cli_env(), "HOME": str(tmp_path / "home"), "CITYPASS_HOME": str(w.workdir)}  # Brownie's data apart
    r = subprocess.run([sys.executable, "-m", "citypass", "node", "brownie"], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    url = node.node_status(w.workdir).rpc_url
    assert r.returncode == 0 and f"Brownie network 'citypass': {url}" in r.stderr, r.stderr
    config = yaml.safe_load((tmp_path / "home" / ".brownie" / "network-config.yaml").read_text())
    hosts = [n["host"] for group in config["live"] for n in group["networks"] if n["id"] == "citypass"]
    assert hosts == [url]
    brownie = str(Path(sys.executable).parent / "brownie")
    r = subprocess.run([brownie, "run", "scripts/deploy.py", "--network", "citypass"], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    address = to_checksum_address(r.stdout.split("CityPass deployed at ")[1].split()[0])
    head = w.chain.w3.eth.block_number
    created = [h for n in range(max(0, head - 20), head + 1) for h in w.chain.w3.eth.get_block(n).transactions
               if w.chain.w3.eth.get_transaction_receipt(h).contractAddress == address]
    assert len(created) == 1
    journaled = {e["h"] for g in store.journals(store.chain_dir(w.workdir))
                 for e in store.read_journal(store.journal_path(store.chain_dir(w.workdir), g)) if e.get("t") == "tx"}
    assert "0x" + bytes(created[0]).hex() in journaled
    kill_node(w)  # right after the script's success
    restart(w)
    assert w.chain.w3.eth.get_code(address) != b""
    assert node.node_status(w.workdir).rpc_url == url  # the port is kept: the Brownie network stays valid
    if not LONG:
        return
    r = subprocess.run([brownie, "run", "scripts/deploy.py", "--network", "citypass"], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    assert r.returncode == 0 and "CityPass deployed at" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


# ---------------------------------------------------------------------------- the journal's group commit
def test_concurrent_journal_appends_share_fsyncs_and_every_line_is_whole(tmp_path, monkeypatch):
    """Many senders at once: each append returns only once its lines are fsynced, and
    appends that wait together share one fsync (group commit)."""
    journal = store.Journal(tmp_path / "journal-00000000.jsonl")
    durable = [0]  # bytes of the file an fsync has finished with
    late: list[str] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:  # a disk that takes its time: appends queue up behind it
        size = os.fstat(fd).st_size
        time.sleep(0.01)
        real_fsync(fd)
        durable[0] = max(durable[0], size)
    monkeypatch.setattr(store.os, "fsync", slow_fsync)

    def sender(t: int) -> None:
        for i in range(25):
            journal.append({"t": "tx", "h": f"{t}-{i}", "raw": "0x" + "ab" * 100})
            data = journal.path.read_bytes()
            end = data.index(f'"h":"{t}-{i}"'.encode())
            if data.index(b"\n", end) >= durable[0]:
                late.append(f"{t}-{i}")  # returned before its line was on disk

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    journal.close()
    lines = list(store.read_journal(journal.path))
    assert sorted(e["h"] for e in lines) == sorted(f"{t}-{i}" for t in range(8) for i in range(25))
    assert not late and journal.entries == 200, late[:5]
    print(f"group commit: {journal.fsyncs} fsyncs for 200 appends from 8 threads")
    assert journal.fsyncs < 200 / 3, f"{journal.fsyncs} fsyncs for 200 concurrent appends: no group commit"
