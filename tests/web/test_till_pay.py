"""Scanning and paying at the till in a real browser, against contract v2 (spending-limit
vouchers, `CP2:` pass QRs): the happy path with balances checked on chain, every refusal
reason, a refused signature, no wallet, a reload between send and receipt, the offline queue of
three with one skipped, a refund, and the verdict in English."""

from __future__ import annotations

import time
from typing import Any

import pytest
from web3 import Web3

import media
from passes import Entry, pass_qr
from tillkit import CAMERA, POOL, STRANGER_KEY

from citypass import node

pytestmark = pytest.mark.v2

BALANCE_OF = [{"name": "balanceOf", "type": "function", "stateMutability": "view",
               "inputs": [{"name": "account", "type": "address"}, {"name": "id", "type": "uint256"}],
               "outputs": [{"name": "", "type": "uint256"}]}]


@pytest.fixture(scope="session")
def chain(world, server):
    """The test chain itself (not through the server): balances, automine, time."""
    w3 = Web3(Web3.HTTPProvider(node.node_status(world.workdir).rpc_url))
    d = server.api("deployment")
    cp = w3.eth.contract(address=d["contract"], abi=BALANCE_OF)

    class Chain:
        contract = d["contract"]
        chain_id = d["chain_id"]

        @staticmethod
        def balance(holder: str, budget: int) -> int:
            return cp.functions.balanceOf(holder, budget).call()

        @staticmethod
        def now() -> int:
            return w3.eth.get_block("latest")["timestamp"]

        @staticmethod
        def rpc(method: str, params: list[Any]) -> Any:
            return w3.provider.make_request(method, params)

    return Chain


@pytest.fixture
def qr(world, chain):
    """qr(resident, budget="sport", max_euros=50, nonce=0, deadline=None, provider=any) -> CP2 text."""

    def _qr(who: Any, *budgets: tuple[str, int], nonce: int = 0, deadline: int | None = None, provider: str | None = None) -> str:
        entries = [Entry({"sport": world.sport, "culture": world.culture}[name], cents, nonce) for name, cents in
                   (budgets or (("sport", 5_000),))]
        kw = {"provider": provider} if provider else {}
        return pass_qr(who, chain.chain_id, chain.contract, entries, deadline or chain.now() + 600, **kw)

    return _qr


def sentence(server, reason: str, lang: str = "nl") -> str:
    """The catalogue's words for a reason (before its placeholders are filled)."""
    entry = server.api("messages", {"lang": lang})["reasons"][reason]
    return entry["text"].split("{")[0].strip()


def entry_reason(till, budget: int) -> str:
    return till.page.get_attribute(f"#entries li[data-budget='{budget}']", "data-reason")


def pay_and_wait(till) -> None:
    till.page.click("#pay")
    till.page.wait_for_selector("#paid", timeout=20_000)


# ------------------------------------------------------------------ the happy path
def test_camera_scan_verdict_pay_paid_on_chain(open_till, world, chain, qr):
    who = world.new_resident("happy")
    code = qr(who, ("sport", 5_000), ("culture", 2_000))
    media.write_y4m(CAMERA, code)
    till = open_till("ok")
    till.connect()
    till.page.click("#camera")
    till.page.wait_for_selector("#entries li", timeout=20_000)
    sport = till.page.locator(f"#entries li[data-budget='{world.sport}']")
    assert "Nog €25,00 over" in sport.inner_text()
    assert "maximaal €50,00 per betaling" in sport.inner_text()
    assert entry_reason(till, world.sport) == "Ok"
    assert entry_reason(till, world.culture) == "CategoryNotApproved"  # the pool is sport only
    till.state("till-verdict")
    till.page.click("#camera")  # camera off before paying: the picture stays as it is
    before_holder, before_pool = chain.balance(who.address, world.sport), chain.balance(POOL, world.sport)
    till.amount("12,50", co="2,00")
    assert "In orde: €12,50" in till.text("#precheck")
    till.page.check("#refundable")
    till.state("till-precheck-ok")
    pay_and_wait(till)
    paid = till.text("#pay-status")
    assert "Betaald" in paid and "€12,50 van Sport 2026" in paid and "Nog €12,50 over" in paid and "€2,00" in paid
    assert chain.balance(who.address, world.sport) == before_holder - 1250
    assert chain.balance(POOL, world.sport) == before_pool + 1250
    till.state("till-paid")
    till.page.click("#next")
    assert till.page.is_visible("#verdict-empty")


