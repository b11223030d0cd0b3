"""The server's defences, in one ASGI middleware and two start-up checks.

- `Guard` (every request): the Host header must be one of the server's names (DNS
  rebinding); `/api/*` and `/rpc` take only POSTs of application/json, with a bounded body
  (413) and an optional rate limit per client (429); every answer carries the security
  headers (CSP: own origin only, plus 'wasm-unsafe-eval' for the QR decoder); no CORS header
  is ever sent; anything that escapes a handler becomes a 4xx JSON error, never a 5xx.
- `check_bind` (start-up): refuses a non-loopback address while any role holder, provider or
  gas account of the chain is one of Anvil's public dev keys.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from citypass import keys
from citypass.web.errors import error_body, to_api_error

log = logging.getLogger("citypass.web")

API_BODY_LIMIT = 64 * 1024
RPC_BODY_LIMIT = 256 * 1024

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(self), microphone=(), geolocation=(), payment=()",
}
NO_STORE = {"cache-control": "no-store"}
CORS_HEADERS = {"access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-expose-headers"}

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


# ------------------------------------------------------------------ binding
def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def dev_key_holders(dep: Any) -> list[str]:
    """Who on this chain is one of Anvil's public dev keys, as "admin dev:0", "gas dev:8"...:
    role holders, providers, the deployer, and any dev account holding ETH (a gas account)."""
    from citypass import contract as C

    found: dict[str, set[str]] = defaultdict(set)

    def note(address: str, what: str) -> None:
        index = keys.dev_index(address)
        if index is not None:
            found[f"dev:{index}"].add(what)

    for role, members in C.role_members(dep).items():
        for address in members:
            note(address, role.lower().replace("_", "-"))
    for address in dep.contract.functions.providers().call():
        note(address, "provider")
    book = C.read_addressbook(dep.chain.workdir).get(str(dep.chain.chain_id), {})
    if book.get("deployer"):
        note(book["deployer"], "deployer")
    balances = dep.chain.rpc_batch([("eth_getBalance", [keys.dev_account(i).address, "latest"])
                                    for i in range(keys.DEV_ACCOUNTS)])
    for i, wei in enumerate(balances):
        if int(wei, 16) > 0:
            found[f"dev:{i}"].add("gas")
    return [f"{key} ({', '.join(sorted(what))})" for key, what in sorted(found.items())]


class BindRefused(Exception):
    pass


def check_bind(host: str, exposed: list[str]) -> None:
    """Refuses to listen beyond loopback while public dev keys hold anything on the chain."""
    if is_loopback(host) or not exposed:
        return
    raise BindRefused(
        f"refusing to listen on {host}: this chain has accounts whose private keys are public Anvil dev keys "
        f"({'; '.join(exposed[:5])}{' ...' if len(exposed) > 5 else ''}); anyone could sign as them. "
        "Serve on 127.0.0.1, or deploy with keystore accounts (see the README, 'The web server')")


# ------------------------------------------------------------------ host names
def host_names(host: str, port: int, extra: tuple[str, ...] = ()) -> set[str]:
    """The Host header values the server answers to: its bind address (and localhost on
    loopback), each with and without the port, plus the public names given (behind a proxy)."""
    names = {host.lower()}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    if host in ("0.0.0.0", "::"):
        names = set()
    names |= {n.lower().strip() for n in extra if n.strip()}
    out = set()
    for n in names:
        bare = n if n.startswith("[") or ":" not in n else f"[{n}]"
        out |= {bare, f"{bare}:{port}"}
    return out


# ------------------------------------------------------------------ rate limit
class RateLimiter:
    """At most `per_minute` requests per client in any 60 s (0: no limit)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits[client]
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle clients
                for k in [k for k, v in self._hits.items() if not v]:
                    del self._hits[k]
            return True


# ------------------------------------------------------------------ the middleware
@dataclass
class GuardSettings:
    allowed_hosts: set[str]
    rate_limit: int = 0
    api_body_limit: int = API_BODY_LIMIT
    rpc_body_limit: int = RPC_BODY_LIMIT
    # routes that take a whole file (the back office's CSV uploads) get a larger limit
    large_paths: frozenset[str] = frozenset()
    large_body_limit: int = 4 * 1024 * 1024 + 64 * 1024


class _TooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, settings: GuardSettings):
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets
        path: str = scope.get("path", "")
        guarded = path.startswith("/api/") or path == "/api" or path == "/rpc"
        extra = NO_STORE if guarded else {}

        async def reply(status: int, message: str, field: str | None = None, code: str | None = None) -> None:
            body = error_body(status, message, field, code)
            await send_headers({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        started = False

        async def send_headers(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in CORS_HEADERS
                           and k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in {**SECURITY_HEADERS, **extra}.items()
                            if k.encode() not in {h for h, _ in headers}]
                message = {**message, "headers": headers}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "").strip().lower()
        if host not in self.settings.allowed_hosts:
            await reply(421, f"this server does not answer to the host name {host[:80]!r}", "Host")
            return
        client = (scope.get("client") or ("?", 0))[0]
        if not self.limiter.allow(client):
            await reply(429, f"too many requests: at most {self.settings.rate_limit} a minute")
            return

        if guarded:
            if scope.get("method") != "POST":
                await reply(405, f"{path} takes POST requests with a JSON body only")
                return
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                await reply(415, "send the request as Content-Type: application/json", "Content-Type")
                return
            limit = self.settings.rpc_body_limit if path == "/rpc" else self.settings.api_body_limit
            if path in self.settings.large_paths:
                limit = self.settings.large_body_limit
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                if not length.isdigit():
                    await reply(400, "bad Content-Length header", "Content-Length")
                else:
                    await reply(413, f"request body too large: at most {limit} bytes")
                return
            try:
                body = await _read_body(receive, limit)
            except _TooLarge:
                await reply(413, f"request body too large: at most {limit} bytes")
                return
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            inner_receive = replay
        else:
            inner_receive = receive

        try:
            await self.app(scope, inner_receive, send_headers)
        except Exception as exc:  # noqa: BLE001 - the last net: never a 5xx, never a traceback
            err = to_api_error(exc)
            if not started:
                await reply(err.status, err.message, err.field, err.code)


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)
