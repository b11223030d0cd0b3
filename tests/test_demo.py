"""The demo scenario, small (20 residents, 40 redemptions), on its own embedded Anvil in a
tmp work directory: it must reconcile to the cent and write a complete report. The checks
read the chain again through the package's web3 event path (Deployment.events), not
through citypass.events, so the report is compared with an independent count."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from citypass import demo
from citypass.chain import connect
from citypass.contract import open_deployment
from citypass.errors import CityPassError
from citypass.node import node_status, node_stop
from citypass.reasons import Reason

RESIDENTS, REDEMPTIONS = 20, 40
SINGLE_SCANS = 5  # four at the till before the refusals (one refundable), one from the new phone


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    console = Console(file=out, width=140)
    workdir = base / "chain"
    try:
        result = demo.run(demo.Scenario(RESIDENTS, REDEMPTIONS, rounds=4, seed=7), workdir, base / "report", console,
                          keep_node=True)
        dep = open_deployment(connect(None, workdir=workdir, start_node=False), workdir=workdir)
        yield result, dep, out.getvalue(), base / "report"
    finally:
        node_stop(workdir)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_refusal_has_its_plain_reason(run):
    result, _, output, _ = run
    assert dict(result.refusals) == {
        "replayed voucher": Reason.NonceUsed,
        "wrong category": Reason.CategoryNotApproved,
        "above the QR's limit": Reason.AboveVoucherLimit,
        "made out to another provider": Reason.WrongProvider,
        "not enough credit": Reason.InsufficientCredit,
        "deadline passed": Reason.VoucherExpired,
        "replayed voucher in an offline batch": Reason.NonceUsed,
        "old phone after migration": Reason.PassMigrated,
        "revoked pass": Reason.PassRevoked,
    }
    flat = output.replace("\n", " ")
    for _, reason in result.refusals:
        if reason == Reason.WrongProvider:  # the till names both addresses instead of the code's words
            assert "this voucher is made out to provider" in flat
        else:
            assert reason.message.split(";")[0] in flat


def test_totals_reconcile_and_agree_with_the_chain(run):
    result, dep, output, _ = run
    assert len(result.reconciliation) == 2 * 3 + 1  # two lines per budget and the total
    assert all(line in output.replace("\n", " ") or line[:60] in output for line in result.reconciliation)
    assert any(c.startswith("all ") and "agree with balanceOf" in c for c in result.chain_checks), result.chain_checks
    assert not any(c.startswith("FINDING") for c in result.chain_checks), result.chain_checks
    settled = sum(int(e.args.amount) for e in dep.events("Settled"))
    reclaimed = sum(int(e.args.total) for e in dep.events("Reclaimed"))
    issued = sum(int(e.args.total) for e in dep.events("BatchIssued"))
    corrected = sum(int(e.args.amount) for e in dep.events("Corrected"))
    s = result.summary
    assert (s.total("issued"), s.total("settled"), s.total("reclaimed"), s.total("corrected")) == (
        issued, settled, reclaimed, corrected)
    assert corrected == 1_000
    assert issued == settled + reclaimed + corrected  # every provider settled, every leftover reclaimed
    for b in s.budgets:
        assert b.held_by_providers == 0 and b.held_by_residents == 0
        assert b.provider_received == b.settled


def test_redemptions_count_and_report_rows_match_the_events(run):
    result, dep, _, report = run
    redeemed = dep.events("Redeemed")
    assert len(redeemed) == result.redeemed == REDEMPTIONS + SINGLE_SCANS
    assert len(rows(report / "redemptions.csv")) == len(redeemed)
    assert sum(int(r["redemptions"]) for r in rows(report / "weeks.csv")) == len(redeemed)
    assert sum(int(r["redemptions"]) for r in rows(report / "providers.csv")) == len(redeemed)
    budgets = rows(report / "budgets.csv")
    assert [b["name"].split()[0] for b in budgets] == ["Sport", "Culture", "Education"]
    assert sum(round(float(b["settled_eur"]) * 100) for b in budgets) == sum(int(e.args.amount) for e in dep.events("Settled"))
    assert len(rows(report / "categories.csv")) == 3
    skipped = dep.events("VoucherSkipped")
    assert [int(e.args.reason) for e in skipped] == [Reason.NonceUsed]


def test_the_refund_returns_a_refundable_payment(run):
    """The demo refunds the one payment the clerk marked refundable, all of it: one Refunded
    event whose nonce, provider and amount are those of that redemption (the payment just
    before its Redeemed), and the RefundableRedemption the chain stored says the same."""
    result, dep, output, _ = run
    (refund,) = dep.events("Refunded")
    r = refund.args
    (stored,) = dep.events("RefundableRedemption")
    assert (stored.args.holder, stored.args.budget, stored.args.nonce, stored.args.amount) == (
        r.holder, r.budget, r.redemptionNonce, r.amount)
    assert dep.contract.functions.refundableOf(r.holder, r.budget, r.redemptionNonce).call()[1] == 0
    (redeemed,) = [e for e in dep.events("Redeemed") if (e.args.holder, e.args.nonce) == (r.holder, r.redemptionNonce)
                   and any(p.transactionHash == e.transactionHash and p.logIndex == e.logIndex - 1
                           and (p.args["from"], p.args.to, p.args.id, p.args.value) == (r.holder, r.provider, r.budget, r.amount)
                           for p in dep.events("TransferSingle"))]
    assert result.summary.total("refunded") == r.amount > 0
    assert f"(refundable payment, nonce {r.redemptionNonce}, block {refund.blockNumber})" in output
    assert "a second refund of it" in output


def test_charts_and_page(run):
    result, _, _, report = run
    assert {p.name for p in result.report.charts} == {
        "spending_per_category.png", "spending_per_provider.png", "take_up.png", "budget_use.png"}
    for chart in result.report.charts:
        with Image.open(chart) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 300
            # not a blank canvas: a chart has many colours
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20
    page = (report / "index.html").read_text()
    for path in [*result.report.csvs, *result.report.charts]:
        assert f"'{path.name}'" in page
    assert "Swimming pool" in page and "Gas used per kind of transaction" in page  # names from the chain
    assert "NL-GEM-" in page and "(0x" in page  # reference texts next to their hashes


def test_gas_and_timings_are_reported(run):
    result, _, output, _ = run
    kinds = {row[0] for row in result.gas.rows()}
    assert {"issuance batch (per resident)", "redeem batch (per voucher)", "redeem (single scan)",
            "redeem refundable (single scan)", "refund", "correct", "migrate pass", "revoke pass", "settle provider",
            "reclaim batch (per holder)"} <= kinds
    assert all(gas > 0 for _, _, _, gas, _ in result.gas.rows())
    assert len(result.timings) == 8 and "Phase timings" in output


def test_demo_stops_its_node_unless_asked(tmp_path):
    workdir = tmp_path / "chain"
    demo.run(demo.Scenario(10, 10, rounds=1, seed=3), workdir, tmp_path / "report",
             Console(file=io.StringIO(), width=140))
    assert node_status(workdir) is None
    assert (tmp_path / "report" / "index.html").exists()


def test_demo_never_wipes_a_directory_it_did_not_create(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "addressbook.json").write_text("{}")
    with pytest.raises(CityPassError, match="not a demo work directory"):
        demo.prepare_workdir(precious)
    assert (precious / "addressbook.json").read_text() == "{}"
    demo_dir = tmp_path / "demo"
    demo.prepare_workdir(demo_dir)
    (demo_dir / "leftover").write_text("x")
    demo.prepare_workdir(demo_dir)  # its own: wiped for a fresh chain
    assert not (demo_dir / "leftover").exists() and (demo_dir / demo.MARKER).exists()


def test_the_demo_ends_with_the_dashboards_url_and_how_to_open_it(run, tmp_path):
    """The last lines name the dashboard's URL and the `citypass web` command; that command,
    run as printed (on a free port), serves the dashboard of the demo's chain."""
    import re
    import subprocess
    import sys
    import time

    import requests

    from citypass.cli.web import web_cmd
    from tests.web_helpers import free_port

    _, dep, output, _ = run
    last = [line for line in output.strip().splitlines() if line.strip()][-2:]
    assert last[0] == f"Dashboard of this chain: http://127.0.0.1:{demo.WEB_PORT}/dashboard/"
    assert demo.WEB_PORT == next(p.default for p in web_cmd.params if p.name == "port")  # the CLI's default
    command = re.search(r"open it with: (citypass --workdir \S+ web --port \d+)", last[1])
    assert command, last[1]
    args = command.group(1).split()[1:]
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", "citypass", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = last[0].split(": ", 1)[1].replace(str(demo.WEB_PORT), str(port))
        deadline = time.time() + 60
        while True:
            try:
                page = requests.get(url, timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-2000:]
                time.sleep(0.3)
        assert page.status_code == 200 and "dashboard" in page.text.lower()
        data = requests.post(url.replace("/dashboard/", "/api/dashboard/summary"), json={},
                             headers={"Host": f"127.0.0.1:{port}"}, timeout=60).json()
        assert data["contract"] == dep.address and data["totals"]["redemptions"] > 0, data
    finally:
        proc.terminate()
        proc.wait(20)
