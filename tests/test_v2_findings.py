"""The security review's findings (issue 12, section 2), each with the test that failed on the
v1 contract (commit 53f6a92), and the issue-11 contract items folded into v2.

On v1 each of these fails for the reason its docstring gives ("v1: ..."); on v2 they pass."""

from __future__ import annotations

import os

import pytest
from brownie import (
    GasBurner1271Mock,
    GasBurnerReceiverMock,
    HugeAnswer1271Mock,
    RevertingReceiverMock,
    SmartAccountMock,
    accounts,
    chain,
    web3,
)
from eth_utils import keccak

from citypass import events
from citypass.reasons import Reason
from conftest import CREDIT, SPORT, synthetic_key
from revert_helpers import assert_conserved, assert_reverts_with, missing_role, refused, sign_for

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

ISSUER_ROLE = keccak(text="ISSUER_ROLE")


# ---------------------------------------------------------------- Medium: refunds bound to redemptions
def test_ordinary_scan_cannot_be_refunded(cp, sign, alice, pool, sport):
    """v1: any used nonce could be refunded up to the amount the provider wrote into a re-signed
    voucher. v2: only a refundable redemption can be refunded."""
    v, s = sign(alice, pool, sport, 2_000, nonce=3)
    cp.redeem(v, s, 2_000, 0, {"from": pool})
    assert tuple(cp.refundableOf(alice, sport, 3)) == ("0x0000000000000000000000000000000000000000", 0)
    assert_reverts_with(lambda: cp.refund(alice, sport, 3, 1, {"from": pool}),
                        "UnknownRedemption(address,uint256,uint256)", alice, sport, 3)


def test_refunds_never_exceed_what_the_redemption_debited(cp, sign, alice, pool, museum, sport, roles, residents):
    """v1 proof: a resident issued 150 euro ended up holding 449.99 euro (refunds of re-signed
    vouchers). v2: the chain stores what a refundable redemption debited; refunds add up to at
    most that, only by the provider that made it, and the resident's credit never exceeds
    issued - spent + own refunds."""
    v, s = sign(alice, None, sport, 5_000, nonce=1)
    tx = cp.redeemRefundable(v, s, 1_500, 200, {"from": pool})
    assert tx.events["RefundableRedemption"]["amount"] == 1_500
    assert tuple(cp.refundableOf(alice, sport, 1)) == (pool.address, 1_500)
    assert_reverts_with(lambda: cp.refund(alice, sport, 1, 1_501, {"from": pool}),
                        "RefundExceedsRedemption(address,uint256,uint256,uint256,uint256)", alice, sport, 1, 1_500, 1_501)
    other = accounts.add(synthetic_key("findings-other-pool").key)
    cp.addProvider(other, 1 << SPORT, 0, "Other pool", {"from": roles.providers})
    assert_reverts_with(lambda: cp.refund(alice, sport, 1, 100, {"from": other}),
                        "NotTheRedeemingProvider(address,uint256,uint256,address)", alice, sport, 1, pool)
    cp.refund(alice, sport, 1, 1_000, {"from": pool})
    tx = cp.refund(alice, sport, 1, 500, {"from": pool})
    assert tx.events["Refunded"]["redemptionNonce"] == 1
    assert tuple(cp.refundableOf(alice, sport, 1)) == (pool.address, 0)
    assert_reverts_with(lambda: cp.refund(alice, sport, 1, 1, {"from": pool}),
                        "RefundExceedsRedemption(address,uint256,uint256,uint256,uint256)", alice, sport, 1, 0, 1)
    # The v1 attack: the provider re-signs nothing now; a new deadline gives no new refund key.
    assert cp.balanceOf(alice, sport) == CREDIT  # issued - spent (1,500) + own refunds (1,500)
    assert_conserved(cp, sport, [*accounts[:10], *residents, pool, museum])


