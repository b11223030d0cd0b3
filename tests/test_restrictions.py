"""The restriction matrix: every sender kind x receiver kind x path must obey the one rule
(credit moves only holder -> provider approved for the category, inside the budget window,
with an active pass, while not paused; provider -> holder only inside `refund`, old -> new
address only inside `migratePass`), whatever the route: safeTransferFrom, safeBatchTransferFrom,
an operator, redeem, refund."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from brownie import accounts, chain
from eth_account import Account
from eth_utils import keccak

from citypass.reasons import Reason
from tests.revert_helpers import (assert_conserved, assert_reverts_with, latest_time, mine_at,
                                  next_block_at, refused, sign_for)

DAY = 86_400
ZERO = "0x" + "00" * 20
AMOUNT = 100
SUSPENDED, REMOVED = 2, 3

HOLDER_KINDS = ["active", "suspended", "revoked", "expired", "migrated", "outsider"]
PROVIDER_KINDS = ["pool", "museum", "club_suspended", "club_removed"]
PASS_REASON = {
    "active": Reason.Ok, "suspended": Reason.PassSuspended, "revoked": Reason.PassRevoked,
    "expired": Reason.PassExpired, "migrated": Reason.PassMigrated, "outsider": Reason.NoPass,
    "new_address": Reason.NoPass,
    # A provider pays no one: provider -> provider is TransferNotAllowed, as provider -> anyone
    # else outside refund/settle (one rule, one code; v1 said NoPass here).
    "pool": Reason.TransferNotAllowed, "museum": Reason.TransferNotAllowed,
    "club_suspended": Reason.TransferNotAllowed, "club_removed": Reason.TransferNotAllowed,
}
# Why a payment to this provider is refused once the payer's pass is fine (sport budget).
PROVIDER_REASON = {"pool": Reason.Ok, "museum": Reason.CategoryNotApproved,
                   "club_suspended": Reason.ProviderSuspended, "club_removed": Reason.ProviderRemoved}
SENDERS = HOLDER_KINDS + ["pool", "club_suspended", "club_removed"]
RECEIVERS = ["active2", "suspended", "revoked", "expired", "migrated", "outsider", "new_address"] + PROVIDER_KINDS


def synthetic(label: str):
    return accounts.add(keccak(text=f"citypass-test-matrix-{label}"))


@pytest.fixture(scope="module")
def world(deployment, roles, pool, museum, residents):
    """One account per kind, each with sport credit it could spend if the rules allowed it.
    Built once per module; every test runs in its own snapshot on top of it."""
    cp, sport = deployment.cp, deployment.sport
    now = latest_time()
    alice, bob, outsider = residents[0], residents[1], residents[4]
    extra = {k: synthetic(k) for k in ("suspended", "revoked", "expired", "migrated", "migrated_new")}
    kinds = [extra[k] for k in ("suspended", "revoked", "expired", "migrated")]
    cp.enrollPasses(kinds, now + 365 * DAY, {"from": roles.registrar})
    cp.issue(keccak(text="matrix"), sport, kinds, [1_000] * 4, {"from": roles.issuer})
    club_s, club_r = synthetic("club-suspended"), synthetic("club-removed")
    for club in (club_s, club_r):
        cp.addProvider(club, 1, 0, "Test provider", {"from": roles.providers})
    # Every holder redeems once (nonce 0, refundable) while still in good standing, so refunds
    # have a redemption.
    paid = {}  # (holder address, provider address) -> the redeemed voucher and its signature
    for holder in kinds + [alice, bob]:
        paid[(holder.address, pool.address)] = sign_for(cp, holder.address, holder.private_key, pool, sport, 100)
        cp.redeemRefundable(*paid[(holder.address, pool.address)], 100, 0, {"from": pool})
    for i, club in enumerate((club_s, club_r)):  # the clubs hold credit before they are stopped
        paid[(alice.address, club.address)] = sign_for(cp, alice.address, alice.private_key, club, sport, 500, nonce=1 + i)
        cp.redeemRefundable(*paid[(alice.address, club.address)], 500, 0, {"from": club})
    cp.suspendPass(extra["suspended"], {"from": roles.registrar})
    cp.revokePass(extra["revoked"], {"from": roles.registrar})
    cp.migratePass(extra["migrated"], extra["migrated_new"], cp.budgets(), {"from": roles.registrar})
    cp.renewPasses([extra["expired"]], now + 60, {"from": roles.registrar})
    cp.setProviderStatus(club_s, SUSPENDED, {"from": roles.providers})
    cp.setProviderStatus(club_r, REMOVED, {"from": roles.providers})
    mine_at(max(latest_time(), now + 60) + 1)
    new_address = Account.from_key(keccak(text="citypass-test-matrix-new")).address
    who = {
        "active": alice, "active2": bob, **{k: extra[k] for k in ("suspended", "revoked", "expired", "migrated")},
        "migrated_new": extra["migrated_new"], "outsider": outsider, "new_address": new_address,
        "pool": pool, "museum": museum, "club_suspended": club_s, "club_removed": club_r,
    }
    everyone = [str(a) for a in who.values()] + [str(r) for r in residents]
    return SimpleNamespace(cp=cp, sport=sport, who=who, everyone=everyone, paid=paid)


def of(v):
    """refund's (holder, budget, nonce) of a redeemed voucher struct."""
    return v[0], v[2], v[4]


