"""The transport under ``KhaosClient``: one pooled ``httpx.Client``, SOAP calls, retries
of reads (capped exponential backoff, full jitter, ``Retry-After``), writes sent exactly
once, and every failure mapped to a ``connectors.errors`` class without the reply's
content or the password. ``client.py`` adds the operations.
"""

from __future__ import annotations

import logging
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, TypeVar

import httpx
from pydantic import SecretStr, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from acs_khaos_dagster.connectors.errors import ConnectorError, PermanentError, TransientError
from acs_khaos_dagster.connectors.failures import Failure, error_for, transport_failure
from acs_khaos_dagster.connectors.khaos import wire
from acs_khaos_dagster.connectors.khaos.levels import (
    DEFAULT_ALLOCATING_STAGES,
    StockLevelSource,
)
from acs_khaos_dagster.connectors.khaos.xml import (
    SOAP_ACTION_PREFIX,
    SoapFault,
    UnsafeXmlError,
    build_request,
    parse_reply,
)

log = logging.getLogger(__name__)

SYSTEM = "khaos"
WRITE_OPERATIONS = frozenset(
    {
        "MoveInvoices",
        "ImportDespatch",
        "ImportStockAdjustments",
        "ImportCustomerReturns",
        "ImportOrders",
    }
)
T = TypeVar("T")


