"""The municipality's public dashboard: routes and exports (figures: dashboard_data.py,
charts: dashboard_charts.py, page: web/src/dashboard/ built into static/dashboard/).

    GET  /dashboard/                    the page (static files, citypass/web/static/dashboard/)
    POST /api/dashboard/summary         {"lang": "nl"|"en", "have": "<version>"} -> the figures,
                                        checks and charts; {"unchanged": true, ...} if `have` is current
    GET  /dashboard/export/<file>       the report as `citypass report` writes it: budgets.csv,
                                        categories.csv, providers.csv, weeks.csv, redemptions.csv,
                                        report.html (its index.html), report.zip (the whole folder
                                        with the charts); and events.csv, every indexed event in the
                                        columns of `citypass audit`

The app registers all of it with one line: `routes += dashboard.routes(service, config)`.
Read-only and public: nothing here writes to the chain or names a resident.
"""

from __future__ import annotations

import csv
import json
import shutil
import threading
import zipfile
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from citypass import finance, report
from citypass.web import dashboard_charts
from citypass.web.dashboard_data import DashboardState, Snapshot
from citypass.web.errors import ApiError, bad, error_response, json_response, to_api_error

LANGUAGES = ("nl", "en")
REPORT_FILES = {  # download name -> file in the report folder written by report.write_report
    "budgets.csv": "budgets.csv", "categories.csv": "categories.csv", "providers.csv": "providers.csv",
    "weeks.csv": "weeks.csv", "redemptions.csv": "redemptions.csv", "report.html": "index.html",
}
EXPORTS = (*REPORT_FILES, "report.zip", "events.csv")
MEDIA = {".csv": "text/csv; charset=utf-8", ".html": "text/html; charset=utf-8", ".zip": "application/zip"}
CHART_CACHE = 8  # (version, language, layout) kept


