"""The dashboard's API over a real server and an embedded Anvil: every figure equals what
`citypass report` computes and writes for the same chain (issuance, redemptions, a refund, a
settlement, a reclaim, a correction; contract v2), the checks are the report's, nothing names a
resident, new events show up, a tampered index is shown as a failed check first, and the exports
are the report's files."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest

from citypass import finance, keys, report, wallet
from citypass import redemption
from citypass.index import EventIndex
from citypass.money import cents_from_text
from citypass.web.api import Service
from citypass.web.dashboard_data import money_fields
from web_helpers import MUSEUM, POOL, DEV, Server, _cli, make_world, stop_node

DAY = 86_400


def pay(w, holder, budget: int, cents: int, provider: str = POOL, refundable: bool = False) -> redemption.Redemption:
    """A v2 payment: the resident's pass QR scanned at `provider`, `cents` typed at the till."""
    signed = wallet.pass_qr(w.dep, holder, budgets=[budget]).for_budget(budget)
    return redemption.redeem(w.dep, keys.dev_account(DEV.index(provider)), signed, cents, refundable=refundable)


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own embedded node, not Brownie's."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """make_world's two budgets plus a short sport budget (ends today, reclaimed after two days)
    and a summer budget that ends soon; payments, a refund above 10% of the pool's takings, a
    settlement, a reclaim, a correction (1.00 of bob's culture credit) and a payment after the
    settlement."""
    w = make_world(tmp_path_factory.mktemp("citypass-dashboard-api"))
    cli = lambda *a: _cli(w.workdir, *a)  # noqa: E731
    today = time.strftime("%Y-%m-%d", time.gmtime(w.service.chain.now()))
    soon = time.strftime("%Y-%m-%d", time.gmtime(w.service.chain.now() + 12 * DAY))
    w.short = int(cli("budget", "create", "--category", "sport", "--valid-from", today, "--valid-until", today,
                      "--cap", "1000", "--name", "Kort 2026")["id"])
    w.summer = int(cli("budget", "create", "--category", "culture", "--valid-from", today, "--valid-until", soon,
                       "--cap", "1000", "--name", "Zomer 2026")["id"])
    for serial, alice, bob in (("3", "20.00", "5.00"), ("4", "7.00", "3.00")):
        path = w.workdir / f"issue-{serial}.csv"
        path.write_text(f"holder,amount\n{w.alice.address},{alice}\n{w.bob.address},{bob}\n")
        cli("issue", str(path), "--budget", serial)
    first = pay(w, w.alice, w.sport, 1250, POOL, refundable=True)  # only a refundable payment can be refunded
    pay(w, w.bob, w.culture, 400, MUSEUM)
    pay(w, w.alice, w.short, 800, POOL)
    redemption.refund(w.dep, keys.dev_account(DEV.index(POOL)), w.alice.address, w.sport, first.voucher.nonce,
                      250)  # 2.50 of 20.50: above 10%
    cli("correct", w.bob.address, "--budget", "2", "--amount", "1.00", "--reference", "CASE-2026-7")
    cli("settle", "--provider", POOL, "--reference", "INV-2026-001")
    w.service.chain.advance_time(2 * DAY)  # the short budget has ended
    cli("reclaim", "--budget", "3")
    pay(w, w.bob, w.sport, 300, POOL)  # after the settlement: still to pay
    yield w
    stop_node(w.workdir)


@pytest.fixture(scope="module")
def server(world):
    with Server(world.service) as s:
        yield s


@pytest.fixture(scope="module")
def the_report(world, tmp_path_factory):
    """What `citypass report` computes and writes for the same chain, read back by the test."""
    out = tmp_path_factory.mktemp("report")
    built = report.build_report(world.dep, out)
    tables = {name: list(csv.DictReader(open(out / name, newline="")))
              for name in ("budgets.csv", "categories.csv", "providers.csv", "weeks.csv")}
    return built, out, tables


def summary(server, **body):
    return server.api("dashboard/summary", body)


def cents(text: str) -> int:
    return -cents_from_text(text[1:]) if text.startswith("-") else cents_from_text(text)


# ------------------------------------------------------------------ the figures
def test_every_budget_figure_equals_the_report(server, the_report):
    built, _, tables = the_report
    data = summary(server)
    rows = {r["budget_id"]: r for r in tables["budgets.csv"]}
    assert [b["budget"] for b in data["budgets"]] == list(rows) and len(rows) == 4
    money = money_fields()
    assert {"issued", "redeemed", "refunded", "settled", "reclaimed", "corrected", "held_by_residents",
            "held_by_providers"} <= set(money)
    for b in data["budgets"]:
        row = rows[b["budget"]]
        for m in money:
            assert b[f"{m}_cents"] == cents(row[f"{m}_eur"]), (b["name"], m)
        assert b["provider_received_cents"] == cents(row["provider_received_eur"])
        assert (b["redemptions"], b["refunds"]) == (int(row["redemptions"]), int(row["refunds"]))
        assert (b["residents_credited"], b["residents_who_spent"]) == (int(row["residents_credited"]),
                                                                       int(row["residents_who_spent"]))
        assert f"{100 * b['take_up']:.1f}" == row["take_up_pct"]
    # and the library's own figures, field by field
    for b, line in zip(data["budgets"], built.summary.budgets):
        assert all(b[f"{m}_cents"] == getattr(line, m) for m in money)


def test_headline_totals_equal_the_report(server, the_report):
    built, _, tables = the_report
    t = summary(server)["totals"]
    for m in money_fields():
        assert t[f"{m}_cents"] == sum(cents(r[f"{m}_eur"]) for r in tables["budgets.csv"]), m
    s = built.summary
    credited, spent = s.residents()
    assert (t["residents_credited"], t["residents_who_spent"]) == (credited, spent) == (2, 2)
    assert t["take_up"] == 1.0
    # the chain's story, in cents: issued 2*35 + 25 + 10 euros; spent 12.50 + 4 + 8 + 3; refunded 2.50
    assert t["issued_cents"] == 10_500 and t["redeemed_cents"] == 2_750 and t["refunded_cents"] == 250
    assert t["settled_cents"] == 1_800 and t["held_by_providers_cents"] == 700
    assert t["reclaimed_cents"] == 1_700  # 12.00 of alice and 5.00 of bob, after the short budget ended
    assert t["corrected_cents"] == 100  # v2: taken back by the issuer (credit issued in error)
    assert t["held_by_residents_cents"] == t["issued_cents"] - 2_750 + 250 - 1_700 - 100
    assert t["issued_cents"] == (t["held_by_residents_cents"] + t["held_by_providers_cents"] + t["settled_cents"]
                                 + t["reclaimed_cents"] + t["corrected_cents"])
    assert t["provider_received_cents"] == t["settled_cents"] + t["held_by_providers_cents"]


def test_the_checks_are_the_reports_and_pass(server, the_report):
    built, _, _ = the_report
    data = summary(server)
    assert data["ok"] is True and data["failed"] == 0
    texts = [c["text"] for c in data["checks"]]
    assert all(c["ok"] for c in data["checks"])
    assert texts == built.reconciliation + built.chain_checks
    assert {c["group"] for c in data["checks"]} == {"reconciliation", "chain", "refunds"}


def test_providers_table_equals_the_report(server, the_report, world):
    _, _, tables = the_report
    providers = {p["address"]: p for p in summary(server)["providers"]}
    assert set(providers) == {POOL, MUSEUM}
    for address, p in providers.items():
        rows = [r for r in tables["providers.csv"] if r["address"] == address]
        for field, column in (("redeemed_cents", "redeemed_eur"), ("refunded_cents", "refunded_eur"),
                              ("received_cents", "received_eur"), ("settled_cents", "settled_eur"),
                              ("unsettled_cents", "unsettled_eur"), ("co_payments_cents", "co_payments_eur")):
            assert p[field] == sum(cents(r[column]) for r in rows), (address, field)
        assert p["redemptions"] == sum(int(r["redemptions"]) for r in rows)
        assert p["status"] == "active"
        assert int(p["gas_wei"]) == world.service.chain.w3.eth.get_balance(address) > 0
    pool, museum = providers[POOL], providers[MUSEUM]
    assert pool["category_names"] == ["sport"] and museum["category_names"] == ["culture"]
    assert (pool["redeemed_cents"], pool["refunded_cents"]) == (2_350, 250)
    assert pool["refund_flag"] is True and pool["refund_percent"] == round(100 * 250 / 2_350, 2)  # 10.64% > 10%
    assert museum["refund_flag"] is False and museum["refunds"] == 0


def test_budget_windows_days_left_and_reclaimable(server, world):
    data = summary(server)
    now = data["as_of"]["time"]
    b = {x["name"]: x for x in data["budgets"]}
    short, summer, sport = b["Kort 2026"], b["Zomer 2026"], b["Sport 2026"]
    assert short["ended"] and not short["open"] and short["days_left"] == 0
    assert short["reclaimed_cents"] == 1_700 and short["reclaimable_cents"] == 0  # already reclaimed
    assert summer["open"] and summer["ending_soon"] and summer["days_left"] == -(-(summer["valid_until"] - now) // DAY)
    assert summer["days_left"] <= data["ending_soon_days"]
    assert summer["reclaimable_cents"] == 0 and summer["reclaimable_after_end_cents"] == summer["held_by_residents_cents"]
    assert sport["open"] and not sport["ending_soon"] and sport["days_left"] > 200
    assert sport["cap_cents"] == 1_000_000 and sport["valid_until"] > now


def test_spending_over_time_equals_the_reports_weeks(server, the_report):
    _, _, tables = the_report
    weeks = summary(server)["weeks"]
    per: dict[tuple[str, str], int] = {}
    for r in tables["weeks.csv"]:
        key = (r["week"], r["category"])
        per[key] = per.get(key, 0) + cents(r["redeemed_eur"]) - cents(r["refunded_eur"])
    assert {(w["week"], w["category_name"]): w["net_cents"] for w in weeks} == per


def test_as_of_block_and_time(server, world):
    data = summary(server)
    w3 = world.service.chain.w3
    assert data["as_of"]["block"] == w3.eth.block_number
    assert data["as_of"]["time"] == w3.eth.get_block(data["as_of"]["block"])["timestamp"]
    assert data["chain_id"] == 31337 and data["contract"] == world.dep.address and data["dev_chain"] is True


def test_charts_are_svg_with_a_title_and_the_figures(server):
    for lang, word in (("nl", "uitbetaald"), ("en", "paid")):
        data = summary(server, lang=lang)
        for layout in ("charts", "charts_narrow"):
            charts = data[layout]
            assert set(charts) == {"spending_time", "providers", "take_up", "where"}
            for name, svg in charts.items():
                assert svg.startswith("<svg") and svg.endswith("</svg>") and 'role="img"' in svg
                assert "<title" in svg and "<desc" in svg and "style=" not in svg and "<script" not in svg.lower()
            assert word in charts["providers"]
        ids = lambda layout: {i for svg in data[layout].values() for i in re.findall(r'id="([^"]+)"', svg)}  # noqa: E731
        assert not ids("charts") & ids("charts_narrow")  # both are in the page: no id twice
    assert "€ 21,00" in summary(server, lang="nl")["charts"]["providers"]  # the pool: 23.50 paid in, 2.50 refunded
    # v2's conservation: the correction is a part of where the credit is, in the chart and its figures
    data = summary(server, lang="nl")
    assert data["where_parts"] == ["held_by_residents", "held_by_providers", "settled", "reclaimed", "corrected"]
    assert "gecorrigeerd € 1,00" in data["charts"]["where"] and "corrected €1.00" in summary(server, lang="en")["charts"]["where"]
    assert "€21.00" in summary(server, lang="en")["charts"]["providers"]


def test_the_masker_hides_passes_only():
    from citypass.web.dashboard_data import masker

    batch = "0x" + "ab" * 32
    mask = masker({POOL})
    text = f"budget 1: {DEV[3]} holds; {POOL} holds; issuance batch {batch}: BatchIssued says"
    assert mask(text) == f"budget 1: a pass holds; {POOL} holds; issuance batch {batch}: BatchIssued says"
    assert mask(DEV[3].lower() + ".") == "a pass."


def test_no_resident_is_named(server, world):
    text = json.dumps(summary(server)).lower()
    for who in (world.alice, world.bob):
        assert who.address.lower() not in text and who.address.lower()[2:] not in text


# ------------------------------------------------------------------ live
def test_unchanged_until_new_events_then_the_new_figures(server, world):
    first = summary(server)
    same = summary(server, have=first["version"])
    assert same["unchanged"] is True and "budgets" not in same and same["version"] == first["version"]
    pay(world, world.alice, world.sport, 100, POOL)
    time.sleep(1.1)  # the server syncs its index at most once a second
    after = summary(server, have=first["version"])
    assert after["unchanged"] is False and after["version"] != first["version"]
    assert after["totals"]["redeemed_cents"] == first["totals"]["redeemed_cents"] + 100
    assert after["as_of"]["block"] > first["as_of"]["block"] and after["ok"] is True
    # the new figures come at once; the chain check of the new block follows (a new version)
    assert after["chain_checked_block"] in (first["computed_block"], after["computed_block"])
    assert after["report_available"] is True  # also while the new block's chain check runs
    deadline = time.time() + 30
    while after["chain_check_pending"]:
        assert time.time() < deadline, "the chain check of the new block did not finish"
        time.sleep(0.2)
        newer = summary(server, have=after["version"])
        if not newer["unchanged"]:
            after = newer
    assert after["chain_checked_block"] == after["computed_block"] and after["ok"] is True
    assert any(c["group"] == "chain" and "balances replayed" in c["text"] for c in after["checks"])


# ------------------------------------------------------------------ refusals
def test_bad_requests_are_4xx_json_naming_the_field(server):
    assert server.api("dashboard/summary", {"lang": "de"}, status=400)["error"]["field"] == "lang"
    assert server.api("dashboard/summary", {"x": 1}, status=400)["error"]["field"] == "x"
    assert server.api("dashboard/summary", {"have": 5}, status=400)["error"]["field"] == "have"
    r = server.session.get(server.base + "/api/dashboard/summary")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = server.session.get(server.base + "/dashboard/export/secrets.txt")
    assert r.status_code == 404 and "report.zip" in r.json()["error"]["message"]


@pytest.mark.parametrize("raw, status", [
    (b"not json", 400), (b"[1, 2]", 400), (b'{"lang": null}', 400), (b'{"lang": "nl", "have": ["x"]}', 400),
    (b'{"have": "' + b"x" * 100 + b'"}', 400), (b"\xff\xfe", 400), (b"[" * 10_000, 400),
    (b'{"lang": "' + b"x" * 70_000 + b'"}', 413),
])
def test_hostile_bodies_get_a_json_error(server, raw, status):
    r = server.post("/api/dashboard/summary", raw=raw)
    assert r.status_code == status and r.json()["error"]["message"], r.text[:200]
    r = server.post("/api/dashboard/summary", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_the_page_is_served_with_the_csp(server):
    r = server.session.get(server.base + "/dashboard", allow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/dashboard/"
    r = server.session.get(server.base + "/dashboard/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "script-src 'self'" in r.headers["content-security-policy"] and 'lang="nl"' in r.text


# ------------------------------------------------------------------ exports
def download(server, name: str) -> bytes:
    r = server.session.get(server.base + f"/dashboard/export/{name}")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-disposition"].startswith("attachment;")
    return r.content


def test_exports_are_the_files_citypass_report_writes(server, world, tmp_path):
    pay(world, world.bob, world.culture, 50, MUSEUM)
    time.sleep(1.1)
    summary(server)
    out = tmp_path / "report"
    report.build_report(world.dep, out)  # the CLI's report of the same chain, now
    for name in ("budgets.csv", "categories.csv", "providers.csv", "weeks.csv", "redemptions.csv"):
        assert download(server, name) == (out / name).read_bytes(), name
    html = download(server, "report.html").decode()
    assert "Where the money is: the reconciliation" in html and "chain counters agree" in html
    with zipfile.ZipFile(io.BytesIO(download(server, "report.zip"))) as z:
        names = {Path(n).name for n in z.namelist()}
        assert {"index.html", "budgets.csv", "budget_use.png", "take_up.png"} <= names
        budgets = next(n for n in z.namelist() if n.endswith("/budgets.csv"))
        assert z.read(budgets) == (out / "budgets.csv").read_bytes()
    audit = tmp_path / "audit.csv"
    finance.audit(world.dep, audit)  # `citypass audit`
    assert download(server, "events.csv") == audit.read_bytes()


# ------------------------------------------------------------------ a failed reconciliation
def test_a_tampered_index_is_shown_as_a_failed_check_first(world, tmp_path):
    """A copy of the index with one credit inflated by a euro: the chain check fails (and the
    batch's own total), the failure comes first, no resident's address is shown, and no report
    can be downloaded (the raw events can)."""
    live = world.service.index
    live.sync()
    copy = tmp_path / "index" / live.path.name
    copy.parent.mkdir()
    db = sqlite3.connect(live.path)
    db.execute("PRAGMA wal_checkpoint(FULL)")
    db.close()
    shutil.copy(live.path, copy)
    db = sqlite3.connect(copy)
    block, log_index, args = db.execute("SELECT block, log_index, args FROM events WHERE name = 'TransferSingle' "
                                        "AND args LIKE '%\"from\":\"0x0000000000000000000000000000000000000000\"%' "
                                        "ORDER BY block LIMIT 1").fetchone()
    a = json.loads(args)
    a["value"] += 100
    db.execute("UPDATE events SET args = ? WHERE block = ? AND log_index = ?", (json.dumps(a), block, log_index))
    # The running totals were counted from the true events: forget them, so the index counts
    # them again from the tampered ones when it opens (citypass/index_aggregates.py).
    db.execute("DELETE FROM agg_meta")
    db.commit()
    db.close()
    tampered = Service(world.service.chain, world.dep, EventIndex(world.dep, copy), world.service.dev_keys)
    with Server(tampered) as s:
        data = s.api("dashboard/summary")
        assert data["ok"] is False and data["failed"] >= 2
        assert data["checks"][0]["ok"] is False
        first_ok = next(i for i, c in enumerate(data["checks"]) if c["ok"])
        assert all(not c["ok"] for c in data["checks"][:first_ok]) and all(c["ok"] for c in data["checks"][first_ok:])
        failed = " ".join(c["text"] for c in data["checks"] if not c["ok"])
        assert "on chain but" in failed and "BatchIssued says" in failed and "a pass" in failed
        assert "batch a pass" not in failed  # a batch id is no address
        text = json.dumps(data).lower()
        assert world.alice.address.lower() not in text and world.bob.address.lower() not in text
        r = s.session.get(s.base + "/dashboard/export/budgets.csv")
        assert r.status_code == 409 and r.json()["error"]["code"] == "does_not_reconcile"
        assert s.session.get(s.base + "/dashboard/export/events.csv").status_code == 200


# ------------------------------------------------------------------ the index behind the report and the totals
def _copy_of_the_index(world, tmp_path) -> Path:
    live = world.service.index
    live.sync()
    copy = tmp_path / "index" / live.path.name
    copy.parent.mkdir(exist_ok=True)
    db = sqlite3.connect(live.path)
    db.execute("PRAGMA wal_checkpoint(FULL)")
    db.close()
    shutil.copy(live.path, copy)
    return copy


def test_citypass_report_reads_the_event_index(world, tmp_path, monkeypatch):
    """`citypass report` (report.build_report) takes its events from the index: with the index up
    to date it reads no logs from the chain, and a tampered copy of the index is what it reports on."""
    idx = EventIndex.open(world.dep)
    idx.sync()
    provider = world.dep.chain.w3.provider
    real, methods = provider.make_request, []
    monkeypatch.setattr(provider, "make_request", lambda method, params: (methods.append(method), real(method, params))[1])
    built = report.build_report(world.dep, tmp_path / "from-index", index=idx)
    assert built.summary.total("redemptions") > 0 and built.block == idx.tip
    assert "eth_getLogs" not in methods, methods  # every event came from the index
    monkeypatch.setattr(provider, "make_request", real)

    copy = _copy_of_the_index(world, tmp_path)
    db = sqlite3.connect(copy)
    block, log_index, args = db.execute("SELECT block, log_index, args FROM events WHERE name = 'TransferSingle' "
                                        "AND args LIKE '%\"from\":\"0x0000000000000000000000000000000000000000\"%' "
                                        "ORDER BY block LIMIT 1").fetchone()
    a = json.loads(args)
    a["value"] += 100
    db.execute("UPDATE events SET args = ? WHERE block = ? AND log_index = ?", (json.dumps(a), block, log_index))
    db.commit()
    db.close()
    with pytest.raises(report.ReconciliationError, match="BatchIssued says"):
        report.build_report(world.dep, tmp_path / "tampered", index=EventIndex(world.dep, copy))
    assert not (tmp_path / "tampered").exists()  # nothing written


def test_the_running_totals_are_checked_against_the_chain(world, tmp_path):
    """A copy of the index whose running totals (not its events) are off by a euro: the
    dashboard's chain check compares the totals with the chain's counters and the providers'
    balances, and shows the gap first."""
    copy = _copy_of_the_index(world, tmp_path)
    db = sqlite3.connect(copy)
    (budget,) = db.execute("SELECT budget FROM agg_budget WHERE settled > 0 LIMIT 1").fetchone()
    db.execute("UPDATE agg_budget SET settled = settled + 100, held = held - 100 WHERE budget = ?", (budget,))
    db.execute("UPDATE agg_balance SET amount = amount - 100 WHERE budget = ? AND address = ?", (budget, POOL))
    db.commit()
    db.close()
    tampered = Service(world.service.chain, world.dep, EventIndex(world.dep, copy), world.service.dev_keys)
    with Server(tampered) as s:
        data = s.api("dashboard/summary")
        failed = [c["text"] for c in data["checks"] if not c["ok"]]
        assert data["ok"] is False and data["checks"][0]["ok"] is False
        assert any("settled is" in t and "on chain but" in t for t in failed), failed
        assert any(POOL in t and "holds" in t and "by the events" in t for t in failed), failed


def test_a_load_reads_the_totals_not_the_history(server, world, monkeypatch):
    """A dashboard load after a new block reads no event rows besides the context records
    (budgets, names, providers, migrations), and its chain check asks balanceOfBatch only for
    the balances that block changed and the providers'."""
    from citypass.index_aggregates import SUMMARY_CONTEXT

    summary(server)
    idx = world.service.index
    real_records, asked = idx.records, []
    monkeypatch.setattr(idx, "records", lambda **kw: (asked.append(kw), real_records(**kw))[1])
    real_check, checked = report.verify_balances, []

    def counting(balances, *a, **kw):
        checked.append(set(balances))
        return real_check(balances, *a, **kw)

    monkeypatch.setattr(report, "verify_balances", counting)
    pay(world, world.alice, world.sport, 10, POOL)
    time.sleep(1.1)
    data = summary(server)
    deadline = time.time() + 30
    while data["chain_check_pending"] and time.time() < deadline:
        time.sleep(0.2)
        data = summary(server)
    assert data["ok"] is True and not data["chain_check_pending"]
    assert asked and all(kw.get("names") is not None and set(kw["names"]) <= set(SUMMARY_CONTEXT) | {
        "BudgetCreated", "CategoryDefined", "ProviderNamed"} for kw in asked), asked
    keys = set().union(*checked)
    assert (world.sport, world.alice.address) in keys  # the balance the new block changed ...
    assert {a for _, a in keys} <= {world.alice.address, POOL, MUSEUM}, keys  # ... and the providers': not bob's


def test_the_citypass_report_command_reads_the_event_index(world, tmp_path, monkeypatch):
    """`citypass report` hands the work directory's event index to build_report: it works with
    the straight-from-the-chain path (events.fetch_events) made to fail."""
    from citypass import events
    from web_helpers import _cli

    def refuse(*a, **kw):
        raise AssertionError("citypass report read the events from the chain, not from the index")

    monkeypatch.setattr(events, "fetch_events", refuse)
    answer = _cli(world.workdir, "report", "--out", str(tmp_path / "cli-report"))
    assert answer["block"] >= world.service.index.tip and (tmp_path / "cli-report" / "budgets.csv").exists()
