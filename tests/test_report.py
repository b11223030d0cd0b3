"""The report's aggregation and reconciliation, on hand-made event records (no chain).

One small, fully known history (contract v2 events): three residents credited, two
refundable redemptions, a refund, a lost phone, a correction, a settlement (with its
reference text) and a reclaim; the provider is named on chain. Every figure is worked out by hand below; the failure
tests break one fact at a time and expect the reconciliation to name it."""

from __future__ import annotations

import csv
from dataclasses import replace
from types import SimpleNamespace

import pytest
from PIL import Image

from eth_utils import keccak

from citypass import events as ev
from citypass import report as rep
from citypass.events import EventRecord

ZERO = ev.ZERO_ADDRESS
H1 = "0x1111111111111111111111111111111111111111"
H2 = "0x2222222222222222222222222222222222222222"
H3 = "0x3333333333333333333333333333333333333333"  # H2's new phone
H4 = "0x4444444444444444444444444444444444444444"  # credited, never spends
POOL = "0x5555555555555555555555555555555555555555"
OFFICE = "0x6666666666666666666666666666666666666666"
SPORT_ID = (1 << 128) | (0 << 80) | (1_767_225_600 << 40) | 1_798_761_599
BATCH = "0x" + "ab" * 32
REF_TEXT = "PAY-0001"
REF = "0x" + keccak(text=REF_TEXT).hex()
T0 = 1_780_000_000  # a Monday in 2026
WEEK = 7 * 86_400


class History:
    """Builds EventRecords in chain order: one transaction per `tx()` block."""

    def __init__(self) -> None:
        self.records: list[EventRecord] = []
        self.block = 0
        self.log = 0

    def tx(self, at: int) -> "History":
        self.block += 1
        self.log = 0
        self.time = at
        return self

    def add(self, event: str, /, **args) -> "History":
        self.records.append(EventRecord(self.block, self.time, f"0x{self.block:064x}", 0, self.log, event, args))
        self.log += 1
        return self

    def move(self, frm: str, to: str, value: int, budget: int = SPORT_ID) -> "History":
        return self.add("TransferSingle", operator=OFFICE, **{"from": frm}, to=to, id=budget, value=value)


def history(batch_total: int = 9_000, reclaim_total: int = 6_000, refundable: bool = True) -> list[EventRecord]:
    h = History()
    h.tx(T0).add("CategoryDefined", category=0, name="sport")
    h.tx(T0).add("BudgetCreated", budget=SPORT_ID, category=0, validFrom=1_767_225_600, validUntil=1_798_761_599,
                 cap=10_000, name="Sport 2026")
    h.tx(T0).add("ProviderRegistered", provider=POOL, categories=1, maxAmount=5_000)
    h.add("ProviderNamed", provider=POOL, name="Swimming pool")
    h.tx(T0).move(ZERO, H1, 5_000).move(ZERO, H2, 3_000).move(ZERO, H4, 1_000)
    h.add("BatchIssued", batchId=BATCH, budget=SPORT_ID, count=3, total=batch_total)
    h.tx(T0 + 60).move(H1, POOL, 1_200).add("Redeemed", holder=H1, nonce=0, coPayment=300)
    if refundable:
        h.add("RefundableRedemption", holder=H1, budget=SPORT_ID, nonce=0, amount=1_200)
    h.tx(T0 + WEEK).move(POOL, H1, 200).add("Refunded", holder=H1, provider=POOL, budget=SPORT_ID, amount=200,
                                             redemptionNonce=0)
    h.tx(T0 + WEEK).add("PassMigrated", **{"from": H2}, to=H3).move(H2, H3, 3_000)
    h.tx(T0 + WEEK + 60).move(H3, POOL, 1_000).add("Redeemed", holder=H3, nonce=0, coPayment=0)
    h.add("RefundableRedemption", holder=H3, budget=SPORT_ID, nonce=0, amount=1_000)
    h.tx(T0 + WEEK + 90).move(H4, ZERO, 100).add("Corrected", holder=H4, budget=SPORT_ID, amount=100,
                                                 referenceText="CASE-2026-1")
    h.tx(T0 + WEEK + 120).add("VoucherSkipped", holder=H3, nonce=0, reason=18)
    h.tx(T0 + 2 * WEEK).add("SettlementReference", paymentReference=REF, referenceText=REF_TEXT)
    h.move(POOL, ZERO, 1_500).add("Settled", provider=POOL, budget=SPORT_ID, paymentReference=REF, amount=1_500)
    h.tx(T0 + 3 * WEEK).move(H1, ZERO, 4_000).move(H3, ZERO, 2_000)
    h.add("Reclaimed", budget=SPORT_ID, holders=2, total=reclaim_total)
    return h.records


