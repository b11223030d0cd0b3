"""The resident's pass app (/pass/): its page and its two API routes.

    GET  /pass/                  the app (static files, citypass/web/static/pass/, from web/src/pass/)
    POST /api/pass/config        {} -> the chain, the contract, the municipality's pass QR settings
                                 (deadline, per-scan limit), the chain's clock and whom to call
    POST /api/pass/history       a signed request -> the holder's payments, refunds, credit and
                                 migrations, and the nonces seen used (see `request_text`)

The app reads balances and nonces through the till's public routes (/api/balances,
/api/nonces, /api/check). The history is only for the holder: the app signs the request with
the pass key (EIP-191 personal_sign) over a text that names the holder, this server's origin,
the chain, the contract, the time and a random nonce. The server accepts it once (a nonce seen
before is refused), only within MAX_SKEW seconds of its clock, and only from the holder's key.

The app registers all of it with one line: `routes += pass_api.routes(service, config)`.
Nothing here writes to the chain; the server never sees the pass key or the PIN.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from eth_account import Account  # recover_message only: the server signs nothing
from eth_account.messages import encode_defunct
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from citypass import budget_id
from citypass import settings as S
from citypass.address import eip55
from citypass.web import api
from citypass.web.errors import ApiError, error_response, json_response, to_api_error

MAX_SKEW = 300  # seconds either side of the server's clock
MAX_SEEN = 100_000  # replay memory; beyond it the oldest entries go (they are expired by then, or nearly)
MAX_CHAIN = 8  # migrations followed back (a resident who lost eight phones still sees the history)
NONCE = re.compile(r"[0-9a-f]{32}")
CONTACT = {"name": "Stadspas-balie van de gemeente", "phone": "14\u00a0050"}  # the pilot's default (no-break space)
PATH_HISTORY = "/api/pass/history"


def request_text(holder: str, origin: str, chain_id: int, contract: str, timestamp: int, nonce: str) -> str:
    """The text the app signs for its history (web/src/pass/history.js builds the same)."""
    return "\n".join([
        "CityPass pass history request",
        f"holder: {eip55(holder)}",
        f"origin: {origin}",
        f"path: {PATH_HISTORY}",
        f"chain: {chain_id}",
        f"contract: {eip55(contract)}",
        f"time: {int(timestamp)}",
        f"nonce: {nonce}",
    ])


class Replays:
    """The (holder, nonce) pairs accepted in the last MAX_SKEW seconds, so a captured request
    cannot be sent again. In memory: after a restart an old request is still refused by its
    time once MAX_SKEW has passed."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim(self, holder: str, nonce: str, now: float) -> bool:
        with self._lock:
            if len(self._seen) > MAX_SEEN // 2:
                for k in [k for k, until in self._seen.items() if until < now]:
                    del self._seen[k]
            while len(self._seen) >= MAX_SEEN:
                del self._seen[next(iter(self._seen))]
            if (holder, nonce) in self._seen:
                return False
            self._seen[(holder, nonce)] = now + 2 * MAX_SKEW
            return True


def verify(body: dict[str, Any], origin: str, chain_id: int, contract: str, replays: Replays,
           now: float | None = None) -> str:
    """The holder of a signed history request, or ApiError(401) saying what is wrong."""
    api._only(body, "holder", "time", "nonce", "signature")
    holder = api.address(body, "holder")
    ts = api.integer(body, "time", 0, 2**40)
    nonce = body.get("nonce")
    if not isinstance(nonce, str) or not NONCE.fullmatch(nonce):
        raise ApiError(401, "nonce: expected 32 lower-case hex digits, fresh for every request", "nonce")
    sig = body.get("signature")
    if not isinstance(sig, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", sig):
        raise ApiError(401, "signature: expected 65 bytes as 0x + 130 hex digits (personal_sign)", "signature")
    clock = time.time() if now is None else now
    if abs(clock - ts) > MAX_SKEW:  # type: ignore[operator]
        raise ApiError(401, f"time: the request was signed at {ts}, more than {MAX_SKEW} s from the server's "
                            f"clock ({int(clock)}); check the phone's clock and try again", "time")
    text = request_text(holder, origin, chain_id, contract, ts, nonce)  # type: ignore[arg-type]
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(sig[2:]))
    except Exception:  # noqa: BLE001 - a malformed signature is simply not the holder's
        raise ApiError(401, "signature: not a valid signature", "signature") from None
    if signer != holder:
        raise ApiError(401, "signature: not signed by the holder's key for this server (the history is only "
                            "for the pass holder)", "signature")
    if not replays.claim(holder, nonce, clock):
        raise ApiError(401, "nonce: this request was sent before (a replay); the app signs a new one each time",
                       "nonce")
    return holder