def test_a_refund_goes_to_the_pass_after_migration(cp, sign, alice, pool, sport, culture, roles):
    v, s = sign(alice, pool, sport, 5_000, nonce=2)
    cp.redeemRefundable(v, s, 800, 0, {"from": pool})
    phone = accounts.add(synthetic_key("findings-new-phone").key)
    cp.migratePass(alice, phone, [sport, culture], {"from": roles.registrar})
    tx = cp.refund(alice, sport, 2, 800, {"from": pool})
    assert tx.events["Refunded"]["holder"] == phone.address
    assert cp.balanceOf(phone, sport) == CREDIT


# ---------------------------------------------------------------- Medium: pause in O(1)
def _add_providers(cp, roles, count, label):
    # Explicit nonces: Brownie's own pending-nonce count raced Anvil's pool under load
    # ("nonce too low" in a clean CI run), and Anvil's automine can leave ready
    # transactions in the pool (foundry#10122), so mine until every one is in.
    start = web3.eth.get_transaction_count(roles.providers.address)
    for i in range(count):
        cp.addProvider(web3.to_checksum_address(keccak(text=f"{label}-{i}")[:20]), 1 << SPORT, 0,
                       f"Provider {i}", {"from": roles.providers, "required_confs": 0, "nonce": start + i})
    for _ in range(600):
        if web3.eth.get_transaction_count(roles.providers.address) == start + count:
            return
        chain.mine()
    raise AssertionError(f"{label}: only {web3.eth.get_transaction_count(roles.providers.address) - start} "
                         f"of {count} provider registrations were mined")


@pytest.mark.anvil_only("1,000 provider registrations: minutes on Ganache 7; the rule is the same on both")
@pytest.mark.parametrize("count", [int(os.environ.get("CITYPASS_PAUSE_PROVIDERS", "1000"))])
def test_pause_gas_does_not_grow_with_providers(cp, roles, count):
    """v1: pause wrote every provider's record, ~7,500 gas each (impossible at ~4,000
    providers). v2: one flag. CITYPASS_PAUSE_PROVIDERS sets the count; 10,000 is covered by
    forge/PauseGas.t.sol in `make fuzz` and by `make bench` (registering 10,000 providers through
    Brownie made Anvil stop answering here)."""
    before = (cp.pause({"from": roles.pauser}).gas_used, cp.unpause({"from": roles.pauser}).gas_used)
    _add_providers(cp, roles, count, "pause-many")
    assert len(cp.providers()) >= count
    after = (cp.pause({"from": roles.pauser}).gas_used, cp.unpause({"from": roles.pauser}).gas_used)
    assert after == before, (before, after)
    assert max(after) < 50_000


def test_adding_providers_while_paused_cannot_freeze_credit(cp, sign, alice, pool, sport, roles):
    """v1: addProvider is allowed while paused and each one makes unpause dearer, so a
    provider-manager key could make a pause permanent. v2: unpause costs the same."""
    cp.pause({"from": roles.pauser})
    _add_providers(cp, roles, 200, "while-paused")
    v, s = sign(alice, pool, sport, 100, nonce=4)
    refused(lambda: cp.redeem(v, s, 100, 0, {"from": pool}), Reason.Paused, alice, pool, sport)
    assert cp.unpause({"from": roles.pauser}).gas_used < 30_000
    cp.redeem(v, s, 100, 0, {"from": pool})


# ---------------------------------------------------------------- Low: bounded migratePass
def test_migrate_pass_moves_only_the_listed_budgets(cp, alice, sport, culture, roles):
    """v1: migratePass looped over every budget ever created (30M gas at ~6,300 budgets).
    v2: the caller lists the budgets; migrateBalances moves the rest later."""
    phone = accounts.add(synthetic_key("findings-phone-2").key)
    tx = cp.migratePass(alice, phone, [sport], {"from": roles.registrar})
    assert cp.balanceOf(phone, sport) == CREDIT and cp.balanceOf(alice, culture) == CREDIT
    assert cp.currentAddress(alice) == phone
    cp.migrateBalances(alice, [culture, culture, sport], {"from": roles.registrar})  # repeats are harmless
    assert cp.balanceOf(phone, culture) == CREDIT and cp.balanceOf(alice, culture) == 0
    assert_reverts_with(lambda: cp.migrateBalances(phone, [sport], {"from": roles.registrar}),
                        "PassNotMigrated(address,uint8)", phone, 1)
    missing_role(lambda: cp.migrateBalances(alice, [sport], {"from": roles.issuer}), roles.issuer,
                 keccak(text="REGISTRAR_ROLE"))
    assert tx.gas_used < 200_000


