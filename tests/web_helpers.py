"""What the web tests share: a small CityPass world on an embedded Anvil (through the CLI, in
a temp work directory) and a real `citypass web` server (uvicorn in a thread) in front of it.

Synthetic residents only: keys derived from labels, never real people.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner
from eth_account import Account
from eth_utils import keccak

from citypass import keys, node, passqr, wallet
from citypass import redemption
from citypass.cli import main
from citypass.web.api import Service
from citypass.web.app import WebConfig, create_app
from citypass.web.security import host_names

DEV = [keys.dev_account(i).address for i in range(10)]
POOL, MUSEUM = DEV[7], DEV[8]
POOL_NAME, MUSEUM_NAME = "Zwembad De Wiekslag", "Stadsmuseum"


def resident(label: str) -> Any:
    return Account.from_key(keccak(text=f"citypass-web-test-{label}"))


def _cli(workdir: Path, *args: str, rpc: str | None = None) -> Any:
    runner = CliRunner(mix_stderr=False, env={"CITYPASS_RPC": None, "CITYPASS_FROM": None,
                                              "CITYPASS_CONTRACT": None, "CITYPASS_HOME": None})
    where = ["--rpc", rpc] if rpc else []
    result = runner.invoke(main, ["--workdir", str(workdir), *where, "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, f"citypass {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


@dataclass
class World:
    workdir: Path
    service: Service
    alice: Any
    bob: Any
    sport: int  # budget id
    culture: int

    @property
    def dep(self) -> Any:
        return self.service.dep


def make_world(workdir: Path, rpc: str | None = None) -> World:
    """Two budgets (sport, culture), two named providers (POOL: sport, at most 50 euros;
    MUSEUM: culture), alice and bob with 25 and 10 euros in each. On `rpc`, else the embedded node."""
    def cli(*args: str) -> Any:
        return _cli(workdir, *args, rpc=rpc)

    if rpc is None:
        cli("node", "start")
    cli("deploy")
    cli("category", "define", "0", "sport")
    cli("category", "define", "1", "culture")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    next_year = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 300 * 86_400))
    sport = int(cli("budget", "create", "--category", "sport", "--valid-from", today, "--valid-until",
                    next_year, "--cap", "10000", "--name", "Sport 2026")["id"])
    culture = int(cli("budget", "create", "--category", "culture", "--valid-from", today, "--valid-until",
                      next_year, "--cap", "10000", "--name", "Cultuur 2026")["id"])
    cli("provider", "add", POOL, "--categories", "sport", "--max", "50", "--name", POOL_NAME)
    cli("provider", "add", MUSEUM, "--categories", "culture", "--name", MUSEUM_NAME)
    alice, bob = resident("alice"), resident("bob")
    cli("pass", "enroll", alice.address, bob.address, "--valid-until", next_year)
    for budget in ("1", "2"):
        rows = workdir / f"issue-{budget}.csv"
        rows.write_text(f"holder,amount\n{alice.address},25.00\n{bob.address},10.00\n")
        cli("issue", str(rows), "--budget", budget)
    service = Service.connect(rpc, workdir)
    return World(workdir, service, alice, bob, sport, culture)


def pass_qr(w: World, holder: Any, budget: int, cents: int, provider: str = passqr.ANY_PROVIDER,
            nonce: int | None = None) -> passqr.PassQR:
    """The holder's pass QR with one voucher of `budget` for up to `cents` (the lowest unused
    nonce unless `nonce`), for any provider unless `provider`; signed even where the wallet
    would refuse (the tests want the chain's verdict on it)."""
    return wallet.pass_qr(w.dep, holder, budgets=[budget], max_amount=cents, provider=provider,
                          nonces=None if nonce is None else {budget: nonce}, force=True)


def redeem(w: World, holder: Any, budget: int, cents: int, provider: str = POOL, refundable: bool = False) -> Any:
    """A redemption of `cents` through the library: the holder's pass QR (for any provider),
    redeemed by `provider`'s dev wallet."""
    signed = pass_qr(w, holder, budget, cents).for_budget(budget)
    return redemption.redeem(w.dep, keys.dev_account(DEV.index(provider)), signed, cents, refundable=refundable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`create_app` served by uvicorn in a thread on 127.0.0.1 (the real server, real HTTP)."""

    def __init__(self, service: Service, *, rate_limit: int = 0, static_dir: Path | None = None,
                 public_names: tuple[str, ...] = ()):
        import uvicorn

        self.port = free_port()
        config = WebConfig(allowed_hosts=host_names("127.0.0.1", self.port, public_names), rate_limit=rate_limit)
        if static_dir is not None:
            config.static_dir = static_dir
        self.app = create_app(service, config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    server_header=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()

    def __enter__(self) -> "Server":
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("the test server did not start")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None
             ) -> requests.Response:
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        return self.session.post(self.base + path, data=data, timeout=30,
                                 headers={"Content-Type": "application/json", **(headers or {})})

    def api(self, name: str, body: Any = None, status: int = 200) -> Any:
        r = self.post(f"/api/{name}", body)
        assert r.status_code == status, f"/api/{name}: {r.status_code} {r.text[:500]}"
        return r.json()

    def rpc(self, method: str, params: list[Any] | None = None, id_: Any = 1) -> Any:
        r = self.post("/rpc", {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or []})
        assert r.status_code == 200, r.text
        return r.json()


def stop_node(workdir: Path) -> None:
    node.node_stop(workdir)
