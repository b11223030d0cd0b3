"""The dashboard in a real browser (Playwright + Debian Chromium) against `citypass web` on an
embedded Anvil: every figure on the page equals `citypass report`'s CSVs (which the test reads
itself), a payment made during the test appears without a reload, the language switches, the
keyboard alone works, a failed reconciliation is the first thing on the page, axe-core finds no
WCAG 2.1 AA violation, and each state is photographed at 1280x800, 768x1024 and 390x844 into
build/screenshots/dashboard-*.png."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "web"))

from tillkit import CHROMIUM, DEV, MUSEUM, POOL, ROOT, SHOTS, SIZES, WebServer, World, chromium_args  # noqa: E402

from citypass import keys, node, redemption, wallet  # noqa: E402
from citypass.chain import connect  # noqa: E402
from citypass.contract import open_deployment  # noqa: E402
from citypass.index import EventIndex  # noqa: E402
from citypass.money import cents_from_text  # noqa: E402
from citypass.web.api import Service  # noqa: E402
from web_helpers import Server  # noqa: E402

DAY = 86_400
AXE = "async () => (await axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa']})).violations" \
      ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"


@pytest.fixture(autouse=True)
def isolation():
    """The browser tests run on their own embedded node, not Brownie's."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The till tests' world (sport and culture budgets, the pool and the museum) with three
    residents, payments at both providers, a refund (of a refundable payment), a correction,
    a settlement, a short budget that ended and was reclaimed, and a summer budget ending
    within 30 days (contract v2)."""
    w = World(tmp_path_factory.mktemp("citypass-dashboard"))
    chain = connect(None, workdir=w.workdir)
    w.dep = open_deployment(chain, None, w.workdir)
    today = time.strftime("%Y-%m-%d", time.gmtime(chain.now()))
    soon = time.strftime("%Y-%m-%d", time.gmtime(chain.now() + 12 * DAY))
    w.cli("budget", "create", "--category", "sport", "--valid-from", today, "--valid-until", today, "--cap", "1000",
          "--name", "Kort 2026")
    w.cli("budget", "create", "--category", "culture", "--valid-from", today, "--valid-until", soon, "--cap", "1000",
          "--name", "Zomer 2026")
    w.people = [w.new_resident(name) for name in ("alice", "bob", "carol")]
    for i, who in enumerate(w.people):
        for serial, euros in (("3", "20.00"), ("4", "6.00")):
            rows = w.workdir / f"extra-{i}-{serial}.csv"
            rows.write_text(f"holder,amount\n{who.address},{euros}\n")
            w.cli("issue", str(rows), "--budget", serial)
    w.short_id = max(b for b in w.dep.contract.functions.budgets().call() if b >> 128 == 3)
    alice, bob, _ = w.people
    first = pay(w, alice, w.sport, 1250, POOL, refundable=True)  # only a refundable payment can be refunded
    pay(w, bob, w.culture, 400, MUSEUM)
    pay(w, alice, w.short_id, 800, POOL)
    redemption.refund(w.dep, keys.dev_account(DEV.index(POOL)), alice.address, w.sport, first.voucher.nonce, 250)
    w.cli("correct", bob.address, "--budget", "2", "--amount", "1.00", "--reference", "CASE-2026-7")
    w.cli("settle", "--provider", POOL, "--reference", "INV-2026-001")
    chain.advance_time(2 * DAY)
    w.cli("reclaim", "--budget", "3")
    pay(w, bob, w.sport, 300, POOL)
    yield w
    node.node_stop(w.workdir)


def pay(w: Any, holder: Any, budget: int, cents: int, provider: str, refundable: bool = False) -> Any:
    """A v2 payment: the resident's pass QR scanned at `provider`, `cents` typed at the till."""
    signed = wallet.pass_qr(w.dep, holder, budgets=[budget]).for_budget(budget)
    return redemption.redeem(w.dep, keys.dev_account(DEV.index(provider)), signed, cents, refundable=refundable)


@pytest.fixture(scope="module")
def server(world) -> Iterator[WebServer]:
    s = WebServer(world.workdir)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args())
        yield b
        b.close()


