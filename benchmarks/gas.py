"""Gas per operation and throughput, side by side with the targets and baselines.

    make bench            (or: python -m benchmarks.gas [--residents 500])

Runs on a fresh embedded Anvil in a temporary directory, through the citypass package,
and prints whole-transaction gas as Anvil reports it. "Marginal" is the cost of one more
resident in a batch: (gas(N) - gas(N/2)) / (N/2); "average" is gas(N) / N.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass

from eth_account import Account
from eth_utils import keccak

from citypass import chain as chain_mod
from citypass import contract, keys, node, tx
from citypass import voucher as V

SPORT, CULTURE, EDUCATION = 0, 1, 2
DAY = 86_400


@dataclass
class Row:
    operation: str
    measured: float
    target: float | None
    baselines: str


def resident(i: int, tag: str = "bench") -> Account:
    """Synthetic resident keys (never real people)."""
    return Account.from_key(keccak(text=f"citypass-{tag}-{i}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=500, help="batch size for the issuance figures")
    parser.add_argument("--redemptions", type=int, default=300, help="vouchers for the throughput figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citypass-bench-") as workdir:
        try:
            rows, notes = run(workdir, args.residents, args.redemptions)
        finally:
            node.node_stop(workdir)
    print_table(rows, notes)


def run(workdir: str, n: int, redemptions: int) -> tuple[list[Row], list[str]]:
    ch = chain_mod.connect(workdir=workdir)
    admin, office, providers_mgr, treasurer, pool_key = (keys.dev_account(i) for i in (0, 1, 2, 3, 4))
    # One "office" account holds the budget manager, registrar and issuer roles here: the
    # benchmark measures gas, not the four-eyes set-up (the demo shows that).
    dep = contract.deploy(
        ch, admin, admin=admin.address, budget_manager=office.address, provider_manager=providers_mgr.address,
        registrar=office.address, issuer=office.address, treasurer=treasurer.address, pauser=admin.address,
        workdir=workdir,
    )
    c = dep.contract
    now = ch.now()
    start, end = now - DAY, now + 200 * DAY
    send = lambda acct, fn, **kw: tx.send(ch, acct, fn, **kw)  # noqa: E731
    ids = []
    for cat, name in ((SPORT, "Sport bench"), (CULTURE, "Culture bench")):
        receipt = send(office, c.functions.createBudget(cat, start, end, 10**15, name))
        ids.append(c.events.BudgetCreated().process_receipt(receipt)[0]["args"]["budget"])
    sport, culture = ids
    send(providers_mgr, c.functions.addProvider(pool_key.address, (1 << SPORT) | (1 << CULTURE), 0))
    valid_until = now + 365 * DAY

    rows: list[Row] = []
    notes: list[str] = []

    # --- enrol + credit, credit existing: batches of n/2 and n, with and without access list
    half = n // 2
    results: dict[tuple[str, bool, int], int] = {}
    for with_al in (False, True):
        for size in (half, n):
            tag = f"{'al' if with_al else 'plain'}-{size}"
            holders = [resident(i, tag).address for i in range(size)]
            amounts = [15_000] * size
            fn = c.functions.enrollAndIssue(keccak(text=f"enrol-{tag}"), sport, valid_until, holders, amounts)
            results[("enrol", with_al, size)] = _send_measured(ch, office, fn, with_al)
            fn = c.functions.issue(keccak(text=f"credit-{tag}"), culture, holders, amounts)
            results[("credit", with_al, size)] = _send_measured(ch, office, fn, with_al)

    def figures(kind: str, with_al: bool) -> tuple[float, float]:
        big, small = results[(kind, with_al, n)], results[(kind, with_al, half)]
        return (big - small) / (n - half), big / n

    for kind, label, target, baselines in (
        ("enrol", "enrol + credit one more new resident", 50_000, "naive 51,500; floor 49,600"),
        ("credit", "credit one more enrolled resident (new budget)", 30_000,
         "naive 31,400; OZ mint loop 28,900 (no checks); best airdrop 29,900"),
    ):
        for with_al in (True, False):
            marginal, average = figures(kind, with_al)
            suffix = "access list" if with_al else "no access list"
            rows.append(Row(f"{label}, batch of {n}, {suffix}: marginal", marginal, target, baselines))
            rows.append(Row(f"{label}, batch of {n}, {suffix}: average", average, None, ""))

    # --- redemption: holders who already hold credit, provider who already holds credit
    holders = [resident(i, f"al-{n}") for i in range(redemptions)]
    warm = V.sign(V.build(holders[0].address, pool_key.address, sport, 100, nonce=0), holders[0].key, ch.chain_id, dep.address)
    send(pool_key, c.functions.redeem(warm.voucher.contract_args(), V.compact_signature(warm)))
    singles = []
    for h in holders[1:11]:
        signed = V.sign(V.build(h.address, pool_key.address, sport, 1_250, nonce=0, co_payment=500), h.key, ch.chain_id, dep.address)
        receipt = send(pool_key, c.functions.redeem(signed.voucher.contract_args(), V.compact_signature(signed)))
        singles.append(receipt.gasUsed)
    rows.append(Row("redeem one voucher (balances exist), median of 10", statistics.median(singles), 50_000,
                    "naive 62,300; floor 49,000; PBM merchant payment 105,000"))

    # a second voucher of the same holder (nonce 1): same slots, so the same cost
    h = holders[1]
    signed = V.sign(V.build(h.address, pool_key.address, sport, 700, nonce=1), h.key, ch.chain_id, dep.address)
    receipt = send(pool_key, c.functions.redeem(signed.voucher.contract_args(), V.compact_signature(signed)))
    rows.append(Row("redeem the same resident's next voucher", receipt.gasUsed, 50_000, ""))

    # batch of 50 vouchers collected offline
    batch = [V.sign(V.build(h.address, pool_key.address, culture, 900, nonce=0), h.key, ch.chain_id, dep.address)
             for h in holders[11:61]]
    receipt = send(pool_key, c.functions.redeemBatch([s.voucher.contract_args() for s in batch],
                                                      [V.compact_signature(s) for s in batch]))
    rows.append(Row("redeem in a batch of 50: per voucher", receipt.gasUsed / 50, None, ""))

    # --- throughput: sign and submit vouchers (pipelined, one provider wallet)
    pending = holders[61:redemptions]
    t0 = time.perf_counter()
    signed_all = [V.sign(V.build(h.address, pool_key.address, sport, 300, nonce=2, co_payment=0, ttl=3600),
                         h.key, ch.chain_id, dep.address) for h in pending]
    t_sign = time.perf_counter() - t0
    fns = [c.functions.redeem(s.voucher.contract_args(), V.compact_signature(s)) for s in signed_all]
    t0 = time.perf_counter()
    tx.send_many(ch, pool_key, fns)
    t_send = time.perf_counter() - t0
    rows.append(Row("vouchers signed per second (resident side)", len(pending) / t_sign, None, ""))
    rows.append(Row(f"redemptions per second, {len(pending)} pipelined from one provider wallet", len(pending) / t_send,
                    None, "sync send-and-wait loop ~170 tx/s (TOOLCHAIN.md)"))
    notes.append(f"chain: {ch.name}; contract {dep.address}")
    return rows, notes


def _send_measured(ch, account, fn, with_access_list: bool) -> int:
    access_list = None
    if with_access_list:
        access_list = tx.access_list(ch, account.address, fn)
    receipt = tx.send(ch, account, fn, access_list=access_list)
    return receipt.gasUsed


def print_table(rows: list[Row], notes: list[str]) -> None:
    width = max(len(r.operation) for r in rows)
    print(f"{'operation'.ljust(width)}  {'measured':>10}  {'target':>8}  status  baselines")
    for r in rows:
        target = f"{r.target:,.0f}" if r.target else ""
        status = ("ok" if r.measured <= r.target else "OVER") if r.target else ""
        measured = f"{r.measured:,.0f}" if r.measured >= 100 else f"{r.measured:,.1f}"
        print(f"{r.operation.ljust(width)}  {measured:>10}  {target:>8}  {status:6}  {r.baselines}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