def config(s: api.Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
    api._only(body)
    settings = S.load(s.chain.workdir) if s.chain.workdir else S.Settings()
    return {"chain_id": s.chain.chain_id, "contract": s.dep.address, "time": s.chain.now(),
            "pass_qr_ttl_seconds": settings.pass_qr_ttl_seconds, "scan_limit_cents": settings.scan_limit_cents,
            "eip712": {"name": "CityPass", "version": "2"}, "contact": CONTACT,
            "dev_chain": bool(s.chain.is_local_dev or s.dev_keys)}


def history(s: api.Service, holder: str) -> dict[str, Any]:
    """The holder's own history, with the passes that migrated into it (an old phone's)."""
    idx = s.fresh_index()
    names, categories, pnames = s.names()
    addresses = [holder]
    items: list[dict[str, Any]] = []
    used: dict[str, set[int]] = {}
    seen_migrations: set[tuple[str, int]] = set()
    i = 0
    while i < len(addresses) and i < MAX_CHAIN:
        who = addresses[i]
        i += 1
        act = idx.activity(party=who)

        def add(kind: str, m: Any, **extra: Any) -> None:
            terms = budget_id.decode(m.budget)
            items.append({"kind": kind, "tx": m.tx_hash, "block": m.block, "time": m.timestamp,
                          "log_index": m.log_index, "address": who, "budget": str(m.budget), "serial": terms.serial,
                          "name": names.get(m.budget, ""), "category_name": categories.get(terms.category),
                          "amount_cents": m.amount, **extra})

        for m in act.issuances:
            if m.holder == who:
                add("issued", m)
        for m in act.redemptions:
            if m.holder == who:
                add("redemption", m, provider=m.provider, provider_name=pnames.get(m.provider), nonce=m.nonce,
                    co_payment_cents=m.co_payment)
                if who == holder and m.nonce is not None:
                    used.setdefault(str(m.budget), set()).add(int(m.nonce))
        for m in act.refunds:
            if m.holder == who:
                add("refund", m, provider=m.provider, provider_name=pnames.get(m.provider))
        for m in act.migrations:
            key = (m.tx_hash, m.log_index)
            if m.new == who and key not in seen_migrations:
                seen_migrations.add(key)
                add("migrated_in", m, old=m.old)
                if m.old not in addresses:
                    addresses.append(m.old)
            elif m.old == who and who != holder and key not in seen_migrations:
                seen_migrations.add(key)  # the old phone's side of a move already shown as migrated_in
            elif m.old == who:
                add("migrated_out", m, new=m.new)
        for m in act.reclamations:
            if m.holder == who:
                add("reclaimed", m)
        for m in act.corrections:
            if m.holder == who:
                add("corrected", m)
    items.sort(key=lambda x: (x["block"], x["log_index"]))
    return {"holder": holder, "indexed_to_block": idx.tip, "addresses": addresses, "items": items,
            "used_nonces": {b: sorted(n) for b, n in used.items()}}


def routes(service: api.Service, config_: Any, *, origin: Any, parse: Any, static: Any) -> list[BaseRoute]:
    """The app's routes: the page and /api/pass/config, /api/pass/history. The app passes in
    its own request helpers (the page's origin, the JSON body parser, the static-file class)."""
    _origin, _parse_object, _Static = origin, parse, static
    replays = Replays()

    def signed_history(s: api.Service, body: dict[str, Any], origin: str) -> dict[str, Any]:
        holder = verify(body, origin, s.chain.chain_id, s.dep.address, replays)
        return history(s, holder)

    handlers = {"config": config, "history": signed_history}

    async def pass_route(request: Request) -> Response:
        handler = handlers.get(request.path_params["name"])
        if handler is None:
            return error_response(ApiError(404, f"no API route /api/pass/{request.path_params['name'][:60]} "
                                                "(routes: config, history)"))
        try:
            body = _parse_object(await request.body())
            data = await run_in_threadpool(handler, service, body, _origin(request))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a 4xx JSON answer
            return error_response(to_api_error(exc))
        return json_response(data)

    async def to_pass(request: Request) -> Response:
        return RedirectResponse("/pass/", status_code=308)

    return [
        Route("/pass", to_pass, methods=["GET", "HEAD"]),
        Mount("/pass", app=_Static(directory=config_.static_dir / "pass", html=True, check_dir=False)),
        Route("/api/pass/{name:str}", pass_route, methods=["POST"]),
    ]


__all__ = ["routes", "request_text", "verify", "history", "config", "Replays"]
