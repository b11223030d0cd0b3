"""Resident and provider flows through the `citypass` command (contract v2): sign the pass
QR -> QR PNG -> show -> redeem an amount, batch redemption, the wallet's pre-checks
(--force), deadlines from the next block's time, and the plain message for each reason a
voucher is refused."""

from __future__ import annotations

import json

import pytest

from citypass import clock, keys, passqr, redemption, wallet
from citypass.reasons import Reason
from tests.ops_helpers import World, enrol_and_credit, make_world, synthetic_account
from tests.ops_helpers import cli as run_cli

PASSWORD = "synthetic-test-password"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("cli-vouchers"))


@pytest.fixture(scope="module")
def residents(world: World):
    """Three synthetic residents with 100 euro of sport and culture credit, each with a keystore."""
    people = [synthetic_account(f"voucher-resident-{i}") for i in range(3)]
    enrol_and_credit(world, people, world.sport, 10_000, "cli-vouchers-sport")
    world.send(world.issuer, world.f.issue(b"\x07" * 32, world.culture, [p.address for p in people], [10_000] * 3))
    for i, p in enumerate(people):
        keys.create_keystore(world.workdir, f"resident{i}", p.key, password=PASSWORD)
    return people


@pytest.fixture
def w(world, residents):
    yield from world.rolled_back()


def cli(w: World, *args: str):
    return run_cli(w, *args, env={"CITYPASS_PASSWORD": PASSWORD})


def sign(w: World, resident: int, *args: str) -> str:
    r = cli(w, "voucher", "sign", "--key", f"resident{resident}", *args)
    assert r.exit_code == 0, r.stderr
    return r.stdout.strip()


def test_sign_qr_show_redeem_end_to_end(w, residents, tmp_path):
    png = tmp_path / "pass.png"
    text = sign(w, 0, "--qr", str(png))  # every budget with credit, any provider, min(balance, €150)
    assert text.startswith("CP2:") and png.stat().st_size > 0
    assert wallet.read_qr(png) == text
    pq = passqr.decode(text)
    assert pq.holder == residents[0].address and pq.provider == passqr.ANY_PROVIDER
    assert [(e.budget, e.max_amount, e.nonce) for e in pq.entries] == [(w.sport, 10_000, 0), (w.culture, 10_000, 0)]

    shown = cli(w, "voucher", "show", str(png), "--provider", w.pool.address, "--amount", "12.50")
    assert shown.exit_code == 1  # the pool cannot take the culture voucher: said per voucher
    assert "up to €100.00 in one payment" in shown.stdout and "OK: the voucher can be redeemed" in shown.stdout
    assert "(wrong category)" in shown.stdout
    data = json.loads(cli(w, "--json", "voucher", "show", text, "--provider", w.pool.address, "--budget", "1",
                          "--amount", "12.50").stdout)
    v = data["vouchers"][0]
    assert data["ok"] is True and v["reason"] == "Ok"
    assert (v["amount"], v["amount_cents"], v["max_amount"], v["max_amount_cents"]) == ("12.50", 1250, "100.00", 10_000)

    redeemed = cli(w, "--json", "--from", "dev:8", "redeem", str(png), "--amount", "12.50", "--co-payment", "2")
    assert redeemed.exit_code == 0, redeemed.stderr
    out = json.loads(redeemed.stdout)
    assert out["gas_used"] > 0 and out["budget"] == 1 and (out["amount"], out["amount_cents"]) == ("12.50", 1250)
    assert (out["co_payment"], out["co_payment_cents"], out["refundable"]) == ("2.00", 200, False)
    assert w.f.balanceOf(residents[0].address, w.sport).call() == 10_000 - 1250
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 1250
    bal = json.loads(cli(w, "--json", "balance", "--provider", w.pool.address).stdout)
    assert (bal["total"], bal["total_cents"]) == ("12.50", 1250) and bal["budgets"][0]["budget"] == 1

    # the next pass QR: sport's nonce was used, culture keeps nonce 0; sport's limit is the balance
    after = passqr.decode(sign(w, 0))
    assert [(e.max_amount, e.nonce) for e in after.entries] == [(10_000 - 1250, 1), (10_000, 0)]