@pytest.fixture
def summary() -> rep.Summary:
    return rep.summarize(ev.activity(history()))  # names and reference texts from the events


def test_activity_joins_each_move_to_its_kind():
    act = ev.activity(history())
    assert [(i.holder, i.amount, i.batch_id) for i in act.issuances] == [(H1, 5_000, BATCH), (H2, 3_000, BATCH),
                                                                        (H4, 1_000, BATCH)]
    assert [(r.holder, r.provider, r.amount, r.nonce, r.co_payment, r.refundable) for r in act.redemptions] == [
        (H1, POOL, 1_200, 0, 300, True), (H3, POOL, 1_000, 0, 0, True)]
    assert [(c.holder, c.amount, c.reference) for c in act.corrections] == [(H4, 100, "CASE-2026-1")]
    assert act.provider_names == {POOL: "Swimming pool"} and act.references == {REF: REF_TEXT}
    assert [(r.provider, r.holder, r.amount, r.redemption_nonce) for r in act.refunds] == [(POOL, H1, 200, 0)]
    assert [(m.old, m.new, m.amount) for m in act.migrations] == [(H2, H3, 3_000)]
    assert [(s.provider, s.amount, s.payment_reference) for s in act.settlements] == [(POOL, 1_500, REF)]
    assert [(r.holder, r.amount) for r in act.reclamations] == [(H1, 4_000), (H3, 2_000)]
    assert [(s.holder, s.reason) for s in act.skipped] == [(H3, 18)]
    assert ev.holders_of(act, SPORT_ID) == [H1, H2, H4, H3]
    assert {k: v for k, v in ev.balances(act).items() if v} == {(SPORT_ID, H4): 900, (SPORT_ID, POOL): 500}


def test_summary_per_budget_by_hand(summary):
    (b,) = summary.budgets
    assert (b.name, b.category_name, b.cap) == ("Sport 2026", "sport", 10_000)
    assert (b.issued, b.redeemed, b.refunded, b.settled, b.reclaimed, b.corrected) == (
        9_000, 2_200, 200, 1_500, 6_000, 100)
    assert (b.held_by_residents, b.held_by_providers, b.provider_received) == (900, 500, 2_000)
    assert (b.co_payments, b.redemptions, b.refunds) == (300, 2, 1)
    # H2 spent through its new address H3: one pass, counted once. H4 never spent.
    assert (b.residents_credited, b.residents_who_spent) == (3, 2)
    assert summary.residents() == (3, 2)


def test_summary_per_provider_week_and_category(summary):
    (p,) = summary.providers
    assert (p.name, p.redemptions, p.redeemed, p.refunds, p.refunded, p.settled, p.unsettled) == (
        "Swimming pool", 2, 2_200, 1, 200, 1_500, 500)
    assert p.payment_references == [f"PAY-0001 ({REF[:10]}…)"]  # the chain's text, next to its hash
    assert [(w.week, w.redemptions, w.redeemed, w.refunded, w.co_payments) for w in summary.weeks] == [
        (rep.iso_week(T0), 1, 1_200, 0, 300), (rep.iso_week(T0 + WEEK), 1, 1_000, 200, 0)]
    (cat,) = summary.categories()
    assert (cat["category_name"], cat["issued"], cat["redeemed"], cat["redemptions"]) == ("sport", 9_000, 2_200, 2)


def test_reconcile_passes_and_prints_both_equations(summary):
    lines = rep.reconcile(summary)
    assert lines == [
        "Sport 2026: issued €90.00 = spent €22.00 - refunded €2.00 + reclaimed €60.00 + corrected €1.00"
        " + still with residents €9.00",
        "Sport 2026: received by providers €20.00 = settled €15.00 + not yet settled €5.00",
    ]


def test_batch_total_that_does_not_match_its_credits_fails():
    summary = rep.summarize(ev.activity(history(batch_total=9_100)))
    with pytest.raises(rep.ReconciliationError, match=r"BatchIssued says €91.00, the credits add up to €90.00"):
        rep.reconcile(summary)