def test_migrate_pass_gas_does_not_grow_with_budgets(cp, bob, sport, roles, deployment):
    phone = accounts.add(synthetic_key("findings-phone-3").key)
    for i in range(40):
        cp.createBudget(SPORT, deployment.start, deployment.end, 1_000, f"Extra {i}", {"from": roles.budget})
    tx = cp.migratePass(bob, phone, [sport], {"from": roles.registrar})
    assert tx.gas_used < 150_000  # v1 read 42 budgets' balances here


def test_migrate_balances_follows_every_migration(cp, bob, sport, culture, roles):
    phone1 = accounts.add(synthetic_key("findings-phone-4").key)
    phone2 = accounts.add(synthetic_key("findings-phone-5").key)
    cp.migratePass(bob, phone1, [], {"from": roles.registrar})
    cp.migratePass(phone1, phone2, [], {"from": roles.registrar})
    cp.migrateBalances(bob, [sport, culture], {"from": roles.registrar})
    assert cp.balanceOf(phone2, sport) == CREDIT and cp.balanceOf(phone2, culture) == CREDIT
    # The library reads those moves as migrations (the long fuzz found them unexplained when
    # they skip an address: bob -> phone2 while bob's PassMigrated names phone1).
    act = events.activity(events.fetch_events(web3.eth.contract(address=cp.address, abi=cp.abi)))
    moved = {(m.old, m.new, m.budget, m.amount) for m in act.migrations}
    assert {(bob.address, phone2.address, sport, CREDIT), (bob.address, phone2.address, culture, CREDIT)} <= moved


# ---------------------------------------------------------------- Low: one resident cannot block issuance
def test_a_refusing_contract_resident_is_skipped_not_blocking(cp, sport, roles):
    """v1: one resident whose ERC-1155 hook reverts reverted the whole batch. v2: it is
    skipped (IssueSkipped), the others are credited, and the batch id is used once."""
    reverting = RevertingReceiverMock.deploy({"from": roles.admin})
    burner = GasBurnerReceiverMock.deploy({"from": roles.admin})
    account = SmartAccountMock.deploy(roles.admin, {"from": roles.admin})
    eoas = [accounts.add(synthetic_key(f"findings-issue-{i}").key) for i in range(3)]
    holders = [eoas[0], reverting, eoas[1], burner, account, eoas[2]]
    cp.enrollPasses(holders, chain.time() + 100 * 86_400, {"from": roles.registrar})
    batch = b"\x77" * 32
    tx = cp.issue(batch, sport, holders, [100, 200, 300, 400, 500, 600], {"from": roles.issuer, "gas_limit": 2_000_000})
    assert cp.ISSUE_HOOK_GAS() == 50_000
    skipped = [(e["holder"], e["amount"]) for e in tx.events["IssueSkipped"]]
    assert skipped == [(reverting.address, 200), (burner.address, 400)]
    assert tx.events["BatchIssued"]["count"] == 4 and tx.events["BatchIssued"]["total"] == 1_500
    assert [cp.balanceOf(h, sport) for h in holders] == [100, 0, 300, 0, 500, 600]
    assert_reverts_with(lambda: cp.issue(batch, sport, holders, [1] * 6, {"from": roles.issuer}),
                        "BatchAlreadyIssued(bytes32)", batch)
    minted = [e["to"] for e in tx.events["TransferSingle"]]
    assert reverting.address not in minted and burner.address not in minted