@pytest.fixture(scope="module")
def axe_js() -> str:
    return (ROOT / "node_modules/axe-core/axe.min.js").read_text()


class Page:
    """One browser context with the dashboard open; collects page errors, CSP refusals and
    requests to other origins."""

    def __init__(self, browser: Any, base: str, axe_js: str, viewport: tuple[int, int] = SIZES[0]):
        self.base = base
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="nl-NL",
                                           timezone_id="Europe/Amsterdam")
        self.context.add_init_script(script=axe_js)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error"
                     or "Content Security Policy" in m.text or "Refused to" in m.text else None)
        self.page.on("request", self._request)
        self.page.set_default_timeout(20_000)

    def _request(self, request: Any) -> None:
        url = urlsplit(request.url)
        if url.scheme not in ("data", "blob") and f"{url.scheme}://{url.netloc}" != self.base:
            self.foreign.append(request.url)

    def open(self, query: str = "?poll=1000") -> "Page":
        self.page.goto(self.base + "/dashboard/" + query)
        self.page.wait_for_selector("body[data-ready='1']")
        return self

    def figure(self, name: str, budget: str = "total") -> int:
        return int(self.page.get_attribute(f"#budget-figures [data-figure='{name}'][data-budget='{budget}']",
                                           "data-cents"))

    def state(self, name: str) -> list[Path]:
        """axe-core finds nothing, no error happened, nothing came from elsewhere; then the
        screenshots at the three sizes."""
        violations = self.page.evaluate(AXE)
        assert violations == [], f"{name}: axe-core found {violations}"
        assert self.errors == [], self.errors
        assert self.foreign == [], f"requests to other origins: {self.foreign}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        original = self.page.viewport_size
        paths = []
        for w, h in SIZES:
            self.page.set_viewport_size({"width": w, "height": h})
            self.page.wait_for_timeout(100)
            wide = self.page.evaluate("document.documentElement.scrollWidth")
            assert wide <= w, f"{name}: the page is {wide} px wide in a {w} px window (it must reflow)"
            layout = "narrow" if w < 544 else "wide"  # the stylesheet's 34rem
            assert self.page.is_visible(f"#chart-where .db-chart__svg--{layout}"), (name, w)
            path = SHOTS / f"dashboard-{name}-{w}x{h}.png"
            self.page.screenshot(path=str(path), full_page=True)
            paths.append(path)
        self.page.set_viewport_size(original)
        return paths

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser, axe_js):
    opened: list[Page] = []

    def _open(base: str, **kw: Any) -> Page:
        p = Page(browser, base, axe_js, **kw)
        opened.append(p)
        return p

    yield _open
    for p in opened:
        p.close()


def report_tables(world: Any, out: Path) -> dict[str, list[dict[str, str]]]:
    """`citypass report --json` run by the test itself, its CSVs read back."""
    answer = world.cli("report", "--out", str(out))
    assert Path(answer["html"]).exists()
    return {Path(p).name: list(csv.DictReader(open(p, newline=""))) for p in answer["csv"]}


def cents(text: str) -> int:
    return -cents_from_text(text[1:]) if text.startswith("-") else cents_from_text(text)


def shown_cents(text: str) -> int:
    """'€ 1.234,56' (nl) -> 123456."""
    digits = text.replace("€", "").replace("\xa0", "").replace(" ", "").replace(".", "").replace(",", ".")
    return cents(digits.replace("−", "-"))


