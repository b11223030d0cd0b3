"""Exactly once per (budget, tranche, holder), learned from the chain's own events: an edited
file never credits anyone twice (issue 11, item 1). Through the `citypass issue` command,
on the package's embedded Anvil; synthetic residents only."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_utils import keccak, to_checksum_address

from citypass.cli import main
from tests.ops_helpers import World, cli, make_world


def addr(label: str) -> str:
    return to_checksum_address(keccak(text=f"tranche-test-{label}")[-20:])


A, B, C, D = addr("a"), addr("b"), addr("c"), addr("d")


def write(tmp_path: Path, name: str, rows: list[tuple[str, str]]) -> Path:
    p = tmp_path / name
    p.write_text("holder,amount\n" + "".join(f"{h},{a}\n" for h, a in rows))
    return p


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("tranches"))


@pytest.fixture
def w(world):
    yield from world.rolled_back()


def balances(w: World, *holders: str) -> list[int]:
    return w.f.balanceOfBatch(list(holders), [w.sport] * len(holders)).call()


def issued(w: World) -> int:
    return w.f.budgetTotals(w.sport).call()[1]


def sent(w: World) -> int:
    return w.chain.w3.eth.get_transaction_count(w.issuer.address)


def issue(w: World, path: Path, *args: str):
    return cli(w, "issue", str(path), "--budget", "1", *args)


def test_the_clerks_fixed_file_credits_nobody_twice(w, tmp_path):
    """The case from the issue: 3 residents issued, one amount fixed, the file run again."""
    first = write(tmp_path, "sport.csv", [(A, "125.00"), (B, "125.00"), (C, "125.00")])
    assert issue(w, first).exit_code == 0
    assert balances(w, A, B, C) == [12_500] * 3 and issued(w) == 37_500

    fixed = write(tmp_path, "sport-fixed.csv", [(A, "125.00"), (B, "150.00"), (C, "125.00")])
    nonce = sent(w)
    r = issue(w, fixed)
    assert r.exit_code == 1, r.stderr
    assert r.stderr.splitlines()[:2] == [
        f"error: {fixed}: 1 problem, nothing was sent:",
        f"  line 3: amount: {B} already received €125.00 from this budget, not the €150.00 on this line; to credit "
        "only the difference (€25.00) run again with --top-up; for a second round of credit, use a new --tranche",
    ]
    assert balances(w, A, B, C) == [12_500] * 3 and issued(w) == 37_500 and sent(w) == nonce

    # The explicit top-up sends the difference only, to that resident only.
    up = issue(w, fixed, "--top-up")
    assert up.exit_code == 0, up.stderr
    assert f"line 3: {B} received €125.00 before; topping up €25.00 to €150.00" in up.stderr
    assert "ok: every holder in the file received exactly its amount in this tranche" in up.stdout
    assert balances(w, A, B, C) == [12_500, 15_000, 12_500] and issued(w) == 40_000

    # Now the file and the chain agree: nothing more, with or without --top-up.
    for extra in ((), ("--top-up",)):
        again = issue(w, fixed, *extra)
        assert again.exit_code == 0 and "everything in this file was issued before: nothing to send" in again.stderr
    # The original file now says less than B received: refused, pointing at the correction.
    lower = issue(w, first)
    assert lower.exit_code == 1 and "already received €150.00 from this budget, more than the €125.00" in lower.stderr
    assert "`correct`" in lower.stderr
    assert issued(w) == 40_000


def test_one_holder_removed_and_one_added(w, tmp_path):
    assert issue(w, write(tmp_path, "v1.csv", [(A, "20"), (B, "30"), (C, "40")])).exit_code == 0
    edited = write(tmp_path, "v2.csv", [(A, "20"), (C, "40"), (D, "50")])  # B removed, D added
    r = issue(w, edited)
    assert r.exit_code == 0, r.stderr
    assert "sending 1 transaction(s): 1 residents (1 new), €50.00" in r.stderr
    assert "1 resident(s) credited earlier in this tranche are not in this file (€30.00); their credit stays" in r.stderr
    assert balances(w, A, B, C, D) == [2_000, 3_000, 4_000, 5_000] and issued(w) == 14_000
    assert "MISMATCH" not in r.stdout


def test_row_order_and_batch_size_do_not_matter(w, tmp_path):
    rows = [(addr(f"r{i}"), f"{10 + i}.50") for i in range(7)]
    assert issue(w, write(tmp_path, "a.csv", rows), "--batch-size", "3").exit_code == 0
    total = issued(w)
    for size in ("2", "5", "1"):
        shuffled = write(tmp_path, f"b{size}.csv", list(reversed(rows)))
        r = issue(w, shuffled, "--batch-size", size)
        assert r.exit_code == 0 and "nothing to send" in r.stderr, r.stderr
        assert "7 of 7 residents in this file already received their amount from this budget (3 earlier batch" in r.stderr
    assert issued(w) == total


def test_a_rerun_from_another_work_directory_knows_the_same(w, tmp_path):
    """No local state: a clerk on another machine (an empty work directory) plans the same."""
    first = write(tmp_path, "sport.csv", [(A, "125.00"), (B, "125.00"), (C, "125.00")])
    assert issue(w, first).exit_code == 0
    elsewhere = tmp_path / "other-machine"
    runner = CliRunner(mix_stderr=False)
    common = ["--workdir", str(elsewhere), "--rpc", w.chain.rpc_url, "--contract", w.dep.address]
    env = {"CITYPASS_RPC": None, "CITYPASS_FROM": None, "CITYPASS_HOME": None}
    again = runner.invoke(main, [*common, "issue", str(first), "--budget", "1"], env=env, catch_exceptions=False)
    assert again.exit_code == 0 and "nothing to send" in again.stderr, again.stderr
    fixed = write(tmp_path, "fixed.csv", [(A, "125.00"), (B, "150.00"), (C, "125.00")])
    refused = runner.invoke(main, [*common, "issue", str(fixed), "--budget", "1"], env=env, catch_exceptions=False)
    assert refused.exit_code == 1 and f"{B} already received €125.00" in refused.stderr
    assert issued(w) == 37_500 and not (elsewhere / "issuance").exists()


def test_a_named_tranche_is_a_deliberate_second_round(w, tmp_path):
    path = write(tmp_path, "sport.csv", [(A, "10"), (B, "10")])
    assert issue(w, path).exit_code == 0
    second = issue(w, path, "--tranche", "autumn")
    assert second.exit_code == 0 and "sending 1 transaction(s): 2 residents (0 new), €20.00" in second.stderr
    assert balances(w, A, B) == [2_000, 2_000]
    assert "nothing to send" in issue(w, path, "--tranche", "autumn").stderr
    # each tranche is checked on its own: an edit in one does not leak into the other
    edited = write(tmp_path, "edited.csv", [(A, "12"), (B, "10")])
    r = issue(w, edited, "--tranche", "autumn")
    assert r.exit_code == 1 and "in tranche 'autumn'" in r.stderr


def test_role_holders_are_refused_unless_intended(w, tmp_path):
    manager = w.budget_manager.address
    path = write(tmp_path, "roles.csv", [(A, "10"), (manager, "10")])
    r = issue(w, path)
    assert r.exit_code == 1 and f"line 3: holder: {manager} holds the municipal BUDGET_MANAGER role" in r.stderr
    assert "--allow-role-holders" in r.stderr and issued(w) == 0
    ok = issue(w, path, "--allow-role-holders")
    assert ok.exit_code == 0, ok.stderr
    assert balances(w, A, manager) == [1_000, 1_000]


# ---------------------------------------------------------------------------- reading the events
def test_reading_mints_is_tolerant_of_skipped_residents_and_other_logs():
    """Contract v2 may skip a resident (IssueSkipped) and credit the others: the skipped one
    simply received nothing. Mints of other budgets, other contracts' logs and TransferBatch
    mints are read right; credit that followed a migrated pass counts for its new address."""
    from types import SimpleNamespace

    from eth_abi import encode

    from citypass import issuance as I

    contract, budget = addr("contract"), 7 << 128
    tag = I.tranche_tag(31337, contract, budget, "")
    ours, other_tranche = tag + b"\x01" * 24, b"\x02" * 32

    def topic(value):
        if isinstance(value, int):
            return "0x" + value.to_bytes(32, "big").hex()
        return "0x" + (value if isinstance(value, bytes) else bytes.fromhex(value[2:]).rjust(32, b"\0")).hex()

    def log(address, signature, *topics, data=b""):
        return {"address": address, "topics": ["0x" + keccak(text=signature).hex(), *map(topic, topics)],
                "data": "0x" + data.hex()}

    single = "TransferSingle(address,address,address,uint256,uint256)"
    zero = "0x" + "00" * 20
    receipt = {"logs": [
        log(contract, single, addr("issuer"), zero, A, data=encode(["uint256", "uint256"], [budget, 1_000])),
        log(contract, single, addr("issuer"), zero, A, data=encode(["uint256", "uint256"], [budget + 1, 99])),
        log(addr("elsewhere"), single, addr("issuer"), zero, B, data=encode(["uint256", "uint256"], [budget, 5])),
        log(contract, "IssueSkipped(bytes32,address,uint256)", ours, B, data=encode(["uint256"], [2_000])),
        log(contract, "TransferBatch(address,address,address,uint256[],uint256[])", addr("issuer"), zero, C,
            data=encode(["uint256[]", "uint256[]"], [[budget, budget + 1], [300, 4]])),
        log(contract, "BatchIssued(bytes32,uint256,uint256,uint256)", ours, budget, data=encode(["uint256", "uint256"], [2, 1_300])),
        log(contract, single, addr("issuer"), zero, D, data=encode(["uint256", "uint256"], [budget, 50])),
        log(contract, "BatchIssued(bytes32,uint256,uint256,uint256)", other_tranche, budget, data=encode(["uint256", "uint256"], [1, 50])),
    ]}
    events = [SimpleNamespace(args=SimpleNamespace(batchId=b), transactionHash=b"\xaa" * 32) for b in (ours, other_tranche)]
    dep = SimpleNamespace(address=contract, events=lambda name, argument_filters=None: events,
                          chain=SimpleNamespace(rpc_batch=lambda calls: [receipt for _ in calls]))
    got = I.read_received(dep, budget, tag, moved={C: D})
    assert got.batches == {ours: {A: 1_000, C: 300}}
    assert got.by_holder == {A: 1_000, D: 300} and got.skipped == {B: 2_000}