def test_same_nonce_on_every_refresh_until_used(w, residents):
    first, second = passqr.decode(sign(w, 1)), passqr.decode(sign(w, 1))
    assert [e.nonce for e in first.entries] == [e.nonce for e in second.entries] == [0, 0]
    assert cli(w, "--from", "dev:9", "redeem", first.encode(), "--amount", "1").exit_code == 0  # the museum: culture
    # the copied (older) QR dies for culture as soon as the resident paid with it
    assert refusal(w, second.encode(), "--from", "dev:9", amount="1").endswith("already used (replayed)")
    assert [e.nonce for e in passqr.decode(sign(w, 1)).entries] == [0, 1]


def test_deadline_is_the_municipality_setting(w):
    assert cli(w, "settings", "set", "--pass-qr-ttl", "3600").exit_code == 0
    try:
        before = clock.next_block_time(w.chain)
        pq = passqr.decode(sign(w, 0))
        assert before + 3_600 <= pq.deadline <= clock.next_block_time(w.chain) + 3_600
    finally:
        (w.workdir / "settings.json").unlink()
    assert passqr.decode(sign(w, 0)).deadline >= before + 86_400  # default: 24 hours


def refusal(w: World, payload: str, *extra: str, amount: str = "5", more: tuple[str, ...] = ()) -> str:
    """Redeem must refuse before sending: exit 1, one plain line, no traceback, no gas spent."""
    provider = w.museum.address if "dev:9" in extra else w.pool.address
    nonce_before = w.chain.w3.eth.get_transaction_count(provider)
    args = [*extra] if extra else ["--from", "dev:8"]
    r = cli(w, *args, "redeem", payload, "--amount", amount, *more)
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    assert w.chain.w3.eth.get_transaction_count(provider) == nonce_before
    return r.stderr.strip()


def test_replayed_voucher(w):
    payload = sign(w, 1, "--budget", "1")
    assert cli(w, "--from", "dev:8", "redeem", payload, "--amount", "5").exit_code == 0
    assert refusal(w, payload) == "error: voucher refused: this voucher was already used (replayed)"


def test_wrong_category(w):
    # the museum takes culture and education only; this pass QR carries sport credit only
    payload = sign(w, 0, "--budget", "1")
    wrong = "error: voucher refused: this provider is not approved for this budget's category (wrong category)"
    assert refusal(w, payload, "--from", "dev:9") == wrong
    assert refusal(w, payload, "--from", "dev:9", more=("--budget", "1")) == wrong
    # a pass QR with several budgets, none of them culture or education: the till says so
    w.send(w.budget_manager, w.f.createBudget(0, w.chain.now() - 60, w.end, 1_000_000, "Sport two"))
    w.send(w.issuer, w.f.issue(b"\x08" * 32, w.f.budgets().call()[-1], [synthetic_account("voucher-resident-0").address],
                               [500]))
    two = sign(w, 0, "--budget", "1", "--budget", "3")
    msg = refusal(w, two, "--from", "dev:9")
    assert "vouchers for budgets #1, #3, none in a category" in msg
    show = cli(w, "voucher", "show", payload, "--provider", w.museum.address)
    assert show.exit_code == 1 and "(wrong category)" in show.stdout
    show = cli(w, "--from", "dev:9", "voucher", "show", payload)  # the till's own wallet is the provider
    assert show.exit_code == 1 and "(wrong category)" in show.stdout and w.museum.address in show.stdout
    show = cli(w, "voucher", "show", payload)
    assert show.exit_code == 2 and "say which provider would redeem it (--provider)" in show.stderr


def test_deadline_passed(w):
    payload = sign(w, 0, "--budget", "1", "--ttl", "5")
    w.chain.advance_time(passqr.decode(payload).deadline - w.chain.now() + 10)
    assert refusal(w, payload) == "error: voucher refused: the voucher's deadline has passed; ask the resident for a new QR code"


def _quiet_chain(w: World, monkeypatch, seconds: int = 600) -> None:
    """The chain's last block is `seconds` old: the wall clock (this process's, and the
    node's) moved on, and nobody sent a transaction since."""
    real = clock.time.time
    monkeypatch.setattr(clock.time, "time", lambda: real() + seconds)
    w.chain.rpc("evm_increaseTime", [seconds])  # the node's clock too, without mining a block


