"""The JSON API over the library (see /work/wt/WEB-API.md for the shapes). Each handler takes
the server's `Service` and the request's JSON object and returns a JSON-able dict; input
problems raise ApiError (400, naming the field). Nothing here writes to the chain.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from citypass import __version__, budget_id
from citypass import contract as C
from citypass.chain import Chain, connect
from citypass.errors import CityPassError
from citypass.index import EventIndex
from citypass.reasons import Reason
from citypass.web import auth, i18n, vouchers
from citypass.web.errors import ApiError, bad

MAX_NONCE_ITEMS = 64
MAX_DEPTH = 256  # `depth` of /api/nonces: confirmations beyond this are not a till's business
MAX_TAKINGS_SPAN = 31 * 86_400
INDEX_MIN_INTERVAL = 1.0  # seconds between index syncs triggered by requests
PROVIDER_STATUS_REASON = {"none": Reason.NotAProvider, "removed": Reason.ProviderRemoved,
                          "suspended": Reason.ProviderSuspended}


# ------------------------------------------------------------------ the service behind the routes
@dataclass
class Service:
    """The chain, deployment and index the routes read (connected once, at start-up)."""

    chain: Chain
    dep: C.Deployment
    index: EventIndex
    dev_keys: list[str] = field(default_factory=list)
    _synced_at: float = 0.0
    _sync_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def connect(cls, rpc: str | None, workdir: Any, contract: str | None = None,
                confirmations: int | None = None) -> "Service":
        """`confirmations` (`citypass --confirmations N web`): blocks on top of a transaction
        before the pages call it done (None: the chain's default, 0 on dev chains, else 2)."""
        from citypass.web.security import dev_key_holders

        chain = connect(rpc, workdir=workdir, confirmations=confirmations)
        dep = C.open_deployment(chain, contract, workdir)
        return cls(chain, dep, EventIndex.open(dep, workdir), dev_key_holders(dep))

    def fresh_index(self) -> EventIndex:
        """The index, synced with the chain if it is behind the chain's head, or if the last
        sync is older than INDEX_MIN_INTERVAL (a reorg at the same height). An answer must not
        pair state read at the head with names from an older block: a provider just added
        would show without its name."""
        with self._sync_lock:
            tip = self.index.tip
            if (time.monotonic() - self._synced_at >= INDEX_MIN_INTERVAL or tip is None
                    or self.chain.w3.eth.block_number > tip):
                self.index.sync()
                self._synced_at = time.monotonic()
        return self.index

    # names from the index: budgets, categories, providers (v2 ProviderNamed)
    def names(self) -> tuple[dict[int, str], dict[int, str], dict[str, str]]:
        budgets: dict[int, str] = {}
        categories: dict[int, str] = {}
        providers: dict[str, str] = {}
        for r in self.fresh_index().records(names=("BudgetCreated", "CategoryDefined", "ProviderNamed")):
            if r.name == "BudgetCreated":
                budgets[int(r.args["budget"])] = r.args["name"]
            elif r.name == "CategoryDefined":
                categories[int(r.args["category"])] = r.args["name"]
            else:
                providers[r.args["provider"]] = r.args["name"]
        return budgets, categories, providers


# ------------------------------------------------------------------ input
def _field(body: dict[str, Any], name: str, required: bool = True) -> Any:
    if name not in body or body[name] is None:
        if required:
            raise bad(f"{name}: missing", name)
        return None
    return body[name]


def address(body: dict[str, Any], name: str) -> str:
    value = _field(body, name)
    if not isinstance(value, str):
        raise bad(f"{name}: expected an address as a string (0x followed by 40 hex digits)", name)
    try:
        return C.checksum(value, name)
    except CityPassError as exc:
        raise bad(str(exc), name) from None


def integer(body: dict[str, Any], name: str, lo: int, hi: int, required: bool = True) -> int | None:
    value = _field(body, name, required)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 80:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(f"{name}: expected a whole number, got {type(value).__name__}", name)
    if not lo <= value <= hi:
        raise bad(f"{name}: {value} is out of range ({lo} .. {hi})", name)
    return value


def budget_value(value: Any, name: str) -> int:
    """A budget id given as a decimal string (or number)."""
    return integer({name: value}, name, 0, 2**256 - 1)  # type: ignore[return-value]


def cents_map(body: dict[str, Any], name: str) -> dict[int, int]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise bad(f"{name}: expected an object {{budget id: cents}} with at most 16 entries", name)
    out: dict[int, int] = {}
    for k, v in value.items():
        where = f"{name}.{str(k)[:80]}"
        out[budget_value(k, where)] = integer({where: v}, where, 0, 2**53)  # type: ignore[assignment]
    return out


def _only(body: dict[str, Any], *allowed: str) -> None:
    extra = [k for k in body if k not in allowed]
    if extra:
        raise bad(f"{str(extra[0])[:80]}: unknown field (this route takes {', '.join(allowed) or 'none'})",
                  str(extra[0])[:80])


# ------------------------------------------------------------------ shapes
def _budget_json(b: C.BudgetInfo, categories: dict[int, str], now: int, corrected: int = 0) -> dict[str, Any]:
    return {"budget": str(b.id), "serial": b.serial, "name": b.name, "category": b.category,
            "category_name": categories.get(b.category), "valid_from": b.valid_from, "valid_until": b.valid_until,
            "cap_cents": b.cap, "issued_cents": b.issued, "settled_cents": b.settled, "reclaimed_cents": b.reclaimed,
            "corrected_cents": corrected, "open": b.valid_from <= now <= b.valid_until}


def _provider_json(p: C.ProviderInfo, categories: dict[int, str]) -> dict[str, Any]:
    return {"address": p.address, "name": p.name or None, "status": p.status,
            "categories": list(p.categories), "category_names": [categories.get(c) for c in p.categories],
            "max_amount_cents": p.max_amount, "paused": p.paused}


def _budget_terms(bid: int, names: dict[int, str], categories: dict[int, str]) -> dict[str, Any]:
    t = budget_id.decode(bid)
    return {"budget": str(bid), "serial": t.serial, "name": names.get(bid, ""), "category": t.category,
            "category_name": categories.get(t.category), "valid_until": t.valid_until}


# ------------------------------------------------------------------ handlers
def deployment(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    _only(body)
    f = s.dep.contract.functions
    latest = s.chain.w3.eth.get_block("latest")
    dev = s.chain.is_local_dev or bool(s.dev_keys)
    return {
        "chain_id": s.chain.chain_id, "chain_id_hex": hex(s.chain.chain_id), "contract": s.dep.address,
        "deploy_block": s.dep.block, "rpc_url": origin + "/rpc", "rpc_path": "/rpc",
        "chain_name": f"CityPass ({'dev chain' if dev else 'chain'} {s.chain.chain_id})",
        "native_currency": {"name": "Ether", "symbol": "ETH", "decimals": 18},
        "dev_chain": dev, "dev_keys": s.dev_keys, "paused": bool(f.paused().call()),
        "confirmations": s.chain.default_confirmations,
        "block": int(latest["number"]), "time": int(latest["timestamp"]),
        "eip712": {"name": "CityPass", "version": str(vouchers.CONTRACT_VERSION)},
        "contract_version": vouchers.CONTRACT_VERSION, "server": f"citypass {__version__}",
    }


def budgets(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    _only(body)
    names, categories, _ = s.names()
    now = s.chain.now()
    out = []
    for bid in s.dep.contract.functions.budgets().call():
        cap, issued, settled, reclaimed, corrected = s.dep.contract.functions.budgetTotals(bid).call()
        t = budget_id.decode(bid)
        b = C.BudgetInfo(bid, t.serial, t.category, t.valid_from, t.valid_until, cap, issued, settled, reclaimed,
                         names.get(bid, ""))
        out.append(_budget_json(b, categories, now, corrected))
    return {"budgets": out}


def providers(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    _only(body)
    _, categories, names = s.names()
    f = s.dep.contract.functions
    return {"providers": [_provider_json(C.provider_info(s.dep, a, names), categories)
                          for a in f.providers().call()]}


def provider(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    _only(body, "address")
    who = address(body, "address")
    _, categories, names = s.names()
    p = C.provider_info(s.dep, who, names)
    out = _provider_json(p, categories)
    reason = PROVIDER_STATUS_REASON.get(p.status)
    out["approved"] = reason is None
    out["reason"] = reason.name if reason else None
    out["message"] = reason.message if reason else None
    out["gas_wei"] = str(s.chain.w3.eth.get_balance(who))
    return out


def balances(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    _only(body, "holder")
    holder = address(body, "holder")
    names, categories, _ = s.names()
    p = C.pass_info(s.dep, holder)
    return {
        "holder": holder,
        "pass": {"status": p.status, "valid_until": p.valid_until, "migrated_to": p.migrated_to,
                 "current_address": p.current_address},
        "balances": [{**_budget_terms(bid, names, categories), "left_cents": amount}
                     for bid, amount in p.balances.items()],
    }


def nonces(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    """Whether vouchers' nonces are used. With `depth` N each item also says `used_deep`:
    used already in the block N below the head (a payment N blocks deep, see confirmations)."""
    _only(body, "holder", "items", "depth")
    holder = address(body, "holder")
    items = _field(body, "items")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_NONCE_ITEMS:
        raise bad(f"items: expected a list of 1 to {MAX_NONCE_ITEMS} {{budget, nonce}} objects", "items")
    depth = integer(body, "depth", 0, MAX_DEPTH, required=False)
    f = s.dep.contract.functions
    block = s.chain.w3.eth.block_number
    deep = None if depth is None else max(0, block - depth)
    out, hot = [], {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"items[{i}]: expected an object {{budget, nonce}}", "items")
        bid = budget_value(item.get("budget"), f"items[{i}].budget")
        nonce = integer(item, "nonce", 0, 2**256 - 1)
        used = bool(f.isNonceUsed(holder, bid, nonce).call(block_identifier=block))
        out.append({"budget": str(bid), "nonce": nonce, "used": used})
        if deep is not None:
            out[-1]["used_deep"] = (used and deep >= s.dep.block  # before the deployment: nothing was used
                                    and bool(f.isNonceUsed(holder, bid, nonce).call(block_identifier=deep)))
        if str(bid) not in hot:
            hot[str(bid)] = int(f.hotNonces(holder, bid).call(block_identifier=block))
    answer = {"holder": holder, "items": out, "hot_nonces": hot, "block": block}
    if deep is not None:
        answer["deep_block"] = deep
    return answer


def check(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    """Pre-check of a scanned pass QR: per voucher, entitled at this provider or why not.
    Without `provider` (no wallet connected yet) only the provider-independent checks run."""
    _only(body, "qr", "provider", "amounts", "co_payments")
    qr = _field(body, "qr")
    if not isinstance(qr, str):
        raise bad("qr: expected the scanned QR text as a string", "qr")
    who = address(body, "provider") if body.get("provider") is not None else None
    amounts = cents_map(body, "amounts")
    cents_map(body, "co_payments")  # validated; the co-payment does not change the verdict
    scanned = vouchers.decode(s.dep, qr)
    names, categories, pnames = s.names()
    f = s.dep.contract.functions
    p = C.provider_info(s.dep, who, pnames) if who else None
    limit = p.max_amount if p else 0
    holder = scanned[0].holder
    pass_ = C.pass_info(s.dep, holder)
    now, paused = s.chain.now(), bool(f.paused().call())
    entries = []
    for v in scanned:
        left = pass_.balances.get(v.budget, 0)
        spendable = max(0, min(v.max_amount, left, limit or left))
        amount = amounts.get(v.budget, max(1, spendable))  # the amount the clerk typed, else what fits
        used = bool(f.isNonceUsed(holder, v.budget, v.nonce).call())
        if who is not None:
            reason, code, message = vouchers.check(s.dep, v, who, amount)
        else:
            reason, code, message = vouchers.check_without_provider(
                s.dep, v, amount, now=now, paused=paused, pass_status=pass_.status,
                pass_valid_until=pass_.valid_until, left=left, nonce_used=used)
        short = max(0, amount - left)
        entries.append({
            **_budget_terms(v.budget, names, categories),
            "max_amount_cents": v.max_amount, "left_cents": left, "spendable_cents": spendable,
            "amount_cents": amount, "nonce": v.nonce, "nonce_used": used,
            "reason": reason.name if reason is not None else None, "reason_code": code,
            "entitled": reason == Reason.Ok, "message": message,
            "params": {"left": i18n.euro_text(left), "left_cents": left, "short": i18n.euro_text(short),
                       "short_cents": short, "max": i18n.euro_text(v.max_amount), "max_cents": v.max_amount,
                       "limit": i18n.euro_text(limit), "limit_cents": limit},
            "voucher": v.struct(), "signature": "0x" + bytes(v.signature).hex(),
        })
    return {
        "holder": holder, "chain_id": s.chain.chain_id, "contract": s.dep.address, "deadline": scanned[0].deadline,
        "provider": who, "provider_checked": who is not None,
        "provider_in_qr": None if scanned[0].provider == vouchers.ANY_PROVIDER else scanned[0].provider,
        "pass": {"status": pass_.status, "valid_until": pass_.valid_until},
        "entitled": any(e["entitled"] for e in entries), "entries": entries,
    }


def takings(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    """A provider's redemptions and refunds in a time range. The figures are public; which
    holder paid (what a refund needs) only to a request the provider's wallet signed, so the
    API cannot be used to follow a resident from provider to provider."""
    _only(body, "provider", "from", "to", "time", "signature")
    who = address(body, "provider")
    signed = body.get("signature") is not None
    if signed:
        sig = body["signature"]
        if not isinstance(sig, str) or len(sig) > 200:
            raise ApiError(401, "signature: expected 0x + 130 hex digits (personal_sign)", "signature")
        ts = integer(body, "time", 0, 2**40)
        auth.verify(who, "/api/takings", s.chain.chain_id, s.dep.address, ts, sig)  # type: ignore[arg-type]
    now = s.chain.now()  # the chain's clock: a dev chain's may have been moved
    start = integer(body, "from", 0, 2**40, required=False)
    end = integer(body, "to", 0, 2**40, required=False)
    if start is None:
        start = now - now % 86_400
    if end is None:
        end = start + 86_400
    if end <= start:
        raise bad("to: must be after from", "to")
    if end - start > MAX_TAKINGS_SPAN:
        raise bad(f"to: at most {MAX_TAKINGS_SPAN // 86_400} days from `from`", "to")
    idx = s.fresh_index()
    act = idx.activity(party=who, since=start, until=end)
    names, _, _ = s.names()
    items = []
    for r in act.redemptions:
        if r.provider == who:
            items.append({"kind": "redemption", "tx": r.tx_hash, "block": r.block, "time": r.timestamp,
                          "log_index": r.log_index, "holder": r.holder, "budget": str(r.budget),
                          "serial": budget_id.decode(r.budget).serial, "name": names.get(r.budget, ""),
                          "amount_cents": r.amount, "co_payment_cents": r.co_payment, "nonce": r.nonce,
                          "refundable_cents": vouchers.refundable(s.dep, r.holder, r.budget, r.nonce, who)})
    for f in act.refunds:
        if f.provider == who:
            items.append({"kind": "refund", "tx": f.tx_hash, "block": f.block, "time": f.timestamp,
                          "log_index": f.log_index, "holder": f.holder, "budget": str(f.budget),
                          "serial": budget_id.decode(f.budget).serial, "name": names.get(f.budget, ""),
                          "amount_cents": f.amount, "nonce": f.redemption_nonce})
    items.sort(key=lambda i: (i["block"], i["log_index"]))
    if not signed:
        for i in items:
            del i["holder"]
    redeemed = sum(i["amount_cents"] for i in items if i["kind"] == "redemption")
    refunded = sum(i["amount_cents"] for i in items if i["kind"] == "refund")
    return {"provider": who, "from": start, "to": end, "indexed_to_block": idx.tip, "signed": signed,
            "redeemed_cents": redeemed, "refunded_cents": refunded, "net_cents": redeemed - refunded,
            "count": sum(1 for i in items if i["kind"] == "redemption"), "items": items}


def history(s: Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    """A holder's own history: only to a request signed with the pass key (see auth.py)."""
    _only(body, "holder", "time", "signature")
    holder = address(body, "holder")
    ts = integer(body, "time", 0, 2**40)
    sig = _field(body, "signature")
    if not isinstance(sig, str) or len(sig) > 200:
        raise ApiError(401, "signature: expected 0x + 130 hex digits (personal_sign)", "signature")
    auth.verify(holder, "/api/history", s.chain.chain_id, s.dep.address, ts, sig)  # type: ignore[arg-type]
    idx = s.fresh_index()
    act = idx.activity(party=holder)
    names, _, pnames = s.names()
    items: list[dict[str, Any]] = []

    def add(kind: str, m: Any, **extra: Any) -> None:
        items.append({"kind": kind, "tx": m.tx_hash, "block": m.block, "time": m.timestamp, "log_index": m.log_index,
                      "budget": str(m.budget), "serial": budget_id.decode(m.budget).serial,
                      "name": names.get(m.budget, ""), "amount_cents": m.amount, **extra})

    for m in act.issuances:
        if m.holder == holder:
            add("issued", m)
    for m in act.redemptions:
        if m.holder == holder:
            add("redemption", m, provider=m.provider, provider_name=pnames.get(m.provider), nonce=m.nonce,
                co_payment_cents=m.co_payment)
    for m in act.refunds:
        if m.holder == holder:
            add("refund", m, provider=m.provider, provider_name=pnames.get(m.provider))
    for m in act.migrations:
        if m.new == holder:
            add("migrated_in", m)
        elif m.old == holder:
            add("migrated_out", m)
    for m in act.reclamations:
        if m.holder == holder:
            add("reclaimed", m)
    items.sort(key=lambda i: (i["block"], i["log_index"]))
    return {"holder": holder, "indexed_to_block": idx.tip, "items": items}


def messages(s: Service | None, body: dict[str, Any], origin: str) -> dict[str, Any]:
    _only(body, "lang")
    lang = body.get("lang", "nl")
    if not isinstance(lang, str) or lang not in i18n.LANGUAGES:
        raise bad(f"lang: use one of {', '.join(i18n.LANGUAGES)}", "lang")
    return i18n.catalogue(lang)


Handler = Callable[[Service, dict[str, Any], str], dict[str, Any]]

ROUTES: dict[str, Handler] = {
    "deployment": deployment,
    "budgets": budgets,
    "providers": providers,
    "provider": provider,
    "balances": balances,
    "nonces": nonces,
    "check": check,
    "takings": takings,
    "history": history,
    "messages": messages,  # type: ignore[dict-item]
}

__all__ = ["Service", "ROUTES"]
