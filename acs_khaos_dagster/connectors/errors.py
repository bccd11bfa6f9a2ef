"""Typed failures of calls to ACS and Khaos Control.

The outbox decides what to do from the class alone:
- ``TransientError``: nothing was applied; retry later (5xx, 429, busy, refused connection).
- ``PermanentError``: the request is wrong and will stay wrong; park it with the reason.
- ``AmbiguousError``: the request was sent and may have been applied (timeout after
  sending, connection reset); read the target system back before any resend.

Messages never include secrets or request bodies.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class of every failure of an external call."""

    def __init__(
        self,
        message: str,
        *,
        system: str,
        operation: str,
        status_code: int | None = None,
        code: str | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.system = system
        self.operation = operation
        self.status_code = status_code
        self.code = code
        self.details = details or []

    def __str__(self) -> str:
        parts = [f"{self.system} {self.operation}: {self.args[0]}"]
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code})")
        if self.code:
            parts.append(f"[{self.code}]")
        return " ".join(parts)


class TransientError(ConnectorError):
    """Not applied; safe to retry after a delay (``retry_after`` seconds if the server said).

    ``rate_limited``: the target refused for its rate limit or call quota (429, or a
    gateway's 403 with ``Retry-After``). That is not a failure of the effect: the outbox
    sends it again when the target said, without counting it toward ``max_attempts``.
    """

    def __init__(
        self,
        *args: object,
        retry_after: float | None = None,
        rate_limited: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class PermanentError(ConnectorError):
    """Rejected for a reason a retry cannot fix (validation, unknown entity, bad credentials)."""


class AuthenticationError(PermanentError):
    """Credentials refused."""


class NotFoundError(PermanentError):
    """The entity does not exist on the other side."""


class ConflictError(PermanentError):
    """The other side refuses the change in its current state (ACS ``ORDER_LOCKED``)."""


class AmbiguousError(ConnectorError):
    """Sent, outcome unknown: read the target system back before resending."""
