"""Vouchers: EIP-712 agreement between Python and Solidity, signatures (ECDSA, EIP-2098,
ERC-1271, malleability), tampering, replay, deadlines, nonces, and every pre-check reason."""

from __future__ import annotations

import pytest
from brownie import CityPass, SmartAccountMock, chain, web3
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from citypass import budget_id
from citypass import voucher as V
from citypass.reasons import Reason
from tests.revert_helpers import assert_reverts_with, latest_time, mine_at, next_block_at, refused, sign_for

pytestmark = pytest.mark.ganache  # in the Ganache run of `make test` (tests/test_ganache_coverage.py)

DAY = 86_400
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
VOUCHER_TYPEHASH = keccak(
    text="Voucher(address holder,address provider,uint256 budget,uint256 maxAmount,uint256 nonce,uint256 deadline)"
)
ZERO = "0x" + "00" * 20


def bad_signature(action, v, provider):
    """redeem's refusal of a bad signature: the reason checkVoucher gives (one rule, one code)."""
    refused(action, Reason.BadSignature, v[0], provider, v[2])

# A fixed test vector: its digest was computed once with eth-account's encode_typed_data and,
# independently, with eth_abi + keccak (EIP-712 by hand); both gave these values.
VECTOR = V.Voucher(
    holder="0x1111111111111111111111111111111111111111",
    provider="0x2222222222222222222222222222222222222222",
    budget=budget_id.encode(1, 0, 1767225600, 1798761599),
    max_amount=1250, nonce=7, deadline=1767225900,
)
VECTOR_CHAIN_ID = 31337
VECTOR_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
VECTOR_DOMAIN_SEPARATOR = "eb1907918f78f95f40d39d9f30606ca3fc4294642453d720ce6410c9ff3e2383"
VECTOR_DIGEST = "06c68b43e872f44627f0529f94a6aa026695e768e831983ddd3faa4e1a35a6c5"


def domain_separator(chain_id: int, contract: str) -> bytes:
    return keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                         [DOMAIN_TYPEHASH, keccak(text="CityPass"), keccak(text="2"), chain_id, contract]))


def struct_hash(v: V.Voucher) -> bytes:
    return keccak(encode(["bytes32", "address", "address", "uint256", "uint256", "uint256", "uint256"],
                         [VOUCHER_TYPEHASH, v.holder, v.provider, v.budget, v.max_amount, v.nonce, v.deadline]))


def manual_digest(v: V.Voucher, chain_id: int, contract: str) -> bytes:
    return keccak(b"\x19\x01" + domain_separator(chain_id, contract) + struct_hash(v))


# ---------------------------------------------------------------- EIP-712 agreement
def test_fixed_vector_digest_is_stable():
    assert V.digest(VECTOR, VECTOR_CHAIN_ID, VECTOR_CONTRACT).hex() == VECTOR_DIGEST
    assert manual_digest(VECTOR, VECTOR_CHAIN_ID, VECTOR_CONTRACT).hex() == VECTOR_DIGEST
    assert V.digest_generic(VECTOR, VECTOR_CHAIN_ID, VECTOR_CONTRACT).hex() == VECTOR_DIGEST
    assert domain_separator(VECTOR_CHAIN_ID, VECTOR_CONTRACT).hex() == VECTOR_DOMAIN_SEPARATOR


@pytest.mark.anvil_only("a known-answer vector for Anvil's chain id 31337 (Ganache: 1337)")
def test_fixed_vector_domain_separator_on_chain(cp):
    """The contract's code placed at the vector's address computes the vector's domain."""
    assert chain.id == VECTOR_CHAIN_ID
    code = "0x" + bytes(web3.eth.get_code(cp.address)).hex()
    web3.provider.make_request("anvil_setCode", [VECTOR_CONTRACT, code])
    at_vector = CityPass.at(VECTOR_CONTRACT)
    assert at_vector.domainSeparator().hex().removeprefix("0x") == VECTOR_DOMAIN_SEPARATOR


def test_domain_separator_and_eip5267(cp):
    assert bytes(cp.domainSeparator()) == domain_separator(chain.id, cp.address)
    fields, name, version, chain_id, contract, salt, extensions = cp.eip712Domain()
    assert (fields, name, version, chain_id, contract) == ("0x0f", "CityPass", "2", chain.id, cp.address)


