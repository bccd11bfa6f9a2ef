"""What each failure of a write to ACS or Khaos means: not sent, rejected, or ambiguous.

This is the one table the clients classify every failed write by (``error_for``), and the
table ``docs/outbox.md`` shows (a test keeps the two the same). The outbox acts on the
verdict alone:

- **not sent** — proven never to have reached the target's application: resent after
  the backoff. Only failures before the request left us (refused connection, DNS, TLS
  handshake, no connection in time) and refusals the system documents as made before
  applying (``429``; Khaos's ``Server.Busy`` fault) are here.
- **rejected** — the target refused the request and would refuse it again: parked at
  once with an exception that names an owner.
- **ambiguous** — the request may have been applied: read back no sooner than
  ``outbox.read_back_after_s``, and resent only if the read-back finds nothing. Every
  answer from a gateway or proxy (502, 503, 504 or any 5xx with any body, or without the
  SOAP fault that says why), every timeout or reset after the request was written, and
  every truncated or unparseable reply.

Reads change nothing, so for a read only *rejected* stops; anything else is retried.
"""

from __future__ import annotations

import socket
import ssl
from enum import StrEnum

import httpx

from acs_khaos_dagster.connectors.errors import (
    AmbiguousError,
    AuthenticationError,
    ConflictError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    TransientError,
)


class Verdict(StrEnum):
    NOT_SENT = "not sent"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"


class Failure(StrEnum):
    """One way a call can fail, described as the docs' table names it."""

    CONNECTION_REFUSED = "connection refused or reset while connecting"
    DNS_FAILURE = "host name not found (DNS)"
    TLS_HANDSHAKE = "TLS handshake failed"
    CONNECT_TIMEOUT = "no connection within the connect timeout"
    POOL_TIMEOUT = "no free pooled connection in time"
    REQUEST_TIMEOUT = "408 Request Timeout (the server never had the whole request)"
    RATE_LIMITED = (
        "429 Too Many Requests (with or without Retry-After), "
        "or a gateway's 403 call quota with Retry-After"
    )
    SERVER_BUSY = "SOAP fault Server.Busy (Khaos: raised before applying)"
    AUTHENTICATION = "401, or 403 without Retry-After, or SOAP fault Client.Authentication*"
    NOT_FOUND = "404, or SOAP fault Client.NotFound*"
    CONFLICT = "409, or SOAP fault Client.Conflict*"
    INVALID = "other 4xx (400, 422 with its error list), or another Client.* fault"
    WRITE_TIMEOUT = "timeout while writing the request"
    READ_TIMEOUT = "timeout waiting for the reply"
    RESET_AFTER_SEND = "connection reset or closed after the request was written"
    TRUNCATED_REPLY = "reply cut off before its end"
    SERVER_FAULT = "SOAP fault Server.* other than Server.Busy"
    GATEWAY_ERROR = "5xx without the system's own fault: 502, 503, 504 or any 5xx, any body"
    UNPARSEABLE_REPLY = "a reply that cannot be read (not XML or JSON, unsafe XML, bad fields)"


# Failures a system cannot produce are left out of its operations' rows.
_KHAOS_ONLY = {Failure.SERVER_BUSY, Failure.SERVER_FAULT}

_WRITE_VERDICTS: dict[Failure, Verdict] = {
    Failure.CONNECTION_REFUSED: Verdict.NOT_SENT,
    Failure.DNS_FAILURE: Verdict.NOT_SENT,
    Failure.TLS_HANDSHAKE: Verdict.NOT_SENT,
    Failure.CONNECT_TIMEOUT: Verdict.NOT_SENT,
    Failure.POOL_TIMEOUT: Verdict.NOT_SENT,
    Failure.REQUEST_TIMEOUT: Verdict.NOT_SENT,
    Failure.RATE_LIMITED: Verdict.NOT_SENT,
    Failure.SERVER_BUSY: Verdict.NOT_SENT,
    Failure.AUTHENTICATION: Verdict.REJECTED,
    Failure.NOT_FOUND: Verdict.REJECTED,
    Failure.CONFLICT: Verdict.REJECTED,
    Failure.INVALID: Verdict.REJECTED,
    Failure.WRITE_TIMEOUT: Verdict.AMBIGUOUS,
    Failure.READ_TIMEOUT: Verdict.AMBIGUOUS,
    Failure.RESET_AFTER_SEND: Verdict.AMBIGUOUS,
    Failure.TRUNCATED_REPLY: Verdict.AMBIGUOUS,
    Failure.SERVER_FAULT: Verdict.AMBIGUOUS,
    Failure.GATEWAY_ERROR: Verdict.AMBIGUOUS,
    Failure.UNPARSEABLE_REPLY: Verdict.AMBIGUOUS,
}

