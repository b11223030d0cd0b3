"""The pass register leaks nowhere: every back-office route refuses a request without a session,
the register's routes refuse another role's session, the access log refuses the registrar, and
no public route of the app (enumerated from the app itself) ever answers with a pass number,
whatever it is asked, the dashboard's report and exports included; the SQLite file is not
served either. Runs against the real server (`citypass web`), with sessions made through the
real Sign-In with Ethereum routes."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from backofficekit import address_of, pass_number, session_for
from starlette.routing import Mount, Route
from tillkit import resident

from citypass import register as R
from citypass.web import api, backoffice, dashboard
from citypass.web.api import Service
from citypass.web.app import WebConfig, create_app

REGISTER_ROUTES = [n for n in backoffice.ROUTES if n.startswith(("desk/", "register/"))]


@pytest.fixture(scope="module")
def linked(world, server):
    """Two passes in the register (through the registrar's session): their numbers must stay inside."""
    s = session_for(server, "REGISTRAR")
    assert s.signin_status == 200, s.signin_body
    numbers = [pass_number(), pass_number()]
    holders = [resident("leak-a").address, resident("leak-b").address]
    csv = "pass_number,address\n" + "".join(f"{n},{h}\n" for n, h in zip(numbers, holders))
    r = s.post(f"{server.base}/api/backoffice/register/import", json={"csv": csv})
    assert r.ok and r.json()["ok"], r.text
    world.cli("pass", "enroll", *holders, "--valid-until", world.until)
    return numbers, holders


def post(server, name, body=None, session=None):
    return (session or requests).post(f"{server.base}/api/backoffice/{name}", json=body or {}, timeout=30)


def test_without_a_session_every_route_refuses(server, linked):
    numbers, _ = linked
    for name in backoffice.ROUTES:
        r = post(server, name, {"number": numbers[0]})
        assert r.status_code == 401, f"{name}: {r.status_code} {r.text[:200]}"
        assert numbers[0] not in r.text
    forged = requests.Session()
    forged.cookies.set("cp_backoffice", "forged-token", path="/api/backoffice")
    assert post(server, "desk/find", {"number": numbers[0]}, forged).status_code == 401


def test_another_roles_session_cannot_read_the_register(server, linked):
    numbers, _ = linked
    treasurer = session_for(server, "TREASURER", "financien")
    assert treasurer.signin_status == 200
    for name in REGISTER_ROUTES:
        r = post(server, name, {"number": numbers[0], "csv": "pass_number,address\n"}, treasurer)
        assert r.status_code == 403, f"{name}: {r.status_code} {r.text[:200]}"
        assert numbers[0] not in r.text
    registrar = session_for(server, "REGISTRAR")
    info = post(server, "session", {}, registrar).json()
    assert info["roles"] == ["REGISTRAR"] and 0 < info["expires_in"] <= 15 * 60  # a short-lived session
    assert post(server, "register/log", {}, registrar).status_code == 403  # the supervisor's only
    assert post(server, "finance/issuance/plan", {"csv": "", "budget": 1}, registrar).status_code == 403
    admin = session_for(server, "ADMIN")
    assert admin.signin_status == 200
    assert post(server, "desk/find", {"number": numbers[0]}, admin).status_code == 403  # it supervises, it does not look up
    log = post(server, "register/log", {}, admin).json()["lookups"]
    assert any(x["officer"] == address_of("REGISTRAR") and x["action"] == "import" for x in log)


def test_a_wallet_with_no_role_cannot_sign_in(server):
    s = session_for(server, "NOBODY")
    assert s.signin_status == 403
    assert post(server, "desk/find", {"number": "SP-0000001"}, s).status_code == 401


def test_no_public_route_answers_with_a_pass_number(world, server, linked):
    numbers, holders = linked
    service = Service.connect(None, world.workdir)
    app = create_app(service, WebConfig(allowed_hosts={"testserver"}))
    seen = []
    for route in app.routes:
        path = route.path
        if path.startswith("/api/backoffice"):
            continue  # above: every one of them needs a session
        if isinstance(route, Mount):
            targets = [("GET", path + "/"), ("GET", path + "/index.html"), ("GET", path + "/register.sqlite"),
                       ("GET", path + "/../register/register.sqlite"), ("GET", path + "/%2e%2e/register/register.sqlite")]
        elif "{name:str}" in path and path.startswith("/api/"):
            targets = [("POST", path.replace("{name:str}", n)) for n in api.ROUTES]
        elif "{name:str}" in path:
            targets = [("GET", path.replace("{name:str}", n)) for n in dashboard.EXPORTS]
        else:
            targets = [(m, path) for m in sorted(getattr(route, "methods", None) or {"GET"}) if m != "HEAD"]
        for method, target in targets:
            bodies = [{}] if method == "GET" else [{}, {"holder": holders[0]}, {"address": holders[0]},
                                                    {"number": numbers[0]}, {"qr": numbers[0]}]
            for body in bodies:
                if method == "GET":
                    r = requests.get(server.base + target, timeout=120)
                else:
                    r = requests.post(server.base + target, json=body, timeout=60)
                content = r.content
                if target.endswith(".zip") and r.ok:
                    with zipfile.ZipFile(io.BytesIO(content)) as z:
                        content = b"".join(z.read(n) for n in z.namelist())
                for n in numbers:
                    assert n.encode() not in content, f"{method} {target} {body}: answered with a pass number"
                assert b"SQLite format" not in content, f"{method} {target}: served the register's file"
                seen.append(target)
    assert "/api/balances" in seen and "/dashboard/export/report.zip" in seen and "/balie/" in seen
    assert len(set(seen)) >= 25


def test_the_register_file_lives_under_the_work_directory(world):
    path = world.workdir / R.FOLDER / R.FILE
    assert path.exists() and path.stat().st_mode & 0o077 == 0


def test_the_registrar_reads_it_from_the_command_line_too(world, linked, tmp_path):
    numbers, holders = linked
    found = world.cli("register", "find", numbers[1].lower())
    assert (found["number"], found["address"]) == (numbers[1], holders[1])
    out = tmp_path / "register.csv"
    world.cli("register", "export", "--out", str(out))
    assert f"{numbers[0]},{holders[0]},active," in out.read_text()
    log = world.cli("register", "log")["lookups"]  # the admin's (dev:0 on this dev chain)
    assert log[0]["action"] == "export" and log[1]["number"] == numbers[1]
    assert {x["officer"] for x in log[:2]} == {address_of("REGISTRAR")}


def test_a_sign_in_message_works_once_and_only_here(server):
    """Over HTTP as well: the same signed message again, another site's message, and a session
    cookie that is HttpOnly, SameSite=Strict, short-lived and only for the back office's API."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from citypass.web.siwe import SESSION_TTL, message_text

    who = keys_dev(3)
    for domain, want in (("127.0.0.1:1", 401), (None, 200)):
        n = requests.post(f"{server.base}/api/backoffice/nonce", json={}).json()
        text = message_text(domain=domain or n["domain"], address=who.address, uri=n["uri"] + "/balie/",
                            chain_id=n["chain_id"], nonce=n["nonce"], issued_at=n["issued_at"],
                            expiration_time=n["expiration_time"])
        sig = "0x" + bytes(Account.sign_message(encode_defunct(text=text), who.key).signature).hex()
        r = requests.post(f"{server.base}/api/backoffice/signin", json={"page": "balie", "message": text, "signature": sig})
        assert r.status_code == want, r.text
    cookie = r.headers["set-cookie"]
    for part in ("HttpOnly", "SameSite=Strict", "Path=/api/backoffice", f"Max-Age={SESSION_TTL}"):
        assert part in cookie
    again = requests.post(f"{server.base}/api/backoffice/signin", json={"page": "balie", "message": text, "signature": sig})
    assert again.status_code == 401 and "used before" in again.json()["error"]["message"]


def keys_dev(i: int):
    from citypass import keys

    return keys.dev_account(i)