# ------------------------------------------------------------------ the figures
def test_every_figure_equals_the_report(server, world, open_page, tmp_path):
    d = open_page(server.base).open()
    tables = report_tables(world, tmp_path / "report")
    budgets = {r["budget_id"]: r for r in tables["budgets.csv"]}
    cells = d.page.eval_on_selector_all(
        "#budget-figures [data-figure][data-cents]",
        "ns => ns.map(n => [n.dataset.figure, n.dataset.budget, Number(n.dataset.cents), n.textContent])")
    fields = {f for f, _, _, _ in cells}
    assert {"issued", "redeemed", "refunded", "settled", "held_by_providers", "reclaimed", "corrected",
            "held_by_residents"} <= fields
    checked = 0
    for figure, budget, value, text in cells:
        expected = (sum(cents(r[f"{figure}_eur"]) for r in budgets.values()) if budget == "total"
                    else cents(budgets[budget][f"{figure}_eur"]))
        assert value == expected == shown_cents(text), (figure, budget, value, expected, text)
        checked += 1
    assert checked == len(fields) * (len(budgets) + 1)
    # the headline cards
    for figure in fields:
        card = d.page.get_attribute(f"#figures [data-figure='{figure}']", "data-cents")
        assert int(card) == sum(cents(r[f"{figure}_eur"]) for r in budgets.values())
    take_up = [float(x) for x in d.page.eval_on_selector_all(
        "#budget-figures tbody [data-figure='take_up']", "ns => ns.map(n => n.dataset.share)")]
    assert [f"{100 * x:.1f}" for x in take_up] == [r["take_up_pct"] for r in tables["budgets.csv"]]
    # providers: received, refunded, paid and still to pay, summed over the report's budget rows
    for address in (POOL, MUSEUM):
        rows = [r for r in tables["providers.csv"] if r["address"] == address]
        for figure, column in (("received", "received_eur"), ("refunded", "refunded_eur"), ("settled", "settled_eur"),
                               ("unsettled", "unsettled_eur")):
            value = int(d.page.get_attribute(f"#providers [data-figure='{figure}'][data-provider='{address}']",
                                             "data-cents"))
            assert value == sum(cents(r[column]) for r in rows), (address, figure)
    # the pool refunded 2.50 of 23.50: flagged for the auditor; the museum is not
    assert d.page.locator(f"#providers tr:has([data-provider='{POOL}']) [data-flag='refunds']").count() == 1
    assert d.page.locator(f"#providers tr:has([data-provider='{MUSEUM}']) [data-flag='refunds']").count() == 0
    # the checks are the report's lines, all passed
    assert d.page.locator(".db-check--failed").count() == 0 and d.page.is_hidden("#failures")
    shown = d.page.eval_on_selector_all(".db-check__text", "ns => ns.map(n => n.textContent)")
    assert any("chain counters agree" in s for s in shown) and any(s.startswith("Sport 2026: issued") for s in shown)
    # budgets: the summer budget warns, the short one ended; the page says how current it is
    assert "Loopt over" in d.page.inner_text("#budgets tr:has-text('Zomer 2026')")
    assert "afgelopen" in d.page.inner_text("#budgets tr:has-text('Kort 2026')")
    block = world.dep.chain.w3.eth.block_number
    assert d.page.get_attribute("#asof", "data-block") == str(block)
    assert f"blok {block}" in d.page.inner_text("#asof")
    # four charts, each an SVG with a title and a table of its figures
    # (each in two layouts: the wide one on a desk, the narrow one on a phone)
    assert d.page.locator(".db-chart__svg--wide svg[role='img'] title").count() == 4
    assert d.page.locator(".db-chart__svg--narrow svg[role='img'] title").count() == 4
    assert d.page.is_visible("#chart-where .db-chart__svg--wide") and d.page.is_hidden("#chart-where .db-chart__svg--narrow")
    assert d.page.locator(".db-chart details table").count() == 4
    # v2's conservation: the correction (1.00 of bob's culture credit) is a part of where the credit is
    where_caption = d.page.inner_text("#chart-where figcaption")
    assert "of gecorrigeerd (" in where_caption and "gecorrigeerd €\xa01,00" in where_caption  # the page's euros: nbsp
    assert "Gecorrigeerd" in d.page.text_content("#chart-where-table thead")  # the table is folded away
    assert "gecorrigeerd € 1,00" in d.page.text_content("#chart-where .db-chart__svg--wide desc")
    # no resident is named anywhere on the page
    html = d.page.content().lower()
    assert not any(p.address.lower() in html or p.address.lower()[2:] in html for p in world.people)
    d.state("nl")


