"""Helpers for the fault tests (tests/test_faults.py): the `citypass` command as a separate
process (so it can be SIGKILLed), synthetic issuance files, chain-side checks that an
issuance happened exactly once, and a provider process that redeems vouchers
(`python -m tests.faults_helpers redeem ...`). Synthetic data only."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address

from citypass.faults import fault_point  # noqa: F401  (the hook the processes below obey)
from tests.ops_helpers import DAY, SPORT, World, synthetic_account

ROOT = Path(__file__).resolve().parent.parent
# `make faults-long` (CITYPASS_LONG=1): the full sizes; `make test`: a short version.
LONG = os.environ.get("CITYPASS_LONG") == "1"
SIGKILLED = -9


def seed() -> int:
    """CITYPASS_FAULT_SEED, or a fresh one: the tests print it, so a failure can be replayed."""
    text = os.environ.get("CITYPASS_FAULT_SEED")
    return int(text) if text else random.SystemRandom().randrange(1_000_000)


def _env(fault: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CITYPASS_RPC", "CITYPASS_FROM", "CITYPASS_FAULT", "CITYPASS_CONTRACT")}
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if fault:
        env["CITYPASS_FAULT"] = fault
    return env


def citypass_args(w: World, *args: str) -> list[str]:
    return [sys.executable, "-m", "citypass", "--workdir", str(w.workdir), *args]


def run_citypass(w: World, *args: str, fault: str | None = None, timeout: float = 600,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`citypass ARGS` as its own process; CITYPASS_FAULT=`fault` if given."""
    return subprocess.run(citypass_args(w, *args), capture_output=True, text=True, env=_env(fault, env), cwd=ROOT,
                          timeout=timeout)