def expected(sender: str, receiver: str):
    """The rule, from the design: the Reason a plain transfer (or a voucher) from `sender` to
    `receiver` must be refused with (CreditMoveRefused), or None when it must succeed."""
    if receiver in PROVIDER_KINDS:
        reason = PASS_REASON[sender]
        if reason == Reason.Ok:
            reason = PROVIDER_REASON[receiver]
        return None if reason == Reason.Ok else reason
    # Provider -> holder only as a refund (its own function), never by a plain transfer; a
    # migrated pass moves only inside migratePass; holder -> holder never.
    return Reason.TransferNotAllowed


def _transfer(w, sender, receiver, path, amount=AMOUNT, call=False):
    """The transfer as a callable: a transaction, or (call=True) the same call through
    eth_call, which runs the same code ~30x faster than a reverted transaction's trace."""
    cp, sport, src, dst = w.cp, w.sport, w.who[sender], w.who[receiver]
    if path == "single":
        fn = cp.safeTransferFrom.call if call else cp.safeTransferFrom
        return lambda: fn(src, dst, sport, amount, b"", {"from": src})
    fn = cp.safeBatchTransferFrom.call if call else cp.safeBatchTransferFrom
    return lambda: fn(src, dst, [sport], [amount], b"", {"from": src})


PROVIDER_SENDERS = ("pool", "club_suspended", "club_removed")


@pytest.mark.parametrize("sender", SENDERS)
def test_transfer_matrix(world, sender):
    """Every receiver kind, through safeTransferFrom and safeBatchTransferFrom. Cases are
    looped (not parametrized) because each test's snapshot costs more than 50 checks."""
    cp, sport = world.cp, world.sport
    checked = 0
    for receiver in RECEIVERS:
        if receiver == sender:
            continue
        for path in ("single", "batch"):
            case = f"{sender} -> {receiver} ({path})"
            src, dst = world.who[sender], world.who[receiver]
            before = (cp.balanceOf(src, sport), cp.balanceOf(dst, sport))
            reason = expected(sender, receiver)
            if reason is None:
                _transfer(world, sender, receiver, path)()
                assert (cp.balanceOf(src, sport), cp.balanceOf(dst, sport)) == (before[0] - AMOUNT, before[1] + AMOUNT), case
            else:
                try:
                    refused(_transfer(world, sender, receiver, path, call=True), reason, src, dst, sport)
                except AssertionError as exc:
                    raise AssertionError(f"{case}: {exc}") from None
            checked += 1
    # The transactions themselves (not only eth_call) revert the same way: one per sender.
    refused(_transfer(world, sender, "outsider", "single"), expected(sender, "outsider"), world.who[sender], world.who["outsider"], sport)
    assert_conserved(cp, sport, world.everyone)
    assert checked >= 2 * (len(RECEIVERS) - 2)


def test_migrated_key_cannot_move_credit_even_to_its_new_address(world):
    """old -> new is the migration's own move: only `migratePass` may make it."""
    cp, sport, old, new = world.cp, world.sport, world.who["migrated"], world.who["migrated_new"]
    for path_fn in (lambda: cp.safeTransferFrom(old, new, sport, 0, b"", {"from": old}),
                    lambda: cp.safeBatchTransferFrom(old, new, [sport], [0], b"", {"from": old})):
        refused(path_fn, Reason.TransferNotAllowed, old, new, sport)