def test_python_and_solidity_digest_agree(cp, sport, pool, alice):
    """A signature over Python's digest passes the contract's check only if Solidity hashed
    the voucher to the same digest (ECDSA would recover another address otherwise)."""
    for provider in (pool.address, None):
        v = V.build(alice.address, provider, sport, 123, nonce=5, deadline=latest_time() + 300)
        d = V.digest(v, chain.id, cp.address)
        assert d == manual_digest(v, chain.id, cp.address) == V.digest_generic(v, chain.id, cp.address)
        sig = Account._sign_hash(d, alice.private_key).signature
        assert cp.checkVoucher(v.contract_args(), pool, sig, 123) == Reason.Ok


def test_reason_enum_mirrors_solidity():
    def find(node):
        if isinstance(node, dict):
            if node.get("nodeType") == "EnumDefinition" and node.get("name") == "Reason":
                return [m["name"] for m in node["members"]]
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                found = find(child)
                if found:
                    return found
        return None

    assert find(CityPass._build["ast"]) == [r.name for r in Reason]


def test_qr_payload_round_trip_redeems(cp, sport, pool, alice):
    """What the till scans (the QR text) decodes to a voucher the chain accepts."""
    v = V.build(alice.address, pool.address, sport, 450, nonce=11, deadline=latest_time() + 300)
    payload = V.sign(v, alice.private_key, chain.id, cp.address).encode()
    scanned = V.decode_payload(payload)
    assert scanned.voucher == v and scanned.chain_id == chain.id and scanned.contract == cp.address
    assert V.recover_signer(scanned) == alice.address
    tx = cp.redeem(scanned.voucher.contract_args(), V.compact_signature(scanned), 420, 50, {"from": pool})
    assert tx.events["Redeemed"].values() == [alice, 11, 50]


# ---------------------------------------------------------------- tampering, domain, provider
FIELDS = {"holder": 0, "provider": 1, "budget": 2, "maxAmount": 3, "nonce": 4, "deadline": 5}


@pytest.mark.parametrize("field", list(FIELDS))
def test_tampering_with_a_signed_field(cp, sport, culture, pool, alice, bob, sign, field):
    v, s = sign(alice, pool, sport, 100, nonce=1)
    changed = {"holder": bob.address, "provider": ZERO, "budget": culture, "maxAmount": 101, "nonce": 2,
               "deadline": v[5] + 1}[field]
    forged = list(v)
    forged[FIELDS[field]] = changed
    forged = tuple(forged)
    assert cp.checkVoucher(forged, pool, s, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(forged, s, 100, 0, {"from": pool}), forged, pool)
    cp.redeem(v, s, v[3], 0, {"from": pool})  # the untouched voucher still works


def test_a_named_provider_is_the_only_one(cp, roles, sport, pool, museum, alice, sign):
    """A voucher that names a provider only works for that wallet (WrongProvider otherwise);
    one that names none works for any provider approved for the category."""
    cp.updateProvider(museum, 1 << 0, 0, {"from": roles.providers})  # museum approved for sport too
    v, s = sign(alice, pool, sport, 100)
    assert cp.checkVoucher(v, museum, s, 100) == Reason.WrongProvider
    refused(lambda: cp.redeem(v, s, 100, 0, {"from": museum}), Reason.WrongProvider, alice, museum, sport)
    any_v, any_s = sign(alice, None, sport, 100, nonce=1)
    assert cp.checkVoucher(any_v, museum, any_s, 100) == cp.checkVoucher(any_v, pool, any_s, 100) == Reason.Ok
    cp.redeem(any_v, any_s, 100, 0, {"from": museum})
    assert cp.checkVoucher(any_v, pool, any_s, 100) == Reason.NonceUsed  # one redemption, whoever made it


def test_signature_by_another_key(cp, sport, pool, alice, bob):
    v, s = sign_for(cp, alice.address, bob.private_key, pool, sport, 100)
    assert cp.checkVoucher(v, pool, s, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), v, pool)


def test_other_chain_id(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100, chain_id=1)
    assert cp.checkVoucher(v, pool, s, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), v, pool)


def test_other_deployment(cp, roles, sport, pool, alice, sign):
    other = CityPass.deploy(0, roles.admin, ["0x" + "00" * 20] * 6, "x", {"from": roles.admin})
    v, s = sign(alice, pool, sport, 100, contract=other.address)
    assert cp.checkVoucher(v, pool, s, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), v, pool)


@pytest.mark.parametrize("length", [0, 63, 66])
def test_signature_of_wrong_length(cp, sport, pool, alice, sign, length):
    v, s = sign(alice, pool, sport, 100)
    sig = (s + s)[:length]
    assert cp.checkVoucher(v, pool, sig, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, sig, v[3], 0, {"from": pool}), v, pool)