def test_photo_of_the_pass(open_till, world, qr, tmp_path):
    who = world.new_resident("photo")
    photo = tmp_path / "pass.png"
    photo.write_bytes(media.png(qr(who)))
    till = open_till("ok")
    till.connect()
    assert till.page.get_attribute("#photo", "capture") == "environment"
    till.page.set_input_files("#photo", str(photo))
    till.page.wait_for_selector("#entries li")
    assert entry_reason(till, world.sport) == "Ok"


# ------------------------------------------------------------------ every refusal reason
def test_replay_is_refused(open_till, world, qr, server):
    who = world.new_resident("replay")
    code = qr(who)
    till = open_till("ok")
    till.connect()
    till.type_code(code)
    till.amount("5,00")
    pay_and_wait(till)
    till.page.click("#next")
    till.type_code(code)
    assert entry_reason(till, world.sport) == "NonceUsed"
    assert sentence(server, "NonceUsed") in till.text("#entries")
    assert "Deze QR-code is al gebruikt." in till.text("#verdict-status")  # not "no credit here"
    till.state("till-refused-replay")


@pytest.mark.parametrize("case", ["wrong-category", "expired", "credit", "provider-limit", "voucher-limit"])
def test_refusals_before_pay(open_till, world, qr, server, chain, case):
    who = world.new_resident(case, sport="5.00")
    till = open_till("ok")
    till.connect()
    if case == "wrong-category":
        till.type_code(qr(who, ("culture", 1_000)))
        reason = "CategoryNotApproved"
        assert entry_reason(till, world.culture) == reason
        text = till.text("#verdict")
    elif case == "expired":
        till.type_code(qr(who, deadline=chain.now() - 5))
        reason = "VoucherExpired"
        assert entry_reason(till, world.sport) == reason
        text = till.text("#verdict")
    else:
        till.type_code(qr(who, ("sport", 10_000 if case == "provider-limit" else 1_000)))
        assert entry_reason(till, world.sport) == "Ok"
        amount, reason = {"credit": ("9,00", "InsufficientCredit"), "provider-limit": ("60,00", "AboveProviderLimit"),
                          "voucher-limit": ("12,00", "AboveVoucherLimit")}[case]
        if case == "provider-limit":
            world.cli("issue", str(_csv(world, who, "100.00")), "--budget", "1", "--top-up")  # to €100
        till.amount(amount)
        text = till.text("#precheck")
        if case == "credit":
            assert "€5,00" in text and "€4,00" in text  # what is left, and what the customer pays on top
    assert sentence(server, reason) in text, (reason, text)
    till.state(f"till-refused-{case}")


def _csv(world, who, euros: str):
    path = world.workdir / f"topup-{who.address}.csv"
    path.write_text(f"holder,amount\n{who.address},{euros}\n")
    return path


@pytest.mark.parametrize("action,reason", [("suspend", "PassSuspended"), ("revoke", "PassRevoked")])
def test_suspended_or_revoked_pass(open_till, world, qr, server, action, reason):
    who = world.new_resident(action)
    world.cli("pass", action, who.address)
    till = open_till("ok")
    till.connect()
    till.type_code(qr(who))
    assert entry_reason(till, world.sport) == reason
    assert sentence(server, reason) in till.text("#verdict")
    till.state(f"till-refused-{action}")


def test_paused_system(open_till, world, qr, server):
    who = world.new_resident("paused")
    till = open_till("ok")
    till.connect()
    world.cli("pause")
    try:
        till.type_code(qr(who))
        assert entry_reason(till, world.sport) == "Paused"
        assert sentence(server, "Paused") in till.text("#verdict")
        till.state("till-refused-paused")
    finally:
        world.cli("unpause")


def test_not_an_approved_provider_scanning(open_till, world, qr, server):
    who = world.new_resident("stranger")
    till = open_till("ok", key=STRANGER_KEY)
    till.page.click("#wallet-buttons button")
    till.page.wait_for_selector("#wallet-status .utrecht-alert--error")
    till.type_code(qr(who))
    assert entry_reason(till, world.sport) == "NotAProvider"
    till.state("till-refused-not-a-provider")


