"""How the web server says no: one JSON error shape, always 4xx, never a traceback.

    {"error": {"code": "bad_request", "message": "holder: ... is not an Ethereum address", "field": "holder"}}
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import requests
from starlette.responses import Response

from citypass.errors import CityPassError

log = logging.getLogger("citypass.web")

CODES = {
    400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
    413: "payload_too_large", 415: "unsupported_media_type", 421: "misdirected", 424: "chain_unavailable",
    429: "rate_limited",
}


class ApiError(Exception):
    """A refusal with its HTTP status (4xx), a message for people and the field to blame."""

    def __init__(self, status: int, message: str, field: str | None = None, code: str | None = None):
        assert 400 <= status < 500, status
        self.status = status
        self.message = message
        self.field = field
        self.code = code or CODES.get(status, "bad_request")
        super().__init__(message)


def bad(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_body(status: int, message: str, field: str | None = None, code: str | None = None) -> bytes:
    err: dict[str, Any] = {"code": code or CODES.get(status, "bad_request"), "message": message}
    if field:
        err["field"] = field
    return json.dumps({"error": err}, separators=(",", ":"), ensure_ascii=True).encode()


def error_response(err: ApiError) -> Response:
    return Response(error_body(err.status, err.message, err.field, err.code), status_code=err.status,
                    media_type="application/json")


def to_api_error(exc: BaseException) -> ApiError:
    """Any exception of a handler as the answer to give: the library's own errors say what is
    wrong with the input or the chain; anything else is a bug, logged with an id."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, requests.RequestException):
        return ApiError(424, "the chain node does not answer; try again in a moment")
    if isinstance(exc, CityPassError):
        text = str(exc)
        if "does not answer" in text or "cannot reach" in text or "lost the connection" in text:
            return ApiError(424, text)
        return ApiError(400, text)
    if isinstance(exc, ValueError) and type(exc).__module__.startswith("citypass"):
        return ApiError(400, str(exc))
    incident = uuid.uuid4().hex[:12]
    log.error("unexpected error (incident %s)", incident, exc_info=exc)
    return ApiError(400, f"the server could not handle this request (incident {incident}, logged)",
                    code="unhandled")
