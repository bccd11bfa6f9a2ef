"""The Khaos Control simulator: SOAP 1.1 over HTTP (FastAPI), state behind one lock.

Endpoints:
- ``POST /{ExeName}.exe/soap/IKosWeb``: one operation per call (see ``soap.py``).
  Authentication: ``<Credentials><UserName/><Password/></Credentials>`` as the
  first child of the operation element; wrong or missing → ``Client.Authentication``.
- ``GET /{ExeName}.exe/wsdl/IKosWeb``: a minimal WSDL.
- ``GET /_sandbox/truth``, ``POST /_sandbox/faults`` (FaultRule JSON),
  ``DELETE /_sandbox/faults``, ``GET /_sandbox/faults/stats``.

Faults are decided per SOAP operation name (``ImportDespatch``, ``ExportStock`` …).
A ``late_apply`` write is kept aside and applied by ``apply_due`` (each clock step and
each request) once its simulated time has come.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import xml.etree.ElementTree as ET
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from acs_khaos_dagster.domain.models import Invoice, StockItem
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import FaultInjector, FaultKind, FaultRule
from acs_khaos_dagster.sandbox.khaos import wire
from acs_khaos_dagster.sandbox.khaos.install import MODELLED, KhaosInstall
from acs_khaos_dagster.sandbox.khaos.late import LateWrites
from acs_khaos_dagster.sandbox.khaos.soap import OPERATIONS, WRITE_OPERATIONS, run_operation, wsdl
from acs_khaos_dagster.sandbox.khaos.state import (
    IssuePolicy,
    KhaosBooks,
    ReturnRecord,
    SimFault,
)
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest

XML_MEDIA_TYPE = "text/xml; charset=utf-8"
# Faults the SOAP endpoint can apply; feed faults (duplicate, reorder, suppress) are ACS's.
_CALL_FAULTS = {
    FaultKind.ERROR_5XX,
    FaultKind.RATE_LIMIT,
    FaultKind.LATENCY,
    FaultKind.TIMEOUT_BEFORE,
    FaultKind.TIMEOUT_AFTER,
    FaultKind.RESET_BEFORE,
    FaultKind.RESET_AFTER,
    FaultKind.APPLIED_THEN_5XX,
    FaultKind.LATE_APPLY,
}
# What an API gateway in front of Khaos answers when its upstream took too long.
GATEWAY_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class _ResetResponse(Response):
    """Promise a body, send part of it, then drop the connection (client: protocol error)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", XML_MEDIA_TYPE.encode()),
                    (b"content-length", b"4096"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"<?xml version", "more_body": True})
        raise ConnectionAbortedError("sandbox: connection reset injected")


def _fault(
    code: str, message: str, status: int = 500, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        wire.fault_envelope(code, message),
        status_code=status,
        media_type=XML_MEDIA_TYPE,
        headers=headers,
    )


