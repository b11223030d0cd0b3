"""The till without a connection: scans are read from the QR itself (the browser's own CP2
reader), checked against the provider's offline limit and kept in an IndexedDB queue with the
warning that they are at the provider's risk. (Submitting the queue needs the chain and
contract v2: tests/web/test_till_pay.py.)"""

from __future__ import annotations

from passes import Entry, pass_qr


def offline_till(open_till, server):
    till = open_till("ok")
    till.connect()  # online first: the till keeps the deployment, budgets and provider for later
    till.context.set_offline(True)
    return till


def code_for(server, world, who, nonce=0, max_cents=5_000, deadline=None):
    d = server.api("deployment")
    return pass_qr(who, d["chain_id"], d["contract"], [Entry(world.sport, max_cents, nonce), Entry(world.culture, 1_000, nonce)],
                   deadline or d["time"] + 3_600)


def test_offline_scan_reads_the_qr_in_the_browser(open_till, server, world):
    till = offline_till(open_till, server)
    who = world.new_resident("offline-read")
    till.type_code(code_for(server, world, who))
    assert till.page.is_visible("#offline-banner")
    sport = till.page.locator(f"#entries li[data-budget='{world.sport}']")
    assert "Sport 2026" in sport.inner_text() and "Saldo onbekend (offline)" in sport.inner_text()
    assert "maximaal €50,00 per betaling" in sport.inner_text()
    # the pool takes sport only: the culture voucher is refused from the cached provider details
    assert till.page.get_attribute(f"#entries li[data-budget='{world.culture}']", "data-reason") == "CategoryNotApproved"
    assert "In de offline wachtrij zetten" in till.text("#pay")
    till.state("till-offline-scan")
    till.context.set_offline(False)


def test_offline_limit_per_voucher(open_till, server, world):
    till = offline_till(open_till, server)
    who = world.new_resident("offline-limit")
    till.type_code(code_for(server, world, who))
    till.page.fill("#offline-limit", "3,00")
    till.page.click("#limit-form button")
    till.page.wait_for_selector("#limit-status >> text=maximaal €3,00 per offline scan")
    till.amount("4,00")
    assert "Boven de offline limiet van €3,00" in till.text("#precheck")
    till.page.click("#pay")
    assert till.page.locator("#queue-list li").inner_text() == "De wachtrij is leeg."
    till.state("till-offline-above-limit")
    till.amount("3,00")
    till.page.click("#pay")
    till.page.wait_for_selector("#pay-status >> text=In de wachtrij")
    assert till.page.locator("#queue-list li").count() == 1
    till.context.set_offline(False)


def test_offline_queue_keeps_three_and_refuses_a_double(open_till, server, world):
    till = offline_till(open_till, server)
    people = [world.new_resident(f"offline-q{i}") for i in range(3)]
    codes = [code_for(server, world, who) for who in people]
    for code, euros in zip(codes, ("4,00", "6,00", "5,00")):
        till.type_code(code)
        till.page.fill("#amount", euros)
        till.page.click("#pay")
        till.page.wait_for_selector("#pay-status >> text=In de wachtrij")
        till.page.click("#next")
    items = till.page.locator("#queue-list li")
    assert items.count() == 3
    assert "€6,00" in items.nth(1).inner_text()
    till.type_code(codes[0])  # the same voucher again
    till.page.fill("#amount", "1,00")
    till.page.click("#pay")
    assert "staat al in de wachtrij" in till.text("#pay-status")
    assert items.count() == 3
    # the queue survives a reload (IndexedDB), still offline: the page comes from the server again
    till.context.set_offline(False)
    till.page.route("**/api/**", lambda route: route.abort())  # the chain side stays away
    till.page.route("**/rpc", lambda route: route.abort())
    till.page.reload()
    till.page.wait_for_selector("body[data-ready='1']")
    assert till.page.locator("#queue-list li").count() == 3
    assert till.page.is_visible("#offline-banner")
    till.state("till-offline-queue-after-reload")


def test_an_expired_code_offline(open_till, server, world):
    till = offline_till(open_till, server)
    who = world.new_resident("offline-expired")
    d = server.api("deployment")
    till.type_code(code_for(server, world, who, deadline=d["time"] - 600))
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "VoucherExpired"
    till.context.set_offline(False)
