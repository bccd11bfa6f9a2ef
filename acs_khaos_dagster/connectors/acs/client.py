"""HTTP client of the ACS partner API (modelled contract in ``docs``/``contracts/acs.md``).

Typed methods take and return ``domain.models`` records only; the JSON lives in
``wire.py``. Failures are raised only as ``connectors.errors`` classes, by the table in
``connectors/failures.py`` (summarised here):

===============================================  ===========================================
what happened                                    raised
===============================================  ===========================================
401, 403 without ``Retry-After``                 ``AuthenticationError``
403 with ``Retry-After`` (gateway call quota)    ``TransientError`` (``retry_after`` seconds)
404                                              ``NotFoundError``
409 (``ORDER_LOCKED``)                           ``ConflictError``
422 (``UNKNOWN_SKU``, ``INACTIVE_SKU``…)          ``PermanentError`` (``details`` = the errors)
other 4xx                                        ``PermanentError``
408, 429                                         ``TransientError`` (``retry_after`` seconds)
5xx (ACS's own or a gateway's, any body)         ``AmbiguousError`` for a PUT,
                                                 ``TransientError`` for a GET
connect error / connect or pool timeout          ``TransientError`` (nothing was sent)
read timeout, reset, protocol error after send   ``AmbiguousError`` for a PUT,
                                                 ``TransientError`` for a GET
===============================================  ===========================================

Reads (GET) are retried here with capped exponential backoff and full jitter,
waiting at least what ``Retry-After`` says. Writes (PUT) are never retried here: the
outbox owns resends, and after an ambiguous failure it must read ACS back first.
No message, log line or repr ever carries the subscription key.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from acs_khaos_dagster.config import HttpSettings, Settings
from acs_khaos_dagster.connectors.acs import wire
from acs_khaos_dagster.connectors.acs.times import DEFAULT_TIME_RULES, AcsTimeRules
from acs_khaos_dagster.connectors.errors import ConnectorError, PermanentError, TransientError
from acs_khaos_dagster.connectors.failures import Failure, error_for, transport_failure
from acs_khaos_dagster.domain.models import AcsOrder, AcsOrderStatus, AcsProduct, DespatchEvent

log = logging.getLogger(__name__)

SYSTEM = wire.SYSTEM
KEY_HEADER = "Ocp-Apim-Subscription-Key"
API_PREFIX = "/api/partner/v1"


class _SubscriptionKeyAuth(httpx.Auth):
    """Adds the key per request, so it is not a default header that a repr could show."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[KEY_HEADER] = self._key.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return "_SubscriptionKeyAuth(key=**********)"


@dataclass(frozen=True)
class DespatchPage:
    """One read of the despatch feed.

    ``cursor`` is what to store and pass next time: the next page while ``has_more``;
    on the last page (the contract's ``next_cursor`` is null) the cursor this page was
    read with, so the last page is read again next time and its new events are told from
    the ones already taken by ``event_id``.
    """

    events: list[DespatchEvent]
    cursor: str | None
    has_more: bool