# ------------------------------------------------------------------ the wallet says no, or is not there
def test_wallet_rejection_is_said_plainly(open_till, world, qr, chain):
    who = world.new_resident("reject")
    till = open_till("reject")
    till.connect()
    till.type_code(qr(who))
    till.amount("5,00")
    till.page.click("#pay")
    till.page.wait_for_selector("#pay-status .utrecht-alert--warning")
    assert "U heeft de betaling geweigerd" in till.text("#pay-status") and "niets afgeschreven" in till.text("#pay-status")
    assert chain.balance(who.address, world.sport) == 2500
    till.state("till-wallet-rejected")


def test_no_wallet_still_scans_and_prechecks(open_till, world, qr):
    who = world.new_resident("nowallet")
    till = open_till("vanish")
    till.type_code(qr(who))
    assert entry_reason(till, world.sport) == "Ok"
    till.amount("5,00")
    till.page.click("#pay")
    assert "Koppel eerst de wallet" in till.text("#pay-status")
    till.state("till-no-wallet-scanned")


# ------------------------------------------------------------------ never ambiguous
def test_reload_between_send_and_receipt(open_till, world, qr, chain):
    who = world.new_resident("reload")
    till = open_till("ok")
    till.connect()
    till.type_code(qr(who))
    till.amount("7,50")
    chain.rpc("evm_setAutomine", [False])
    try:
        till.page.click("#pay")
        till.page.wait_for_function("() => (window.__standInWalletLog || []).some(e => e.sent)")
        till.page.wait_for_selector("text=Wachten tot de betaling op de chain staat")
        till.state("till-waiting-for-chain")
        till.page.reload()
        till.page.wait_for_selector("body[data-ready='1']")
        till.page.wait_for_selector("#pay-status .utrecht-alert--info")
        assert "Reken niet opnieuw af" in till.text("#pay-status")
        till.state("till-reload-checking")
        assert chain.balance(who.address, world.sport) == 2500  # not mined yet
        chain.rpc("evm_mine", [])
    finally:
        chain.rpc("evm_setAutomine", [True])
    till.page.wait_for_selector("#paid", timeout=20_000)
    assert "€7,50 van Sport 2026" in till.text("#pay-status")
    assert chain.balance(who.address, world.sport) == 2500 - 750
    till.state("till-reload-paid")


def test_wallet_error_after_send_is_looked_up(open_till, world, qr, chain):
    who = world.new_resident("lost")
    till = open_till("failAfterSend")
    till.connect()
    till.type_code(qr(who))
    till.amount("3,00")
    till.page.click("#pay")
    till.page.wait_for_selector("#paid", timeout=20_000)  # found through the voucher's nonce
    assert chain.balance(who.address, world.sport) == 2500 - 300


def test_wallet_vanishing_before_pay_takes_nothing(open_till, world, qr, chain):
    who = world.new_resident("vanish")
    till = open_till("ok")
    till.connect()
    till.type_code(qr(who))
    till.amount("5,00")
    till.page.evaluate("() => window.__standInWalletVanish()")
    till.page.click("#pay")
    till.page.wait_for_selector("#pay-status >> text=niet doorgegaan", timeout=20_000)
    assert "er is niets afgeschreven" in till.text("#pay-status")
    assert chain.balance(who.address, world.sport) == 2500
    till.state("till-wallet-vanished")


# ------------------------------------------------------------------ offline queue
def test_offline_queue_of_three_with_one_skipped(open_till, world, qr, chain, server):
    a, b, c = (world.new_resident(f"queue-{i}") for i in range(3))
    used = qr(a)
    till = open_till("ok")
    till.connect()
    till.type_code(used)  # a's voucher is used online first: offline, the till cannot know
    till.amount("2,00")
    pay_and_wait(till)
    till.page.click("#next")
    till.context.set_offline(True)
    for code, euros in ((qr(b), "4,00"), (qr(c), "6,00"), (used, "5,00")):
        till.type_code(code)
        assert till.page.is_visible("#offline-banner")
        till.page.fill("#amount", euros)
        till.page.click("#pay")  # "In de offline wachtrij zetten"
        till.page.wait_for_selector("#pay-status >> text=In de wachtrij")
        till.page.click("#next")
    assert till.page.locator("#queue-list li").count() == 3
    assert "op risico van de aanbieder" in till.text("#queue")
    till.state("till-offline-queue")
    till.context.set_offline(False)
    till.page.wait_for_selector("#queue-results li", timeout=30_000)
    results = till.page.locator("#queue-results li")
    assert results.count() == 3
    reasons = [results.nth(i).get_attribute("data-reason") for i in range(3)]
    assert reasons == ["Ok", "Ok", "NonceUsed"]
    assert "1 overgeslagen" in till.text("#queue-status")
    assert sentence(server, "NonceUsed") in results.nth(2).inner_text()
    assert chain.balance(b.address, world.sport) == 2500 - 400
    assert chain.balance(c.address, world.sport) == 2500 - 600
    assert chain.balance(a.address, world.sport) == 2500 - 200
    till.state("till-offline-batch-done")