def test_qr_is_not_born_expired_on_a_quiet_chain(w, residents, monkeypatch):
    """Issue 11 item 2: `voucher sign` set the deadline from the latest block's time; with the
    last block 10 minutes old, a 5-minute voucher was born expired, `voucher show` still
    said OK and `redeem` then refused it."""
    _quiet_chain(w, monkeypatch)
    latest = w.chain.now()
    payload = sign(w, 0, "--budget", "1", "--ttl", "300")
    assert passqr.decode(payload).deadline >= latest + 600 + 300
    shown = cli(w, "voucher", "show", payload, "--provider", w.pool.address, "--amount", "5")
    assert shown.exit_code == 0 and "OK: the voucher can be redeemed" in shown.stdout, shown.stdout
    assert cli(w, "--from", "dev:8", "redeem", payload, "--amount", "5").exit_code == 0


def test_show_agrees_with_redeem_at_the_next_blocks_time(w, residents, monkeypatch):
    """A voucher whose deadline lies between the latest block's time and the next block's:
    the pre-check must say expired, as redeem will (the chain's latest block would say OK)."""
    _quiet_chain(w, monkeypatch)
    latest = w.chain.now()
    pq = passqr.sign_pass(residents[0].key, w.chain.chain_id, w.dep.address, [(w.sport, 1_000, 0)], latest + 300)
    check = redemption.explain(w.dep, pq.vouchers()[0], w.pool.address, 500)
    assert check.reason == Reason.VoucherExpired and check.judged_at >= latest + 600
    shown = cli(w, "voucher", "show", pq.encode(), "--provider", w.pool.address)
    assert shown.exit_code == 1 and "deadline has passed" in shown.stdout
    assert refusal(w, pq.encode()).endswith("the voucher's deadline has passed; ask the resident for a new QR code")
    with pytest.raises(redemption.VoucherRefused, match="deadline has passed"):
        redemption.redeem(w.dep, w.pool, pq.vouchers()[0], 500)


def test_not_enough_credit(w):
    payload = sign(w, 0, "--budget", "2", "--max", "150", "--force")
    assert refusal(w, payload, "--from", "dev:9", amount="100.01") == (
        "error: voucher refused: not enough credit left on the pass for this amount")


def test_above_the_vouchers_limit(w):
    payload = sign(w, 0, "--budget", "1", "--max", "10")
    assert refusal(w, payload, amount="10.01") == f"error: voucher refused: {Reason.AboveVoucherLimit.message}"
    assert cli(w, "--from", "dev:8", "redeem", payload, "--amount", "10").exit_code == 0


def test_zero_amount(w):
    payload = sign(w, 0, "--budget", "1")
    r = cli(w, "--from", "dev:8", "redeem", payload, "--amount", "0")
    assert r.exit_code == 2 and "Traceback" not in r.stderr  # the euro parser refuses 0 before the chain


def test_above_provider_limit(w):
    payload = sign(w, 0, "--budget", "1")  # €100 limit on the QR, the pool takes at most €50 per payment
    assert "above this provider's limit" in refusal(w, payload, amount="50.01")


def test_revoked_pass(w, residents):
    payload = sign(w, 2, "--budget", "1")
    w.send(w.issuer, w.f.revokePass(residents[2].address))
    assert refusal(w, payload) == "error: voucher refused: the city pass has been revoked"


def test_voucher_for_another_provider(w):
    payload = sign(w, 0, "--budget", "2", "--provider", w.museum.address)
    assert passqr.decode(payload).provider == w.museum.address
    r = cli(w, "--from", "dev:8", "redeem", payload, "--amount", "5", "--budget", "2")
    assert r.exit_code == 1
    assert f"made out to provider {w.museum.address}, not to this wallet {w.pool.address}" in r.stderr
    assert cli(w, "redeem", payload, "--amount", "5").exit_code == 0  # dev chain: the named provider's dev key