class AcsClient:
    def __init__(
        self,
        base_url: str,
        subscription_key: SecretStr | str,
        account_code: str,
        timeout: httpx.Timeout | HttpSettings | None = None,
        *,
        read_retries: int | None = None,
        backoff_initial_s: float | None = None,
        backoff_max_s: float | None = None,
        max_connections: int | None = None,
        verify: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        times: AcsTimeRules = DEFAULT_TIME_RULES,
    ) -> None:
        http = timeout if isinstance(timeout, HttpSettings) else HttpSettings()
        if isinstance(timeout, httpx.Timeout):
            self._timeout = timeout
        else:
            self._timeout = httpx.Timeout(
                connect=http.connect_timeout_s,
                read=http.read_timeout_s,
                write=http.read_timeout_s,
                pool=http.connect_timeout_s,
            )
        self.base_url = base_url.rstrip("/")
        self.account_code = account_code
        self._key = (
            subscription_key
            if isinstance(subscription_key, SecretStr)
            else SecretStr(subscription_key)
        )
        self.read_retries = http.read_retries if read_retries is None else read_retries
        self.backoff_initial_s = (
            http.backoff_initial_s if backoff_initial_s is None else backoff_initial_s
        )
        self.backoff_max_s = http.backoff_max_s if backoff_max_s is None else backoff_max_s
        connections = http.max_connections if max_connections is None else max_connections
        self._sleep = sleep
        self.times = times  # how this account writes times (acs.time_without_offset…)
        self._random = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX,
            auth=_SubscriptionKeyAuth(self._key),
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            verify=http.verify_tls if verify is None else verify,
            headers={"Accept": "application/json", "User-Agent": "acs-khaos-dagster"},
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> AcsClient:
        if not settings.http.verify_tls:
            log.warning(
                "TLS certificate verification is OFF for ACS (%s): http.verify_tls is false; "
                "anyone on the network path can read the subscription key",
                settings.acs.base_url,
            )
        return cls(
            settings.acs.base_url,
            settings.acs.subscription_key,
            settings.acs.account_code,
            settings.http,
            **{"times": AcsTimeRules.from_settings(settings), **kwargs},
        )

    def __repr__(self) -> str:
        return f"AcsClient(base_url={self.base_url!r}, account_code={self.account_code!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- products ---------------------------------------------------------------

    def put_product(self, product: AcsProduct) -> None:
        """Register or update a SKU at ACS (a new one starts ``pending``)."""
        self._write(
            "put_product",
            f"/products/{_segment(product.sku)}.json",
            wire.product_to_wire(product, self.account_code),
        )

    def get_product(self, sku: str) -> AcsProduct:
        data = self._read("get_product", f"/products/{_segment(sku)}.json")
        return self._convert("get_product", wire.product_from_wire, data)

    def iter_products(self, page_size: int = 500) -> Iterator[AcsProduct]:
        """Every SKU ACS holds, with its status, following the cursors to the end."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor:
                params["cursor"] = cursor
            data = self._read("list_products", "/products", params)
            for item in self._convert("list_products", lambda d: d["products"], data):
                yield self._convert("list_products", wire.product_from_wire, item)
            cursor = data.get("next_cursor")
            if not cursor:
                return

    # --- orders ------------------------------------------------------------------------

    def put_order(self, order: AcsOrder) -> None:
        """Create or replace (or cancel, with ``cancelled=True``) an order at ACS."""
        body = wire.order_to_wire(order, self.account_code)
        self._write("put_order", f"/orders/{_segment(order.order_number)}.json", body)

    def get_order(self, order_number: str) -> AcsOrderStatus:
        data = self._read("get_order", f"/orders/{_segment(order_number)}.json")
        return self._convert(
            "get_order", lambda d: wire.order_status_from_wire(d, self.times), data
        )

    # --- despatch feed --------------------------------------------------------------------

    def read_despatch_page(self, cursor: str | None, limit: int = 500) -> DespatchPage:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        data = self._read("list_despatches", "/despatches", params)
        events = [
            self._convert("list_despatches", lambda d: wire.despatch_from_wire(d, self.times), item)
            for item in self._convert("list_despatches", lambda d: d["events"], data)
        ]
        next_cursor = self._convert("list_despatches", lambda d: d["next_cursor"], data)
        return DespatchPage(events=events, cursor=next_cursor or cursor, has_more=bool(next_cursor))

    def read_despatches(
        self, cursor: str | None, limit: int = 500
    ) -> tuple[list[DespatchEvent], str | None]:
        """One page of despatch events and the cursor to store for the next read.

        Events come at least once and not necessarily in order: de-duplicate on
        ``event_id``. Caught up, the cursor returned is the last page's own, so the next
        read repeats that page (with anything new on it).
        """
        page = self.read_despatch_page(cursor, limit)
        return page.events, page.cursor

    # --- transport ---------------------------------------------------------------------------

    def _convert(self, operation: str, convert: Callable[[Any], Any], data: Any) -> Any:
        try:
            return convert(data)
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise wire.unexpected_response(operation, exc) from None

    def _write(self, operation: str, path: str, body: dict[str, Any]) -> None:
        """One PUT, never retried here."""
        try:
            response = self._http.put(path, json=body)
        except httpx.TransportError as exc:
            raise _transport_error(exc, operation, write=True) from None
        _raise_for_status(response, operation, secret=self._key, write=True)

    def _read(self, operation: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """One GET, retried on transient failures with backoff, honouring ``Retry-After``."""
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=self._stop,
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )
        for attempt in retrying:
            with attempt:
                try:
                    response = self._http.get(path, params=params)
                except httpx.TransportError as exc:
                    raise _transport_error(exc, operation, write=False) from None
                _raise_for_status(response, operation, secret=self._key, write=False)
                try:
                    return response.json()
                except ValueError:
                    raise PermanentError(
                        "response is not JSON",
                        system=SYSTEM,
                        operation=operation,
                        code="UNEXPECTED_RESPONSE",
                        status_code=response.status_code,
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt_number: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt_number - 1))
        return self._random.uniform(0, ceiling)

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number > self.read_retries:
            return True
        exc = state.outcome.exception() if state.outcome else None
        # A server asking for a longer pause than we would ever wait: let the caller schedule it.
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and retry_after > self.backoff_max_s

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return max(float(retry_after), self._backoff(state.attempt_number))

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("ACS read failed (attempt %d), retrying: %s", state.attempt_number, exc)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _transport_error(exc: httpx.TransportError, operation: str, *, write: bool) -> ConnectorError:
    failure = transport_failure(exc)
    return error_for(
        failure,
        f"{failure.value} ({type(exc).__name__})",
        system=SYSTEM,
        operation=operation,
        write=write,
    )


def _redact(text: str, secret: SecretStr | None) -> str:
    """``text`` without the secret, should the server echo it back in an error."""
    value = secret.get_secret_value() if secret is not None else ""
    return text.replace(value, "**********") if value else text


def _errors_of(response: httpx.Response) -> list[dict[str, str]]:
    try:
        payload = response.json()
    except ValueError:
        return []
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        {k: str(e.get(k, "")) for k in ("field", "code", "message")}
        for e in errors
        if isinstance(e, dict)
    ]


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP-date; rare at API gateways, fall back to our own backoff


def _status_failure(status: int, retry_after: float | None = None) -> Failure:
    if status == 403 and retry_after is not None:
        # An API gateway's call quota (Azure API Management answers 403 + Retry-After):
        # rate limiting, not a refused key.
        return Failure.RATE_LIMITED
    if status in (401, 403):
        return Failure.AUTHENTICATION
    if status == 404:
        return Failure.NOT_FOUND
    if status == 408:
        return Failure.REQUEST_TIMEOUT
    if status == 409:
        return Failure.CONFLICT
    if status == 429:
        return Failure.RATE_LIMITED
    if status >= 500:
        # ACS's own 5xx and a gateway's look alike: the PUT may have been applied.
        return Failure.GATEWAY_ERROR
    return Failure.INVALID


def _raise_for_status(
    response: httpx.Response, operation: str, *, secret: SecretStr | None = None, write: bool
) -> None:
    status = response.status_code
    if status < 400:
        return
    errors = [{k: _redact(v, secret) for k, v in e.items()} for e in _errors_of(response)]
    code = errors[0]["code"] if errors else None
    message = errors[0]["message"] if errors else response.reason_phrase or "error"
    failure = _status_failure(status, _retry_after(response))
    if failure is Failure.AUTHENTICATION:
        message = "subscription key refused"
    elif failure is Failure.RATE_LIMITED:
        message = "rate limited"
    raise error_for(
        failure,
        message,
        system=SYSTEM,
        operation=operation,
        write=write,
        retry_after=_retry_after(response),
        status_code=status,
        code=code,
        details=errors,
    )