KHAOS_WRITES = ("ImportDespatch", "ImportStockAdjustments", "ImportCustomerReturns", "MoveInvoices")
ACS_WRITES = ("put_product", "put_order")

# operation -> failure -> verdict, for every external write the integration makes.
WRITE_FAILURES: dict[str, dict[Failure, Verdict]] = {
    **{op: dict(_WRITE_VERDICTS) for op in KHAOS_WRITES},
    **{op: {f: v for f, v in _WRITE_VERDICTS.items() if f not in _KHAOS_ONLY} for op in ACS_WRITES},
}


def verdict(operation: str, failure: Failure, *, write: bool) -> Verdict:
    """The table's verdict for a write; for a read, only a refusal is final."""
    if write:
        return WRITE_FAILURES.get(operation, _WRITE_VERDICTS)[failure]
    if _WRITE_VERDICTS[failure] is Verdict.REJECTED or failure is Failure.UNPARSEABLE_REPLY:
        return Verdict.REJECTED
    return Verdict.NOT_SENT


_REJECTION_CLASSES: dict[Failure, type[PermanentError]] = {
    Failure.AUTHENTICATION: AuthenticationError,
    Failure.NOT_FOUND: NotFoundError,
    Failure.CONFLICT: ConflictError,
}


def error_for(
    failure: Failure,
    message: str,
    *,
    system: str,
    operation: str,
    write: bool,
    retry_after: float | None = None,
    **details: object,
) -> ConnectorError:
    """The typed error the outbox acts on, from the table's verdict for this failure.

    The error carries the failure as ``failure`` (for the attempt history and the tests).
    """
    common: dict[str, object] = {"system": system, "operation": operation, **details}
    error: ConnectorError
    match verdict(operation, failure, write=write):
        case Verdict.NOT_SENT:
            error = TransientError(
                message,
                retry_after=retry_after,
                rate_limited=failure is Failure.RATE_LIMITED,
                **common,
            )
        case Verdict.REJECTED:
            error = _REJECTION_CLASSES.get(failure, PermanentError)(message, **common)  # type: ignore[arg-type]
        case Verdict.AMBIGUOUS:
            error = AmbiguousError(message, **common)  # type: ignore[arg-type]
    error.failure = failure  # type: ignore[attr-defined]
    return error


def transport_failure(exc: httpx.TransportError) -> Failure:
    """Which failure an httpx transport error is: before the request left us, or after."""
    if isinstance(exc, httpx.ConnectTimeout):
        return Failure.CONNECT_TIMEOUT
    if isinstance(exc, httpx.PoolTimeout):
        return Failure.POOL_TIMEOUT
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLError):
                return Failure.TLS_HANDSHAKE
            if isinstance(cause, socket.gaierror):
                return Failure.DNS_FAILURE
            cause = cause.__cause__ or cause.__context__
        text = str(exc).lower()
        if "ssl" in text or "certificate" in text or "handshake" in text:
            return Failure.TLS_HANDSHAKE
        if "name or service not known" in text or "nodename nor servname" in text:
            return Failure.DNS_FAILURE
        return Failure.CONNECTION_REFUSED
    if isinstance(exc, httpx.WriteTimeout):
        return Failure.WRITE_TIMEOUT
    if isinstance(exc, httpx.TimeoutException):
        return Failure.READ_TIMEOUT
    if isinstance(exc, httpx.RemoteProtocolError) and (
        "complete message body" in str(exc) or "incomplete" in str(exc).lower()
    ):
        return Failure.TRUNCATED_REPLY
    return Failure.RESET_AFTER_SEND


def markdown_table() -> str:
    """The table as docs/outbox.md shows it: a row per failure, a column per write."""
    operations = list(WRITE_FAILURES)
    lines = [
        "| failure | " + " | ".join(f"`{op}`" for op in operations) + " |",
        "| --- | " + " | ".join("---" for _ in operations) + " |",
    ]
    for failure in Failure:
        cells = [
            WRITE_FAILURES[op][failure].value if failure in WRITE_FAILURES[op] else "n/a"
            for op in operations
        ]
        lines.append(f"| {failure.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
