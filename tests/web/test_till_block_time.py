"""The till in Chromium on a plain Anvil with `--block-time 2` (no automine), as on an L2, with
`citypass --confirmations 2 web`: after the clerk pays, the till says the payment was sent and
is waiting for the blockchain (the pay button disabled), keeps waiting through a slow block,
counts "Wachten op bevestiging: 0 van 2 blokken", "1 van 2", and says "Betaald" only once the
receipt's block has 2 blocks on top, never before; the chain holds the redemption once.

The server reaches Anvil through a proxy that answers as the RPC node of an L2 without a
public mempool: a transaction not yet in a block is unknown (`eth_getTransactionByHash` null)
and the "pending" nonce is the latest one. A slow block must then not be taken for a dropped
transaction (the till used to give up after 4 s and say "not paid" while it was on its way).

A reorganisation that takes the payment out of its block while the till counts sends the till
back to waiting (never "Betaald" first): followed to its new block when the same signed
transaction comes back, "not paid" when it is gone for good (the long version).

`make test` runs the one payment with every state (about 27 s with the set-up); the rest is
the long version in tests/web/long_till_block_time.py, which only `make networks-long`
(CITYPASS_LONG=1) runs: four payments in a row and a paper coupon, a wallet that fails after
sending, and the two reorganisations.

The set-up (deployment, budgets, providers, residents) runs with Anvil's automine switched on
for speed; the till then runs on 2-second interval mining only. Synthetic residents only;
Anvil's public dev keys only (a local chain)."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterator

import pytest
from eth_utils import keccak

import media
from passes import Entry, pass_qr
from tillkit import CAMERA, WebServer, World
import requests

from tests.network_helpers import Anvil, rpc, wait_until
from tests.rpc_proxy import RpcProxy

pytestmark = pytest.mark.v2

LONG = bool(os.environ.get("CITYPASS_LONG"))
BLOCK_TIME = 2
CONFIRMATIONS = 2
REDEEMED = "0x" + keccak(text="Redeemed(address,uint256,uint256)").hex()
BALANCE_OF = "0x" + keccak(text="balanceOf(address,uint256)")[:4].hex()

# Records what #pay-status showed, in order: "pending:", "confirming:0", ..., "paid", or the
# first words of any other message (e.g. "not paid"), so a test sees every state the clerk saw.
WATCH = """() => {
  window.__stages = [];
  const box = document.getElementById('pay-status');
  const look = () => {
    const w = document.getElementById('waiting');
    const s = document.getElementById('paid') ? 'paid' : w ? `${w.dataset.stage}:${w.dataset.have}`
      : box.textContent.trim().slice(0, 60);
    if (s && window.__stages[window.__stages.length - 1] !== s) window.__stages.push(s);
  };
  new MutationObserver(look).observe(box, {childList: true, subtree: true, characterData: true, attributes: true});
  look();
}"""
LAST_SENT = "() => window.__standInWalletLog.filter(e => e.sent).pop().sent"


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    node = Anvil("--block-time", str(BLOCK_TIME))
    yield node
    node.stop()


@pytest.fixture(scope="module")
def world(anvil, tmp_path_factory):
    """The till's world on the plain Anvil (overrides conftest's embedded one for this module):
    set up under automine, then back to a block every 2 seconds."""
    rpc(anvil.url, "evm_setAutomine", [True])
    try:
        w = World(tmp_path_factory.mktemp("citypass-till-blocktime"), rpc=anvil.url)
        w.people = [w.new_resident(f"blocktime-{i}", sport="40.00") for i in range(4 if LONG else 1)]
        w.sheet = coupon_sheet(w) if LONG else None
    finally:
        rpc(anvil.url, "evm_setIntervalMining", [BLOCK_TIME])
    assert rpc(anvil.url, "anvil_getAutomine") is False
    return w


def coupon_sheet(w: World) -> dict[str, Any]:
    """A €20 paper coupon sheet of Sport 2026 (`citypass coupons new`), its codes read from the PDF."""
    import pypdfium2 as pdfium
    import zxingcpp

    from citypass import passqr

    pdf = w.workdir / "sheet.pdf"
    made = w.cli("coupons", "new", "--budget", "1", "--amount", "20", "--out", str(pdf))
    page = pdfium.PdfDocument(str(pdf))[0].render(scale=200 / 72).to_pil().convert("L")
    codes = [(passqr.decode(c.text), c.text) for c in zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)]
    codes.sort(key=lambda f: (-f[0].entries[0].max_amount, f[0].entries[0].nonce))
    return {"holder": made["pass"], "codes": codes}


class _Answer:
    def __init__(self, data: Any):
        self.data = data

    def json(self) -> Any:
        return self.data


class NoMempool:
    """What an L2's RPC node without a public mempool says: a transaction not in a block yet is
    unknown, and the "pending" nonce is the latest one (stands in for RpcProxy's HTTP session)."""

    def post(self, url: str, data: bytes, headers: dict[str, str], timeout: float) -> _Answer:
        payload = json.loads(data)
        items = payload if isinstance(payload, list) else [payload]
        methods = {i.get("id"): i.get("method") for i in items}
        for i in items:
            params = i.get("params") or []
            if i.get("method") == "eth_getTransactionCount" and len(params) > 1 and params[1] == "pending":
                i["params"] = [params[0], "latest"]
        got = requests.post(url, data=json.dumps(payload), headers=headers, timeout=timeout).json()
        for a in got if isinstance(got, list) else [got]:
            found = a.get("result")
            if methods.get(a.get("id")) == "eth_getTransactionByHash" and isinstance(found, dict) and found.get("blockNumber") is None:
                a["result"] = None
        return _Answer(got)


@pytest.fixture(scope="module")
def server(world, anvil) -> Iterator[WebServer]:
    """`citypass --rpc <anvil, through NoMempool> --confirmations 2 web` (overrides conftest's)."""
    proxy = RpcProxy(anvil.url)
    proxy._session = NoMempool()  # type: ignore[assignment]
    with proxy:
        s = WebServer(world.workdir, rpc=proxy.url, confirmations=CONFIRMATIONS)
        yield s
        s.stop()


class Chain:
    """The test's own look at the node (not through the server)."""

    def __init__(self, url: str, contract: str):
        self.url, self.contract = url, contract

    def head(self) -> int:
        return int(rpc(self.url, "eth_blockNumber"), 16)

    def now(self) -> int:
        return int(rpc(self.url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def next_block(self) -> int:
        """Waits for the next block (right after it, a payment waits almost a whole block time)."""
        start = self.head()
        return wait_until("the next block", lambda: self.head() > start and self.head(), timeout=10)

    def balance(self, holder: str, budget: int) -> int:
        data = BALANCE_OF + holder[2:].lower().rjust(64, "0") + hex(budget)[2:].rjust(64, "0")
        return int(rpc(self.url, "eth_call", [{"to": self.contract, "data": data}, "latest"]), 16)

    def redemptions(self, holder: str) -> list[dict[str, Any]]:
        """The Redeemed events of `holder` on chain now."""
        return rpc(self.url, "eth_getLogs", [{"address": self.contract, "fromBlock": "0x0", "toBlock": "latest",
                                              "topics": [REDEEMED, "0x" + holder[2:].lower().rjust(64, "0")]}])

    def pause(self) -> None:
        """No more blocks until resume(): a slow block, as far as the till can tell."""
        rpc(self.url, "evm_setIntervalMining", [0])

    def resume(self) -> None:
        rpc(self.url, "evm_setIntervalMining", [BLOCK_TIME])


@pytest.fixture(scope="module")
def chain(anvil, server) -> Chain:
    return Chain(anvil.url, server.api("deployment")["contract"])


def scan(open_till, world, chain, code: str, *, camera: bool):
    till = open_till("ok")
    till.connect()
    if camera:
        media.write_y4m(CAMERA, code)
        till.page.click("#camera")
        till.page.wait_for_selector("#entries li", timeout=20_000)
        till.page.click("#camera")  # camera off before paying: the picture stays as it is
    else:
        till.type_code(code)  # a hand scanner that types
    assert till.page.get_attribute(f"#entries li[data-budget='{world.sport}']", "data-reason") == "Ok"
    till.page.evaluate(WATCH)
    return till


def paid_deep_enough(till, chain: Chain) -> dict[str, Any]:
    """Waits for "Betaald"; the moment it shows, its transaction has CONFIRMATIONS blocks on top."""
    till.page.wait_for_selector("#paid", timeout=30_000)
    head = chain.head()
    tx = till.page.get_attribute("#paid", "data-tx")
    receipt = rpc(chain.url, "eth_getTransactionReceipt", [tx])
    assert receipt is not None and receipt["status"] == "0x1"
    assert head - int(receipt["blockNumber"], 16) >= CONFIRMATIONS, (head, receipt["blockNumber"])
    assert head - int(receipt["blockNumber"], 16) <= CONFIRMATIONS + 1  # and not long after
    return receipt


def stages(till) -> list[str]:
    """What #pay-status showed since the transaction was sent (before: "confirm in your wallet")."""
    seen = till.page.evaluate("() => window.__stages")
    return seen[seen.index("pending:"):] if "pending:" in seen else seen


def pay_and_follow(till, world, chain: Chain, who: str, euros: str, cents: int) -> dict[str, Any]:
    """Pay; the waiting and counting states in order; "Betaald" deep enough; once on chain."""
    before, events = chain.balance(who, world.sport), len(chain.redemptions(who))
    till.amount(euros)
    chain.next_block()
    till.page.click("#pay")
    till.page.wait_for_selector("#waiting")
    assert till.page.is_disabled("#pay")
    receipt = paid_deep_enough(till, chain)
    seen = stages(till)
    assert seen[-1] == "paid" and seen.count("paid") == 1, seen
    assert "confirming:0" in seen and "confirming:1" in seen and seen.index("confirming:1") < seen.index("paid"), seen
    assert chain.balance(who, world.sport) == before - cents
    assert len(chain.redemptions(who)) == events + 1
    return receipt


# ------------------------------------------------------------------ one payment, every state
def test_a_payment_on_2_second_blocks_waits_for_2_confirmations(open_till, world, chain, server):
    assert server.api("deployment")["confirmations"] == CONFIRMATIONS
    who = world.people[0]
    code = pass_qr(who, server.api("deployment")["chain_id"], chain.contract, [Entry(world.sport, 5_000, 0)], chain.now() + 600)
    till = scan(open_till, world, chain, code, camera=True)
    till.amount("12,50")
    assert "In orde: €12,50" in till.text("#precheck")
    before = chain.balance(who.address, world.sport)

    # sent, while no block comes for longer than the old 4-second guess: still waiting, no second payment
    chain.next_block()
    chain.pause()
    try:
        started = time.monotonic()
        till.page.click("#pay")
        till.page.wait_for_selector("#waiting[data-stage='pending']")
        status = till.text("#pay-status")
        assert "Betaling verstuurd, wachten op de blockchain…" in status
        assert "Wachten tot de betaling op de chain staat" in status and "Reken niet opnieuw af" in status
        assert "€12,50 van Sport 2026" in status
        assert till.page.is_disabled("#pay")
        till.state("till-blocktime-waiting")
        till.page.click("#lang")  # the same in English, one click away, and back
        till.page.wait_for_function("() => document.documentElement.lang === 'en'")
        status = till.text("#pay-status")
        assert "Payment sent, waiting for the blockchain…" in status and "Do not charge again" in status, status
        assert "€12.50 from Sport 2026" in status and till.page.is_disabled("#pay")
        till.state("till-blocktime-waiting-en")
        till.page.click("#lang")
        till.page.wait_for_function("() => document.documentElement.lang === 'nl'")
        assert "Betaling verstuurd, wachten op de blockchain…" in till.text("#pay-status")
        # the node does not know the transaction (no mempool) and no block comes: longer than 4 s
        assert rpc(server.base + "/rpc", "eth_getTransactionByHash", [till.page.evaluate(LAST_SENT)]) is None
        till.page.wait_for_timeout(max(0, 7_000 - (time.monotonic() - started) * 1000))
        assert till.page.is_visible("#waiting[data-stage='pending']") and till.page.is_disabled("#pay")
        assert stages(till) == ["pending:"], stages(till)
        chain.resume()

        # in a block: counting the blocks on top, then (paused once more) a picture of that
        till.page.wait_for_selector("#waiting[data-stage='confirming']", timeout=10_000)
        chain.pause()
        status = till.text("#pay-status")
        assert "Staat op de blockchain, wachten op bevestiging…" in status
        assert "Wachten op bevestiging: 0 van 2 blokken" in status or "Wachten op bevestiging: 1 van 2 blokken" in status
        assert till.page.is_disabled("#pay") and not till.page.is_visible("#paid")
        till.state("till-blocktime-confirming")
        till.page.click("#lang")  # in English from here
        till.page.wait_for_function("() => document.documentElement.lang === 'en'")
    finally:
        chain.resume()
    till.page.wait_for_selector("#waiting[data-have='1']", timeout=10_000)
    assert "Waiting for confirmation: 1 of 2 blocks" in till.text("#pay-status")
    assert "On the blockchain, waiting for confirmation…" in till.text("#pay-status")
    receipt = paid_deep_enough(till, chain)
    seen = stages(till)
    assert seen[:3] == ["pending:", "confirming:0", "confirming:1"] and seen[-1] == "paid" and seen.count("paid") == 1, seen
    assert "Paid" in till.text("#pay-status") and "€12.50 from Sport 2026" in till.text("#pay-status")
    assert chain.balance(who.address, world.sport) == before - 1250
    found = chain.redemptions(who.address)
    assert len(found) == 1 and found[0]["transactionHash"] == receipt["transactionHash"]
    till.state("till-blocktime-paid")
    till.page.click("#lang")  # back to Dutch for the next test's till (the choice is kept)


def test_the_api_says_how_deep_a_voucher_was_used(world, chain, server):
    """/api/nonces with `depth`: used already N blocks below the head (what the till asks when it
    has no transaction hash, e.g. the wallet failed after sending); a bad depth names the field."""
    who = world.people[0]  # its nonce 0 was used by the payment above
    item = {"budget": str(world.sport), "nonce": 0}
    now = server.api("nonces", {"holder": who.address, "items": [item], "depth": 0})
    assert now["items"][0] == {**item, "used": True, "used_deep": True} and now["deep_block"] == now["block"]
    long_ago = server.api("nonces", {"holder": who.address, "items": [item], "depth": 256})  # before the deployment
    assert long_ago["deep_block"] == max(0, long_ago["block"] - 256) < server.api("deployment")["deploy_block"]
    assert long_ago["items"][0]["used"] is True and long_ago["items"][0]["used_deep"] is False
    assert "used_deep" not in server.api("nonces", {"holder": who.address, "items": [item]})["items"][0]
    for bad in (-1, 257, "two"):
        r = requests.post(server.base + "/api/nonces", json={"holder": who.address, "items": [item], "depth": bad}, timeout=10)
        assert r.status_code == 400 and r.json()["error"]["field"] == "depth", r.text
