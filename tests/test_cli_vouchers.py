"""Resident and provider flows through the `citypass` command: sign -> QR PNG -> show ->
redeem, batch redemption, and the plain message for each reason a voucher is refused."""

from __future__ import annotations

import json

import pytest

from citypass import keys
from citypass import voucher as V
from citypass import wallet
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
    png = tmp_path / "voucher.png"
    payload = sign(w, 0, "--budget", "#1", "--amount", "12.50", "--co-payment", "2", "--provider", w.pool.address,
                   "--qr", str(png))
    assert payload.startswith("CP1:") and png.stat().st_size > 0
    assert wallet.read_qr(png) == payload
    decoded = V.decode_payload(payload).voucher
    assert (decoded.holder, decoded.amount, decoded.co_payment, decoded.nonce) == (residents[0].address, 1250, 200, 0)

    shown = cli(w, "voucher", "show", str(png))
    assert shown.exit_code == 0, shown.stderr
    assert "€12.50 from the pass, €2.00 co-payment" in shown.stdout and "OK: the voucher can be redeemed" in shown.stdout
    data = json.loads(cli(w, "--json", "voucher", "show", payload).stdout)
    assert data["ok"] is True and data["amount_cents"] == 1250 and data["reason"] == "Ok"

    redeemed = cli(w, "--json", "--from", "dev:8", "redeem", str(png))
    assert redeemed.exit_code == 0, redeemed.stderr
    assert json.loads(redeemed.stdout)["gas_used"] > 0
    assert w.f.balanceOf(residents[0].address, w.sport).call() == 10_000 - 1250
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 1250
    bal = json.loads(cli(w, "--json", "balance", "--provider", w.pool.address).stdout)
    assert bal["total"] == "12.50" and bal["budgets"][0]["budget"] == 1

    # the next voucher takes the next nonce
    second = V.decode_payload(sign(w, 0, "--budget", "1", "--amount", "1", "--provider", w.pool.address))
    assert second.voucher.nonce == 1


def refusal(w: World, payload: str, *extra: str) -> str:
    """Redeem must refuse before sending: exit 1, one plain line, no traceback, no gas spent."""
    nonce_before = w.chain.w3.eth.get_transaction_count(w.pool.address)
    r = cli(w, *extra, "redeem", payload) if extra else cli(w, "--from", "dev:8", "redeem", payload)
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ")
    assert w.chain.w3.eth.get_transaction_count(w.pool.address) == nonce_before
    return r.stderr.strip()


def test_replayed_voucher(w):
    payload = sign(w, 1, "--budget", "1", "--amount", "5", "--provider", w.pool.address)
    assert cli(w, "--from", "dev:8", "redeem", payload).exit_code == 0
    assert refusal(w, payload) == "error: voucher refused: this voucher was already used (replayed)"


def test_wrong_category(w):
    # the museum takes culture and education only; this voucher is sport credit
    payload = sign(w, 0, "--budget", "1", "--amount", "5", "--provider", w.museum.address)
    r = cli(w, "--from", "dev:9", "redeem", payload)
    assert r.exit_code == 1
    assert r.stderr.strip() == "error: voucher refused: this provider is not approved for this budget's category (wrong category)"
    show = cli(w, "voucher", "show", payload)
    assert show.exit_code == 1 and "(wrong category)" in show.stdout


def test_deadline_passed(w):
    payload = sign(w, 0, "--budget", "1", "--amount", "5", "--provider", w.pool.address, "--ttl", "5")
    w.chain.advance_time(10)
    assert refusal(w, payload) == "error: voucher refused: the voucher's deadline has passed; ask the resident for a new QR code"


def test_not_enough_credit(w):
    payload = sign(w, 0, "--budget", "2", "--amount", "100.01", "--provider", w.museum.address)
    assert refusal(w, payload, "--from", "dev:9") == "error: voucher refused: not enough credit left on the pass for this amount"


def test_above_provider_limit(w):
    payload = sign(w, 0, "--budget", "1", "--amount", "50.01", "--provider", w.pool.address)
    assert "above this provider's limit" in refusal(w, payload)


def test_revoked_pass(w, residents):
    payload = sign(w, 2, "--budget", "1", "--amount", "5", "--provider", w.pool.address)
    w.send(w.issuer, w.f.revokePass(residents[2].address))
    assert refusal(w, payload) == "error: voucher refused: the city pass has been revoked"


def test_voucher_for_another_provider(w):
    payload = sign(w, 0, "--budget", "1", "--amount", "5", "--provider", w.pool.address)
    msg = refusal(w, payload, "--from", "dev:9")
    assert f"made out to provider {w.pool.address}, not to this wallet {w.museum.address}" in msg