# ---------------------------------------------------------------------------- the wallet's pre-checks (issue 11)
def test_sign_refuses_more_than_the_balance(w):
    """`voucher sign` signed €500 against a €100 balance with exit 0."""
    r = cli(w, "voucher", "sign", "--key", "resident0", "--budget", "1", "--max", "500")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == ("error: not signed: budget #1: €500.00 is more than the €100.00 left on the pass "
                                "(--force signs anyway)")
    forced = sign(w, 0, "--budget", "1", "--max", "500", "--force")
    assert passqr.decode(forced).entries[0].max_amount == 50_000


def test_sign_refuses_above_the_providers_limit_and_wrong_category(w):
    r = cli(w, "voucher", "sign", "--key", "resident0", "--budget", "1", "--max", "60", "--provider", w.pool.address)
    assert r.exit_code == 1 and "€60.00 is above the provider's limit of €50.00 per payment" in r.stderr
    r = cli(w, "voucher", "sign", "--key", "resident0", "--budget", "1", "--provider", w.museum.address)
    assert r.exit_code == 1 and f"provider {w.museum.address} is not approved for category 0" in r.stderr
    assert "--force" in r.stderr
    assert sign(w, 0, "--budget", "1", "--provider", w.museum.address, "--force").startswith("CP2:")


def test_sign_refuses_a_budget_without_credit(w):
    now = w.chain.now()
    w.send(w.budget_manager, w.f.createBudget(2, now - 60, now + 30 * 86_400, 1_000_000, "Education test"))
    r = cli(w, "voucher", "sign", "--key", "resident0", "--budget", "3")
    assert r.exit_code == 1 and "budget #3: the pass holds no credit in this budget" in r.stderr
    nobody = synthetic_account("voucher-nobody")
    keys.create_keystore(w.workdir, "nobody", nobody.key, password=PASSWORD)
    r = cli(w, "voucher", "sign", "--key", "nobody")
    assert r.exit_code == 1 and "holds no credit in any budget" in r.stderr


def test_bad_payload_and_missing_file(w, tmp_path):
    r = cli(w, "voucher", "show", "CP1:1:2")
    assert r.exit_code == 1 and r.stderr.startswith("error: not a valid pass QR: prefix: a CP1 code")
    r = cli(w, "voucher", "show", "CP2:ZZZ")
    assert r.exit_code == 1 and "base45: characters 1..3" in r.stderr
    r = cli(w, "voucher", "show", str(tmp_path / "nope.png"))
    assert r.exit_code == 1 and "no such file" in r.stderr
    (tmp_path / "blank.png").write_bytes(b"not a png")
    r = cli(w, "voucher", "show", str(tmp_path / "blank.png"))
    assert r.exit_code == 1 and "not an image" in r.stderr


def test_redeem_batch_skips_what_fails(w, tmp_path):
    good1 = sign(w, 0, "--budget", "1")
    good2 = sign(w, 1, "--budget", "1")
    too_much = sign(w, 1, "--budget", "1", "--nonce", "7")
    batch = tmp_path / "offline.txt"
    # good1 twice: the second is a replay; too_much asks more than the pool's limit
    batch.write_text(f"{good1},3\n\n{good2},4,1.50\n{good1},3\n{too_much},50.01\n")
    r = cli(w, "--json", "--from", "dev:8", "redeem", "--batch", str(batch))
    assert r.exit_code == 1 and "2 of 4 vouchers were refused" in r.stderr
    out = json.loads(r.stdout)
    assert [(o["line"], o["redeemed"], o["reason"], o["amount_cents"]) for o in out] == [
        (1, True, None, 300), (3, True, None, 400), (4, False, "NonceUsed", 300), (5, False, "AboveProviderLimit", 5001)]
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 700


def test_redeem_batch_with_a_bad_line_sends_nothing(w, tmp_path):
    good = sign(w, 0, "--budget", "1")
    batch = tmp_path / "offline.txt"
    batch.write_text(f"{good},3\nCP2:garbage,1\n{good}\n")
    r = cli(w, "--from", "dev:8", "redeem", "--batch", str(batch))
    assert r.exit_code == 1 and "2 bad line(s)" in r.stderr and "nothing was sent" in r.stderr
    assert "line 2: base45" in r.stderr and "line 3: 1 comma-separated fields" in r.stderr
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 0