# ------------------------------------------------------------------ refunds and takings
def test_refund_from_todays_takings(open_till, world, qr, chain):
    who = world.new_resident("refund")
    till = open_till("ok")
    till.connect()
    till.type_code(qr(who))
    till.amount("10,00")
    till.page.check("#refundable")
    pay_and_wait(till)
    assert chain.balance(who.address, world.sport) == 1500
    till.page.click("#takings-refresh")
    # this redemption's row (the happy path's refundable €12,50 is in today's takings too, and the
    # index may not have caught up with this one yet)
    row = till.page.locator("#takings-body tr", has_text="nog €10,00 terug te betalen")
    button = row.locator("button", has_text="Terugbetalen")
    button.wait_for()
    till.state("till-takings")
    button.click()
    till.page.fill("#takings-body input", "4,00")
    # a refresh of the takings (the clerk's, or one following the payment) keeps the form and what was typed
    with till.page.expect_response(lambda r: "/api/takings" in r.url):
        till.page.click("#takings-refresh")
    till.page.wait_for_function("() => document.getElementById('takings-body').querySelector('input')?.value === '4,00'")
    till.state("till-refund-form")
    till.page.click("#takings-body button[type=submit]")
    till.page.wait_for_selector("#refund-status .utrecht-alert--ok, #refund-status .utrecht-alert--error", timeout=20_000)
    assert "Terugbetaald: €4,00" in till.text("#refund-status")
    assert chain.balance(who.address, world.sport) == 1900
    till.page.wait_for_function("() => document.getElementById('takings-body').textContent.includes('terugbetaling')")
    till.state("till-refunded")


# ------------------------------------------------------------------ English
def test_verdict_in_english(open_till, world, qr, server):
    who = world.new_resident("english", sport="3.50")
    till = open_till("ok")
    till.connect()
    till.type_code(qr(who))
    till.amount("12,50")
    till.page.click("#lang")
    till.page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert "€3.50 left" in till.text("#entries")
    till.amount("12.50")
    assert sentence(server, "InsufficientCredit", "en") in till.text("#precheck")
    till.state("till-english-refused")


def test_till_is_quick_enough_to_scan(open_till, world, qr):
    """A typed scan reaches its verdict in well under a second (make bench measures the camera)."""
    who = world.new_resident("quick")
    till = open_till("ok")
    till.connect()
    start = time.perf_counter()
    till.type_code(qr(who))
    assert time.perf_counter() - start < 2.0


def test_keyboard_alone_from_scan_to_paid(open_till, world, qr, chain):
    """A clerk with only a keyboard (and a hand scanner that types): no mouse anywhere."""
    who = world.new_resident("keyboard")
    till = open_till("ok")
    kb = till.page.keyboard
    till.page.focus("#wallet-buttons button")
    kb.press("Enter")
    till.page.wait_for_selector("#provider-info:not([hidden])")
    till.page.focus("#typed")
    kb.insert_text(qr(who))
    kb.press("Tab")  # to "Controleren"
    assert till.page.evaluate("() => document.activeElement.textContent") == "Controleren"
    kb.press("Enter")
    till.page.wait_for_selector("#entries li[data-reason='Ok']")
    till.page.focus("#amount")
    before = int(till.page.evaluate("() => Number(document.body.dataset.prechecks || 0)"))
    kb.type("6,25")
    till.page.wait_for_function(f"() => Number(document.body.dataset.prechecks || 0) > {before}")
    kb.press("Enter")  # submits the payment form
    till.page.wait_for_selector("#paid", timeout=20_000)
    assert till.page.evaluate("() => document.activeElement.id") == "next"  # ready for the next customer
    assert chain.balance(who.address, world.sport) == 2500 - 625