def test_enroll_and_issue_leaves_a_skipped_resident_unenrolled(cp, sport, roles, deployment):
    cp.grantRole(keccak(text="REGISTRAR_ROLE"), roles.issuer, {"from": roles.admin})
    reverting = RevertingReceiverMock.deploy({"from": roles.admin})
    fresh = accounts.add(synthetic_key("findings-enrol").key)
    tx = cp.enrollAndIssue(b"\x78" * 32, sport, chain.time() + 100 * 86_400, [reverting, fresh], [100, 200],
                           {"from": roles.issuer})
    assert tx.events["PassesEnrolled"]["count"] == 1
    assert cp.passOf(reverting)[0] == 0 and cp.passOf(fresh)[0] == 1
    assert cp.balanceOf(fresh, sport) == 200


@pytest.mark.anvil_only("a type-4 (EIP-7702) transaction: Ganache 7 runs up to Shanghai")
def test_eip7702_delegated_resident_is_skipped(cp, sport, roles):
    """An EOA delegated (EIP-7702, a type-4 transaction) to code whose hook reverts: Anvil
    1.7.1 runs Prague, so the review's real type-4 transaction is reproduced here."""
    from eth_account import Account

    target = RevertingReceiverMock.deploy({"from": roles.admin})
    resident = Account.from_key(keccak(text="citypass-test-findings-7702"))
    fee_payer = Account.from_key(keccak(text="citypass-test-findings-7702-payer"))
    web3.provider.make_request("anvil_setBalance", [fee_payer.address, hex(10**18)])
    auth = resident.sign_authorization({"chainId": chain.id, "address": target.address, "nonce": 0})
    raw = fee_payer.sign_transaction({
        "type": 4, "chainId": chain.id, "nonce": 0, "to": fee_payer.address, "value": 0, "data": b"",
        "gas": 100_000, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 0, "authorizationList": [auth],
    }).raw_transaction
    web3.eth.wait_for_transaction_receipt(web3.eth.send_raw_transaction(raw))
    assert web3.eth.get_code(resident.address).hex().lower().startswith("ef0100")
    other = accounts.add(synthetic_key("findings-7702-other").key)
    cp.enrollPasses([resident.address, other], chain.time() + 100 * 86_400, {"from": roles.registrar})
    tx = cp.issue(b"\x79" * 32, sport, [resident.address, other], [100, 200], {"from": roles.issuer})
    assert [e["holder"] for e in tx.events["IssueSkipped"]] == [resident.address]
    assert cp.balanceOf(other, sport) == 200 and cp.balanceOf(resident.address, sport) == 0


# ---------------------------------------------------------------- Low: ERC-1271 with a gas cap
def _smart_holder(cp, roles, sport, contract, label):
    cp.enrollPasses([contract], chain.time() + 100 * 86_400, {"from": roles.registrar})
    cp.issue(keccak(text=label), sport, [contract], [1_000], {"from": roles.issuer})


def test_gas_burning_smart_account_is_a_bad_signature_and_skipped(cp, sign, alice, pool, sport, roles):
    """v1: isValidSignature ran with all remaining gas, so a burner made the provider's batch
    fail while checkVoucher said BadSignature. v2: a fixed budget; the voucher is skipped."""
    burner = GasBurner1271Mock.deploy({"from": roles.admin})
    # A burner cannot take credit in issuance (no hook), so it is enrolled only: its voucher
    # fails at the signature, before any balance is looked at.
    cp.enrollPasses([burner], chain.time() + 100 * 86_400, {"from": roles.registrar})
    key = synthetic_key("findings-burner-key")
    vb, sb = sign_for(cp, burner.address, key.key, pool, sport, 100, nonce=1)
    assert cp.checkVoucher(vb, pool, sb, 100) == Reason.BadSignature
    refused(lambda: cp.redeem(vb, sb, 100, 0, {"from": pool, "gas_limit": 1_000_000}), Reason.BadSignature,
            burner, pool, sport)
    va, sa = sign(alice, pool, sport, 100, nonce=9)
    tx = cp.redeemBatch([vb, va], [sb, sa], [100, 100], [0, 0], {"from": pool, "gas_limit": 1_000_000})
    assert tx.return_value == 1
    assert tx.events["VoucherSkipped"][0]["reason"] == Reason.BadSignature
    assert tx.gas_used < cp.ERC1271_GAS() + 150_000


