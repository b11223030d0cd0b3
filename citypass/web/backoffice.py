"""The municipality's back office: the desk (/balie/) and finance (/financien/).

    GET  /balie/, /financien/           the pages (static files, citypass/web/static/{balie,financien}/)
    POST /api/backoffice/<name>         the JSON routes below (ROUTES: name -> roles that may call it)

Sign-in is Sign-In with Ethereum (citypass/web/siwe.py): `nonce`, then `signin` with the
message the officer's wallet signed; the server reads the officer's roles on chain and sets
an HttpOnly, SameSite=Strict session cookie (Path=/api/backoffice, SESSION_TTL). Every other
route needs that session, and each route re-reads its role on chain (a revoked role stops
working at once, not when the session ends).

Nothing here signs or sends a transaction: a `.../prepare` route checks the request against
the library's rules and the chain (an eth_call from the officer's address, so a refusal comes
back as a sentence), and returns the call ({to, data, value}) for the officer's own wallet to
sign and send in the browser. The desk's `.../confirm` routes then read the chain and only
then write the private pass register (citypass/register.py). The register is read only here,
by a signed-in registrar (and its access log by the admin), never by a public route.

An owner of a Safe that holds the issuer role issues through the Safe (four eyes), with the
same plan of the uploaded file: `finance/safe/propose` records a proposal (nothing is sent),
`finance/safe/proposals` lists the open ones of the Safes the officer owns, `finance/safe/sign`
stores the owner's wallet signature (EIP-712) once the library checked it, `finance/safe/execute`
returns the Safe's execTransaction call(s) for the owner's wallet, and `finance/safe/confirm`
reads the chain and reconciles the file. These routes re-read on chain that the officer owns the
Safe and that the Safe holds the role.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

from eth_utils import to_checksum_address
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from citypass import budget_id, finance, gas, issuance
from citypass import contract as C
from citypass import tx as T
from citypass.errors import CityPassError, ROLE_IDS, euros
from citypass.register import (REASONS, Register, RegisterError, RegisterImportError, check_address, normalize_number,
                               problems_json)
from citypass.web.errors import ApiError, bad, error_response, json_response, to_api_error
from citypass.web.siwe import COOKIE, STATEMENT, SignIn, SignInRefused, iso

DESK_ROLES = ("REGISTRAR", "ADMIN")
FINANCE_ROLES = ("ISSUER", "PROVIDER_MANAGER", "TREASURER", "BUDGET_MANAGER")
PAGE_ROLES = {"balie": DESK_ROLES, "financien": FINANCE_ROLES}
ISSUANCE_CSV_LIMIT = 4 * 1024 * 1024  # the route's body limit (security.py), the CSV inside it
DAY = 86_400


def _text(body: dict[str, Any], name: str, limit: int = 200, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise bad(f"{name}: missing", name)
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise bad(f"{name}: expected text of at most {limit} characters", name)
    return value


def refuse(code: str, message: str, field: str) -> ApiError:
    """A 400 with a code the pages turn into a sentence in the officer's language."""
    return ApiError(400, message, field, code)


def _address(body: dict[str, Any], name: str) -> str:
    value = _text(body, name, 100)
    try:
        return check_address(value or "", name)
    except RegisterError as exc:
        raise refuse("bad_address", str(exc), name) from None


def _int(body: dict[str, Any], name: str, lo: int, hi: int, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"{name}: missing", name)
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 80:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise bad(f"{name}: expected a whole number from {lo} to {hi}", name)
    return value


def _day_end(text: str, name: str) -> int:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise bad(f"{name}: {text[:20]!r} is not a date (YYYY-MM-DD)", name) from None
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) + DAY - 1


def _problems_json(problems: Any) -> list[dict[str, Any]]:
    """An issuance file's problems, each with its code and values (the page says it in Dutch)."""
    return [{"line": p.line, "field": p.field, "reason": p.reason, "code": p.code, "args": dict(p.args)}
            for p in problems]


def _hash(value: Any) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


@dataclass
class Ctx:
    """One request: who (the session's officer), where from (for SIWE), and its body."""

    officer: str
    roles: tuple[str, ...]
    body: dict[str, Any]
    host: str
    origin: str
    expires: float = 0.0  # when the session ends (unix seconds)


