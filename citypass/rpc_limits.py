"""A node's limits, met by waiting: HTTP 429 and dropped connections.

Public and hosted RPC endpoints rate-limit (HTTP 429, often with Retry-After), and a
connection can drop in the middle of a request. `LimitAdapter` is mounted on the session of
every Chain (`chain.connect`), so every request (CityPass's own batches and web3's calls)
goes through it:

- HTTP 429: waits (Retry-After if the node gives it, else 1, 2, 4 ... up to 30 s), says so
  once per wait through `say`, and asks again; after RATE_LIMIT_PATIENCE seconds in all it
  gives up with one clear error. A 429 means the node did not take the request, so asking
  again never doubles anything.
- A connection that was open and dropped (no answer): the same request again, up to
  DROP_RETRIES times with a short back-off. That is safe for writes too: the only write
  CityPass makes is `eth_sendRawTransaction` of bytes it signed, and the same bytes are the
  same transaction (same nonce, same hash), which a node takes at most once
  (`tx.send_many` accepts "already known" for a transaction the node has).
- A node that refuses the connection (not running) fails at once, as before.

Large `eth_getLogs` ranges are split where logs are read (citypass/events.py).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter

from citypass.errors import CityPassError

RATE_LIMIT_PATIENCE = 600.0  # seconds of 429s in a row before giving up
MAX_BACKOFF = 30.0
DROP_RETRIES = 4
DROP_BACKOFF = 0.5  # seconds, doubled per retry


def _refused(exc: BaseException) -> bool:
    """Whether a ConnectionError is a refused/unreachable connection (the node is not
    there), not one that dropped after it was made."""
    text = repr(exc)
    return any(s in text for s in ("NewConnectionError", "Connection refused", "Name or service not known",
                                   "No route to host", "ConnectTimeout"))


class LimitAdapter(HTTPAdapter):
    def __init__(self, say: Callable[[str], None] | None = None, **kw: Any):
        super().__init__(**kw)
        self.say = say or _stderr
        self.waited_429 = 0.0  # seconds spent waiting on rate limits (for tests and benchmarks)
        self.drops = 0  # dropped connections met

    def send(self, request: requests.PreparedRequest, *args: Any, **kw: Any) -> requests.Response:  # type: ignore[override]
        waited, backoff, drops = 0.0, 1.0, 0
        while True:
            try:
                response = super().send(request, *args, **kw)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                if _refused(exc) or drops >= DROP_RETRIES:
                    raise
                pause = DROP_BACKOFF * (2 ** drops)
                drops += 1
                self.drops += 1
                self.say(f"the connection to {request.url} dropped before the answer came "
                         f"({exc.__class__.__name__}); asking again in {pause:.1f} s (the same request: "
                         "a transaction in it is the same signed transaction, taken at most once)")
                time.sleep(pause)
                continue
            if response.status_code != 429:
                return response
            pause = _retry_after(response) or backoff
            pause = min(pause, MAX_BACKOFF)
            if waited + pause > RATE_LIMIT_PATIENCE:
                raise CityPassError(
                    f"the node at {request.url} kept refusing requests with HTTP 429 (rate limited) for "
                    f"{waited:.0f} s; stopped waiting. What was confirmed before stays done; run the command "
                    "again later (it carries on where it stopped) or use a node with a higher limit")
            self.say(f"the node at {request.url} is rate-limiting (HTTP 429): waiting {pause:.0f} s, then asking again")
            response.close()
            time.sleep(pause)
            waited += pause
            self.waited_429 += pause
            backoff = min(backoff * 2, MAX_BACKOFF)


def _stderr(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use the back-off


def mount(session: requests.Session, say: Callable[[str], None] | None = None) -> LimitAdapter:
    adapter = LimitAdapter(say, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return adapter


__all__ = ["LimitAdapter", "mount", "RATE_LIMIT_PATIENCE"]