def test_transfer_to_zero_address(world):
    cp, sport, alice = world.cp, world.sport, world.who["active"]
    for fn in (lambda: cp.safeTransferFrom(alice, ZERO, sport, 1, b"", {"from": alice}),
               lambda: cp.safeBatchTransferFrom(alice, ZERO, [sport], [1], b"", {"from": alice})):
        assert_reverts_with(fn, "ERC1155InvalidReceiver(address)", ZERO)


def test_transfer_from_the_zero_address_cannot_mint(world):
    """Nobody holds address(0)'s key, but a transfer 'from' it (an eth_call can claim any
    sender) must never reach `_update`, where from == 0 means a mint outside issuance."""
    cp, sport, bob = world.cp, world.sport, world.who["active2"]
    assert_reverts_with(lambda: cp.safeTransferFrom.call(ZERO, bob, sport, 1_000, b"", {"from": ZERO}),
                        "ERC1155InvalidSender(address)", ZERO)
    assert_reverts_with(lambda: cp.safeBatchTransferFrom.call(ZERO, bob, [sport], [1_000], b"", {"from": ZERO}),
                        "ERC1155InvalidSender(address)", ZERO)


# ---------------------------------------------------------------- operators
@pytest.mark.parametrize("caller", ["active", "pool", "outsider"])
def test_set_approval_for_all_is_disabled(world, caller):
    cp, who = world.cp, world.who
    for operator in ("pool", "active2"):
        assert_reverts_with(lambda: cp.setApprovalForAll(who[operator], True, {"from": who[caller]}), "ApprovalsDisabled()")
        assert cp.isApprovedForAll(who[caller], who[operator]) is False
    # Also as a real transaction (Brownie calls `pure` functions with eth_call otherwise).
    data = cp.setApprovalForAll.encode_input(who["pool"], True)
    assert_reverts_with(lambda: who[caller].transfer(cp, 0, data=data, gas_limit=100_000), "ApprovalsDisabled()")


@pytest.mark.parametrize("operator", ["pool", "museum", "active2", "outsider"])
@pytest.mark.parametrize("path", ["single", "batch"])
def test_nobody_moves_credit_for_someone_else(world, roles, operator, path):
    cp, sport, alice, op = world.cp, world.sport, world.who["active"], world.who[operator]
    for to in (world.who["pool"], op):
        if path == "single":
            fn = lambda: cp.safeTransferFrom(alice, to, sport, 1, b"", {"from": op})  # noqa: E731
        else:
            fn = lambda: cp.safeBatchTransferFrom(alice, to, [sport], [1], b"", {"from": op})  # noqa: E731
        assert_reverts_with(fn, "ERC1155MissingApprovalForAll(address,address)", op, alice)
    for admin_role in (roles.admin, roles.treasurer, roles.budget):
        assert_reverts_with(lambda: cp.safeTransferFrom(alice, world.who["pool"], sport, 1, b"", {"from": admin_role}),
                            "ERC1155MissingApprovalForAll(address,address)", admin_role, alice)


# ---------------------------------------------------------------- redeem and refund obey the same rule
@pytest.mark.parametrize("holder", HOLDER_KINDS + ["club_suspended"])
def test_redeem_matrix(world, holder):
    """A voucher from each holder kind (a provider signing as 'holder' too), at each provider
    kind: the pre-check and the redemption give the transfer rule's reason."""
    cp, sport, who = world.cp, world.sport, world.who
    h = who[holder]
    for nonce, provider in enumerate(PROVIDER_KINDS, start=50):
        p = who[provider]
        v, s = sign_for(cp, h.address, h.private_key, p, sport, AMOUNT, nonce=nonce)
        reason = expected(holder, provider)
        assert cp.checkVoucher(v, p, s, AMOUNT) == (reason or Reason.Ok), provider
        if reason is None:
            cp.redeem(v, s, v[3], 0, {"from": p})
            assert cp.isNonceUsed(h, sport, nonce)
        else:
            refused(lambda: cp.redeem.call(v, s, AMOUNT, 0, {"from": p}), reason, h, p, sport)
            assert not cp.isNonceUsed(h, sport, nonce)
    assert_conserved(cp, sport, world.everyone)