def test_too_little_gas_for_the_erc1271_budget_reverts_instead_of_skipping(cp, pool, sport, roles):
    burner = GasBurner1271Mock.deploy({"from": roles.admin})
    cp.enrollPasses([burner], chain.time() + 100 * 86_400, {"from": roles.registrar})
    vb, sb = sign_for(cp, burner.address, synthetic_key("x").key, pool, sport, 100, nonce=1)
    with pytest.raises(Exception):
        cp.redeemBatch([vb], [sb], [100], [0], {"from": pool, "gas_limit": 150_000})


def test_huge_erc1271_answer_is_copied_one_word(cp, pool, sport, roles):
    huge = HugeAnswer1271Mock.deploy({"from": roles.admin})
    _smart_holder(cp, roles, sport, huge, "huge-answer")
    vh, sh = sign_for(cp, huge.address, synthetic_key("y").key, pool, sport, 100, nonce=1)
    assert cp.checkVoucher(vh, pool, sh, 100) == Reason.Ok  # it accepts everything
    tx = cp.redeem(vh, sh, 100, 0, {"from": pool})
    assert tx.gas_used < 150_000  # 100 kB of returned data was not copied into memory


# ---------------------------------------------------------------- corrections
def test_correction_takes_back_credit_issued_in_error(cp, alice, pool, museum, sport, roles, residents):
    """v1 had no way to correct downward."""
    tx = cp.correct(alice, sport, 3_000, "Decision 2026-117: 30 euro too much", {"from": roles.issuer})
    assert tx.events["Corrected"]["referenceText"] == "Decision 2026-117: 30 euro too much"
    assert cp.balanceOf(alice, sport) == CREDIT - 3_000
    assert cp.budgetTotals(sport)[4] == 3_000
    assert cp.outstanding(sport) == 4 * CREDIT - 3_000
    assert_conserved(cp, sport, [*accounts[:10], *residents, pool, museum])
    assert_reverts_with(lambda: cp.correct(alice, sport, CREDIT, "too much", {"from": roles.issuer}),
                        "ERC1155InsufficientBalance(address,uint256,uint256,uint256)", alice, CREDIT - 3_000, CREDIT, sport)
    assert_reverts_with(lambda: cp.correct(alice, sport, 1, "", {"from": roles.issuer}), "EmptyReference()")
    missing_role(lambda: cp.correct(alice, sport, 1, "x", {"from": roles.registrar}), roles.registrar, ISSUER_ROLE)
    cp.pause({"from": roles.pauser})
    refused(lambda: cp.correct(alice, sport, 1, "x", {"from": roles.issuer}), Reason.Paused, alice,
            "0x" + "00" * 20, sport)


def test_correction_cannot_touch_a_providers_credit(cp, sign, alice, pool, sport, roles):
    v, s = sign(alice, pool, sport, 500, nonce=8)
    cp.redeem(v, s, 500, 0, {"from": pool})
    refused(lambda: cp.correct(pool, sport, 100, "x", {"from": roles.issuer}), Reason.TransferNotAllowed, pool,
            "0x" + "00" * 20, sport)


# ---------------------------------------------------------------- issue 11: one rule, one code; names; references
def test_redeem_by_a_non_provider_says_not_a_provider(cp, sign, alice, bob, sport, roles):
    """v1: redeem by a non-provider reverted with TransferNotAllowed while checkVoucher said NotAProvider."""
    v, s = sign(alice, None, sport, 100, nonce=5)
    assert cp.checkVoucher(v, roles.stranger, s, 100) == Reason.NotAProvider
    refused(lambda: cp.redeem(v, s, 100, 0, {"from": roles.stranger}), Reason.NotAProvider, alice, roles.stranger, sport)