def test_bad_payload_and_missing_file(w, tmp_path):
    r = cli(w, "voucher", "show", "CP1:1:2")
    assert r.exit_code == 1 and r.stderr.startswith("error: not a valid voucher: payload: expected 11")
    r = cli(w, "voucher", "show", str(tmp_path / "nope.png"))
    assert r.exit_code == 1 and "no such file" in r.stderr
    (tmp_path / "blank.png").write_bytes(b"not a png")
    r = cli(w, "voucher", "show", str(tmp_path / "blank.png"))
    assert r.exit_code == 1 and "not an image" in r.stderr


def test_redeem_batch_skips_what_fails(w, tmp_path):
    good1 = sign(w, 0, "--budget", "1", "--amount", "3", "--provider", w.pool.address)
    good2 = sign(w, 1, "--budget", "1", "--amount", "4", "--provider", w.pool.address)
    too_much = sign(w, 1, "--budget", "1", "--amount", "50.01", "--provider", w.pool.address, "--nonce", "7")
    batch = tmp_path / "offline.txt"
    batch.write_text(f"{good1}\n\n{good2}\n{good1}\n{too_much}\n")  # good1 twice: the second is a replay
    r = cli(w, "--json", "--from", "dev:8", "redeem", "--batch", str(batch))
    assert r.exit_code == 1 and "2 of 4 vouchers were refused" in r.stderr
    out = json.loads(r.stdout)
    assert [(o["line"], o["redeemed"], o["reason"]) for o in out] == [
        (1, True, None), (3, True, None), (4, False, "NonceUsed"), (5, False, "AboveProviderLimit")]
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 700


def test_redeem_batch_with_a_bad_line_sends_nothing(w, tmp_path):
    good = sign(w, 0, "--budget", "1", "--amount", "3", "--provider", w.pool.address)
    batch = tmp_path / "offline.txt"
    batch.write_text(f"{good}\nCP1:garbage\n")
    r = cli(w, "--from", "dev:8", "redeem", "--batch", str(batch))
    assert r.exit_code == 1 and "line 2:" in r.stderr and "nothing was sent" in r.stderr
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
    payload = sign(w, 0, "--budget", "1", "--amount", "1", "--provider", w.pool.address, "--nonce", "300")
    assert cli(w, "--from", "dev:8", "redeem", payload).exit_code == 0
    assert w.f.isNonceUsed(residents[0].address, w.sport, 300).call()
    assert wallet.next_nonce(w.dep, residents[0].address, w.sport) == 0
    assert refusal(w, payload).endswith("already used (replayed)")


def test_load_voucher_rejects_other_text(tmp_path):
    with pytest.raises(wallet.CityPassError, match="neither a voucher payload"):
        wallet.load_voucher("hello")


def test_voucher_for_another_contract_or_chain(w, residents):
    from citypass import redemption

    v = V.build(residents[0].address, w.pool.address, w.sport, 100, nonce=0, now=w.chain.now())
    other = V.sign(v, residents[0].key, w.chain.chain_id, "0x" + "77" * 20)
    check = redemption.explain(w.dep, other)
    assert not check.ok and check.reason is None
    assert check.message == f"this voucher is for the CityPass contract at {other.contract}, not the one at {w.dep.address}"
    wrong_chain = V.sign(v, residents[0].key, 1, w.dep.address)
    assert "is for chain 1, but the node is chain 31337" in refusal(w, V.encode_payload(wrong_chain))


def test_brownie_redeem_script(w, monkeypatch, capsys, tmp_path):
    import importlib
    from types import SimpleNamespace

    script = importlib.import_module("scripts.redeem")
    monkeypatch.setattr(script, "web3", SimpleNamespace(provider=SimpleNamespace(endpoint_uri=w.chain.rpc_url)))
    monkeypatch.setenv("CITYPASS_HOME", str(w.workdir))
    monkeypatch.setenv("CITYPASS_PASSWORD", PASSWORD)
    payload = sign(w, 1, "--budget", "1", "--amount", "2.50", "--provider", w.pool.address)
    script.main(payload)  # local dev chain: the dev account the voucher names redeems
    assert w.f.balanceOf(w.pool.address, w.sport).call() == 250
    batch = tmp_path / "b.txt"
    batch.write_text(payload + "\n")
    with pytest.raises(SystemExit) as e:
        script.batch(str(batch))  # a replay: skipped, so the script fails
    assert e.value.code == 1
    assert "already used (replayed)" in capsys.readouterr().out
