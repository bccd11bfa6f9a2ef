"""What each failure of a call means (``connectors/failures.py``): not sent (resend),
rejected (park with an owner) or ambiguous (read back before resending) for a write; only a
refusal or an unreadable reply stops a read. And which failure an httpx transport error is.
Every verdict below is the one ``docs/outbox.md`` tells, read off the table by hand."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from acs_khaos_dagster.connectors.errors import (
    AmbiguousError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from acs_khaos_dagster.connectors.failures import (
    ACS_WRITES,
    KHAOS_WRITES,
    WRITE_FAILURES,
    Failure,
    Verdict,
    error_for,
    markdown_table,
    transport_failure,
    verdict,
)

NOT_SENT = {
    Failure.CONNECTION_REFUSED,
    Failure.DNS_FAILURE,
    Failure.TLS_HANDSHAKE,
    Failure.CONNECT_TIMEOUT,
    Failure.POOL_TIMEOUT,
    Failure.REQUEST_TIMEOUT,
    Failure.RATE_LIMITED,
    Failure.SERVER_BUSY,
}
REJECTED = {Failure.AUTHENTICATION, Failure.NOT_FOUND, Failure.CONFLICT, Failure.INVALID}

# --- verdicts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", list(Failure))
def test_a_khaos_write_is_resent_only_when_proven_never_to_have_arrived(failure: Failure) -> None:
    expected = (
        Verdict.NOT_SENT
        if failure in NOT_SENT
        else Verdict.REJECTED
        if failure in REJECTED
        else Verdict.AMBIGUOUS
    )
    assert verdict("ImportDespatch", failure, write=True) == expected


def test_every_khaos_write_has_the_same_row_of_verdicts() -> None:
    rows = [WRITE_FAILURES[op] for op in KHAOS_WRITES]
    assert all(row == rows[0] for row in rows)
    assert set(rows[0]) == set(Failure)


def test_acs_writes_have_no_rows_for_khaos_soap_faults() -> None:
    for op in ACS_WRITES:
        assert set(WRITE_FAILURES[op]) == set(Failure) - {Failure.SERVER_BUSY, Failure.SERVER_FAULT}


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure.READ_TIMEOUT, Verdict.NOT_SENT),
        (Failure.GATEWAY_ERROR, Verdict.NOT_SENT),
        (Failure.RESET_AFTER_SEND, Verdict.NOT_SENT),
        (Failure.RATE_LIMITED, Verdict.NOT_SENT),
        (Failure.NOT_FOUND, Verdict.REJECTED),
        (Failure.AUTHENTICATION, Verdict.REJECTED),
        (Failure.UNPARSEABLE_REPLY, Verdict.REJECTED),
    ],
)
def test_a_read_changes_nothing_so_only_a_refusal_or_an_unreadable_reply_stops_it(
    failure: Failure, expected: Verdict
) -> None:
    assert verdict("ExportStock", failure, write=False) == expected


def test_a_write_not_in_the_table_takes_the_general_row() -> None:
    assert verdict("SomeNewImport", Failure.READ_TIMEOUT, write=True) == Verdict.AMBIGUOUS


# --- the errors the outbox acts on ---------------------------------------------------------------


def test_a_failure_before_sending_is_a_transient_error_with_its_wait() -> None:
    error = error_for(
        Failure.RATE_LIMITED,
        "slow down",
        system="khaos",
        operation="ImportDespatch",
        write=True,
        retry_after=30.0,
    )
    assert type(error) is TransientError
    assert (error.retry_after, error.rate_limited, error.failure) == (
        30.0,
        True,
        Failure.RATE_LIMITED,
    )


def test_only_a_rate_limit_counts_as_rate_limited() -> None:
    error = error_for(Failure.CONNECT_TIMEOUT, "x", system="acs", operation="put_order", write=True)
    assert isinstance(error, TransientError) and error.rate_limited is False


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Failure.AUTHENTICATION, AuthenticationError),
        (Failure.NOT_FOUND, NotFoundError),
        (Failure.CONFLICT, ConflictError),
        (Failure.INVALID, PermanentError),
    ],
)
def test_a_refusal_is_a_permanent_error_of_its_kind(
    failure: Failure, kind: type[PermanentError]
) -> None:
    error = error_for(failure, "no", system="acs", operation="put_order", write=True)
    assert type(error) is kind


def test_a_maybe_applied_write_is_an_ambiguous_error_carrying_its_details() -> None:
    error = error_for(
        Failure.GATEWAY_ERROR,
        "502 from the proxy",
        system="khaos",
        operation="MoveInvoices",
        write=True,
        status_code=502,
    )
    assert type(error) is AmbiguousError
    assert (error.system, error.operation, error.status_code, error.failure) == (
        "khaos",
        "MoveInvoices",
        502,
        Failure.GATEWAY_ERROR,
    )


def test_the_same_failure_of_a_read_is_retried_not_read_back() -> None:
    error = error_for(Failure.READ_TIMEOUT, "slow", system="khaos", operation="Export", write=False)
    assert type(error) is TransientError


# --- transport errors ----------------------------------------------------------------------------


def _caused(error: httpx.TransportError, cause: BaseException) -> httpx.TransportError:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (httpx.ConnectTimeout("t"), Failure.CONNECT_TIMEOUT),
        (httpx.PoolTimeout("t"), Failure.POOL_TIMEOUT),
        (httpx.ConnectError("[Errno 111] Connection refused"), Failure.CONNECTION_REFUSED),
        (_caused(httpx.ConnectError("x"), ssl.SSLError("bad")), Failure.TLS_HANDSHAKE),
        (_caused(httpx.ConnectError("x"), socket.gaierror("no")), Failure.DNS_FAILURE),
        (httpx.ConnectError("certificate verify failed"), Failure.TLS_HANDSHAKE),
        (httpx.ConnectError("Name or service not known"), Failure.DNS_FAILURE),
        (httpx.WriteTimeout("t"), Failure.WRITE_TIMEOUT),
        (httpx.ReadTimeout("t"), Failure.READ_TIMEOUT),
        (
            httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ),
            Failure.TRUNCATED_REPLY,
        ),
        (httpx.RemoteProtocolError("Server disconnected"), Failure.RESET_AFTER_SEND),
        (httpx.ReadError("reset by peer"), Failure.RESET_AFTER_SEND),
    ],
)
def test_a_transport_error_is_told_apart_before_and_after_the_request_left(
    error: httpx.TransportError, failure: Failure
) -> None:
    assert transport_failure(error) == failure


# --- the documented table ------------------------------------------------------------------------


def test_the_documented_table_has_a_row_per_failure_and_a_column_per_write() -> None:
    lines = markdown_table().splitlines()
    assert lines[0].startswith("| failure | `ImportDespatch` |")
    assert len(lines) == 2 + len(Failure)
    busy = next(line for line in lines if line.startswith(f"| {Failure.SERVER_BUSY.value} |"))
    assert busy.endswith("| not sent | not sent | not sent | not sent | n/a | n/a |")