def test_zero_holder_with_garbage_signature(cp, sport, pool):
    """ecrecover returns address(0) for garbage; that must never pass as holder 0."""
    v = (ZERO, ZERO, sport, 100, 0, latest_time() + 300)
    sig = b"\x00" * 64 + b"\x1b"
    assert cp.checkVoucher(v, pool, sig, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, sig, v[3], 0, {"from": pool}), v, pool)


# ---------------------------------------------------------------- signature forms
def test_high_s_malleable_signature_rejected(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100)
    r, low_s, recid = s[:32], int.from_bytes(s[32:64], "big"), s[64]
    high = r + (SECP256K1_N - low_s).to_bytes(32, "big") + bytes([55 - recid])  # 27 <-> 28
    # The twin is a valid secp256k1 signature by the same key (ecrecover accepts it) ...
    digest = V.digest(V.Voucher(*v), chain.id, cp.address)
    recovered = web3.eth.call({"to": "0x0000000000000000000000000000000000000001",
                               "data": digest + bytes(31) + high[64:] + high[:64]})
    assert recovered[12:].hex() == alice.address[2:].lower()
    # ... but the contract only takes the low-s form.
    assert cp.checkVoucher(v, pool, high, 100) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, high, v[3], 0, {"from": pool}), v, pool)
    cp.redeem(v, s, v[3], 0, {"from": pool})


def test_compact_eip2098_signature_accepted(cp, sport, pool, alice, sign):
    for nonce in range(4):  # both recovery ids (the y-parity bit of vs) turn up
        v, s = sign(alice, pool, sport, 100, nonce=nonce, compact=True)
        assert len(s) == 64
        assert cp.checkVoucher(v, pool, s, 100) == Reason.Ok
        cp.redeem(v, s, v[3], 0, {"from": pool})
    assert cp.hotNonces(alice, sport) == 0b1111


def test_both_forms_of_one_signature_are_one_voucher(cp, sport, pool, alice, sign):
    """The 65-byte and the 64-byte form of a signature are both valid: the nonce, not the
    signature bytes, makes a voucher single-use (so no off-chain code may deduplicate by bytes)."""
    v, full = sign(alice, pool, sport, 100, nonce=9)
    _, compact = sign(alice, pool, sport, 100, nonce=9, compact=True)
    assert full != compact and len(full) == 65 and len(compact) == 64
    assert cp.checkVoucher(v, pool, full, 100) == cp.checkVoucher(v, pool, compact, 100) == Reason.Ok
    cp.redeem(v, compact, 100, 0, {"from": pool})
    assert cp.checkVoucher(v, pool, full, 100) == Reason.NonceUsed


def test_compact_signature_with_flipped_parity_rejected(cp, sport, pool, alice, sign):
    v, s = sign(alice, pool, sport, 100, compact=True)
    flipped = s[:32] + bytes([s[32] ^ 0x80]) + s[33:]
    assert cp.checkVoucher(v, pool, flipped, 100) == Reason.BadSignature


@pytest.fixture
def smart_holder(cp, roles, sport):
    """A resident whose pass is an ERC-1271 smart account, owned by a synthetic key."""
    owner = Account.from_key(keccak(text="citypass-test-smart-account-owner"))
    account = SmartAccountMock.deploy(owner.address, {"from": roles.admin})
    cp.enrollPasses([account], latest_time() + 365 * DAY, {"from": roles.registrar})
    cp.issue(keccak(text="smart"), sport, [account], [1_000], {"from": roles.issuer})
    return account, owner


def test_erc1271_holder(cp, sport, pool, smart_holder):
    account, owner = smart_holder
    v, s = sign_for(cp, account.address, owner.key, pool, sport, 400, nonce=2)
    assert cp.checkVoucher(v, pool, s, 400) == Reason.Ok
    tx = cp.redeem(v, s, v[3], 0, {"from": pool})
    assert tx.events["Redeemed"].values() == [account, 2, 0]
    assert cp.balanceOf(account, sport) == 600
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), Reason.NonceUsed, account, pool, sport)


def test_erc1271_holder_rejects_other_key(cp, sport, pool, smart_holder, alice):
    account, _ = smart_holder
    v, s = sign_for(cp, account.address, alice.private_key, pool, sport, 400)
    assert cp.checkVoucher(v, pool, s, 400) == Reason.BadSignature
    bad_signature(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), v, pool)


