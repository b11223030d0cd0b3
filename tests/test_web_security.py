"""The server's defences: security headers and CSP on every answer, no CORS, the Host check
(DNS rebinding), JSON-only POSTs, body limits, the rate limit, the bind check that keeps
public dev keys off a public address, and a server that holds no key."""

from __future__ import annotations

import socket

import pytest
import requests
from click.testing import CliRunner

from citypass.cli import main
from citypass.web import security
from tests.web_helpers import POOL, Server, make_world, stop_node


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own embedded node, not Brownie's."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("citypass-web-security"))
    yield w
    stop_node(w.workdir)


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    (root / "till").mkdir()
    (root / "till" / "index.html").write_text("<!doctype html><title>till</title>")
    (root / "assets").mkdir()
    (root / "assets" / "zxing.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "assets" / "till.js").write_text("export {};")
    return root


@pytest.fixture(scope="module")
def server(world, static):
    with Server(world.service, static_dir=static, public_names=("till.example.nl",)) as s:
        yield s


def check_headers(r: requests.Response) -> None:
    h = {k.lower(): v for k, v in r.headers.items()}
    assert h["content-security-policy"] == security.CSP
    csp = dict(part.strip().split(" ", 1) for part in h["content-security-policy"].split(";"))
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert "unsafe-inline" not in h["content-security-policy"] and "*" not in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer" and h["cross-origin-opener-policy"] == "same-origin"
    assert "camera=(self)" in h["permissions-policy"]
    assert not [k for k in h if k.startswith("access-control-")], h
    assert "server" not in h


# ------------------------------------------------------------------ headers
def test_headers_on_every_kind_of_answer(server):
    evil = {"Origin": "https://evil.example"}
    answers = [
        server.post("/api/deployment", {}, headers=evil),  # ok
        server.post("/api/provider", {"address": "x"}, headers=evil),  # 400
        server.post("/api/nope", {}),  # 404
        server.post("/rpc", {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, headers=evil),
        server.session.get(server.base + "/till/", headers=evil),
        server.session.get(server.base + "/assets/till.js"),
        server.session.get(server.base + "/assets/missing.js"),
        server.session.get(server.base + "/api/deployment"),  # 405
        server.session.options(server.base + "/api/deployment", headers={**evil, "Access-Control-Request-Method": "POST"}),
    ]
    for r in answers:
        check_headers(r)
    assert [r.status_code for r in answers] == [200, 400, 404, 200, 200, 200, 404, 405, 405]
    api = answers[0]
    assert api.headers["cache-control"] == "no-store" and api.headers["content-type"] == "application/json"


def test_static_files(server):
    till = server.session.get(server.base + "/till/")
    assert till.status_code == 200 and "<title>till</title>" in till.text
    moved = server.session.get(server.base + "/till", allow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/till/"
    wasm = server.session.get(server.base + "/assets/zxing.wasm")
    assert wasm.headers["content-type"] == "application/wasm"
    js = server.session.get(server.base + "/assets/till.js")
    assert js.headers["content-type"].startswith("text/javascript")
    outside = server.session.get(server.base + "/assets/../../../etc/passwd")
    assert outside.status_code == 404


def test_unbuilt_page_is_a_json_404(world):
    with Server(world.service, static_dir=world.workdir / "no-such-folder") as s:
        r = s.session.get(s.base + "/till/")
        assert r.status_code == 404 and "not built" in r.json()["error"]["message"]


# ------------------------------------------------------------------ host check (DNS rebinding)
def raw_request(server: Server, data: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:{port}", True), ("localhost:{port}", True), ("till.example.nl", True), ("TILL.example.nl", True),
    ("evil.example", False), ("evil.example:{port}", False), ("127.0.0.1.evil.example", False), ("", False),
    ("till.example.nl.evil", False),
])
def test_host_header(server, host, ok):
    value = host.format(port=server.port)
    r = server.post("/api/deployment", {}, headers={"Host": value})
    assert (r.status_code == 200) is ok, (value, r.status_code, r.text)
    if not ok:
        assert r.status_code == 421 and r.json()["error"]["code"] == "misdirected"
        page = server.session.get(server.base + "/till/", headers={"Host": value})
        assert page.status_code == 421
        check_headers(r)


def test_no_host_header_at_all(server):
    status, body = raw_request(server, b"GET /till/ HTTP/1.0\r\n\r\n")
    assert status == 421 and b"host name" in body


# ------------------------------------------------------------------ content type, method, size
@pytest.mark.parametrize("path", ["/api/deployment", "/rpc"])
@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/json-patch+json", "text/json"])
def test_only_json_posts(server, path, ctype):
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = server.session.post(server.base + path, data=b"{}", headers=headers)
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


def test_json_with_charset_is_fine(server):
    r = server.session.post(server.base + "/api/deployment", data=b"{}",
                            headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_api_and_rpc_take_post_only(server, method):
    for path in ("/api/deployment", "/rpc"):
        r = server.session.request(method, server.base + path, data=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code == 405, (method, path)
        assert r.json()["error"]["code"] == "method_not_allowed"


def test_body_limits(server):
    big_api = b'{"qr": "' + b"A" * security.API_BODY_LIMIT + b'"}'
    r = server.post("/api/check", raw=big_api)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    just_fits = b'{"x": "' + b"A" * (security.API_BODY_LIMIT - 20) + b'"}'
    assert server.post("/api/messages", raw=just_fits).status_code == 400  # read, then refused as unknown field
    big_rpc = b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "pad": "' + b"A" * security.RPC_BODY_LIMIT + b'"}'
    assert server.post("/rpc", raw=big_rpc).status_code == 413

    def chunks():  # no Content-Length: the Guard counts while reading
        for _ in range(80):
            yield b" " * 1024

    r = server.session.post(server.base + "/api/deployment", data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_bad_content_length(server):
    status, body = raw_request(server, (
        f"POST /api/deployment HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 99999999999\r\nConnection: close\r\n\r\n{}").encode())
    assert status == 413 and b"too large" in body


def test_rate_limit(world):
    with Server(world.service, rate_limit=5) as s:
        codes = [s.post("/api/messages", {}).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        r = s.post("/rpc", {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


# ------------------------------------------------------------------ dev keys and binding
def test_dev_keys_are_found(world):
    exposed = security.dev_key_holders(world.dep)
    assert exposed[0].startswith("dev:0 (") and "admin" in exposed[0] and "deployer" in exposed[0]
    assert any("provider" in e for e in exposed) and any(e.startswith("dev:9 (gas") for e in exposed)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "till.example.nl"])
def test_refuses_a_public_bind_with_dev_keys(world, host):
    with pytest.raises(security.BindRefused, match="public Anvil dev keys"):
        security.check_bind(host, security.dev_key_holders(world.dep))
    security.check_bind(host, [])  # a chain without dev keys may listen anywhere


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_is_always_allowed(world, host):
    security.check_bind(host, security.dev_key_holders(world.dep))


def test_cli_refuses_a_public_bind(world):
    runner = CliRunner(mix_stderr=False, env={"CITYPASS_RPC": None, "CITYPASS_CONTRACT": None})
    r = runner.invoke(main, ["--workdir", str(world.workdir), "web", "--host", "0.0.0.0",
                             "--public-name", "till.example.nl"])
    assert r.exit_code == 1 and "refusing to listen on 0.0.0.0" in r.stderr and "Traceback" not in r.stderr
    r = runner.invoke(main, ["--workdir", str(world.workdir), "web", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "--public-name" in r.stderr


def test_host_names():
    names = security.host_names("127.0.0.1", 8600, ("till.example.nl",))
    assert {"127.0.0.1:8600", "localhost:8600", "localhost", "till.example.nl", "till.example.nl:8600"} <= names
    assert "[::1]:8600" in names
    assert security.host_names("0.0.0.0", 8600) == set()


def test_server_holds_no_key():
    """No module of the web server loads a key or signs a transaction."""
    import pathlib

    import citypass.web

    for path in pathlib.Path(citypass.web.__file__).parent.glob("*.py"):
        text = path.read_text()
        for word in ("load_account", "dev_account(", "sign_transaction", "send_raw_transaction", ".transact(",
                     "Account.from_key", "eth_sendTransaction\""):
            if word == "dev_account(" and path.name == "security.py":
                continue  # only to recognise dev addresses (never to sign)
            assert word not in text, (path.name, word)


def test_a_provider_address_is_fine_in_a_request(server):
    """Sanity: the guard does not get in the way of an ordinary request."""
    assert server.api("provider", {"address": POOL})["approved"] is True


# ------------------------------------------------------------------ the catch-all
def test_a_bug_in_a_handler_is_a_logged_4xx(server, monkeypatch, caplog):
    from citypass.web import api

    def broken(*_args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(api.ROUTES, "budgets", broken)
    with caplog.at_level("ERROR", logger="citypass.web"):
        r = server.post("/api/budgets", {})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unhandled"
    assert "incident" in r.json()["error"]["message"] and "a bug" not in r.text and "Traceback" not in r.text
    assert any("a bug" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)


def test_an_exception_escaping_the_app_is_caught_by_the_guard(server, monkeypatch):
    from citypass.web import rpc

    def broken(self, body):
        raise KeyError("boom")

    monkeypatch.setattr(rpc.WalletRpc, "handle", broken)
    r = server.post("/rpc", {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unhandled" and "boom" not in r.text
    check_headers(r)


def test_a_dead_node_is_a_424(world, monkeypatch):
    from citypass.web import api

    def down(*_args):
        raise requests.ConnectionError("refused")

    monkeypatch.setitem(api.ROUTES, "budgets", down)
    with Server(world.service) as s:
        r = s.post("/api/budgets", {})
    assert r.status_code == 424 and r.json()["error"]["code"] == "chain_unavailable"
