"""The till's wallet side and page furniture: connecting through EIP-6963, the wrong chain,
no wallet, a refused connection, an address that is no provider, Dutch and English, the help
page, and the offline reload through the service worker."""

from __future__ import annotations

from tillkit import MUSEUM_KEY, POOL, STRANGER_KEY


def test_connects_and_shows_the_provider(open_till, server):
    till = open_till("ok")
    assert "Gevonden wallet: Test Wallet" in till.text("#wallet-status")
    till.state("till-wallet-found")
    till.connect()
    info = till.text("#provider-info")
    assert POOL in info
    assert "sport" in info
    assert "€50,00" in info  # the pool's per-payment limit, from the chain through /api/provider
    assert "ETH" in info
    provider = server.api("provider", {"address": POOL})
    assert provider["approved"] is True
    assert "ontwikkel-chain" in till.text("#dev-banner")  # the dev chain says so
    till.state("till-connected")


def test_no_wallet_says_what_is_needed(open_till):
    till = open_till(mode="vanish")
    status = till.text("#wallet-status")
    assert "Geen wallet gevonden" in status and "Scannen en controleren werken ook zonder wallet" in status
    assert till.page.locator("#wallet-buttons button").count() == 0
    till.state("till-no-wallet")


def test_wallet_without_a_page_object_at_all(open_till):
    till = open_till(mode=None)
    assert "Geen wallet gevonden" in till.text("#wallet-status")


def test_refused_connection_is_said_plainly(open_till):
    till = open_till("rejectConnect")
    till.page.click("#wallet-buttons button")
    till.page.wait_for_selector("#wallet-status .utrecht-alert--warning")
    assert "U heeft het koppelen geweigerd" in till.text("#wallet-status")
    till.state("till-connect-refused")


def test_wrong_chain_switches_then_adds_the_chain(open_till, server):
    till = open_till("wrongChain")
    till.page.click("#wallet-buttons button")
    till.page.wait_for_selector("#wallet-status .utrecht-alert--warning")
    assert "ander netwerk (chain 1)" in till.text("#wallet-status")
    till.state("till-wrong-chain")
    till.page.click("#wallet-buttons button")  # "Wissel naar ..."
    till.page.wait_for_selector("#provider-info:not([hidden])")
    log = till.page.evaluate("window.__standInWalletLog")
    methods = [e.get("method") for e in log]
    assert methods.index("wallet_switchEthereumChain") < methods.index("wallet_addEthereumChain")
    added = next(e["added"] for e in log if "added" in e)
    deployment = server.api("deployment")
    assert added["chainId"] == deployment["chain_id_hex"] and added["rpcUrls"] == [server.base + "/rpc"]


def test_not_an_approved_provider_gets_a_sentence(open_till):
    till = open_till("ok", key=STRANGER_KEY)
    till.page.click("#wallet-buttons button")
    till.page.wait_for_selector("#wallet-status .utrecht-alert--error")
    text = till.text("#wallet-status")
    assert "geen goedgekeurde aanbieder" in text
    till.state("till-not-a-provider")


def test_english_one_click_away_and_back(open_till):
    till = open_till("ok", key=MUSEUM_KEY)
    till.connect()
    assert till.page.evaluate("document.documentElement.lang") == "nl"
    till.page.click("#lang")
    till.page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert "Scan the pass" in till.text("#scan-heading")
    assert "At most per payment" in till.text("#provider-info")
    assert "no limit" in till.text("#provider-info")  # the museum has none
    till.state("till-english")
    till.page.reload()
    till.page.wait_for_selector("body[data-ready='1']")
    assert "Scan the pass" in till.text("#scan-heading")  # the choice is remembered
    till.page.click("#lang")
    till.page.wait_for_function("() => document.documentElement.lang === 'nl'")
    assert "Pas scannen" in till.text("#scan-heading")


def test_keyboard_alone_reaches_every_control(open_till):
    till = open_till("ok")
    till.connect()
    seen = []
    for _ in range(14):
        till.page.keyboard.press("Tab")
        seen.append(till.page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    for control in ("lang", "help-link", "camera", "photo", "typed"):
        assert control in seen, (control, seen)


def test_help_page_in_dutch(open_till):
    till = open_till(mode=None, path="/till/hulp.html")
    text = till.text("main")
    for needle in ("MetaMask", "herstelzin", "registreren bij de gemeente", "hetzelfde apparaat en hetzelfde aanbiedersadres"):
        assert needle in text
    till.page.wait_for_selector("#dev-banner:not([hidden])")  # every page says it is a development chain
    till.state("help")


def test_reloads_offline_from_the_service_worker(open_till):
    till = open_till("ok", offline_service_worker=True)
    till.page.evaluate("async () => { await navigator.serviceWorker.ready; }")
    till.page.reload()  # now controlled by the service worker
    till.page.wait_for_selector("body[data-ready='1']")
    assert till.page.evaluate("navigator.serviceWorker.controller !== null")
    till.context.set_offline(True)
    till.page.reload()
    till.page.wait_for_selector("body[data-ready='1']")
    till.page.wait_for_selector("#offline-banner:not([hidden])")
    assert "op risico van de aanbieder" in till.text("#offline-banner")
    till.state("till-offline")
    till.context.set_offline(False)
    till.page.wait_for_selector("#offline-banner[hidden]", state="attached", timeout=20_000)
