"""The ASGI app of `citypass web`: its routes, in one table.

    /till/            the provider's till (static files: citypass/web/static/till/)
    /pass/            the resident's pass app (citypass/web/pass_api.py, with /api/pass/*)
    /assets/          the bundle, CSS, fonts and the QR decoder's wasm (citypass/web/static/assets/)
    POST /api/<name>  the JSON API (citypass/web/api.py; shapes in WEB-API.md)
    POST /rpc         the wallet RPC endpoint (citypass/web/rpc.py)
    /balie/, /financien/, POST /api/backoffice/*   the back office (citypass/web/backoffice.py)

Everything passes through the Guard (citypass/web/security.py) first.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from citypass.web import api, backoffice, dashboard, pass_api
from citypass.web.errors import ApiError, error_response, json_response, to_api_error
from citypass.web.rpc import WalletRpc
from citypass.web.security import Guard, GuardSettings

STATIC = Path(__file__).resolve().parent / "static"
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/manifest+json", ".webmanifest")


@dataclass
class WebConfig:
    allowed_hosts: set[str]
    rate_limit: int = 0
    static_dir: Path = STATIC
    extra: dict[str, Any] = field(default_factory=dict)


class _Static(StaticFiles):
    """StaticFiles that answers 404 JSON (not an error) while the folder is not built yet."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            raise HTTPException(404, f"{scope.get('path', '')[:100]}: the page is not built (see `make web`)")
        await super().__call__(scope, receive, send)


def _origin(request: Request) -> str:
    """The page's own origin (scheme from the proxy's X-Forwarded-Proto only if it says https)."""
    host = request.headers.get("host", "")
    proto = "https" if request.headers.get("x-forwarded-proto", "").lower() == "https" else request.url.scheme
    return f"{proto}://{host}"


def _parse_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}", parse_constant=_no_constant)
    except RecursionError:
        raise ApiError(400, "the request body nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def create_app(service: api.Service, config: WebConfig) -> Starlette:
    """The app over a connected Service. Tests build it around their own chain."""
    wallet_rpc = WalletRpc(service.chain.rpc_url)

    async def api_route(request: Request) -> Response:
        name = request.path_params["name"]
        handler = api.ROUTES.get(name)
        if handler is None:
            return error_response(ApiError(404, f"no API route /api/{name[:60]} (routes: "
                                                f"{', '.join(sorted(api.ROUTES))})"))
        try:
            body = _parse_object(await request.body())
            data = await run_in_threadpool(handler, service, body, _origin(request))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a 4xx JSON answer
            return error_response(to_api_error(exc))
        return json_response(data)

    async def rpc_route(request: Request) -> Response:
        body = await request.body()
        answer = await run_in_threadpool(wallet_rpc.handle, body)
        return json_response(answer)

    async def to_till(request: Request) -> Response:
        return RedirectResponse("/till/", status_code=308)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        if status == 404:
            detail = exc.detail if isinstance(exc, HTTPException) and exc.detail != "Not Found" else None
            return error_response(ApiError(404, detail or f"nothing at {request.url.path[:100]}"))
        if status == 405:
            return error_response(ApiError(405, f"{request.method} is not allowed on {request.url.path[:100]}"))
        if not 400 <= status < 500:
            status = 400
        detail = exc.detail if isinstance(exc, HTTPException) else "bad request"
        return error_response(ApiError(status, str(detail)))

    routes = [
        Route("/", to_till, methods=["GET", "HEAD"]),
        Route("/till", to_till, methods=["GET", "HEAD"]),
        Mount("/till", app=_Static(directory=config.static_dir / "till", html=True, check_dir=False)),
        Mount("/assets", app=_Static(directory=config.static_dir / "assets", check_dir=False)),
        Route("/api/{name:str}", api_route, methods=["POST"]),
        Route("/rpc", rpc_route, methods=["POST"]),
    ]
    routes += dashboard.routes(service, config)  # /dashboard/, /api/dashboard/* (citypass/web/dashboard.py)
    routes += pass_api.routes(service, config, origin=_origin, parse=_parse_object,
                              static=_Static)  # /pass/, /api/pass/* (citypass/web/pass_api.py)
    routes += backoffice.routes(service, config)  # /balie/, /financien/, /api/backoffice/* (citypass/web/backoffice.py)
    guard = GuardSettings(allowed_hosts=config.allowed_hosts, rate_limit=config.rate_limit,
                          large_paths=frozenset(backoffice.LARGE_BODY_PATHS))
    return Starlette(routes=routes, middleware=[Middleware(Guard, settings=guard)],
                     exception_handlers={HTTPException: http_error})