def test_provider_to_provider_is_transfer_not_allowed(cp, sign, alice, pool, museum, sport, roles):
    """v1: provider -> provider said NoPass, provider -> anyone else TransferNotAllowed."""
    cp.updateProvider(museum, (1 << SPORT) | 2, 0, {"from": roles.providers})
    v, s = sign(alice, pool, sport, 500, nonce=6)
    cp.redeem(v, s, 500, 0, {"from": pool})
    refused(lambda: cp.safeTransferFrom(pool, museum, sport, 100, b"", {"from": pool}), Reason.TransferNotAllowed,
            pool, museum, sport)
    refused(lambda: cp.safeTransferFrom(pool, alice, sport, 100, b"", {"from": pool}), Reason.TransferNotAllowed,
            pool, alice, sport)


def test_provider_names_are_emitted_and_checked(cp, roles):
    p = accounts[7]
    tx = cp.addProvider(p, 1, 0, "Zwembad De Mérodé 🏊", {"from": roles.providers})
    assert tx.events["ProviderNamed"]["name"] == "Zwembad De Mérodé 🏊"
    tx = cp.renameProvider(p, "Sporthal Noord", {"from": roles.providers})
    assert tx.events["ProviderNamed"]["name"] == "Sporthal Noord"
    for bad in ["", "x" * 65, "tab\there", "line\nbreak", "\x7f", "\u0085"]:
        assert_reverts_with(lambda: cp.renameProvider(p, bad, {"from": roles.providers}), "InvalidName()")
    assert_reverts_with(lambda: cp.renameProvider(roles.admin, "X", {"from": roles.providers}),
                        "UnknownProvider(address)", roles.admin)


def _rename_raw(cp, roles, raw: bytes):
    """eth_call of renameProvider with `raw` as the string's bytes (Python cannot encode invalid UTF-8 as str)."""
    from eth_abi import encode

    data = "0x" + keccak(text="renameProvider(address,string)")[:4].hex() + encode(
        ["address", "bytes"], [str(accounts[9]), raw]).hex()  # string and bytes share one ABI layout
    return web3.eth.call({"from": str(roles.providers), "to": cp.address, "data": data})


@pytest.mark.parametrize("raw", [b"\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                 b"ab\xe2\x82", b"\xc2\x85", b"\x80"])
def test_invalid_utf8_names_are_refused(cp, roles, raw):
    with pytest.raises(Exception) as info:
        _rename_raw(cp, roles, raw)
    assert keccak(text="InvalidName()")[:4].hex() in str(info.value.args).lower()


@pytest.mark.parametrize("raw", ["é".encode(), "€".encode(), "𝄞".encode(), "\U0010ffff".encode(), b"\xc2\xa0"])
def test_valid_utf8_names_are_accepted(cp, roles, raw):
    _rename_raw(cp, roles, raw)


def test_settlement_keeps_the_reference_text(cp, sign, alice, pool, sport, roles):
    v, s = sign(alice, pool, sport, 1_000, nonce=7)
    cp.redeem(v, s, 1_000, 0, {"from": pool})
    text = "NL-2026-000123 betaling zwembad"
    tx = cp.settle(pool, [sport], [1_000], text, {"from": roles.treasurer})
    ref = "0x" + keccak(text=text).hex()
    assert tx.events["SettlementReference"]["referenceText"] == text
    assert tx.events["SettlementReference"]["paymentReference"] == ref
    assert tx.events["Settled"]["paymentReference"] == ref
    assert cp.referenceSettled(ref)
    assert_reverts_with(lambda: cp.settle(pool, [sport], [1], text, {"from": roles.treasurer}),
                        "ReferenceAlreadySettled(bytes32)", ref)
    assert_reverts_with(lambda: cp.settle(pool, [sport], [1], "", {"from": roles.treasurer}), "EmptyReference()")