def test_refund_matrix(world):
    """The pool refunds each holder kind's redemption: an active pass takes it back, a pass
    that cannot receive credit refuses with its reason, a migrated one gets it at its new address."""
    cp, sport, who = world.cp, world.sport, world.who
    pool = who["pool"]
    for holder in ("active", "suspended", "revoked", "expired", "migrated"):
        h = who[holder]
        v, s = world.paid[(h.address, pool.address)]
        reason = PASS_REASON[holder]
        if holder == "migrated":
            tx = cp.refund(*of(v), 40, {"from": pool})
            assert tx.events["Refunded"].values() == [who["migrated_new"], pool, sport, 40, 0]
            assert cp.balanceOf(h, sport) == 0
        elif reason == Reason.Ok:
            tx = cp.refund(*of(v), 40, {"from": pool})
            assert tx.events["Refunded"].values() == [h, pool, sport, 40, 0]
        else:
            refused(lambda: cp.refund.call(*of(v), 40, {"from": pool}), reason, pool, h, sport)
    assert_conserved(cp, sport, world.everyone)


@pytest.mark.parametrize("provider", ["club_suspended", "club_removed"])
def test_stopped_provider_can_still_refund(world, provider):
    cp, sport, alice, p = world.cp, world.sport, world.who["active"], world.who[provider]
    v, s = world.paid[(alice.address, p.address)]
    before = cp.balanceOf(alice, sport)
    cp.refund(*of(v), 500, {"from": p})
    assert cp.balanceOf(alice, sport) == before + 500


@pytest.mark.parametrize("caller", ["active", "active2", "outsider", "museum", "club_suspended"])
def test_refund_by_anyone_but_the_redeeming_provider(world, caller):
    """The chain stored which provider made the refundable redemption: only it can refund."""
    cp, sport, who = world.cp, world.sport, world.who
    v, s = world.paid[(who["active"].address, who["pool"].address)]
    assert_reverts_with(lambda: cp.refund.call(*of(v), 40, {"from": who[caller]}),
                        "NotTheRedeemingProvider(address,uint256,uint256,address)", *of(v), who["pool"])


# ---------------------------------------------------------------- window, limit, pause
@pytest.fixture
def windowed(world, roles):
    """A sport budget that opens in 100 s and closes 100 s later, with alice credited."""
    cp = world.cp
    now = latest_time()
    b = cp.createBudget(0, now + 100, now + 200, 10_000, "window", {"from": roles.budget}).return_value
    cp.issue(keccak(text="window"), b, [world.who["active"]], [1_000], {"from": roles.issuer})
    return b, now + 100, now + 200


@pytest.mark.parametrize("path", ["single", "batch", "redeem"])
def test_budget_window_boundaries(world, windowed, path):
    cp, alice, pool = world.cp, world.who["active"], world.who["pool"]
    budget, start, end = windowed

    vouchers = {}

    def pay(nonce):
        if path == "redeem":
            v, s = vouchers[nonce] = sign_for(cp, alice.address, alice.private_key, pool, budget, 10, nonce=nonce, deadline=end + 100)
            return lambda: cp.redeemRefundable(v, s, v[3], 0, {"from": pool})
        if path == "single":
            return lambda: cp.safeTransferFrom(alice, pool, budget, 10, b"", {"from": alice})
        return lambda: cp.safeBatchTransferFrom(alice, pool, [budget], [10], b"", {"from": alice})

    next_block_at(start - 1)
    refused(pay(0), Reason.BudgetNotStarted, alice, pool, budget)
    next_block_at(start)
    pay(1)()
    next_block_at(end)
    pay(2)()
    next_block_at(end + 1)
    refused(pay(3), Reason.BudgetEnded, alice, pool, budget)
    # A refund after the end is refused too: ended credit stays where it is until reclaim/settle.
    next_block_at(end + 2)
    if path == "redeem":
        refused(lambda: cp.refund(*of(vouchers[1][0]), 5, {"from": pool}), Reason.BudgetEnded, pool, alice, budget)
    assert cp.balanceOf(pool, budget) == 20