def test_the_language_switches_and_back_with_the_keyboard(server, open_page):
    d = open_page(server.base).open()
    assert d.page.evaluate("document.documentElement.lang") == "nl"
    assert d.page.inner_text("#figures-heading") == "Kerncijfers"
    d.page.keyboard.press("Tab")
    assert d.page.evaluate("document.activeElement.className").startswith("utrecht-skip-link")
    d.page.keyboard.press("Tab")
    assert d.page.evaluate("document.activeElement.id") == "lang"
    d.page.keyboard.press("Enter")
    d.page.wait_for_function("() => document.documentElement.lang === 'en' && "
                             "document.querySelector('#chart-providers svg title').textContent.includes('provider')")
    assert d.page.inner_text("#figures-heading") == "Key figures"
    assert "€" in d.page.inner_text("#figures") and "As of block" in d.page.inner_text("#asof")
    assert d.page.get_attribute("#lang", "lang") == "nl"
    # the chart's table opens from the keyboard
    d.page.focus("#chart-where-table summary")
    d.page.keyboard.press("Enter")
    assert d.page.get_attribute("#chart-where-table", "open") is not None
    d.state("en")
    # the choice is remembered; the button goes back to Dutch
    d.page.reload()
    d.page.wait_for_selector("body[data-ready='1']")
    assert d.page.evaluate("document.documentElement.lang") == "en"
    d.page.click("#lang")
    d.page.wait_for_function("() => document.documentElement.lang === 'nl'")
    assert d.page.inner_text("#figures-heading") == "Kerncijfers"


def test_a_payment_appears_live_without_a_reload(server, world, open_page):
    d = open_page(server.base).open()
    d.page.evaluate("window.__notReloaded = true")
    before = d.figure("redeemed")
    block = int(d.page.get_attribute("body", "data-block"))
    pay(world, world.people[2], world.culture, 175, MUSEUM)
    d.page.wait_for_function(f"() => Number(document.querySelector(\"#budget-figures [data-figure='redeemed']"
                             f"[data-budget='total']\").dataset.cents) === {before + 175}", timeout=20_000)
    assert d.page.evaluate("window.__notReloaded") is True
    assert int(d.page.get_attribute("body", "data-block")) > block
    assert "Bijgewerkt tot blok" in d.page.inner_text("#asof")
    assert d.page.locator("#exports a").count() == 8 and d.page.is_hidden("#export-note")
    d.state("live")


# ------------------------------------------------------------------ a failed reconciliation
def test_a_failed_reconciliation_is_the_first_thing_on_the_page(world, open_page, tmp_path):
    """The same chain read through a tampered copy of the index (one credit a euro larger):
    the failure is shown above everything else and first among the checks."""
    live = EventIndex.open(world.dep, world.workdir)
    live.sync()
    live.close()
    copy = tmp_path / "index" / live.path.name
    copy.parent.mkdir()
    db = sqlite3.connect(live.path)
    db.execute("PRAGMA wal_checkpoint(FULL)")
    db.close()
    shutil.copy(live.path, copy)
    db = sqlite3.connect(copy)
    block, log_index, args = db.execute(
        "SELECT block, log_index, args FROM events WHERE name = 'TransferSingle' AND "
        "args LIKE '%\"from\":\"0x0000000000000000000000000000000000000000\"%' ORDER BY block LIMIT 1").fetchone()
    a = json.loads(args)
    a["value"] += 100
    db.execute("UPDATE events SET args = ? WHERE block = ? AND log_index = ?", (json.dumps(a), block, log_index))
    # The running totals were counted from the true events: forget them, so the index counts
    # them again from the tampered ones when it opens (citypass/index_aggregates.py).
    db.execute("DELETE FROM agg_meta")
    db.commit()
    db.close()
    service = Service(world.dep.chain, world.dep, EventIndex(world.dep, copy), [])
    with Server(service) as s:
        d = open_page(s.base).open()
        assert d.page.get_attribute("body", "data-ok") == "0"
        first = d.page.evaluate("[...document.querySelector('main').children].find(n => !n.hidden).id")
        assert first == "failures"
        assert d.page.locator("#failures").bounding_box()["y"] < d.page.locator("#figures").bounding_box()["y"]
        assert "controle(s) kloppen niet" in d.page.inner_text("#failures-heading")
        assert d.page.get_attribute("#checks li:first-child", "data-ok") == "0"
        assert "on chain but" in d.page.inner_text("#failures")
        assert d.page.is_visible("#export-note")
        assert d.page.locator("#exports a").count() == 1  # the raw events only
        d.state("failed")
