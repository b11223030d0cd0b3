"""Starting `citypass web`: connect to the chain, refuse a public bind with dev keys, serve."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from citypass.web.api import Service
from citypass.web.app import WebConfig, create_app
from citypass.web.security import check_bind, host_names

DEFAULT_PORT = 8600


def build(rpc: str | None, workdir: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          contract: str | None = None, public_names: tuple[str, ...] = (), rate_limit: int = 0,
          rebuild_index: bool = False, confirmations: int | None = None) -> tuple[Service, Any]:
    """(service, app), after the bind check (raises BindRefused) and an index sync (or rebuild).
    `confirmations`: blocks on top before the till says paid (None: the chain's default)."""
    service = Service.connect(rpc, workdir, contract, confirmations=confirmations)
    check_bind(host, service.dev_keys)
    if rebuild_index:
        service.index.rebuild()
    else:
        service.index.sync()
    config = WebConfig(allowed_hosts=host_names(host, port, public_names), rate_limit=rate_limit)
    return service, create_app(service, config)


def serve(app: Any, host: str, port: int) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, date_header=True,
                proxy_headers=False, access_log=True)
