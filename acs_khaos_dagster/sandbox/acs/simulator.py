"""The ACS partner API simulator: a FastAPI app holding real state, with fault injection.

Fault operation names (for ``FaultRule.operation``): ``put_product``, ``get_product``,
``list_products``, ``put_order``, ``get_order``, ``list_despatches``. The feed faults
(``feed.py``) only apply to ``list_despatches``; the file faults (``deliveries.py``) to
``stock_units`` and ``returns``, the daily files. ``quota_403`` is the API gateway's
call quota (403 with Retry-After); ``applied_then_5xx`` applies a PUT, then answers 502.

Times leave the simulator written as the account writes them (``AcsInstall.timestamps``).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from acs_khaos_dagster.sandbox.acs import feed, files
from acs_khaos_dagster.sandbox.acs.deliveries import FileDeliveries
from acs_khaos_dagster.sandbox.acs.install import MODELLED, AcsInstall
from acs_khaos_dagster.sandbox.acs.state import AcsState, ApiError, parse_dt, parse_limit
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import (
    FEED_FAULTS,
    FILE_FAULTS,
    FaultInjector,
    FaultKind,
    FaultRule,
)
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest

KEY_HEADER = "Ocp-Apim-Subscription-Key"
API = "/api/partner/v1"
FEED_KINDS = FEED_FAULTS
HTTP_KINDS = frozenset(set(FaultKind) - FEED_KINDS - FILE_FAULTS - {FaultKind.LATE_APPLY})
# What an API gateway answers when its upstream took too long.
GATEWAY_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


class _InjectedReset(Exception):
    """Raised after a partial response so uvicorn drops the connection (fault injection)."""


class _DropInjectedResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, _InjectedReset):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


logging.getLogger("uvicorn.error").addFilter(_DropInjectedResets())


class _ResetResponse(Response):
    """Promises a body, sends part of it, then fails: the client sees the connection cut."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
        raise _InjectedReset("injected connection reset")


Handler = Callable[[], tuple[int, Any]]


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({"errors": exc.errors}, status_code=exc.status, headers=exc.headers)