# ---------------------------------------------------------------------------- nonces (no chain)
class _Calls:
    def __init__(self, value):
        self.value = value

    def call(self):
        return self.value


class _FakeDep:
    """hotNonces / nonceBitmap answers of a holder who used many vouchers."""

    def __init__(self, hot: int, cold: dict[int, int]):
        functions = type("F", (), {})()
        functions.hotNonces = lambda holder, budget: _Calls(hot)
        functions.nonceBitmap = lambda holder, budget, word: _Calls(cold.get(word, 0))
        self.contract = type("C", (), {"functions": functions})()


@pytest.mark.parametrize("word,width,expected", [
    (0, 256, 0), (0b1011, 256, 2), ((1 << 128) - 1, 128, None), ((1 << 128) - 1, 256, 128), ((1 << 256) - 1, 256, None),
])
def test_lowest_clear_bit(word, width, expected):
    assert wallet.lowest_clear_bit(word, width) == expected


def test_next_nonce_goes_to_the_cold_bitmap_after_128():
    holder = "0x" + "12" * 20
    assert wallet.next_nonce(_FakeDep(0b0111, {}), holder, 1) == 3
    full = (1 << 128) - 1
    assert wallet.next_nonce(_FakeDep(full, {}), holder, 1) == 128
    assert wallet.next_nonce(_FakeDep(full, {0: 0b11111}), holder, 1) == 133
    assert wallet.next_nonce(_FakeDep(full, {0: (1 << 256) - 1, 1: 1}), holder, 1) == 128 + 256 + 1


def test_cold_nonce_on_chain(w, residents):
    """A voucher numbered above 127 is redeemed through the cold bitmap; the wallet still
    offers the lowest unused number."""
    payload = sign(w, 0, "--budget", "1", "--nonce", "300")
    assert cli(w, "--from", "dev:8", "redeem", payload, "--amount", "1").exit_code == 0
    assert w.f.isNonceUsed(residents[0].address, w.sport, 300).call()
    assert wallet.next_nonce(w.dep, residents[0].address, w.sport) == 0
    assert refusal(w, payload).endswith("already used (replayed)")


def test_load_pass_qr_rejects_other_text(tmp_path):
    with pytest.raises(wallet.CityPassError, match="neither a pass QR"):
        wallet.load_pass_qr("hello")


def test_voucher_for_another_contract_or_chain(w, residents):
    deadline = clock.next_block_time(w.chain) + 3_600
    other = passqr.sign_pass(residents[0].key, w.chain.chain_id, "0x" + "77" * 20, [(w.sport, 100, 0)], deadline)
    check = redemption.explain(w.dep, other.vouchers()[0], w.pool.address)
    assert not check.ok and check.reason is None
    assert check.message == f"this voucher is for the CityPass contract at {other.contract}, not the one at {w.dep.address}"
    wrong_chain = passqr.sign_pass(residents[0].key, 1, w.dep.address, [(w.sport, 100, 0)], deadline)
    assert "is for chain 1, but the node is chain 31337" in refusal(w, wrong_chain.encode())


def test_brownie_redeem_script(w, monkeypatch, capsys, tmp_path):
    import importlib
    from types import SimpleNamespace

    script = importlib.import_module("scripts.redeem")
    monkeypatch.setattr(script, "web3", SimpleNamespace(provider=SimpleNamespace(endpoint_uri=w.chain.rpc_url)))
    monkeypatch.setenv("CITYPASS_HOME", str(w.workdir))
    monkeypatch.setenv("CITYPASS_PASSWORD", PASSWORD)
    payload = sign(w, 1, "--budget", "1", "--provider", w.pool.address)
    script.main(payload, "2.50")  # local dev chain: the dev account the voucher names redeems
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 250
    batch = tmp_path / "b.txt"
    batch.write_text(payload + ",2.50\n")
    with pytest.raises(SystemExit) as e:
        script.batch(str(batch))  # a replay: skipped, so the script fails
    assert e.value.code == 1
    assert "already used (replayed)" in capsys.readouterr().out