class Dashboard:
    """The state behind the routes: the snapshot cache, the charts per language, the exports."""

    def __init__(self, service: Any):
        self.service = service
        self.state = DashboardState(service)
        self.folder = Path(service.index.path).parent.parent / "dashboard"  # <workdir>/dashboard
        self._charts: dict[tuple[str, str, bool], dict[str, str]] = {}
        self._export_lock = threading.Lock()
        self._public: tuple[str, dict[str, Any]] = ("", {})

    # ------------------------------------------------------------------ the figures
    def summary(self, body: dict[str, Any]) -> dict[str, Any]:
        extra = [k for k in body if k not in ("lang", "have")]
        if extra:
            raise bad(f"{str(extra[0])[:80]}: unknown field (this route takes lang, have)", str(extra[0])[:80])
        lang = body.get("lang", "nl")
        if lang not in LANGUAGES:
            raise bad(f"lang: use one of {', '.join(LANGUAGES)}", "lang")
        have = body.get("have")
        if have is not None and (not isinstance(have, str) or len(have) > 64):
            raise bad("have: expected the `version` of an earlier answer (a short string)", "have")
        snap, tip = self.state.snapshot()
        now = self.state.block_time(tip)
        # new events, a finished chain check and the hour (days left) each give a new version
        version = f"{snap.key}.{snap.chain_block}.{now // 3600}"
        head = {
            "version": version, "as_of": {"block": tip, "time": now},
            "chain_id": self.service.chain.chain_id, "contract": self.service.dep.address,
            "dev_chain": bool(self.service.chain.is_local_dev or self.service.dev_keys),
            "exports": list(EXPORTS), "report_available": snap.reconciles,
        }
        if have == version:
            return {**head, "unchanged": True}
        if self._public[0] != version:  # the figures of one version are computed once
            self._public = (version, snap.public(now))
        data = dict(self._public[1])
        data.update(head)
        data["unchanged"] = False
        data["charts"] = self.charts(version, lang, data, narrow=False)
        data["charts_narrow"] = self.charts(version, lang, data, narrow=True)  # for phones
        data["lang"] = lang
        return data

    def charts(self, version: str, lang: str, data: dict[str, Any], narrow: bool) -> dict[str, str]:
        key = (version, lang, narrow)
        if key not in self._charts:
            if len(self._charts) >= CHART_CACHE:
                self._charts.pop(next(iter(self._charts)))
            self._charts[key] = dashboard_charts.render(data, lang, narrow) if data["totals"] is not None else {}
        return self._charts[key]

    # ------------------------------------------------------------------ the exports
    def export(self, name: str) -> tuple[Path, str]:
        """(file, download name) of one export, written for the current snapshot if needed."""
        if name not in EXPORTS:
            raise ApiError(404, f"no export {name[:60]!r} (there are: {', '.join(EXPORTS)})")
        snap, _ = self.state.snapshot(checked=name != "events.csv")
        if name != "events.csv" and snap.chain_pending:  # a newer block came meanwhile: its check too
            snap, _ = self.state.snapshot(checked=True)
        if name != "events.csv" and snap.chain_pending:
            raise ApiError(409, "the chain check of the newest block is still running; try again in a moment",
                           code="check_running")
        with self._export_lock:
            folder = self.folder / f"block-{snap.block}-{snap.key}-{snap.chain_block}"
            if name == "events.csv":
                path = folder / "events.csv"
                if not path.exists():
                    folder.mkdir(parents=True, exist_ok=True)
                    self._write_events(snap, path)
                return path, f"citypass-events-block-{snap.block}.csv"
            if not snap.reconciles:
                failed = next((c.text for c in snap.checks if not c.ok), "")
                raise ApiError(409, "the figures do not reconcile, so no report is written (citypass report refuses "
                                    f"too): {failed}", code="does_not_reconcile")
            written = folder / "report"
            if not (written / "index.html").exists():
                self._write_report(snap, folder, written)
            if name == "report.zip":
                return folder / "report.zip", f"citypass-report-block-{snap.block}.zip"
            stem, dot, ext = name.rpartition(".")
            return written / REPORT_FILES[name], f"citypass-{stem}-block-{snap.block}.{ext}"

    def _write_report(self, snap: Snapshot, folder: Path, written: Path) -> None:
        assert snap.summary is not None
        for old in self.folder.glob("block-*"):  # one report on disk at a time
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        tmp = folder / "report.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        files = report.write_report(self.state.full_summary(snap), tmp, checks=snap.chain_lines + snap.findings)
        with zipfile.ZipFile(folder / "report.zip.tmp", "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(files.directory.iterdir()):
                z.write(path, f"citypass-report-block-{snap.block}/{path.name}")
        (folder / "report.zip.tmp").replace(folder / "report.zip")
        tmp.replace(written)

    def _write_events(self, snap: Snapshot, path: Path) -> None:
        """Every indexed event up to the snapshot's block, in the columns of `citypass audit`."""
        records = [r for r in self.service.index.records() if r.block <= snap.block]
        names: dict[str, None] = {}
        for r in records:
            for k in r.args:
                names.setdefault(k, None)
        header = finance.FIXED_COLUMNS + [c for c in names if c not in finance.FIXED_COLUMNS] + ["args"]
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as stream:
            w = csv.writer(stream, lineterminator="\n")
            w.writerow(header)
            for r in records:
                args = {k: finance._cell(v) for k, v in r.args.items()}
                w.writerow([r.block, r.time.strftime("%Y-%m-%dT%H:%M:%SZ"), r.tx_hash, r.log_index, r.name]
                           + [args.get(c, "") for c in header[len(finance.FIXED_COLUMNS):-1]] + [json.dumps(args)])
        tmp.replace(path)


class _Static(StaticFiles):
    """The page's files; a 404 JSON answer while they are not built."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            raise HTTPException(404, "/dashboard/: the page is not built (see `make web`)")
        await super().__call__(scope, receive, send)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad(f"the request body is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise bad(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def routes(service: Any, config: Any) -> list[BaseRoute]:
    """The dashboard's routes, to append to the app's (none overlaps another route)."""
    board = Dashboard(service)

    async def summary(request: Request) -> Response:
        try:
            body = _parse(await request.body())
            data = await run_in_threadpool(board.summary, body)
        except Exception as exc:  # noqa: BLE001 - every failure is a 4xx JSON answer
            return error_response(to_api_error(exc))
        return json_response(data)

    async def export(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            path, download = await run_in_threadpool(board.export, name)
        except Exception as exc:  # noqa: BLE001 - every failure is a 4xx JSON answer
            return error_response(to_api_error(exc))
        return FileResponse(path, media_type=MEDIA[path.suffix], filename=download,
                            headers={"Cache-Control": "no-store"})

    async def to_page(request: Request) -> Response:
        return RedirectResponse("/dashboard/", status_code=308)

    return [
        Route("/api/dashboard/summary", summary, methods=["POST"]),
        Route("/dashboard", to_page, methods=["GET", "HEAD"]),
        Route("/dashboard/export/{name:str}", export, methods=["GET", "HEAD"]),
        Mount("/dashboard", app=_Static(directory=Path(config.static_dir) / "dashboard", html=True, check_dir=False)),
    ]


__all__ = ["Dashboard", "routes"]
