"""A small fault-injecting JSON-RPC proxy for tests, in front of a node (Anvil).

    with RpcProxy(anvil_url, max_log_range=10) as proxy:
        connect(proxy.url) ...
        proxy.rate_limit(3)                      # the next 3 requests: HTTP 429 (Retry-After)
        proxy.drop("eth_sendRawTransaction")     # the next request with that method: forwarded,
                                                 # then the connection closed without an answer
        proxy.drop("eth_sendRawTransaction", before=True)   # closed before forwarding

What it does, per HTTP request (a JSON-RPC call or batch):
- `max_log_range`: an `eth_getLogs` item over more blocks than that is answered with the
  error public endpoints give ("query exceeds max block range"); the other items of the
  batch are forwarded.
- `rate_limit(n)`: the next n requests get HTTP 429 with `Retry-After: retry_after`.
- `drop(method, n, before)`: the next n requests that contain `method` lose their
  connection, after the node got them (default) or before.
Counters say what happened (`refused_ranges`, `limited`, `dropped`, `methods`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


class RpcProxy:
    def __init__(self, upstream: str, *, max_log_range: int | None = None, retry_after: str | None = "1"):
        self.upstream = upstream
        self.max_log_range = max_log_range
        self.retry_after = retry_after
        self._limit_next = 0
        self._drops: list[tuple[str, bool]] = []
        self.refused_ranges = 0
        self.limited = 0
        self.dropped = 0
        self.methods: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                proxy._handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RpcProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ faults
    def rate_limit(self, n: int) -> None:
        with self._lock:
            self._limit_next = n

    def drop(self, method: str, n: int = 1, *, before: bool = False) -> None:
        with self._lock:
            self._drops += [(method, before)] * n

    # ------------------------------------------------------------------ handling
    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        items = payload if isinstance(payload, list) else [payload]
        methods = [i.get("method") for i in items if isinstance(i, dict)]
        with self._lock:
            self.methods.update(m for m in methods if m)
            if self._limit_next > 0:
                self._limit_next -= 1
                self.limited += 1
                limited = True
            else:
                limited = False
            drop = next((d for d in self._drops if d[0] in methods), None)
            if drop is not None and not limited:
                self._drops.remove(drop)
                self.dropped += 1
        if limited:
            return self._reply(h, 429, b'{"error":"rate limited"}',
                               {"Retry-After": self.retry_after} if self.retry_after is not None else {})
        if drop is not None and drop[1]:
            return self._hang_up(h)
        answers: dict[Any, Any] = {}
        forward = []
        for item in items:
            if isinstance(item, dict) and item.get("method") == "eth_getLogs" and self._too_wide(item):
                with self._lock:
                    self.refused_ranges += 1
                answers[item.get("id")] = {"jsonrpc": "2.0", "id": item.get("id"), "error": {
                    "code": -32005, "message": f"query exceeds max block range {self.max_log_range}"}}
            else:
                forward.append(item)
        upstream: list[Any] = []
        if forward:
            data = json.dumps(forward if isinstance(payload, list) else forward[0]).encode()
            r = self._session.post(self.upstream, data=data, headers={"Content-Type": "application/json"}, timeout=120)
            got = r.json()
            upstream = got if isinstance(got, list) else [got]
        if drop is not None:  # the node did it; the client never hears
            return self._hang_up(h)
        by_id = {a.get("id"): a for a in upstream if isinstance(a, dict)}
        by_id.update(answers)
        if isinstance(payload, list):
            out = [by_id.get(i.get("id")) if isinstance(i, dict) else None for i in items]
        else:
            out = by_id.get(payload.get("id")) if isinstance(payload, dict) else (upstream[0] if upstream else None)
        self._reply(h, 200, json.dumps(out).encode(), {"Content-Type": "application/json"})

    def _too_wide(self, item: dict[str, Any]) -> bool:
        if self.max_log_range is None:
            return False
        query = (item.get("params") or [{}])[0]
        lo, hi = query.get("fromBlock", "latest"), query.get("toBlock", "latest")
        if not (isinstance(lo, str) and lo.startswith("0x") and isinstance(hi, str) and hi.startswith("0x")):
            return False  # a tag ("latest"): not counted here
        return int(hi, 16) - int(lo, 16) + 1 > self.max_log_range

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _hang_up(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            import socket

            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
