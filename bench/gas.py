"""Gas per operation (whole-transaction gasUsed from the receipt) for CityPass and for the
baselines a municipality would otherwise pick, measured on the same chain in the same run.

"Marginal per resident" is (gas(N) - gas(N/2)) / (N/2): what one more resident in a batch
of N costs, without the transaction's fixed part."""

from __future__ import annotations

import os
import statistics
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from citypass import passqr, tx
from citypass import voucher as V

from bench import baselines
from bench.world import CULTURE, DAY, EDUCATION, SPORT, World, resident_address, resident_key


def _gas(world: World, account: Any, fn: Any, *, with_access_list: bool = False) -> int:
    access = tx.access_list(world.chain, account.address, fn) if with_access_list else None
    return int(tx.send(world.chain, account, fn, access_list=access).gasUsed)


def _marginal(small: int, big: int, n_small: int, n_big: int) -> float:
    return (big - small) / (n_big - n_small)


def issuance(world: World, n: int) -> dict[str, float]:
    """Enrol + credit new residents, and credit enrolled residents from a new budget, in
    batches of n/2 and n; with the access list `citypass issue` attaches, and without."""
    sport, culture = world.new_budget(SPORT, "Bench enrol"), world.new_budget(CULTURE, "Bench credit")
    half = n // 2
    gas: dict[tuple[str, bool, int], int] = {}
    for with_al in (True, False):
        for size in (half, n):
            tag = f"{'al' if with_al else 'plain'}-{size}"
            holders = [resident_address(tag, i) for i in range(size)]
            amounts = [15_000] * size
            gas[("enrol", with_al, size)] = _gas(world, world.office, world.f.enrollAndIssue(
                os.urandom(32), sport, world.valid_until, holders, amounts), with_access_list=with_al)
            gas[("credit", with_al, size)] = _gas(world, world.office, world.f.issue(
                os.urandom(32), culture, holders, amounts), with_access_list=with_al)
    out = {}
    for kind, key in (("enrol", "issue_new_resident"), ("credit", "issue_existing_resident")):
        for with_al, suffix in ((True, ""), (False, "_no_access_list")):
            out[key + suffix] = _marginal(gas[(kind, with_al, half)], gas[(kind, with_al, n)], half, n)
            out[key + "_average" + suffix] = gas[(kind, with_al, n)] / n
    return out


def _voucher(world: World, holder: Any, budget: int, max_amount: int, nonce: int,
             provider: str = passqr.ANY_PROVIDER) -> V.SignedVoucher:
    """A v2 voucher as the pass QR carries it: any approved provider, valid 24 hours."""
    v = V.Voucher(holder.address, provider, budget, max_amount, nonce, world.chain.now() + DAY)
    return V.sign(v, holder.key, world.chain.chain_id, world.dep.address)


def redemption(world: World) -> dict[str, float]:
    """Single redemptions where the holder's and the provider's balances already exist (the
    steady state at a till): an ordinary scan of a pass QR voucher (any provider), one made
    out to this provider, and a refundable scan (the chain stores what it debited); and a
    batch of 50 vouchers collected offline."""
    budget = world.new_budget(SPORT, "Bench redeem")
    holders = [resident_key("redeem", i) for i in range(81)]
    tx.send(world.chain, world.office, world.f.enrollAndIssue(os.urandom(32), budget, world.valid_until,
                                                              [h.address for h in holders], [10_000] * len(holders)))
    pool = world.providers[0]

    def redeem(holder: Any, amount: int, nonce: int, co_payment: int = 0, *, refundable: bool = False,
               provider: str = passqr.ANY_PROVIDER) -> int:
        s = _voucher(world, holder, budget, 5_000, nonce, provider)
        fn = world.f.redeemRefundable if refundable else world.f.redeem
        return _gas(world, pool, fn(s.voucher.contract_args(), V.compact_signature(s), amount, co_payment))

    first = redeem(holders[0], 100, 0)  # the provider's first credit of this budget opens its slot
    singles = [redeem(h, 1_250, 0, co_payment=500) for h in holders[1:11]]
    named = [redeem(h, 1_250, 0, co_payment=500, provider=pool.address) for h in holders[61:71]]
    refundable = [redeem(h, 1_250, 0, co_payment=500, refundable=True) for h in holders[71:81]]
    refund = [_gas(world, pool, world.f.refund(h.address, budget, 0, 1_250)) for h in holders[71:76]]
    batch = [_voucher(world, h, budget, 5_000, 0) for h in holders[11:61]]
    batch_gas = _gas(world, pool, world.f.redeemBatch([s.voucher.contract_args() for s in batch],
                                                      [V.compact_signature(s) for s in batch],
                                                      [900] * len(batch), [0] * len(batch)))
    return {"redeem": statistics.median(singles), "redeem_named_provider": statistics.median(named),
            "redeem_refundable": statistics.median(refundable), "refund": statistics.median(refund),
            "redeem_providers_first_in_budget": first, "redeem_batch_per_voucher": batch_gas / len(batch)}


def settle(world: World) -> dict[str, float]:
    """One provider, one budget: the treasurer records a payment and burns the credit."""
    budget = world.new_budget(EDUCATION, "Bench settle")
    holder = resident_key("settle", 0)
    tx.send(world.chain, world.office, world.f.enrollAndIssue(os.urandom(32), budget, world.valid_until,
                                                              [holder.address], [10_000]))
    museum = world.providers[1]
    s = _voucher(world, holder, budget, 4_000, 0)
    tx.send(world.chain, museum, world.f.redeem(s.voucher.contract_args(), V.compact_signature(s), 4_000, 0))
    reference = "BENCH-" + os.urandom(8).hex().upper()
    return {"settle": _gas(world, world.treasurer, world.f.settle(museum.address, [budget], [4_000], reference))}