def test_reclaimed_total_that_does_not_match_its_burns_fails():
    summary = rep.summarize(ev.activity(history(reclaim_total=5_999)))
    with pytest.raises(rep.ReconciliationError, match=r"Reclaimed says €59.99, the burns add up to €60.00"):
        rep.reconcile(summary)


def test_spending_credit_never_issued_fails():
    records = history()
    records.append(EventRecord(99, T0 + 4 * WEEK, "0x" + "99" * 32, 0, 0, "TransferSingle",
                               {"operator": POOL, "from": H4, "to": POOL, "id": SPORT_ID, "value": 901}))
    summary = rep.summarize(ev.activity(records))
    with pytest.raises(rep.ReconciliationError, match=f"{H4} would hold -€0.01"):
        rep.reconcile(summary)


def test_a_gap_in_the_figures_is_named_with_its_budget_and_cents(summary):
    summary.budgets[0].settled += 1  # e.g. a settlement counted twice
    with pytest.raises(rep.ReconciliationError) as info:
        rep.reconcile(summary)
    assert "Sport 2026: issued €90.00 but held + settled + reclaimed + corrected is €90.01 (gap -1 cents)" in str(info.value)


def test_issued_above_cap_fails():
    records = [replace(r, args={**r.args, "cap": 8_999}) if r.name == "BudgetCreated" else r for r in history()]
    with pytest.raises(rep.ReconciliationError, match="above the cap"):
        rep.reconcile(rep.summarize(ev.activity(records)))


def test_transfer_no_rule_explains_is_refused():
    records = history()[:5]  # budget, provider, its name, the issuance
    records.append(EventRecord(50, T0, "0x" + "50" * 32, 0, 0, "TransferSingle",
                               {"operator": H1, "from": H1, "to": H4, "id": SPORT_ID, "value": 1}))
    with pytest.raises(ev.UnexplainedTransfer, match="fits no CityPass path"):
        ev.activity(records)


def test_burn_without_settlement_or_reclaim_is_refused():
    records = history()[:5]
    records.append(EventRecord(50, T0, "0x" + "50" * 32, 0, 0, "TransferSingle",
                               {"operator": H1, "from": H1, "to": ZERO, "id": SPORT_ID, "value": 1}))
    with pytest.raises(ev.UnexplainedTransfer, match="neither Settled, Corrected nor Reclaimed"):
        ev.activity(records)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_write_report_files(summary, tmp_path):
    files = rep.write_report(summary, tmp_path / "report", checks=["extra check"])
    names = {p.name for p in files.csvs}
    assert names == {"budgets.csv", "categories.csv", "providers.csv", "weeks.csv", "redemptions.csv"}
    budgets = _read_csv(tmp_path / "report" / "budgets.csv")
    assert [(b["name"], b["issued_eur"], b["held_by_residents_eur"], b["take_up_pct"]) for b in budgets] == [
        ("Sport 2026", "90.00", "9.00", "66.7")]
    assert len(_read_csv(tmp_path / "report" / "redemptions.csv")) == 2
    assert len(_read_csv(tmp_path / "report" / "weeks.csv")) == 2
    for chart in files.charts:
        with Image.open(chart) as image:
            image.verify()
        with Image.open(chart) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 300
    page = files.html.read_text()
    for path in [*files.csvs, *files.charts]:
        assert f"'{path.name}'" in page
    assert "extra check" in page and "€90.00" in page and "Swimming pool" in page
    assert "PAY-0001 (0x" in page and "Corrected" in page  # the reference text next to its hash
    assert _read_csv(tmp_path / "report" / "providers.csv")[0]["payment_references"] == f"PAY-0001 ({REF[:10]}…)"


def test_no_report_is_written_when_it_does_not_reconcile(tmp_path):
    summary = rep.summarize(ev.activity(history(batch_total=1)))
    with pytest.raises(rep.ReconciliationError):
        rep.write_report(summary, tmp_path / "report")
    assert not (tmp_path / "report").exists()