class KhaosSimulator:
    def __init__(
        self,
        manifest: ScenarioManifest,
        clock: SimClock,
        faults: FaultInjector,
        username: str,
        password: str,
        exe_name: str = "KhaosControlWeb",
        issue_policy: IssuePolicy | None = None,
        seed: int = 0,
        install: KhaosInstall = MODELLED,
    ) -> None:
        self.clock = clock
        self.faults = faults
        self.exe_name = exe_name
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self.books = KhaosBooks(manifest, clock, issue_policy or IssuePolicy(), seed, install)
        self.late = LateWrites()
        # Calls refused for their credentials (another account's, or none): nothing else
        # records a call that changed nothing.
        self.auth_refusals: list[dict[str, Any]] = []
        self.app = self._build_app()

    def __repr__(self) -> str:
        return f"KhaosSimulator(exe_name={self.exe_name!r})"

    # --- plain-Python helpers --------------------------------------------------------

    @property
    def issue_policy(self) -> IssuePolicy:
        return self.books.policy

    @property
    def install(self) -> KhaosInstall:
        return self.books.install

    def on_clock(self) -> list[int]:
        """Apply late writes now due, then run the finance batch for the clock's current
        time; returns the issued invoice ids."""
        with self._lock:
            self.late.apply_due(self.books, self.clock.now())
            return self.books.run_finance_batch()

    def truth(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.books.truth(),
                "late_writes": self.late.truth(),
                "auth_refusals": [dict(r) for r in self.auth_refusals],
            }

    def cancel_order(self, order_id: int) -> None:
        with self._lock:
            self.books.cancel_order(order_id)

    def set_stage(self, invoice_id: int, stage: int) -> None:
        with self._lock:
            inv = self.books.invoices[invoice_id]
            self.books._set_stage(inv, stage)

    def issue_invoice(self, invoice_id: int) -> None:
        with self._lock:
            self.books.issue_invoice(invoice_id)

    def rename_stock_code(self, stock_id: int, new_code: str) -> None:
        with self._lock:
            self.books.rename_stock_code(stock_id, new_code)

    def add_stock_item(self, item: StockItem, levels: dict[int, int] | None = None) -> None:
        with self._lock:
            self.books.add_stock_item(item, levels)

    def update_stock_item(self, stock_id: int, **changes: Any) -> StockItem:
        with self._lock:
            return self.books.update_stock_item(stock_id, **changes)

    def set_level(self, stock_id: int, site_id: int, level: int) -> None:
        with self._lock:
            self.books.levels[(stock_id, site_id)] = level

    def approve_credit(self, return_id: int) -> None:
        """Finance turns a pre-credit (``review``) into a credit note."""
        with self._lock:
            self.books.approve_credit(return_id)

    def process_return(self, return_id: int) -> None:
        with self._lock:
            ret: ReturnRecord = next(r for r in self.books.returns if r.return_id == return_id)
            self.books.process_return(ret)

    def invoices_of(self, order_id: int) -> list[Invoice]:
        with self._lock:
            order = self.books.orders[order_id]
            return [self.books.invoice_view(self.books.invoices[i]) for i in order.invoice_ids]

    # --- HTTP ------------------------------------------------------------------------

    def _authenticated(self, op: ET.Element) -> bool:
        creds = op.find("Credentials")
        if creds is None:
            return False
        user = wire.child_text(creds, "UserName") or ""
        password = wire.child_text(creds, "Password") or ""
        user_ok = hmac.compare_digest(user.encode(), self._username.encode())
        pass_ok = hmac.compare_digest(password.encode(), self._password.encode())
        return user_ok and pass_ok

    def _apply(self, name: str, op: ET.Element) -> Response:
        try:
            with self._lock:
                self.late.apply_due(self.books, self.clock.now())
                document = run_operation(self.books, name, op)
        except SimFault as fault:
            return _fault(fault.code, fault.message)
        return Response(wire.reply_envelope(name, document), media_type=XML_MEDIA_TYPE)

    async def _soap(self, request: Request) -> Response:
        raw = await request.body()
        try:
            op = wire.operation_of(raw)
        except wire.BadRequestXml as exc:
            return _fault("Client.Validation", str(exc))
        name = wire.tag_name(op.tag)
        action = request.headers.get("soapaction", "").strip().strip('"')
        if (
            action
            and action.startswith(wire.ACTION_PREFIX)
            and (action[len(wire.ACTION_PREFIX) :] != name)
        ):
            return _fault("Client.Validation", "SOAPAction does not match the body")
        if name not in OPERATIONS:
            return _fault("Client.UnknownOperation", f"unknown operation {name}")

        rule = self.faults.decide(name, _CALL_FAULTS)
        if rule is not None:
            early = await self._fault_before(rule)
            if early is not None:
                return early
        if not self._authenticated(op):
            with self._lock:
                self.auth_refusals.append({"operation": name, "at": self.clock.now().isoformat()})
            return _fault("Client.Authentication", "user name or password not accepted")
        if rule is not None and rule.kind == FaultKind.LATE_APPLY and name in WRITE_OPERATIONS:
            with self._lock:
                self.late.keep(name, op, self.clock.now(), rule.apply_after_s)
            await asyncio.sleep(rule.latency_s)
            return _ResetResponse()
        response = self._apply(name, op)
        if rule is not None:
            if rule.kind == FaultKind.TIMEOUT_AFTER:
                await asyncio.sleep(rule.latency_s)
            elif rule.kind == FaultKind.RESET_AFTER:
                return _ResetResponse()
            elif rule.kind == FaultKind.APPLIED_THEN_5XX:
                return Response(GATEWAY_BODY, status_code=502, media_type="text/html")
        return response

    async def _fault_before(self, rule: FaultRule) -> Response | None:
        if rule.kind == FaultKind.ERROR_5XX:
            return _fault("Server.Busy", "the server is busy, try again later")
        if rule.kind == FaultKind.RATE_LIMIT:
            return _fault(
                "Server.Busy",
                "too many requests",
                status=429,
                headers={"Retry-After": str(rule.retry_after)},
            )
        if rule.kind == FaultKind.LATENCY:
            await asyncio.sleep(rule.latency_s)
        elif rule.kind == FaultKind.TIMEOUT_BEFORE:
            await asyncio.sleep(rule.latency_s)
            return _ResetResponse()
        elif rule.kind == FaultKind.RESET_BEFORE:
            return _ResetResponse()
        return None

    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="Khaos Control simulator", docs_url=None, redoc_url=None, openapi_url=None
        )
        base = f"/{self.exe_name}.exe"

        @app.post(f"{base}/soap/IKosWeb")
        async def soap(request: Request) -> Response:
            return await self._soap(request)

        @app.get(f"{base}/wsdl/IKosWeb")
        async def get_wsdl(request: Request) -> Response:
            url = str(request.url).replace("/wsdl/IKosWeb", "/soap/IKosWeb")
            return Response(wsdl(url), media_type=XML_MEDIA_TYPE)

        @app.get("/_sandbox/truth")
        async def get_truth() -> JSONResponse:
            return JSONResponse(self.truth())

        @app.post("/_sandbox/faults")
        async def add_fault(rule: FaultRule) -> JSONResponse:
            self.faults.add(rule)
            return JSONResponse({"rules": [r.model_dump(mode="json") for r in self.faults.rules()]})

        @app.delete("/_sandbox/faults")
        async def clear_faults() -> JSONResponse:
            self.faults.clear()
            return JSONResponse({"rules": []})

        @app.get("/_sandbox/faults/stats")
        async def fault_stats() -> JSONResponse:
            return JSONResponse(self.faults.stats())

        return app