def test_provider_limit_on_direct_transfers(world):
    cp, sport, alice, pool = world.cp, world.sport, world.who["active"], world.who["pool"]
    cp.safeTransferFrom(alice, pool, sport, 5_000, b"", {"from": alice})
    refused(lambda: cp.safeTransferFrom(alice, pool, sport, 5_001, b"", {"from": alice}), Reason.AboveProviderLimit, alice, pool, sport)
    refused(lambda: cp.safeBatchTransferFrom(alice, pool, [sport], [5_001], b"", {"from": alice}),
            Reason.AboveProviderLimit, alice, pool, sport)
    # Splitting one payment over two entries of the same id cannot get around the limit.
    assert_reverts_with(lambda: cp.safeBatchTransferFrom(alice, pool, [sport, sport], [2_500, 2_501], b"", {"from": alice}),
                        "DuplicateId(uint256)", sport)


def test_batch_with_one_bad_id_reverts_whole(world):
    cp, sport, culture, alice, museum = world.cp, world.sport, None, world.who["active"], world.who["museum"]
    culture = cp.budgets()[1]
    before = cp.balanceOf(alice, culture)
    refused(lambda: cp.safeBatchTransferFrom(alice, museum, [culture, sport], [10, 10], b"", {"from": alice}),
            Reason.CategoryNotApproved, alice, museum, sport)
    assert cp.balanceOf(alice, culture) == before


def test_batch_to_provider_across_budgets(world, roles):
    cp, alice, museum = world.cp, world.who["active"], world.who["museum"]
    culture = cp.budgets()[1]
    now = chain.time()
    education = cp.createBudget(2, now - 86_400, now + 30 * 86_400, 1_000_000, "Education test",
                                {"from": roles.budget}).return_value
    cp.issue(keccak(text="batch-across-budgets"), education, [alice], [1_000], {"from": roles.issuer})
    tx = cp.safeBatchTransferFrom(alice, museum, [culture, education], [10, 20], b"", {"from": alice})
    assert tx.events["TransferBatch"].values()[1:] == [alice, museum, [culture, education], [10, 20]]
    assert cp.balanceOf(museum, culture) == 10 and cp.balanceOf(museum, education) == 20


def test_empty_batch_transfer_is_refused(world):
    cp, alice, museum = world.cp, world.who["active"], world.who["museum"]
    assert_reverts_with(lambda: cp.safeBatchTransferFrom(alice, museum, [], [], b"", {"from": alice}),
                        "ERC1155InvalidArrayLength(uint256,uint256)", 0, 0)


@pytest.mark.parametrize("sender,receiver", [("active", "pool"), ("active", "museum"), ("active", "active2"),
                                             ("pool", "active"), ("club_suspended", "active")])
@pytest.mark.parametrize("path", ["single", "batch"])
def test_pause_blocks_every_route(world, roles, sender, receiver, path):
    """While paused every payment says Paused (the till shows why); moves that are never
    allowed keep saying TransferNotAllowed. Redeem and refund stop too; unpause restores."""
    cp, sport, who = world.cp, world.sport, world.who
    paid = world.paid[(who["active"].address, who["pool"].address)]
    cp.pause({"from": roles.pauser})
    want = Reason.Paused if receiver in PROVIDER_KINDS else Reason.TransferNotAllowed
    refused(_transfer(world, sender, receiver, path), want, who[sender], who[receiver], sport)
    v, s = sign_for(cp, who["active"].address, who["active"].private_key, who["pool"], sport, 10, nonce=77)
    refused(lambda: cp.redeem.call(v, s, 10, 0, {"from": who["pool"]}), Reason.Paused, who["active"], who["pool"], sport)
    refused(lambda: cp.refund.call(*of(paid[0]), 10, {"from": who["pool"]}), Reason.Paused, who["pool"], who["active"], sport)
    cp.unpause({"from": roles.pauser})
    if want == Reason.Paused and receiver == "pool":
        _transfer(world, sender, receiver, path)()
        cp.redeem(v, s, v[3], 0, {"from": who["pool"]})
        cp.refund(*of(paid[0]), 10, {"from": who["pool"]})
    else:
        refused(_transfer(world, sender, receiver, path, call=True), expected(sender, receiver), who[sender], who[receiver], sport)
