"""The ACS partner API simulator: a FastAPI app holding real state, with fault injection.

Fault operation names (for ``FaultRule.operation``): ``put_product``, ``get_product``,
``list_products``, ``put_order``, ``get_order``, ``list_despatches``. The feed faults
(``duplicate``, ``reorder``, ``suppress``) only apply to ``list_despatches``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from acs_khaos_dagster.connectors.acs.file_layouts import (
    RETURNS_LAYOUT,
    STOCK_UNITS_LAYOUT,
)
from acs_khaos_dagster.sandbox.acs.state import AcsState, ApiError, parse_dt, parse_limit
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import FaultInjector, FaultKind, FaultRule
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest

KEY_HEADER = "Ocp-Apim-Subscription-Key"
API = "/api/partner/v1"
FEED_KINDS = frozenset({FaultKind.DUPLICATE, FaultKind.REORDER, FaultKind.SUPPRESS})
HTTP_KINDS = frozenset(set(FaultKind) - FEED_KINDS)
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
    ) -> None:
        self.manifest = manifest
        self.drop_folder = drop_folder
        self.clock = clock
        self.faults = faults
        self._key = subscription_key
        self.account_code = account_code
        self.state = AcsState(manifest, scenario_dir, account_code, activation_lag, seed)
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
        """Write the full unit snapshot (and returns graded since the last call), atomically."""
        now = self.clock.now()
        self.state.advance(now)
        stamp = now.strftime("%Y%m%d%H%M%S")
        self.drop_folder.mkdir(parents=True, exist_ok=True)
        written = [
            self._write_csv(
                STOCK_UNITS_LAYOUT.file_name(self.account_code, stamp),
                STOCK_UNITS_LAYOUT.columns,
                self.state.unit_rows(now),
            )
        ]
        returns = self.state.take_returns()
        if returns:
            written.append(
                self._write_csv(
                    RETURNS_LAYOUT.file_name(self.account_code, stamp),
                    RETURNS_LAYOUT.columns,
                    returns,
                )
            )
        return written

    def _write_csv(self, name: str, columns: tuple[str, ...], rows: list[list[str]]) -> Path:
        final = self.drop_folder / name
        temp = self.drop_folder / f".{name}.part"
        with temp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(columns)
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        return final

    def truth(self) -> dict[str, Any]:
        truth = self.state.truth(self.clock.now())
        truth["faults"] = self.faults.stats()
        return truth

    def set_product_status(
        self, sku: str, status: str, active_at: datetime | None = None
    ) -> dict[str, Any]:
        """Test hook: what ACS does when it withdraws (or restores) a SKU; a ``pending`` one
        becomes active by itself at ``active_at``."""
        return self.state.set_product_status(sku, status, active_at)

    # --- HTTP ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        if request.headers.get(KEY_HEADER) != self._key:
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
                return (201 if created else 200), order

            return await self._serve("put_order", apply)

        @app.get(API + "/orders/{order_number}.json")
        async def get_order(order_number: str, request: Request) -> Response:
            self._authenticate(request)
            return await self._serve(
                "get_order", lambda: (200, state.get_order(order_number, now()))
            )

        @app.get(API + "/despatches")
        async def list_despatches(request: Request) -> Response:
            self._authenticate(request)
            cursor = request.query_params.get("cursor") or None
            limit = parse_limit(request.query_params.get("limit"))
            rule = self.faults.decide("list_despatches")
            feed_fault = str(rule.kind) if rule and rule.kind in FEED_KINDS else None

            def apply() -> tuple[int, Any]:
                return 200, state.list_despatches(cursor, limit, now(), feed_fault)

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