def _why(exc: Exception) -> str:
    """What was wrong with a reply, without its content (which may carry personal data)."""
    if isinstance(exc, ValidationError):
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        return f"{exc.error_count()} invalid field(s): {', '.join(fields)}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class KhaosTransport:
    """Connection, calls and failures; the operations are ``KhaosClient``'s."""

    def __init__(
        self,
        soap_url: str,
        username: str,
        password: SecretStr | str,
        timeout: float = 30.0,
        verify: bool = True,
        *,
        connect_timeout: float = 5.0,
        read_retries: int = 4,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_connections: int = 10,
        export_batch_size: int = wire.MAX_EXPORT_STOCK_CODES,
        sleep: Callable[[float], None] = time.sleep,
        stock_level_source: StockLevelSource = "level",
        allocating_stages: Iterable[int] = DEFAULT_ALLOCATING_STAGES,
        reference_max_length: int = wire.MAX_REF,
    ) -> None:
        self.soap_url = soap_url
        self.username = username
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self.read_retries = read_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.export_batch_size = min(export_batch_size, wire.MAX_EXPORT_STOCK_CODES)
        self._sleep = sleep
        # How this install exposes stock and how long a reference it stores (settings).
        self.stock_level_source: StockLevelSource = stock_level_source
        self.allocating_stages = tuple(allocating_stages)
        self.reference_max_length = reference_max_length
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=verify,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        """Build from ``config.Settings`` (its ``khaos`` and ``http`` sections)."""
        k, h = settings.khaos, settings.http
        if not h.verify_tls:
            log.warning(
                "TLS certificate verification is OFF for Khaos Control (%s): http.verify_tls "
                "is false; anyone on the network path can read the credentials",
                k.soap_url,
            )
        return cls(
            k.soap_url,
            k.username,
            k.password,
            timeout=h.read_timeout_s,
            verify=h.verify_tls,
            connect_timeout=h.connect_timeout_s,
            read_retries=h.read_retries,
            backoff_initial_s=h.backoff_initial_s,
            backoff_max_s=h.backoff_max_s,
            max_connections=h.max_connections,
            export_batch_size=k.export_batch_size,
            stock_level_source=k.stock_level_source,
            allocating_stages=k.allocating_stages,
            reference_max_length=k.reference_max_length,
        )

    def __repr__(self) -> str:
        return f"KhaosClient(soap_url={self.soap_url!r}, username={self.username!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------

    def _failed(
        self, operation: str, failure: Failure, message: str, **details: Any
    ) -> ConnectorError:
        """The error for this failure by ``connectors/failures.py``'s table."""
        password = self._password.get_secret_value()
        if password:
            # A fault string is the server's text: should it echo the password, it goes no
            # further.
            message = message.replace(password, "**********")
        return error_for(
            failure,
            message,
            system=SYSTEM,
            operation=operation,
            write=operation in WRITE_OPERATIONS,
            **details,
        )

    @staticmethod
    def _fault_failure(fault: SoapFault) -> Failure:
        code = fault.code
        if code == "Server.Busy":
            return Failure.SERVER_BUSY
        if code.startswith("Client.Authentication"):
            return Failure.AUTHENTICATION
        if code.startswith("Client.NotFound"):
            return Failure.NOT_FOUND
        if code.startswith("Client.Conflict"):
            return Failure.CONFLICT
        if code.startswith("Client"):
            return Failure.INVALID
        return Failure.SERVER_FAULT

    @staticmethod
    def _status_failure(status: int) -> Failure:
        """A 4xx/5xx that carries no SOAP fault saying why: whoever sent it, by its status."""
        if status >= 500:
            return Failure.GATEWAY_ERROR
        if status in (401, 403):
            return Failure.AUTHENTICATION
        if status == 404:
            return Failure.NOT_FOUND
        if status == 408:
            return Failure.REQUEST_TIMEOUT
        if status == 409:
            return Failure.CONFLICT
        return Failure.INVALID

    def _call(self, operation: str, params: Mapping[str, Any]) -> ET.Element | None:
        """One attempt; returns the parsed ``return`` document."""
        body = build_request(operation, self.username, self._password.get_secret_value(), params)
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{SOAP_ACTION_PREFIX}{operation}"',
        }
        started = time.monotonic()
        try:
            response = self._http.post(self.soap_url, content=body, headers=headers)
        except httpx.TransportError as exc:
            failure = transport_failure(exc)
            raise self._failed(
                operation, failure, f"{failure.value} ({type(exc).__name__})"
            ) from None
        status = response.status_code
        log.debug("khaos %s -> HTTP %s in %.3fs", operation, status, time.monotonic() - started)
        if status == 429:
            raise self._failed(
                operation,
                Failure.RATE_LIMITED,
                "rate limited",
                status_code=429,
                retry_after=_retry_after(response),
            )
        try:
            reply = parse_reply(response.content)
        except UnsafeXmlError as exc:
            # Not Khaos's own SOAP reply: a gateway or proxy answered, or the body is broken.
            if status >= 400:
                failure, message = self._status_failure(status), f"not a SOAP reply ({exc})"
            else:  # a success we cannot read: a write may have been applied all the same
                failure, message = Failure.UNPARSEABLE_REPLY, f"unusable reply: {exc}"
            raise self._failed(operation, failure, message, status_code=status) from None
        if reply.fault is not None:
            raise self._failed(
                operation,
                self._fault_failure(reply.fault),
                reply.fault.message,
                status_code=status,
                code=reply.fault.code,
            )
        if status >= 400:
            raise self._failed(
                operation,
                self._status_failure(status),
                "error status without a fault",
                status_code=status,
            )
        return reply.document

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        cap = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (state.attempt_number - 1))
        delay = random.uniform(0, cap)  # full jitter
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number > self.read_retries:
            return True
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        # A server asking for more than our cap: hand back to the caller to reschedule.
        return retry_after is not None and retry_after > self.backoff_max_s

    def _read(
        self, operation: str, params: Mapping[str, Any], parse: Callable[[ET.Element | None], T]
    ) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=self._should_stop,
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                document = self._call(operation, params)
        return self._parse(operation, parse, document)

    def _write(
        self, operation: str, params: Mapping[str, Any], parse: Callable[[ET.Element | None], T]
    ) -> T:
        document = self._call(operation, params)
        try:
            return parse(document)
        except (ValueError, ValidationError) as exc:
            # Applied (the server said so) but the reply is unreadable: read back.
            raise self._failed(
                operation, Failure.UNPARSEABLE_REPLY, f"reply not understood: {_why(exc)}"
            ) from None

    def _parse(
        self, operation: str, parse: Callable[[ET.Element | None], T], document: ET.Element | None
    ) -> T:
        try:
            return parse(document)
        except (ValueError, ValidationError) as exc:
            raise self._failed(
                operation, Failure.UNPARSEABLE_REPLY, f"reply not understood: {_why(exc)}"
            ) from None

    def _local_validation(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except wire.WireValidationError as exc:
            raise PermanentError(
                str(exc), system=SYSTEM, operation=operation, code="LOCAL_VALIDATION"
            ) from None