# ---------------------------------------------------------------- replay, deadline, nonces
def test_replay_across_providers_and_budgets_is_impossible(cp, sport, culture, pool, museum, alice, sign):
    v, s = sign(alice, pool, sport, 100, nonce=0)
    cp.redeem(v, s, v[3], 0, {"from": pool})
    assert cp.checkVoucher(v, pool, s, 100) == Reason.NonceUsed
    # The same nonce in another budget is another voucher: nonces are per (holder, budget).
    v2, s2 = sign(alice, museum, culture, 100, nonce=0)
    cp.redeem(v2, s2, v2[3], 0, {"from": museum})


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
def test_deadline_boundary(cp, sport, pool, alice, sign):
    t = latest_time() + 50
    v0, s0 = sign(alice, pool, sport, 100, nonce=0, deadline=t)
    v1, s1 = sign(alice, pool, sport, 100, nonce=1, deadline=t)
    mine_at(t)
    assert cp.checkVoucher(v0, pool, s0, 100) == Reason.Ok
    next_block_at(t)  # a block at exactly the deadline still accepts the voucher
    cp.redeem(v0, s0, v0[3], 0, {"from": pool})
    next_block_at(t + 1)
    refused(lambda: cp.redeem(v1, s1, v1[3], 0, {"from": pool}), Reason.VoucherExpired, alice, pool, sport)
    assert cp.checkVoucher(v1, pool, s1, 100) == Reason.VoucherExpired


@pytest.mark.parametrize("nonce,word,bit", [(128, 0, 0), (383, 0, 255), (384, 1, 0), (2**256 - 1, (2**256 - 129) >> 8, 127)])
def test_cold_nonces(cp, sport, pool, alice, sign, nonce, word, bit):
    v, s = sign(alice, pool, sport, 100, nonce=nonce)
    assert not cp.isNonceUsed(alice, sport, nonce)
    cp.redeem(v, s, v[3], 0, {"from": pool})
    assert cp.isNonceUsed(alice, sport, nonce)
    assert cp.nonceBitmap(alice, sport, word) == 1 << bit
    assert cp.hotNonces(alice, sport) == 0  # the hot flags are untouched
    assert cp.checkVoucher(v, pool, s, 100) == Reason.NonceUsed
    refused(lambda: cp.redeem(v, s, v[3], 0, {"from": pool}), Reason.NonceUsed, alice, pool, sport)
    assert cp.balanceOf(alice, sport) == 10_000 - 100


def test_hot_nonce_bitmap(cp, sport, culture, pool, alice, bob, sign):
    for n in (0, 5, 127):
        cp.redeem(*sign(alice, pool, sport, 10, nonce=n), 10, 0, {"from": pool})
    assert cp.hotNonces(alice, sport) == 1 | 1 << 5 | 1 << 127
    assert cp.hotNonces(alice, culture) == 0 and cp.hotNonces(bob, sport) == 0
    assert [cp.isNonceUsed(alice, sport, n) for n in (0, 1, 5, 126, 127, 128)] == [True, False, True, False, True, False]
    assert cp.balanceOf(alice, sport) == 10_000 - 30  # the flags never leak into the balance


def test_lowest_free_nonce_is_what_a_wallet_takes(cp, sport, pool, alice, sign):
    for n in (0, 1, 3):
        cp.redeem(*sign(alice, pool, sport, 10, nonce=n), 10, 0, {"from": pool})
    bitmap = cp.hotNonces(alice, sport)
    assert next(n for n in range(128) if not bitmap >> n & 1) == 2