class FakeContract:
    """budgetTotals/balanceOfBatch answering from given state, like the contract would."""

    def __init__(self, totals, balances):
        self.totals, self.state = totals, balances
        self.functions = SimpleNamespace(budgetTotals=self._totals, balanceOfBatch=self._balances)

    def _totals(self, budget):
        return SimpleNamespace(call=lambda block_identifier="latest": self.totals[budget])

    def _balances(self, accounts, ids):
        values = [self.state.get((i, a), 0) for a, i in zip(accounts, ids)]
        return SimpleNamespace(call=lambda block_identifier="latest": values)


def test_verify_against_chain_agrees(summary):
    chain = FakeContract({SPORT_ID: (10_000, 9_000, 1_500, 6_000, 100)}, {(SPORT_ID, H4): 900, (SPORT_ID, POOL): 500})
    lines = rep.verify_against_chain(summary, chain)
    assert lines[-1] == f"all {len(summary.balances)} balances replayed from events agree with balanceOf on chain"


def test_verify_against_chain_names_each_disagreement(summary):
    chain = FakeContract({SPORT_ID: (10_000, 9_000, 1_400, 6_000, 99)}, {(SPORT_ID, H4): 899, (SPORT_ID, POOL): 500})
    with pytest.raises(rep.ReconciliationError) as info:
        rep.verify_against_chain(summary, chain)
    message = str(info.value)
    assert "Sport 2026: settled is €14.00 on chain but €15.00 in the events" in message
    assert "Sport 2026: corrected is €0.99 on chain but €1.00 in the events" in message
    assert f"{H4} holds €8.99 on chain, €9.00 by the events" in message


@pytest.mark.parametrize("cents, plain, text", [(0, "0.00", "€0.00"), (5, "0.05", "€0.05"),
                                                (1_234_567, "12345.67", "€12,345.67"), (-250, "-2.50", "-€2.50")])
def test_euro_formats(cents, plain, text):
    assert rep.eur(cents) == plain and rep.eur_text(cents) == text


# ---------------------------------------------------------------- refund audit
def test_refunds_that_match_their_redemption_are_clear():
    lines = rep.refund_findings(ev.activity(history()))
    assert lines == ["all 1 refunds belong to one of the 2 refundable redemptions, and none exceeds what it debited"]


def test_a_refund_of_an_ordinary_payment_is_a_finding():
    lines = rep.refund_findings(ev.activity(history(refundable=False)))
    assert len(lines) == 1 and lines[0].startswith("FINDING:") and "was not marked refundable" in lines[0]


def test_names_and_reference_texts_from_the_chain_can_be_overridden_and_are_checked():
    act = ev.activity(history())
    s = rep.summarize(act, {POOL: "Zwembad De Kolk"})
    assert s.providers[0].name == "Zwembad De Kolk"
    with pytest.raises(rep.ReconciliationError, match="does not hash to it"):
        rep.summarize(act, references={REF: "PAY-0002"})
    unnamed = [r for r in history() if r.name != "ProviderNamed"]
    assert rep.summarize(ev.activity(unnamed)).providers[0].name == f"{POOL[:6]}…{POOL[-4:]}"


def _with_extra_refund(holder: str, nonce: int, amount: int) -> list[EventRecord]:
    h = History()
    h.records = history()
    h.block = max(r.block for r in h.records)
    h.tx(T0 + 4 * WEEK).move(POOL, holder, amount).add(
        "Refunded", holder=holder, provider=POOL, budget=SPORT_ID, amount=amount, redemptionNonce=nonce)
    return h.records


def test_refunds_beyond_the_redeemed_amount_are_findings():
    # H1 paid 12.00 (nonce 0) and got 2.00 back; another 10.01 would exceed the payment.
    lines = rep.refund_findings(ev.activity(_with_extra_refund(H1, 0, 1_001)))
    assert len(lines) == 1 and lines[0].startswith("FINDING:") and "now total €12.01" in lines[0]
    # Exactly the rest is fine.
    assert not rep.refund_findings(ev.activity(_with_extra_refund(H1, 0, 1_000)))[0].startswith("FINDING")


def test_a_refund_without_a_redemption_is_a_finding_and_migration_is_followed():
    lines = rep.refund_findings(ev.activity(_with_extra_refund(H1, 7, 100)))  # H1 never used nonce 7
    assert lines[0].startswith("FINDING:") and "no matching redemption" in lines[0]
    # H3 (H2's new phone) paid with nonce 0 after the migration: a refund to H3 matches it.
    assert not rep.refund_findings(ev.activity(_with_extra_refund(H3, 0, 500)))[0].startswith("FINDING")