class AcsSimulator:
    """ACS as the integration sees it: partner API, despatch feed and the daily files."""

    def __init__(
        self,
        manifest: ScenarioManifest,
        scenario_dir: Path,
        drop_folder: Path,
        clock: SimClock,
        faults: FaultInjector,
        subscription_key: str,
        account_code: str,
        activation_lag: timedelta = timedelta(hours=2),
        seed: int = 0,
        install: AcsInstall = MODELLED,
    ) -> None:
        self.manifest = manifest
        self.drop_folder = drop_folder
        self.clock = clock
        self.faults = faults
        self._key = subscription_key
        self.account_code = account_code
        self.install = install
        lag = activation_lag if install.sets_up_skus else None
        self.state = AcsState(manifest, scenario_dir, account_code, lag, seed)
        self.deliveries = FileDeliveries(drop_folder, account_code, faults)
        # Calls refused for their subscription key (another account's, or none): nothing
        # else records a call that changed nothing.
        self.auth_refusals: list[dict[str, Any]] = []
        self.app = self._build_app()

    def __repr__(self) -> str:
        return f"AcsSimulator(account_code={self.account_code!r})"

    # --- runner interface -----------------------------------------------------------

    def on_clock(self) -> None:
        self.state.advance(self.clock.now())

    def receive_customer_returns(self, source: Path) -> int:
        """ACS receives the returns in ``source`` (a returns file of the scenario) whose
        ``received_at`` has passed: the units come back into stock by the action taken, and
        the graded rows go into the next daily returns file. Returns how many were taken.
        """
        now = self.clock.now()
        with source.open(encoding="utf-8-sig", newline="") as handle:
            due = [
                row
                for row in csv.DictReader(handle)
                if (parse_dt(row["received_at"]) or now) <= now
            ]
        return self.state.receive_customer_returns(due)

    def write_daily_files(self) -> list[Path]:
        """Deliver the full unit snapshot (and returns graded since the last call) to the
        drop, each written atomically, times as the account writes them; file faults
        may hold one back or send it twice (``deliveries``). Returns the files delivered."""
        now = self.clock.now()
        self.state.advance(now)
        written = [
            (
                files.STOCK_UNITS,
                files.STOCK_UNITS_COLUMNS,
                self._as_written(
                    files.STOCK_UNITS, files.STOCK_UNITS_COLUMNS, self.state.unit_rows(now)
                ),
            )
        ]
        returns = self.state.take_returns()
        if returns:
            written.append(
                (
                    files.RETURNS,
                    files.RETURNS_COLUMNS,
                    self._as_written(files.RETURNS, files.RETURNS_COLUMNS, returns),
                )
            )
        return self.deliveries.deliver(now, written)

    def _as_written(
        self, kind: str, columns: tuple[str, ...], rows: list[list[str]]
    ) -> list[list[str]]:
        times = self.install.times
        if times.timestamps == "utc_z":
            return rows
        out = []
        for row in rows:
            values = times.row(kind, dict(zip(columns, row, strict=True)))
            out.append([values[c] for c in columns])
        return out

    def truth(self) -> dict[str, Any]:
        truth = self.state.truth(self.clock.now())
        truth["faults"] = self.faults.stats()
        truth["deliveries"] = list(self.deliveries.log)
        truth["auth_refusals"] = [dict(r) for r in self.auth_refusals]
        return truth

    def send_back_to_review(self, sku: str) -> dict[str, Any]:
        """ACS takes an active SKU back into set-up review: ``pending`` until set active again."""
        return self.state.set_product_status(sku, "pending", None)

    def _order_out(self, order: dict[str, Any]) -> dict[str, Any]:
        times = self.install.times
        return {**order, "Shipments": [times.event(s) for s in order.get("Shipments", [])]}

    def set_product_status(
        self, sku: str, status: str, active_at: datetime | None = None
    ) -> dict[str, Any]:
        """Test hook: what ACS does when it withdraws (or restores) a SKU; a ``pending`` one
        becomes active by itself at ``active_at``."""
        return self.state.set_product_status(sku, status, active_at)

    # --- HTTP ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        if request.headers.get(KEY_HEADER) != self._key:
            self.auth_refusals.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "at": self.clock.now().isoformat(),
                }
            )
            raise ApiError(401, "UNAUTHORIZED", "missing or invalid subscription key", KEY_HEADER)

    @staticmethod
    async def _json_body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(422, "INVALID_JSON", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(422, "INVALID_JSON", "the body must be a JSON object")
        return body

    async def _serve(self, operation: str, handler: Handler) -> Response:
        return await self._apply_fault(self.faults.decide(operation, set(HTTP_KINDS)), handler)

    async def _apply_fault(self, rule: FaultRule | None, handler: Handler) -> Response:
        if rule is None or rule.kind in FEED_KINDS:
            return self._respond(handler)
        kind = rule.kind
        if kind == FaultKind.ERROR_5XX:
            raise ApiError(503, "SERVICE_UNAVAILABLE", "the service is busy, try again")
        if kind == FaultKind.QUOTA_403:
            # Azure API Management's answer when a subscription's call quota is used up.
            return JSONResponse(
                {"statusCode": 403, "message": "Out of call volume quota."},
                status_code=403,
                headers={"Retry-After": str(rule.retry_after)},
            )
        if kind == FaultKind.APPLIED_THEN_5XX:
            self._respond(handler)
            return Response(GATEWAY_BODY, status_code=502, media_type="text/html")
        if kind == FaultKind.RATE_LIMIT:
            raise ApiError(
                429,
                "RATE_LIMITED",
                "too many requests",
                headers={"Retry-After": str(rule.retry_after)},
            )
        if kind == FaultKind.LATENCY:
            await asyncio.sleep(rule.latency_s)
            return self._respond(handler)
        if kind == FaultKind.TIMEOUT_BEFORE:
            await asyncio.sleep(rule.latency_s)
            raise ApiError(504, "GATEWAY_TIMEOUT", "the request timed out before it was applied")
        if kind == FaultKind.TIMEOUT_AFTER:
            response = self._respond(handler)
            await asyncio.sleep(rule.latency_s)
            return response
        if kind == FaultKind.RESET_BEFORE:
            return _ResetResponse()
        if kind == FaultKind.RESET_AFTER:
            self._respond(handler)
            return _ResetResponse()
        return self._respond(handler)

    @staticmethod
    def _respond(handler: Handler) -> Response:
        try:
            status, payload = handler()
        except ApiError as exc:
            return _error_response(exc)
        return JSONResponse(payload, status_code=status)

    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="ACS partner API (simulator)", docs_url=None, redoc_url=None, openapi_url=None
        )
        state = self.state
        now = self.clock.now

        @app.exception_handler(ApiError)
        async def _api_error(_: Request, exc: ApiError) -> Response:
            return _error_response(exc)

        @app.put(API + "/products/{sku}.json")
        async def put_product(sku: str, request: Request) -> Response:
            self._authenticate(request)
            body = await self._json_body(request)

            def apply() -> tuple[int, Any]:
                created, product = state.put_product(sku, body, now())
                return (201 if created else 200), product

            return await self._serve("put_product", apply)

        @app.get(API + "/products/{sku}.json")
        async def get_product(sku: str, request: Request) -> Response:
            self._authenticate(request)
            return await self._serve("get_product", lambda: (200, state.get_product(sku, now())))

        @app.get(API + "/products")
        async def list_products(request: Request) -> Response:
            self._authenticate(request)
            cursor = request.query_params.get("cursor") or None
            limit = parse_limit(request.query_params.get("limit"))
            return await self._serve(
                "list_products", lambda: (200, state.list_products(cursor, limit, now()))
            )

        @app.put(API + "/orders/{order_number}.json")
        async def put_order(order_number: str, request: Request) -> Response:
            self._authenticate(request)
            body = await self._json_body(request)

            def apply() -> tuple[int, Any]:
                created, order = state.put_order(order_number, body, now())
                return (201 if created else 200), self._order_out(order)

            return await self._serve("put_order", apply)

        @app.get(API + "/orders/{order_number}.json")
        async def get_order(order_number: str, request: Request) -> Response:
            self._authenticate(request)
            return await self._serve(
                "get_order", lambda: (200, self._order_out(state.get_order(order_number, now())))
            )

        @app.get(API + "/despatches")
        async def list_despatches(request: Request) -> Response:
            self._authenticate(request)
            cursor = request.query_params.get("cursor") or None
            limit = parse_limit(request.query_params.get("limit"))
            rule = self.faults.decide("list_despatches", set(FEED_KINDS | HTTP_KINDS))
            feed_fault = rule.kind if rule and rule.kind in FEED_KINDS else None

            def apply() -> tuple[int, Any]:
                reply = feed.page(state, cursor, limit, now(), feed_fault)
                times = self.install.times
                return 200, {**reply, "events": [times.event(e) for e in reply["events"]]}

            return await self._apply_fault(rule, apply)

        # --- control (no key; loopback only) -------------------------------------

        def loopback(request: Request) -> None:
            host = request.client.host if request.client else ""
            if host not in LOOPBACK:
                raise ApiError(403, "FORBIDDEN", "sandbox control is loopback only")

        @app.get("/_sandbox/truth")
        async def truth(request: Request) -> dict[str, Any]:
            loopback(request)
            return self.truth()

        @app.post("/_sandbox/faults")
        async def add_fault(request: Request) -> dict[str, Any]:
            loopback(request)
            try:
                rule = FaultRule.model_validate(await self._json_body(request))
            except ValidationError as exc:
                raise ApiError(422, "INVALID_VALUE", str(exc).splitlines()[0]) from None
            self.faults.add(rule)
            return {"rules": [r.model_dump(mode="json") for r in self.faults.rules()]}

        @app.delete("/_sandbox/faults")
        async def clear_faults(request: Request) -> dict[str, Any]:
            loopback(request)
            self.faults.clear()
            return {"rules": []}

        @app.get("/_sandbox/faults/stats")
        async def fault_stats(request: Request) -> dict[str, Any]:
            loopback(request)
            return self.faults.stats()

        @app.post("/_sandbox/products/{sku}/status")
        async def product_status(sku: str, request: Request) -> dict[str, Any]:
            loopback(request)
            body = await self._json_body(request)
            return self.set_product_status(sku, str(body.get("status", "")))

        @app.post("/_sandbox/daily-files")
        async def daily_files(request: Request) -> dict[str, Any]:
            loopback(request)
            return {"files": [str(p) for p in self.write_daily_files()]}

        return app