def start_citypass(w: World, *args: str, fault: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(citypass_args(w, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(fault), cwd=ROOT)


def rerun_while_mining_stopped(w: World, args: tuple[str, ...], mine: Any, timeout: float = 600) -> tuple[int, str, str]:
    """Starts `citypass ARGS` while the node mines nothing; once the command has picked its
    signer (the line just before it checks for transactions still in flight), calls `mine()`
    a moment later. Returns (exit code, stdout, stderr)."""
    proc = start_citypass(w, *args)
    lines: list[str] = []
    signer_chosen = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("signing as "):
                signer_chosen.set()
        signer_chosen.set()  # ended without choosing one: nothing to wait for

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    signer_chosen.wait(timeout)
    time.sleep(0.5)  # the command is polling for its in-flight transaction now
    mine()
    out = proc.stdout.read()
    proc.wait(timeout)
    reader.join(timeout)
    return proc.returncode, out, "".join(lines)


def start_python(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(None), cwd=ROOT)


def residents_file(folder: Path, label: str, rows: int) -> tuple[Path, dict[str, int]]:
    """An issuance file of `rows` synthetic residents (addresses derived from `label`), with
    amounts that differ per row (1.00 to 50.99 euro); returns it and {holder: cents}."""
    amounts = {}
    for i in range(rows):
        holder = to_checksum_address(keccak(text=f"faults-{label}-{i}")[-20:])
        amounts[holder] = 100 + (i * 7919) % 5_000
    path = folder / f"{label}.csv"
    path.write_text("holder,amount\n" + "".join(f"{h},{c // 100}.{c % 100:02d}\n" for h, c in amounts.items()))
    return path, amounts


def new_budget(w: World, name: str, cap: int = 10**12) -> int:
    """A fresh sport budget (its own issued counter), running as long as the world's."""
    now = w.chain.now()
    w.send(w.budget_manager, w.f.createBudget(SPORT, now - DAY, w.end, cap, name))
    return int(w.f.budgets().call()[-1])


def sent_count(w: World, address: str) -> int:
    return w.chain.w3.eth.get_transaction_count(address)


def batch_events(w: World, budget: int) -> list[Any]:
    return w.dep.events("BatchIssued", argument_filters={"budget": budget})


def issued_exactly_once(w: World, budget: int, amounts: dict[str, int], sent_before: int, why: str) -> None:
    """Asserts from chain state alone that the file was issued exactly once: every resident
    holds exactly its amount, the budget's issued counter is the file total, the BatchIssued
    events add up to the file, and every issuer transaction since `sent_before` was one of
    those batches (nothing failed, nothing was sent twice)."""
    holders = list(amounts)
    balances = []
    for start in range(0, len(holders), 500):
        part = holders[start:start + 500]
        balances += w.f.balanceOfBatch(part, [budget] * len(part)).call()
    wrong = [(h, b, amounts[h]) for h, b in zip(holders, balances) if b != amounts[h]]
    assert not wrong, f"{why}: {len(wrong)} residents hold the wrong amount, e.g. {wrong[:3]} (holder, has, should)"
    total = sum(amounts.values())
    assert int(w.f.budgetTotals(budget).call()[1]) == total, f"{why}: budget issued counter != file total {total}"
    events = batch_events(w, budget)
    assert sum(int(e.args["count"]) for e in events) == len(amounts), f"{why}: BatchIssued counts != rows"
    assert sum(int(e.args.total) for e in events) == total, f"{why}: BatchIssued totals != file total"
    assert len({bytes(e.args.batchId) for e in events}) == len(events)
    assert sent_count(w, w.issuer.address) - sent_before == len(events), (
        f"{why}: the issuer sent {sent_count(w, w.issuer.address) - sent_before} transactions for "
        f"{len(events)} batches (a failed or repeated transaction)")


def txpool_empty(w: World) -> dict[str, int]:
    status = w.chain.rpc("txpool_status")
    return {k: int(v, 16) if isinstance(v, str) else int(v) for k, v in status.items()}


def nonces_by_sender(w: World, first_block: int, senders: set[str]) -> dict[str, list[int]]:
    """The nonces of every transaction of `senders` mined since `first_block`, in block order."""
    out: dict[str, list[int]] = {s: [] for s in senders}
    last = w.chain.w3.eth.block_number
    calls = [("eth_getBlockByNumber", [hex(n), True]) for n in range(first_block, last + 1)]
    for start in range(0, len(calls), 200):
        for block in w.chain.rpc_batch(calls[start:start + 200]):
            for t in block["transactions"]:
                sender = to_checksum_address(t["from"])
                if sender in out:
                    out[sender].append(int(t["nonce"], 16))
    return out


# ---------------------------------------------------------------------------- provider process
def redeem_main(argv: list[str]) -> int:
    """A provider's till as its own process: redeems each scan of --vouchers (`QR,CENTS` a
    line), one by one (`redeem`) or in batches (`redeem_batch`), and writes one JSON
    line per voucher to --out: {"voucher", "redeemed", "reason", "tx"}."""
    from citypass import chain as C
    from citypass import contract as K
    from citypass import passqr, redemption
    from citypass.errors import CityPassError

    parser = argparse.ArgumentParser(prog="tests.faults_helpers redeem")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--provider-label", required=True)
    parser.add_argument("--mode", choices=("single", "batch"), required=True)
    parser.add_argument("--vouchers", required=True)
    parser.add_argument("--out", required=True)
    a = parser.parse_args(argv)
    chain = C.connect(workdir=a.workdir, start_node=False)
    dep = K.open_deployment(chain, workdir=a.workdir)
    account = synthetic_account(a.provider_label)
    encoded = Path(a.vouchers).read_text().splitlines()

    def scan(line: str) -> redemption.Scan:  # QR,AMOUNT (cents)
        text, cents = line.rsplit(",", 1)
        return redemption.Scan(passqr.decode(text).vouchers()[0], int(cents))

    outcomes = []
    if a.mode == "single":
        for text in encoded:
            try:
                s = scan(text)
                r = redemption.redeem(dep, account, s.signed, s.amount)
                outcomes.append({"voucher": text, "redeemed": True, "reason": None, "tx": r.tx_hash})
            except CityPassError as exc:
                outcomes.append({"voucher": text, "redeemed": False, "reason": str(exc), "tx": None})
    else:
        for start in range(0, len(encoded), 4):
            part = encoded[start:start + 4]
            for text, o in zip(part, redemption.redeem_batch(dep, account, [scan(t) for t in part])):
                outcomes.append({"voucher": text, "redeemed": o.redeemed, "reason": None if o.redeemed else o.message,
                                 "tx": o.tx_hash})
    Path(a.out).write_text("".join(json.dumps(o) + "\n" for o in outcomes))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["redeem"]:
        sys.exit("usage: python -m tests.faults_helpers redeem --workdir W --provider-label L --mode single|batch "
                 "--vouchers FILE --out FILE")
    sys.exit(redeem_main(sys.argv[2:]))