def pause(world: World, counts: tuple[int, ...] = (1_000, 10_000)) -> dict[str, float]:
    """pause and unpause with `counts` providers registered: the gas must not grow with the
    number of providers (contract v2: one flag, O(1))."""
    out: dict[str, float] = {}
    have = len(world.f.providers().call())
    for count in counts:
        if count > have:
            fns = [world.f.addProvider(resident_address("pause-provider", i), 1 << SPORT, 0, f"Bench provider {i:05d}")
                   for i in range(have, count)]
            for start in range(0, len(fns), 250):  # windows Anvil keeps up with
                tx.send_many(world.chain, world.provider_manager, fns[start : start + 250])
            have = count
        out[f"pause_{count}_providers"] = _gas(world, world.admin, world.f.pause())
        out[f"unpause_{count}_providers"] = _gas(world, world.admin, world.f.unpause())
    return out


def reclaim(world: World, n: int) -> dict[str, float]:
    """After a budget's end the municipality takes back what residents did not spend.
    Runs last: it moves the chain's clock past that budget's end."""
    now = world.chain.now()
    receipt = tx.send(world.chain, world.office, world.f.createBudget(SPORT, now - DAY, now + DAY, 10**15, "Bench reclaim"))
    budget = world.dep.contract.events.BudgetCreated().process_receipt(receipt)[0]["args"]["budget"]
    half = n // 2
    groups = [[resident_address(f"reclaim-{size}", i) for i in range(size)] for size in (half, n)]
    for group in groups:
        tx.send(world.chain, world.office, world.f.enrollAndIssue(os.urandom(32), budget, world.valid_until,
                                                                  group, [2_500] * len(group)))
    world.chain.advance_time(2 * DAY)
    small, big = (_gas(world, world.office, world.f.reclaim(budget, group)) for group in groups)
    return {"reclaim_per_holder": _marginal(small, big, half, n)}


def baseline_erc1155(world: World, n: int) -> dict[str, float]:
    """OpenZeppelin ERC-1155: a plain mint loop (no eligibility checks), and a holder's own
    safeTransferFrom to a provider when both already hold the token."""
    arts = baselines.compile_baselines()
    token = baselines.deploy(world.chain, world.office, arts["BaselineERC1155"])
    half = n // 2
    out = {}
    for with_al, suffix in ((True, ""), (False, "_no_access_list")):
        gas = {size: _gas(world, world.office, token.functions.mintMany(
            1, [resident_address(f"oz-{suffix}-{size}", i) for i in range(size)], [15_000] * size),
            with_access_list=with_al) for size in (half, n)}
        out["baseline_erc1155_mint_per_holder" + suffix] = _marginal(gas[half], gas[n], half, n)
    holders = [resident_key("oz-transfer", i) for i in range(11)]
    pool = world.providers[0]
    tx.send(world.chain, world.office, token.functions.mintMany(1, [h.address for h in holders] + [pool.address],
                                                                [10_000] * 12))
    tx.send_many(world.chain, world.admin, [tx.Transfer(h.address) for h in holders], value=10**17)
    transfers = [_gas(world, h, token.functions.safeTransferFrom(h.address, pool.address, 1, 1_250, b""))
                 for h in holders[1:]]
    out["baseline_erc1155_transfer"] = statistics.median(transfers)
    return out


def baseline_erc20_permit(world: World) -> dict[str, float]:
    """OpenZeppelin ERC-20 + EIP-2612: the resident signs a permit, the provider's relayer
    submits permit + transferFrom in one transaction. Measured on each holder's second
    payment (its permit nonce and the provider's balance exist), like gas.redeem."""
    arts = baselines.compile_baselines()
    token = baselines.deploy(world.chain, world.office, arts["BaselineERC20Permit"])
    relayer = baselines.deploy(world.chain, world.office, arts["BaselinePermitRelayer"])
    holders = [resident_key("permit", i) for i in range(10)]
    pool = world.providers[0]
    tx.send_many(world.chain, world.office, [token.functions.mint(h.address, 10_000) for h in holders]
                 + [token.functions.mint(pool.address, 1)])
    deadline = world.chain.now() + DAY

    def pay(holder: Any, nonce: int) -> int:
        typed = {
            "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                       {"name": "chainId", "type": "uint256"},
                                       {"name": "verifyingContract", "type": "address"}],
                      "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                                 {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                                 {"name": "deadline", "type": "uint256"}]},
            "primaryType": "Permit",
            "domain": {"name": "Baseline credit", "version": "1", "chainId": world.chain.chain_id,
                       "verifyingContract": token.address},
            "message": {"owner": holder.address, "spender": relayer.address, "value": 1_250, "nonce": nonce,
                        "deadline": deadline},
        }
        sig = Account.sign_message(encode_typed_data(full_message=typed), holder.key)
        fn = relayer.functions.permitAndPay(token.address, holder.address, pool.address, 1_250, deadline,
                                            sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"))
        return _gas(world, pool, fn)

    for h in holders:
        pay(h, 0)
    return {"baseline_erc20_permit_transfer": statistics.median(pay(h, 1) for h in holders)}


def measure(world: World, n: int, pause_providers: tuple[int, ...] = (1_000, 10_000)) -> dict[str, float]:
    """Every gas figure; reclaim last (it moves the clock)."""
    out: dict[str, float] = {}
    for part in (lambda: issuance(world, n), lambda: redemption(world), lambda: settle(world),
                 lambda: baseline_erc1155(world, n), lambda: baseline_erc20_permit(world), lambda: pause(world, pause_providers),
                 lambda: reclaim(world, n)):
        out.update(part())
    return out
