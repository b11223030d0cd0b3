"""Gas for providers: the municipality pays it.

A provider submits its redemptions from its own wallet, so that wallet needs ETH for gas;
residents never do. The municipality keeps a gas account and tops up every provider (or
one) whose balance fell below a threshold, on any chain:

- validated first: the providers are registered, the amounts make sense, and the gas account
  holds enough for every transfer and its fee, or nothing is sent;
- idempotent and recoverable: each provider's balance is read again just before its transfer
  (after anything the gas account still had in flight is mined), so a re-run after a crash or
  a second run tops up only who is still below the threshold;
- progress is reported per provider.

`REDEEM_GAS` is the measured gas of one pass-QR redemption (README, Gas: 52,134 on contract v2,
rounded down to a round figure); with
the current fee it says roughly how many redemptions a balance pays for.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Sequence

from eth_utils import to_checksum_address

from citypass.errors import CityPassError, UsageError

REDEEM_GAS = 52_000  # one redemption, measured by `make bench` (52,134 on v2)
TRANSFER_GAS = 21_000  # a plain ETH transfer to an account without code
WEI = 10**18
DEV_TARGET = WEI  # on a local dev chain, `provider add` funds a new provider up to 1 ETH...
DEV_BELOW = WEI // 10  # ...when it holds less than 0.1 ETH
DEFAULT_BELOW = "0.01"  # ETH: `provider top-up` tops up providers holding less than this (to twice it)


def parse_eth(text: str, what: str = "amount") -> int:
    """'0.05' ETH -> wei, exactly (at most 18 decimals, not negative); UsageError otherwise."""
    raw = str(text).strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or "e" in raw.lower() or not raw.replace(".", "", 1).isdigit():
        raise UsageError(f"{what}: {raw!r} is not an amount of ETH like 0.05")
    wei = value * WEI
    if wei != wei.to_integral_value():
        raise UsageError(f"{what}: {raw} has more than 18 decimals (1 wei is 0.000000000000000001 ETH)")
    return int(wei)


def eth_text(wei: int) -> str:
    """1234500000000000000 -> '1.2345' (ETH, no trailing zeros, never in exponent form)."""
    whole, frac = divmod(int(wei), WEI)
    text = f"{frac:018d}".rstrip("0")
    return f"{whole}.{text}" if text else str(whole)


def fee_per_gas(chain: Any) -> int:
    """What one unit of gas costs now (wei): base fee + tip on EIP-1559 chains, else the gas price."""
    from citypass.tx import fees

    fee = fees(chain)
    if "maxFeePerGas" in fee:  # tx.fees: maxFee = 2 x base + tip
        tip = fee["maxPriorityFeePerGas"]
        return (fee["maxFeePerGas"] - tip) // 2 + tip
    return fee["gasPrice"]


def max_fee_per_gas(chain: Any) -> int:
    """The most a transaction sent now may pay per gas (what its sender must hold)."""
    from citypass.tx import fees

    fee = fees(chain)
    return fee.get("maxFeePerGas", fee.get("gasPrice", 0))


@dataclass(frozen=True)
class ProviderGas:
    address: str
    balance: int  # wei
    fee: int  # wei per gas now

    @property
    def redemptions(self) -> int | None:
        """Roughly how many redemptions the balance pays for at today's fee (None: the fee is 0)."""
        return self.balance // (REDEEM_GAS * self.fee) if self.fee else None


def providers_gas(dep: Any, addresses: Sequence[str] | None = None) -> list[ProviderGas]:
    """Gas balance of every registered provider (or of `addresses`), and what it pays for."""
    chain = dep.chain
    if addresses is None:
        addresses = [to_checksum_address(a) for a in dep.contract.functions.providers().call()]
    fee = fee_per_gas(chain)
    balances = chain.rpc_batch([("eth_getBalance", [a, "latest"]) for a in addresses]) if addresses else []
    return [ProviderGas(a, int(b, 16), fee) for a, b in zip(addresses, balances)]


@dataclass(frozen=True)
class TopUp:
    provider: str
    before: int  # wei, when planned
    amount: int  # wei to send (planned) or sent
    tx_hash: str | None = None  # None: not sent (planned, or found above the threshold at sending time)