# ---------------------------------------------------------------- checkVoucher: every reason
def _reason_setup(name, cp, roles, sport, culture, pool, museum, alice, bob, outsider, sign):
    """Returns (voucher, signature, provider[, amount]) that fails with reason `name` (or passes:
    Ok); the amount typed at the till is the voucher's maxAmount unless given."""
    now = latest_time()
    if name == "Ok":
        return (*sign(alice, pool, sport, 100), pool)
    if name == "Paused":
        cp.pause({"from": roles.pauser})
        return (*sign(alice, pool, sport, 100), pool)
    if name in ("BudgetNotStarted", "BudgetEnded"):
        start, end = (now + 10 * DAY, now + 20 * DAY) if name == "BudgetNotStarted" else (now - 10 * DAY, now + 60)
        b = cp.createBudget(0, start, end, 1_000, name, {"from": roles.budget}).return_value
        cp.issue(keccak(text=name), b, [alice], [1_000], {"from": roles.issuer})
        if name == "BudgetEnded":
            mine_at(end + 1)
        return (*sign(alice, pool, b, 100, deadline=latest_time() + 300), pool)
    if name == "NoPass":
        return (*sign(outsider, pool, sport, 100), pool)
    if name == "PassSuspended":
        cp.suspendPass(alice, {"from": roles.registrar})
    if name == "PassRevoked":
        cp.revokePass(alice, {"from": roles.registrar})
    if name == "PassMigrated":
        cp.migratePass(alice, outsider, cp.budgets(), {"from": roles.registrar})
    if name == "PassExpired":
        cp.renewPasses([alice], now + 10, {"from": roles.registrar})
        mine_at(now + 11)
    if name == "NotAProvider":
        return (*sign(alice, bob, sport, 100), bob)
    if name == "ProviderSuspended":
        cp.setProviderStatus(pool, 2, {"from": roles.providers})
    if name == "ProviderRemoved":
        cp.setProviderStatus(pool, 3, {"from": roles.providers})
    if name == "CategoryNotApproved":
        return (*sign(alice, museum, sport, 100), museum)
    if name == "AboveProviderLimit":
        return (*sign(alice, pool, sport, 5_001), pool)
    if name == "InsufficientCredit":
        cp.redeem(*sign(bob, museum, culture, 9_950, nonce=1), 9_950, 0, {"from": museum})
        return (*sign(bob, museum, culture, 100), museum)
    if name == "ZeroAmount":
        v, s = sign(alice, pool, sport, 1)
        return v, s, pool, 0
    if name == "AboveVoucherLimit":
        v, s = sign(alice, pool, sport, 100)
        return v, s, pool, 101
    if name == "WrongProvider":
        cp.updateProvider(museum, 1, 0, {"from": roles.providers})
        return (*sign(alice, pool, sport, 100), museum)
    if name == "VoucherExpired":
        v, s = sign(alice, pool, sport, 100, deadline=now + 5)
        mine_at(now + 6)
        return v, s, pool
    if name == "NonceUsed":
        v, s = sign(alice, pool, sport, 100)
        cp.redeem(v, s, v[3], 0, {"from": pool})
        return v, s, pool
    if name == "BadSignature":
        v, _ = sign(alice, pool, sport, 100)
        return v, sign(alice, pool, sport, 101)[1], pool
    return (*sign(alice, pool, sport, 100), pool)


REACHABLE = [r for r in Reason if r not in (Reason.BudgetNotEnded, Reason.TransferNotAllowed)]


@pytest.mark.anvil_only("exact block time: evm_setNextBlockTimestamp, which Ganache 7 lacks")
@pytest.mark.parametrize("reason", REACHABLE, ids=[r.name for r in REACHABLE])
def test_check_voucher_reason(cp, roles, sport, culture, pool, museum, alice, bob, outsider, sign, reason):
    v, s, provider, *typed = _reason_setup(reason.name, cp, roles, sport, culture, pool, museum, alice, bob, outsider, sign)
    amount = typed[0] if typed else v[3]
    assert Reason(cp.checkVoucher(v, provider, s, amount)) == reason
    # redeem refuses it with the same reason (one rule, one code) ...
    if reason != Reason.Ok:
        refused(lambda: cp.redeem(v, s, amount, 0, {"from": provider}), reason, v[0], provider, v[2])
    # ... and redeemBatch skips it with the same reason (or redeems it when Ok).
    tx = cp.redeemBatch([v], [s], [amount], [0], {"from": provider})
    if reason == Reason.Ok:
        assert tx.return_value == 1
    else:
        assert tx.return_value == 0 and tx.events["VoucherSkipped"].values() == [v[0], v[2], v[4], reason]


def test_unreachable_reasons_are_move_only(cp, roles, sport, alice, bob):
    """TransferNotAllowed comes from moves, never from a voucher check: a voucher for a
    non-provider says NotAProvider first. (A reclaim before the end is refused by reclaim's
    own BudgetNotEnded error before any move.)"""
    refused(lambda: cp.safeTransferFrom(alice, bob, sport, 1, b"", {"from": alice}), Reason.TransferNotAllowed, alice, bob, sport)
    assert_reverts_with(lambda: cp.reclaim(sport, [alice], {"from": roles.budget}), "BudgetNotEnded(uint256,uint40)",
                        sport, sport & (2**40 - 1))