class BackOffice:
    """The state behind the routes: the chain service, the register, the sign-in."""

    def __init__(self, service: Any, register: Register, signin: SignIn | None = None):
        self.service = service
        self.dep = service.dep
        self.chain = service.chain
        self.register = register
        self.signin = signin or SignIn()
        self.tmp = Path(service.chain.workdir) / "backoffice" / "tmp"

    # ------------------------------------------------------------------ roles
    def roles_of(self, address: str) -> tuple[str, ...]:
        has = self.dep.contract.functions.hasRole
        return tuple(name for name, rid in ROLE_IDS.items() if has(rid, address).call())

    def safe_roles_of(self, address: str) -> dict[str, str]:
        """Roles held on chain by a Safe that `address` owns now: role -> the Safe's address."""
        from citypass import safe as S

        out: dict[str, str] = {}
        for role, members in C.role_members(self.dep).items():
            for member in members:
                try:
                    info = S.safe_info(self.chain, member)
                except S.NotASafe:
                    continue
                if address in info.owners:
                    out.setdefault(role, info.address)
        return out

    def need(self, ctx: Ctx, *roles: str) -> str:
        """The first of `roles` the officer holds on chain now, or 403."""
        held = self.roles_of(ctx.officer)
        for r in roles:
            if r in held:
                return r
        raise ApiError(403, f"this needs the {' or '.join(r.lower().replace('_', ' ') for r in roles)} role; "
                            f"{ctx.officer} holds {', '.join(h.lower().replace('_', ' ') for h in held) or 'no role'} "
                            "on chain", code="forbidden")

    def call(self, fn: Any, sender: str, value: int = 0, check: bool = True) -> dict[str, Any]:
        """The transaction for the officer's wallet, after an eth_call from the officer's address
        (check=False: a call that can only run after an earlier one of the same request)."""
        if value == 0 and check:
            T.call(self.chain, fn, sender)  # raises CityPassError with the contract's reason
        params = T._call_params(fn, sender, value)
        return {"to": params["to"], "data": params["data"], "value": params.get("value", "0x0")}

    # ------------------------------------------------------------------ sign-in
    def nonce(self, ctx: Ctx) -> dict[str, Any]:
        now = time.time()
        return {"nonce": self.signin.new_nonce(), "domain": ctx.host, "uri": ctx.origin,
                "chain_id": self.chain.chain_id, "issued_at": iso(now), "expiration_time": iso(now + 300),
                "statement": STATEMENT}

    def signin_route(self, ctx: Ctx) -> tuple[dict[str, Any], str]:
        page = ctx.body.get("page")
        if page not in PAGE_ROLES:
            raise bad("page: balie or financien", "page")
        try:
            who = self.signin.verify(_text(ctx.body, "message", 2000) or "", _text(ctx.body, "signature") or "",
                                     domain=ctx.host, origin=ctx.origin, chain_id=self.chain.chain_id)
        except SignInRefused as exc:
            raise ApiError(401, str(exc), exc.field) from None
        roles = self.roles_of(who)
        via = self.safe_roles_of(who)
        if not (set(roles) | set(via)) & set(PAGE_ROLES[page]):
            names = " or ".join(r.lower().replace("_", " ") for r in PAGE_ROLES[page])
            raise ApiError(403, f"{who} holds no role for this page on chain (it needs {names}); ask the admin, "
                                "or sign in with the wallet that holds the role", code="forbidden")
        session = self.signin.open(who, roles)
        return self._session_json(session.address, roles, session.expires, via), session.token

    def _session_json(self, address: str, roles: tuple[str, ...], expires: float,
                      via: dict[str, str] | None = None) -> dict[str, Any]:
        return {"address": address, "roles": list(roles), "expires": int(expires),
                "via_safe": [{"role": r, "safe": a} for r, a in sorted((via or {}).items())],
                "expires_in": max(0, int(expires - time.time())), "chain_id": self.chain.chain_id,
                "contract": self.dep.address, "dev_chain": bool(self.chain.is_local_dev or self.service.dev_keys)}

    def session_route(self, ctx: Ctx) -> dict[str, Any]:
        return self._session_json(ctx.officer, self.roles_of(ctx.officer), ctx.expires, self.safe_roles_of(ctx.officer))

    # ------------------------------------------------------------------ the desk: the register
    def _pass_json(self, address: str) -> dict[str, Any]:
        p = C.pass_info(self.dep, address)
        names, _, _ = self.service.names()
        return {"address": p.address, "status": p.status, "valid_until": p.valid_until,
                "migrated_to": p.migrated_to, "current_address": p.current_address,
                "balances": [{"budget": str(b), "serial": budget_id.decode(b).serial, "name": names.get(b, ""),
                              "cents": c} for b, c in p.balances.items()]}

    def _entry_json(self, entry: Any) -> dict[str, Any]:
        return {"number": entry.number, "address": entry.address, "status": entry.status, "since": entry.since,
                "history": [{"kind": c.kind, "address": c.address, "old_address": c.old_address, "reason": c.reason,
                             "officer": c.officer, "time": c.time, "tx": c.tx} for c in entry.history]}

    def find(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        number = _text(ctx.body, "number", 40) or ""
        entry = self._register(lambda: self.register.find(number, ctx.officer))
        if entry is None:
            return {"found": False, "number": number.strip().upper()}
        return {"found": True, "entry": self._entry_json(entry), "pass": self._pass_json(entry.address)}

    def _register(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RegisterError as exc:
            codes = {"number": "number_taken" if "already" in str(exc) else "bad_number",
                     "address": "address_taken", "new_address": "address_taken"}
            raise refuse(codes.get(exc.field or "", "bad_request"), str(exc), exc.field or "") from None

    def reasons(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        return {"reasons": {k: list(v) for k, v in REASONS.items()}}

    def register_import(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        text = _text(ctx.body, "csv", ISSUANCE_CSV_LIMIT) or ""
        try:
            count = self.register.import_csv(text, ctx.officer)
        except RegisterImportError as exc:
            return {"ok": False, "problems": problems_json(exc.problems)}
        return {"ok": True, "imported": count, "total": self.register.count()}

    def register_export(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        return {"csv": self.register.export_csv(ctx.officer), "count": self.register.count()}

    def register_log(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "ADMIN")
        return {"lookups": [{"officer": x.officer, "time": x.time, "action": x.action, "number": x.number,
                             "found": x.found} for x in self.register.lookups()]}

    # ------------------------------------------------------------------ the desk: enrol
    def enrol_prepare(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        b = ctx.body
        number = self._register(lambda: normalize_number(_text(b, "number", 40) or ""))
        holder = _address(b, "address")
        until = _day_end(_text(b, "valid_until", 10) or "", "valid_until")
        if until < self.chain.now():
            raise refuse("past_date", "valid_until: that day is in the past", "valid_until")
        existing = self.register.find(number, ctx.officer, "enrol-check")
        if existing is not None:
            raise refuse("number_taken", f"number: {number} is already in the register (use Lost phone to give it a new address)",
                      "number")
        if self.register.is_known_address(holder):
            raise refuse("address_taken", "address: this address already belongs to a pass in the register; scan the QR code on the "
                      "resident's own phone", "address")
        roles = issuance.role_holders(self.dep).get(holder)
        if roles:
            raise refuse("role_holder", f"address: {holder} holds a municipal role ({', '.join(roles)}); a pass for it defeats "
                      "the four-eyes principle", "address")
        p = C.pass_info(self.dep, holder)
        if p.status == "active":  # enrolled on chain (e.g. a page closed before the register was written)
            return {"link_only": True, "number": number, "address": holder, "pass": self._pass_json(holder)}
        if p.status != "none":
            raise refuse("address_is_pass", f"address: this address is already a pass ({p.status}) or a provider on chain; scan the "
                      "QR code of the resident's new phone", "address")
        f = self.dep.contract.functions
        credit = b.get("credit")
        if credit is None:
            return {"link_only": False, "number": number, "address": holder, "valid_until": until,
                    "tx": self.call(f.enrollPasses([holder], until), ctx.officer)}
        if not isinstance(credit, dict):
            raise bad("credit: expected {budget, amount_cents, tranche}", "credit")
        self.need(ctx, "ISSUER")
        plan = self._plan_rows(ctx, [(holder, _int(credit, "amount_cents", 1, 10**12))],
                               _int(credit, "budget", 0, 2**256 - 1), _text(credit, "tranche", 64, False) or "",
                               pass_valid_until=until)
        if isinstance(plan, dict):  # problems
            raise bad("credit: " + "; ".join(p["reason"] for p in plan["problems"]), "credit")
        if len(plan.sends) != 1 or plan.sends[0].kind != "enrol":
            raise refuse("already_credited", "credit: this resident was credited in that issuance before", "credit")
        s = plan.sends[0]
        fn = f.enrollAndIssue(s.batch_id, plan.budget, until, [r.holder for r in s.rows], [r.amount for r in s.rows])
        return {"link_only": False, "number": number, "address": holder, "valid_until": until,
                "credit": {"budget": str(plan.budget), "amount_cents": s.total, "batch_id": _hash(s.batch_id)},
                "tx": self.call(fn, ctx.officer)}

    def enrol_confirm(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        number, holder = _text(ctx.body, "number", 40) or "", _address(ctx.body, "address")
        txh = _text(ctx.body, "tx", 66, False)
        p = C.pass_info(self.dep, holder)
        if p.status != "active":
            raise ApiError(409, f"the chain shows no active pass at {holder} (status {p.status}): the enrolment "
                                "did not go through; nothing was written to the register", code="not_on_chain")
        entry = self._register(lambda: self.register.enrol(number, holder, ctx.officer, txh))
        return {"entry": self._entry_json(entry), "pass": self._pass_json(holder)}

    # ------------------------------------------------------------------ the desk: a coupon sheet
    # The page makes a fresh key in its own memory and never sends it: the server plans the
    # sheet (coupons.plan_sheet), the page enrols and credits the key's address (desk/enrol/...,
    # the officer's wallet signs), signs the planned coupons with the key, and the server checks
    # every signed code against the same plan (coupons.sheet_from_codes) and draws the A4 PDF
    # (coupons.render_pdf). Nothing here ever sees the key.
    def _sheet_plan(self, ctx: Ctx) -> tuple[Any, Any, str]:
        from citypass import coupons as K

        self.need(ctx, "REGISTRAR")
        self.need(ctx, "ISSUER")
        b = ctx.body
        bid = _int(b, "budget", 0, 2**256 - 1)
        amount = _int(b, "amount_cents", 1, 10**12)
        try:
            denominations = K.parse_denominations(_text(b, "denominations", 100, False) or "10,5")
            found = [x for x in C.budgets(self.dep) if x.id == bid]
            if not found:
                raise bad("budget: no such budget", "budget")
            budget = found[0]
            now = self.chain.now()
            if now > budget.valid_until:
                raise bad(f"budget: #{budget.serial} has ended; no coupons can be made for it", "budget")
            if budget.issued + amount > budget.cap:  # type: ignore[operator]
                raise refuse("above_cap", f"amount_cents: this would bring budget #{budget.serial} above its cap "
                                          f"({euros(max(0, budget.cap - budget.issued))} left)", "amount_cents")
            plan = K.plan_sheet({bid: amount}, denominations=denominations, now=now)  # type: ignore[dict-item]
        except K.CouponError as exc:
            text = str(exc)
            if text.startswith("denominations"):
                raise refuse("bad_denominations", text, "denominations") from None
            if "coupons, more than" in text:
                raise refuse("too_many_coupons", text, "denominations") from None
            raise bad(text, "amount_cents") from None
        until = datetime.fromtimestamp(budget.valid_until, timezone.utc).date().isoformat()
        return plan, budget, until

    def sheet_plan(self, ctx: Ctx) -> dict[str, Any]:
        plan, budget, until = self._sheet_plan(ctx)
        return {"plan": plan.to_json(), "chain_id": self.chain.chain_id, "contract": self.dep.address,
                "budget": {"budget": str(budget.id), "serial": budget.serial, "name": budget.name},
                "valid_until": until}

    def sheet_pdf(self, ctx: Ctx) -> dict[str, Any]:
        import base64

        from citypass import coupons as K

        plan, budget, until = self._sheet_plan(ctx)
        codes = ctx.body.get("codes")
        if not isinstance(codes, list) or not all(isinstance(c, str) and len(c) <= 400 for c in codes):
            raise bad("codes: expected the list of signed coupons (CP2:...)", "codes")
        tranche = _text(ctx.body, "tranche", 64, False) or ""
        try:
            sheet = K.sheet_from_codes(plan, codes, self.chain.chain_id, self.dep.address)
        except K.CouponError as exc:
            raise bad(str(exc), "codes") from None
        info = K.SheetInfo("new", self.chain.chain_id, self.dep.address, sheet.holder, dict(plan.credits), None, tranche,
                           _day_end(until, "valid_until"), len(plan.coupons)).with_coupons(sheet)
        names = {x.id: x.name for x in C.budgets(self.dep)}
        pdf = K.render_pdf(sheet, info, names, C.category_names(self.dep))
        return {"holder": sheet.holder, "coupons": len(sheet.coupons), "total_cents": plan.total,
                "checks": [K.show_check_number(c.check) for c in sheet.coupons],
                "pdf_base64": base64.b64encode(pdf).decode("ascii")}

    # ------------------------------------------------------------------ the desk: lost phone or sheet
    def migrate_prepare(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        number, new = _text(ctx.body, "number", 40) or "", _address(ctx.body, "new_address")
        entry = self._register(lambda: self.register.find(number, ctx.officer, "migrate-check"))
        if entry is None:
            raise refuse("not_in_register", "number: not in the register", "number")
        old = entry.address
        if new == old:
            raise refuse("same_address", "new_address: that is the pass's current address; scan the new phone's QR code", "new_address")
        if self.register.is_known_address(new):
            raise refuse("address_taken", "new_address: this address already belongs to a pass in the register", "new_address")
        q = C.pass_info(self.dep, new)
        if q.status != "none":
            raise refuse("address_is_pass", f"new_address: this address is already a pass ({q.status}) or a provider on chain",
                      "new_address")
        steps = C.migration_steps(self.dep, old, new)  # `new` is no pass yet (above): migratePass comes first
        txs = [self.call(s.fn, ctx.officer, check=i == 0) for i, s in enumerate(steps)]  # the rest run after it
        return {"number": entry.number, "old_address": old, "new_address": new, "pass": self._pass_json(old),
                "txs": txs}

    def migrate_confirm(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        number, new = _text(ctx.body, "number", 40) or "", _address(ctx.body, "new_address")
        txh = _text(ctx.body, "tx", 66, False)
        entry = self._register(lambda: self.register.find(number, ctx.officer, "migrate-confirm"))
        if entry is None:
            raise refuse("not_in_register", "number: not in the register", "number")
        if entry.address != new:
            moved = C.pass_info(self.dep, entry.address).migrated_to
            if moved != new:
                raise ApiError(409, "the chain does not show the pass moved to the new address: the migration did "
                                    "not go through; nothing was written to the register", code="not_on_chain")
            entry = self._register(lambda: self.register.migrate(number, new, ctx.officer, txh))
        return {"entry": self._entry_json(entry), "pass": self._pass_json(new)}

    # ------------------------------------------------------------------ the desk: suspend, reinstate, revoke
    STATUS_CALL = {"suspend": ("suspendPass", "suspended"), "reinstate": ("reinstatePass", "active"),
                   "revoke": ("revokePass", "revoked")}

    def _status_args(self, ctx: Ctx) -> tuple[Any, str, str]:
        action = ctx.body.get("action")
        if action not in self.STATUS_CALL:
            raise bad(f"action: use one of {', '.join(self.STATUS_CALL)}", "action")
        reason = ctx.body.get("reason")
        if reason not in REASONS[action]:
            raise bad(f"reason: pick one from the list ({', '.join(REASONS[action])})", "reason")
        entry = self._register(lambda: self.register.find(_text(ctx.body, "number", 40) or "", ctx.officer,
                                                          f"{action}-check"))
        if entry is None:
            raise refuse("not_in_register", "number: not in the register", "number")
        return entry, action, reason

    def status_prepare(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        entry, action, reason = self._status_args(ctx)
        fn = getattr(self.dep.contract.functions, self.STATUS_CALL[action][0])(entry.address)
        return {"number": entry.number, "address": entry.address, "action": action, "reason": reason,
                "tx": self.call(fn, ctx.officer)}

    def status_confirm(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "REGISTRAR")
        entry, action, reason = self._status_args(ctx)
        want = self.STATUS_CALL[action][1]
        now = C.pass_info(self.dep, entry.address).status
        if now != want:
            raise ApiError(409, f"the chain shows the pass as {now}, not {want}: the change did not go through; "
                                "nothing was written to the register", code="not_on_chain")
        if entry.status != want:
            entry = self._register(lambda: self.register.set_status(entry.number, action, reason, ctx.officer,
                                                                    _text(ctx.body, "tx", 66, False)))
        return {"entry": self._entry_json(entry), "pass": self._pass_json(entry.address)}

    # ------------------------------------------------------------------ finance: issuance
    def _plan_rows(self, ctx: Ctx, rows: list[tuple[str, int]], budget: int, tranche: str,
                   pass_valid_until: int | None = None) -> Any:
        text = "holder,amount\n" + "".join(f"{h},{a // 100}.{a % 100:02d}\n" for h, a in rows)
        return self._plan_text(ctx, text, budget, tranche, pass_valid_until=pass_valid_until)

    def _plan_text(self, ctx: Ctx, text: str, budget: int, tranche: str, *, top_up: bool = False,
                   pass_valid_until: int | None = None) -> Any:
        """The library's plan of an uploaded CSV (issuance.plan_issuance reads a file: a private
        temporary one, removed at once), or {"problems": [...]}."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".csv", dir=self.tmp)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            try:
                if budget not in self.dep.contract.functions.budgets().call():
                    raise bad("budget: no such budget on this contract", "budget")
                return issuance.plan_issuance(self.dep, name, budget, tranche=tranche, top_up=top_up,
                                              pass_valid_until=pass_valid_until)
            except issuance.IssuanceFileError as exc:
                return {"problems": _problems_json(exc.problems)}
        finally:
            os.unlink(name)

    def _csv_body(self, ctx: Ctx) -> tuple[str, int, str, bool]:
        b = ctx.body
        text = _text(b, "csv", ISSUANCE_CSV_LIMIT) or ""
        budget = _int(b, "budget", 0, 2**256 - 1)
        tranche = _text(b, "tranche", 64, False) or ""
        top_up = bool(b.get("top_up", False))
        return text, budget, tranche, top_up  # type: ignore[return-value]

    def issuance_plan(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "ISSUER")
        text, budget, tranche, top_up = self._csv_body(ctx)
        plan = self._plan_text(ctx, text, budget, tranche, top_up=top_up)
        if isinstance(plan, dict):
            return {"ok": False, "problems": plan["problems"], "budget": str(budget), "tranche": tranche}
        enrol = [s for s in plan.sends if s.kind == "enrol"]
        if enrol and "REGISTRAR" not in self.roles_of(ctx.officer):
            return {"ok": False, "budget": str(budget), "tranche": tranche, "problems": [{
                "line": None, "field": "role", "code": "enrol_needs_registrar",
                "args": {"rows": sum(len(s.rows) for s in enrol)}, "reason": (
                    f"{sum(len(s.rows) for s in enrol)} rows are residents without a pass yet: enrolling them "
                    "(enrollAndIssue) needs the registrar role too; enrol them at the desk first, or let an "
                    "officer holding both roles issue this file")}]}
        return self._plan_json(plan, tranche, ctx.officer)

    def _plan_json(self, plan: Any, tranche: str, issuer: str) -> dict[str, Any]:
        """The plan as the page shows it, each batch with the call `issuer` (the officer, or the Safe) makes."""
        names, _, _ = self.service.names()
        f = self.dep.contract.functions
        batches = []
        for s in plan.sends:
            holders, amounts = [r.holder for r in s.rows], [r.amount for r in s.rows]
            fn = (f.issue(s.batch_id, plan.budget, holders, amounts) if s.kind == "credit"
                  else f.enrollAndIssue(s.batch_id, plan.budget, plan.pass_valid_until, holders, amounts))
            params = T._call_params(fn, issuer)
            batches.append({"batch": s.batch, "kind": s.kind, "rows": len(s.rows), "total_cents": s.total,
                            "batch_id": _hash(s.batch_id), "gas": s.gas_estimate,
                            "tx": {"to": params["to"], "data": params["data"], "value": "0x0"}})
        before = issuance.snapshot(self.dep, plan)
        return {
            "ok": True, "budget": str(plan.budget), "budget_name": names.get(plan.budget, ""),
            "serial": budget_id.decode(plan.budget).serial, "tranche": tranche,
            "rows": len(plan.rows), "residents": len({r.holder for r in plan.rows}), "total_cents": plan.total,
            "new_passes": plan.new_residents, "already": len(plan.already),
            "already_cents": sum(r.amount for r in plan.already), "top_ups": len(plan.top_ups),
            "to_send_rows": plan.to_send_rows, "to_send_cents": plan.to_send_total,
            "cap_cents": plan.budget_cap, "issued_cents": plan.budget_issued,
            "left_after_cents": plan.budget_cap - plan.budget_issued - plan.to_send_total,
            "earlier_batches": plan.earlier_batches, "batches": batches,
            "before": {"issued": before.issued, "balances": before.balances},
        }

    def issuance_reconcile(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "ISSUER")
        text, budget, tranche, top_up = self._csv_body(ctx)
        before = ctx.body.get("before") or {}
        try:
            snap = issuance.Snapshot(int(before["issued"]), int(before["balances"]))
        except (KeyError, TypeError, ValueError):
            raise bad("before: the plan's {issued, balances}", "before") from None
        sent = ctx.body.get("sent") or []
        if not isinstance(sent, list) or len(sent) > 10_000 or not all(isinstance(h, str) for h in sent):
            raise bad("sent: the transaction hashes of the batches sent", "sent")
        # the plan of the same file after the run: what is left (nothing, if every batch landed)
        after = self._plan_text(ctx, text, budget, tranche, top_up=top_up)
        if isinstance(after, dict):
            return {"ok": False, "problems": after["problems"]}
        return self._recon_json(after, snap, sent)

    def _recon_json(self, after: Any, snap: issuance.Snapshot | None, sent: list[str]) -> dict[str, Any]:
        """The reconciliation the page shows: the file's plan after the run (`after`) against the
        chain's events, and the budget's counters against `snap` (taken before sending)."""
        landed = 0
        for h in sent:
            receipt = self.chain.rpc("eth_getTransactionReceipt", [h])
            landed += bool(receipt) and int(receipt["status"], 16) == 1
        rec = issuance.reconcile(self.dep, after, snap or issuance.snapshot(self.dep, after), [])
        checks = [
            {"ok": (rec.file_rows, rec.file_total) == (rec.chain_rows, rec.chain_total), "id": "exact",
             "text": "every holder in the file received exactly its amount in this tranche"},
        ]
        if snap is not None:
            checks.append({"ok": rec.after.balances - snap.balances == rec.after.issued - snap.issued, "id": "balances",
                           "text": "the file's holders' balances grew by what the budget's issued counter grew"})
        checks.append({"ok": not after.sends, "id": "nothing_left", "text": "nothing of the file is left to send"})
        return {"ok": all(c["ok"] for c in checks), "file_rows": rec.file_rows, "file_cents": rec.file_total,
                "chain_rows": rec.chain_rows, "chain_cents": rec.chain_total, "chain_batches": rec.chain_batches,
                "landed": landed, "sent": len(sent), "issued_before_cents": rec.before.issued,
                "issued_after_cents": rec.after.issued, "cap_cents": rec.cap, "left_to_send": after.to_send_rows,
                "checks": checks}

    # ------------------------------------------------------------------ finance: issuance through a Safe
    # An officer who owns a Safe that holds the issuer role (four eyes): the same plan of the
    # uploaded file, then a proposal (proposals.issuance_proposal + propose: nothing is sent),
    # which each owner signs in their own wallet (eth_signTypedData_v4 of proposals.typed_data,
    # checked by proposals.add_signatures before it is stored), and which any owner executes once
    # the threshold is met: the server prepares the Safe's execTransaction calls
    # (proposals.execution_calls), the officer's wallet sends them, and `confirm` reads the chain.
    # The uploaded file is kept beside the proposal (<workdir>/backoffice/safe-issuance/) so the
    # owner who executes, in another browser, sees the same reconciliation.
    def _owned_safe(self, ctx: Ctx, role: str = "ISSUER") -> str:
        """The Safe holding `role` that the officer owns now (read on chain), or 403."""
        via = self.safe_roles_of(ctx.officer)
        if role not in via:
            raise ApiError(403, f"this needs an owner of a Safe that holds the {role.lower().replace('_', ' ')} role; "
                                f"{ctx.officer} owns none on chain now", code="forbidden")
        return via[role]

    def _owned_proposal(self, ctx: Ctx) -> tuple[Any, Any]:
        """The proposal named in the body, if its Safe holds a finance role and the officer owns it now."""
        from citypass import proposals
        from citypass import safe as S

        ref = _text(ctx.body, "proposal", 80) or ""
        try:
            p = proposals.find(self.chain.workdir, ref, self.chain.chain_id)
        except CityPassError as exc:
            raise refuse("no_proposal", str(exc), "proposal") from None
        held = [r for r in FINANCE_ROLES if C.has_role(self.dep, r, p.safe)]
        info = S.safe_info(self.chain, p.safe)
        if not held or ctx.officer not in info.owners:
            raise ApiError(403, f"{ctx.officer} is not an owner of Safe {p.safe} (owners: {', '.join(info.owners)})"
                           + ("" if held else ", or that Safe holds no finance role") + "; nothing was done",
                           code="forbidden")
        return p, info

    def _record_path(self, proposal_id: str) -> Path:
        return self.tmp.parent / "safe-issuance" / f"{proposal_id}.json"

    def _save_record(self, proposal_id: str, record: dict[str, Any]) -> None:
        path = self._record_path(proposal_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _record(self, proposal_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._record_path(proposal_id).read_text())
        except (OSError, ValueError):
            return None

    def safe_plan(self, ctx: Ctx) -> dict[str, Any]:
        safe = self._owned_safe(ctx)
        plan = self._safe_file_plan(ctx, safe)
        if isinstance(plan, dict):
            return plan
        return self._plan_json(plan, plan.tranche, safe) | {"safe": safe}

    def _safe_file_plan(self, ctx: Ctx, safe: str) -> Any:
        text, budget, tranche, top_up = self._csv_body(ctx)
        plan = self._plan_text(ctx, text, budget, tranche, top_up=top_up)
        if isinstance(plan, dict):
            return {"ok": False, "problems": plan["problems"], "budget": str(budget), "tranche": tranche}
        enrol = [s for s in plan.sends if s.kind == "enrol"]
        if enrol and not C.has_role(self.dep, "REGISTRAR", safe):
            return {"ok": False, "budget": str(budget), "tranche": tranche, "problems": [{
                "line": None, "field": "role", "code": "enrol_needs_registrar", "args": {"rows": sum(len(s.rows) for s in enrol)},
                "reason": (f"{sum(len(s.rows) for s in enrol)} rows are residents without a pass yet: enrolling them "
                           f"(enrollAndIssue) needs the registrar role too, and Safe {safe} does not hold it; enrol them "
                           "at the desk first")}]}
        return plan

    def safe_propose(self, ctx: Ctx) -> dict[str, Any]:
        from citypass import proposals

        safe = self._owned_safe(ctx)
        plan = self._safe_file_plan(ctx, safe)
        if isinstance(plan, dict):
            return plan
        out = self._plan_json(plan, plan.tranche, safe) | {"safe": safe}
        if not plan.sends:
            return out | {"proposal": None}
        text, budget, tranche, top_up = self._csv_body(ctx)
        name = os.path.basename(_text(ctx.body, "file", 200, False) or "upload.csv")
        b = next(x for x in C.budgets(self.dep) if x.id == plan.budget)
        args = proposals.issuance_proposal(self.dep, plan, b.name, b.serial, file_name=name,
                                           file_bytes=text.encode("utf-8"))
        try:
            p = proposals.propose(self.chain, self.chain.workdir, safe, args.pop("calls"), **args)
        except proposals.AlreadyProposed as exc:
            return out | {"already_proposed": True, "proposal": self._proposal_json(exc.proposal, ctx.officer)}
        self._save_record(p.id, {"csv": text, "budget": str(budget), "tranche": tranche, "top_up": top_up,
                                 "file": name})
        return out | {"already_proposed": False, "proposal": self._proposal_json(p, ctx.officer)}

    def _proposal_json(self, p: Any, officer: str) -> dict[str, Any]:
        from citypass import proposals
        from citypass import safe as S

        info = S.safe_info(self.chain, p.safe)
        summary = proposals.summary(self.chain, p)
        open_ = [t for t in summary["transactions"] if t["state"] in ("ready", "waiting")]
        signed = min((len(t["signed_by"]) for t in open_), default=info.threshold)
        signers = sorted(set.intersection(*(set(t["signed_by"]) for t in open_))) if open_ else []
        names, _, _ = self.service.names()
        batches = []
        for t in p.txs:
            item: dict[str, Any] = {"nonce": t.nonce, "safe_tx_hash": t.hash}
            try:
                fn, args = self.dep.contract.decode_function_input(bytes.fromhex(t.data[2:]))
            except Exception:  # noqa: BLE001 - not a CityPass call: only its words
                fn, args = None, {}
            if fn is not None and fn.fn_name in ("issue", "enrollAndIssue"):
                item |= {"kind": "credit" if fn.fn_name == "issue" else "enrol", "rows": len(args["holders"]),
                         "total_cents": sum(args["amounts"]), "batch_id": _hash(args["batchId"]),
                         "budget": str(args["budget"]), "serial": budget_id.decode(args["budget"]).serial,
                         "name": names.get(args["budget"], "")}
            batches.append(item)
        state = {t["safe_tx_hash"]: t for t in summary["transactions"]}
        for item in batches:
            t = state[item["safe_tx_hash"]]
            item |= {"state": t["state"], "signed_by": t["signed_by"], "executed_in": t["executed_in"],
                     "what": t["what"], "problems": t["problems"]}
        return {"id": p.id, "safe": p.safe, "kind": p.kind, "description": p.description, "status": summary["status"],
                "threshold": info.threshold, "owners": list(info.owners), "signed": signed, "signed_by": signers,
                "signed_by_me": officer in signers, "ready": bool(open_) and signed >= info.threshold
                and open_[0]["state"] == "ready", "created": p.created, "details": p.details, "batches": batches,
                "total_cents": sum(b.get("total_cents", 0) for b in batches),
                "typed_data": proposals.typed_data(self.chain, p) if open_ else {}}

    def safe_proposals(self, ctx: Ctx) -> dict[str, Any]:
        """The open proposals of the Safes holding a finance role that the officer owns."""
        from citypass import proposals

        via = self.safe_roles_of(ctx.officer)
        safes = {a for r, a in via.items() if r in FINANCE_ROLES}
        if not safes:
            raise ApiError(403, f"{ctx.officer} owns no Safe that holds a finance role on chain now", code="forbidden")
        out = []
        for p in proposals.load_all(self.chain.workdir, self.chain.chain_id):
            if p.safe in safes and proposals.is_open(self.chain, p):
                out.append(self._proposal_json(p, ctx.officer))
        return {"proposals": out, "safes": sorted(safes)}

    def safe_sign(self, ctx: Ctx) -> dict[str, Any]:
        from citypass import proposals

        p, _ = self._owned_proposal(ctx)
        given = ctx.body.get("signatures")
        if not isinstance(given, dict) or not given or len(given) > 1000:
            raise refuse("signature_malformed", "signatures: expected {safe_tx_hash: signature} from the wallet", "signatures")
        sigs: dict[str, bytes] = {}
        for h, sig in given.items():
            if not isinstance(sig, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", sig) or int(sig[-2:], 16) not in (27, 28):
                raise refuse("signature_malformed", f"signatures: the signature for {str(h)[:18]}… is not a wallet's "
                                                    "signature (65 bytes r‖s‖v, v = 27 or 28); nothing was stored",
                             "signatures")
            sigs[str(h)] = bytes.fromhex(sig[2:])
        try:
            proposals.add_signatures(self.chain, self.chain.workdir, p, ctx.officer, sigs)
        except CityPassError as exc:
            text = str(exc)
            code = ("already_signed" if "already" in text else "nothing_to_sign" if "nothing left" in text
                    else "signature_refused")
            raise refuse(code, text, "signatures") from None
        return {"proposal": self._proposal_json(proposals.find(self.chain.workdir, p.id, self.chain.chain_id),
                                                ctx.officer)}

    def safe_execute(self, ctx: Ctx) -> dict[str, Any]:
        """The Safe's execTransaction call(s) for the officer's wallet, once the threshold is met."""
        from citypass import proposals

        p, _ = self._owned_proposal(ctx)
        try:
            calls = proposals.execution_calls(self.chain, self.chain.workdir, p)
        except CityPassError as exc:
            text = str(exc)
            raise refuse("not_enough_signatures" if "signatures Safe" in text else "not_executable", text,
                         "proposal") from None
        out: dict[str, Any] = {"proposal": self._proposal_json(p, ctx.officer), "executed": not calls, "txs": []}
        for i, (_, fn) in enumerate(calls):
            # the first is checked as the officer would send it; the next ones need it mined first
            out["txs"].append(self.call(fn, ctx.officer) if i == 0 else
                              {k: v for k, v in T._call_params(fn, ctx.officer).items() if k in ("to", "data", "value")})
        record = self._record(p.id)
        if record is not None and calls:
            after = self._plan_text(ctx, record["csv"], int(record["budget"]), record["tranche"], top_up=record["top_up"])
            if not isinstance(after, dict):
                snap = issuance.snapshot(self.dep, after)
                out["before"] = {"issued": snap.issued, "balances": snap.balances}
        return out

    def safe_confirm(self, ctx: Ctx) -> dict[str, Any]:
        """After the wallet sent the execution: the proposal's state read from the chain, and for
        an issuance the reconciliation of its file (a second confirm reads the same: nothing is sent)."""
        from citypass import proposals

        p, _ = self._owned_proposal(ctx)
        sent = ctx.body.get("sent") or []
        if not isinstance(sent, list) or len(sent) > 10_000 or not all(isinstance(h, str) for h in sent):
            raise bad("sent: the transaction hashes of the executions sent", "sent")
        for t, s in zip(p.txs, proposals.states(self.chain, p)):
            if s.state == "executed" and s.executed_tx and not t.executed_tx:
                t.executed_tx = s.executed_tx  # a cache; the chain's ExecutionSuccess decides
                proposals.save(self.chain.workdir, p)
        out: dict[str, Any] = {"proposal": self._proposal_json(p, ctx.officer)}
        record = self._record(p.id)
        if record is not None:
            after = self._plan_text(ctx, record["csv"], int(record["budget"]), record["tranche"], top_up=record["top_up"])
            if isinstance(after, dict):
                return out | {"recon": {"ok": False, "problems": after["problems"]}}
            before = ctx.body.get("before")
            snap = None
            if isinstance(before, dict):
                try:
                    snap = issuance.Snapshot(int(before["issued"]), int(before["balances"]))
                except (KeyError, TypeError, ValueError):
                    raise bad("before: the execution's {issued, balances}", "before") from None
            rec = self._recon_json(after, snap, sent)
            executed = out["proposal"]["status"] == "executed"
            rec["checks"].insert(0, {"ok": executed, "id": "executed",
                                     "text": "every Safe transaction of the proposal was executed"})
            rec["ok"] = rec["ok"] and executed
            out["recon"] = rec | {"file": record["file"]}
        return out

    # ------------------------------------------------------------------ finance: providers and gas
    def provider_prepare(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "PROVIDER_MANAGER")
        b = ctx.body
        action = b.get("action")
        who = _address(b, "address")
        f = self.dep.contract.functions
        info = C.provider_info(self.dep, who)
        if action in ("add", "update"):
            cats = b.get("categories")
            known = C.category_names(self.dep)
            if not isinstance(cats, list) or not cats or not all(isinstance(c, int) and c in known for c in cats):
                raise bad(f"categories: pick at least one of {', '.join(f'{c} {n}' for c, n in sorted(known.items()))}",
                          "categories")
            mask = sum(1 << c for c in set(cats))
            limit = _int(b, "max_cents", 0, 2**64)
        if action == "add":
            name = " ".join((_text(b, "name", 200) or "").split())
            if not 1 <= len(name.encode("utf-8")) <= 64:
                raise bad("name: a provider's public name has 1 to 64 bytes", "name")
            if info.status != "none":
                raise refuse("provider_exists", f"address: {who} is already a provider ({info.status})", "address")
            if C.pass_info(self.dep, who).status not in ("none", "provider"):
                raise refuse("address_is_pass", "address: this address is a pass holder's; a provider needs its own wallet", "address")
            return {"tx": self.call(f.addProvider(who, mask, limit, name), ctx.officer)}
        if info.status == "none":
            raise bad(f"address: {who} is not a provider", "address")
        if action == "update":
            txs = [self.call(f.updateProvider(who, mask, limit), ctx.officer)]
            name = " ".join((_text(b, "name", 200, False) or "").split())
            if name and name != info.name:
                if not 1 <= len(name.encode("utf-8")) <= 64:
                    raise bad("name: a provider's public name has 1 to 64 bytes", "name")
                txs.append(self.call(f.renameProvider(who, name), ctx.officer))
            return {"txs": txs}
        status = {"suspend": 2, "reinstate": 1, "remove": 3}.get(action)  # type: ignore[arg-type]
        if status is None:
            raise bad("action: add, update, suspend, reinstate or remove", "action")
        return {"tx": self.call(f.setProviderStatus(who, status), ctx.officer)}

    def providers_route(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, *FINANCE_ROLES)
        from citypass.redemption import balance

        names, categories, pnames = self.service.names()
        found = gas.providers_gas(self.dep)
        by = {g.address: g for g in found}
        out = []
        for a in self.dep.contract.functions.providers().call():
            p = C.provider_info(self.dep, a, pnames)
            g = by.get(p.address)
            owed = [{"budget": str(x.budget), "serial": x.serial, "name": x.name, "cents": x.cents}
                    for x in balance(self.dep, p.address)]
            out.append({"address": p.address, "name": p.name, "status": p.status, "categories": list(p.categories),
                        "category_names": [categories.get(c, str(c)) for c in p.categories],
                        "max_cents": p.max_amount, "gas_eth": gas.eth_text(g.balance) if g else "0",
                        "redemptions_paid": g.redemptions if g else None, "owed": owed,
                        "owed_cents": sum(o["cents"] for o in owed)})
        return {"providers": out, "categories": [{"category": c, "name": n} for c, n in sorted(categories.items())],
                "gas_account_eth": gas.eth_text(self.chain.w3.eth.get_balance(ctx.officer))}

    def gas_plan(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "PROVIDER_MANAGER")
        below = gas.parse_eth(_text(ctx.body, "below", 40) or "", "below")
        to = gas.parse_eth(_text(ctx.body, "to", 40) or "", "to")
        plan = gas.plan_top_up(self.dep, ctx.officer, below=below, to=to)
        return {"gas_account": plan.gas_account, "needed_eth": gas.eth_text(plan.needed),
                "checked": len(plan.checked),
                "top_ups": [{"provider": t.provider, "before_eth": gas.eth_text(t.before),
                             "amount_eth": gas.eth_text(t.amount),
                             "tx": {"to": t.provider, "data": "0x", "value": hex(t.amount)}} for t in plan.top_ups]}

    # ------------------------------------------------------------------ finance: settlement and reclaim
    def settle_preview(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "TREASURER")
        from citypass.redemption import balance

        who = _address(ctx.body, "provider")
        info = C.provider_info(self.dep, who)
        if info.status == "none":
            raise bad(f"provider: {who} is not a provider", "provider")
        owed = [{"budget": str(x.budget), "serial": x.serial, "name": x.name, "cents": x.cents}
                for x in balance(self.dep, who)]
        out: dict[str, Any] = {"provider": who, "name": info.name, "owed": owed,
                               "total_cents": sum(o["cents"] for o in owed)}
        reference = _text(ctx.body, "reference", 200, False)
        if reference is not None:
            out.update(self._reference(reference))
            if out["used"]:
                return out
            if not owed:
                raise bad(f"provider: {info.name or who} holds no credit to settle", "provider")
            f = self.dep.contract.functions
            out["tx"] = self.call(f.settle(who, [int(o["budget"]) for o in owed], [o["cents"] for o in owed],
                                           out["reference"]), ctx.officer)
        return out

    def _reference(self, text: str) -> dict[str, Any]:
        try:
            ref = finance.reference_hash(text)
        except CityPassError as exc:
            raise bad(f"reference: {exc}", "reference") from None
        used = bool(self.dep.contract.functions.referenceSettled(ref).call())
        out = {"reference": finance.normalize_reference(text), "reference_hash": "0x" + ref.hex(), "used": used}
        if used:
            out["refusal"] = (f"payment reference {out['reference']!r} was already used"
                              f"{finance._earlier(self.dep, ref)}; nothing was sent")
            events = self.dep.events("Settled", argument_filters={"paymentReference": ref})
            if events:
                first = events[0]
                who = to_checksum_address(first.args.provider)
                out["earlier"] = {"provider": who, "name": self.service.names()[2].get(who, ""),
                                  "block": int(first.blockNumber),
                                  "cents": sum(int(e.args.amount) for e in events
                                               if e.transactionHash == first.transactionHash)}
        return out

    def reclaim_preview(self, ctx: Ctx) -> dict[str, Any]:
        self.need(ctx, "BUDGET_MANAGER")
        bid = _int(ctx.body, "budget", 0, 2**256 - 1)
        f = self.dep.contract.functions
        if bid not in f.budgets().call():
            raise bad("budget: no such budget", "budget")
        names, _, _ = self.service.names()
        until = budget_id.decode(bid).valid_until  # type: ignore[arg-type]
        ended = self.chain.now() > until
        candidates = finance.reclaim_candidates(self.dep, bid)
        balances = [int(x) for (x,) in issuance.call_many(self.dep, "balanceOf", [(h, bid) for h in candidates])]
        left = [(h, v) for h, v in zip(candidates, balances) if v]
        txs = []
        if ended and left:
            for start in range(0, len(left), finance.RECLAIM_BATCH):
                part = [h for h, _ in left[start:start + finance.RECLAIM_BATCH]]
                txs.append(self.call(f.reclaim(bid, part), ctx.officer))
        cap, issued, settled, reclaimed, corrected = f.budgetTotals(bid).call()
        return {"budget": str(bid), "serial": budget_id.decode(bid).serial, "name": names.get(bid, ""),  # type: ignore[arg-type]
                "valid_until": until, "ended": ended, "holders": len(left), "burn_cents": sum(v for _, v in left),
                "issued_cents": issued, "settled_cents": settled, "reclaimed_cents": reclaimed,
                "corrected_cents": corrected, "txs": txs}


# ------------------------------------------------------------------ the route table
Handler = Callable[[BackOffice, Ctx], dict[str, Any]]
ROUTES: dict[str, Handler] = {
    "session": BackOffice.session_route,
    "desk/find": BackOffice.find,
    "desk/reasons": BackOffice.reasons,
    "desk/enrol/prepare": BackOffice.enrol_prepare,
    "desk/enrol/confirm": BackOffice.enrol_confirm,
    "desk/sheet/plan": BackOffice.sheet_plan,
    "desk/sheet/pdf": BackOffice.sheet_pdf,
    "desk/migrate/prepare": BackOffice.migrate_prepare,
    "desk/migrate/confirm": BackOffice.migrate_confirm,
    "desk/status/prepare": BackOffice.status_prepare,
    "desk/status/confirm": BackOffice.status_confirm,
    "register/import": BackOffice.register_import,
    "register/export": BackOffice.register_export,
    "register/log": BackOffice.register_log,
    "finance/issuance/plan": BackOffice.issuance_plan,
    "finance/issuance/reconcile": BackOffice.issuance_reconcile,
    "finance/safe/plan": BackOffice.safe_plan,
    "finance/safe/propose": BackOffice.safe_propose,
    "finance/safe/proposals": BackOffice.safe_proposals,
    "finance/safe/sign": BackOffice.safe_sign,
    "finance/safe/execute": BackOffice.safe_execute,
    "finance/safe/confirm": BackOffice.safe_confirm,
    "finance/providers": BackOffice.providers_route,
    "finance/provider/prepare": BackOffice.provider_prepare,
    "finance/gas/plan": BackOffice.gas_plan,
    "finance/settle/preview": BackOffice.settle_preview,
    "finance/reclaim/preview": BackOffice.reclaim_preview,
}
PUBLIC = ("nonce", "signin", "signout")
LARGE_BODY_PATHS = {"/api/backoffice/finance/issuance/plan", "/api/backoffice/finance/safe/plan",
                    "/api/backoffice/finance/safe/propose", "/api/backoffice/desk/sheet/pdf", "/api/backoffice/finance/issuance/reconcile",
                    "/api/backoffice/register/import"}


class _Static(StaticFiles):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.directory is not None and not Path(self.directory).is_dir():
            raise HTTPException(404, f"{scope.get('path', '')[:40]}: the page is not built (see `make web`)")
        await super().__call__(scope, receive, send)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad(f"the request body is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise bad(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def _origin(request: Request) -> tuple[str, str]:
    host = request.headers.get("host", "")
    proto = "https" if request.headers.get("x-forwarded-proto", "").lower() == "https" else request.url.scheme
    return host, f"{proto}://{host}"


def routes(service: Any, config: Any, register: Register | None = None, signin: SignIn | None = None) -> list[BaseRoute]:
    """The back office's routes, to append to the app's."""
    office = BackOffice(service, register or Register.open(service.chain.workdir), signin)
    static = Path(config.static_dir)

    def cookie(token: str, secure: bool, max_age: int) -> str:
        return (f"{COOKIE}={token}; Path=/api/backoffice; Max-Age={max_age}; HttpOnly; SameSite=Strict"
                + ("; Secure" if secure else ""))

    async def api_route(request: Request) -> Response:
        name = request.path_params["name"]
        host, origin = _origin(request)
        token = request.cookies.get(COOKIE)
        try:
            body = _parse(await request.body())
            if name == "nonce":
                data = office.nonce(Ctx("", (), body, host, origin))
                return json_response(data)
            if name == "signin":
                data, new_token = await run_in_threadpool(office.signin_route, Ctx("", (), body, host, origin))
                office.signin.close(token)
                return json_response(data, headers={"set-cookie": cookie(new_token, origin.startswith("https"),
                                                                          office.signin.session_ttl)})
            if name == "signout":
                office.signin.close(token)
                return json_response({"signed_out": True}, headers={"set-cookie": cookie("", False, 0)})
            handler = ROUTES.get(name)
            if handler is None:
                raise ApiError(404, f"no back-office route {name[:60]}")
            session = office.signin.get(token)
            if session is None:
                raise ApiError(401, "sign in first (with the wallet that holds your role); a session lasts "
                                    f"{office.signin.session_ttl // 60} minutes", code="signed_out")
            ctx = Ctx(session.address, session.roles, body, host, origin, session.expires)
            data = await run_in_threadpool(handler, office, ctx)
        except Exception as exc:  # noqa: BLE001 - every failure is a 4xx JSON answer
            return error_response(to_api_error(exc))
        return json_response(data)

    def page(name: str) -> Callable[[Request], Any]:
        async def to_page(request: Request) -> Response:
            return RedirectResponse(f"/{name}/", status_code=308)
        return to_page

    out: list[BaseRoute] = [Route("/api/backoffice/{name:path}", api_route, methods=["POST"])]
    for name in PAGE_ROLES:
        out += [Route(f"/{name}", page(name), methods=["GET", "HEAD"]),
                Mount(f"/{name}", app=_Static(directory=static / name, html=True, check_dir=False))]
    return out


__all__ = ["BackOffice", "routes", "ROUTES", "LARGE_BODY_PATHS"]