@dataclass(frozen=True)
class TopUpPlan:
    gas_account: str
    below: int
    to: int
    checked: tuple[str, ...]  # providers looked at
    top_ups: tuple[TopUp, ...]  # those below the threshold
    fee: int  # max fee per gas at planning time

    @property
    def total(self) -> int:
        return sum(t.amount for t in self.top_ups)

    @property
    def needed(self) -> int:
        """What the gas account must hold: the transfers and their fees."""
        return self.total + len(self.top_ups) * TRANSFER_GAS * self.fee


def plan_top_up(dep: Any, gas_account: str, *, below: int, to: int, provider: str | None = None) -> TopUpPlan:
    """Who gets how much, or CityPassError before anything is sent (see the module docstring)."""
    from citypass.contract import provider_info

    if to < below:
        raise UsageError(f"--to {eth_text(to)} ETH is less than --below {eth_text(below)} ETH: top up to at least the threshold")
    if to == 0:
        raise UsageError("--to must be more than 0 ETH")
    chain = dep.chain
    gas_account = to_checksum_address(gas_account)
    if provider is not None:
        info = provider_info(dep, provider)
        if info.status == "none":
            raise CityPassError(f"{info.address} is not a registered provider")
        addresses = [info.address]
    else:
        addresses = [to_checksum_address(a) for a in dep.contract.functions.providers().call()
                     if provider_info(dep, a).status != "removed"]
    if gas_account in addresses:
        raise CityPassError(f"the gas account {gas_account} is a provider itself: name the municipality's gas account")
    found = providers_gas(dep, addresses)
    top_ups = tuple(TopUp(p.address, p.balance, to - p.balance) for p in found if p.balance < below)
    plan = TopUpPlan(gas_account, below, to, tuple(addresses), top_ups, max_fee_per_gas(chain))
    held = chain.w3.eth.get_balance(gas_account)
    if top_ups and held < plan.needed:
        raise CityPassError(
            f"the gas account {gas_account} holds {eth_text(held)} ETH, but topping up {len(top_ups)} provider(s) "
            f"to {eth_text(to)} ETH needs about {eth_text(plan.needed)} ETH (transfers and their fees): fund it "
            "first; nothing was sent"
        )
    return plan


def top_up(dep: Any, account: Any, plan: TopUpPlan, *,
           on_progress: Callable[[int, int, TopUp], None] | None = None) -> list[TopUp]:
    """Sends the plan's transfers one by one from `account` (the plan's gas account). Each
    provider's balance is read again just before its transfer: one that got above the
    threshold meanwhile (another run) is skipped; one that got some is sent only the rest."""
    from citypass.tx import Transfer, send, wait_idle

    if to_checksum_address(account.address) != plan.gas_account:
        raise CityPassError(f"the plan is for the gas account {plan.gas_account}, not {account.address}")
    chain = dep.chain
    done: list[TopUp] = []
    for i, t in enumerate(plan.top_ups):
        wait_idle(chain, account.address)  # a transfer of a killed run still in flight is mined first
        now = chain.w3.eth.get_balance(t.provider)
        if now >= plan.below:
            result = TopUp(t.provider, now, 0, None)
        else:
            receipt = send(chain, account, Transfer(t.provider), value=plan.to - now)
            result = TopUp(t.provider, now, plan.to - now, "0x" + bytes(receipt["transactionHash"]).hex())
        done.append(result)
        if on_progress:
            on_progress(i + 1, len(plan.top_ups), result)
    return done


def fund_new_provider(dep: Any, account: Any, provider: str) -> TopUp | None:
    """On a local dev chain, what `provider add` does by itself: a provider holding less than
    DEV_BELOW gets DEV_TARGET from `account`. None if it had enough. Elsewhere: None (the
    municipality tops up from its gas account, `citypass provider top-up`)."""
    if not dep.chain.is_local_dev:
        return None
    plan = plan_top_up(dep, account.address, below=DEV_BELOW, to=DEV_TARGET, provider=provider)
    if not plan.top_ups:
        return None
    return top_up(dep, account, plan)[0]
