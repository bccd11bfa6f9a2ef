"""What the dispatcher's steps share: the claim, the talk's outcome, the report, the backoff.

Also the tables it works on, its timing constants, and how a claim's owner (host, process,
name) is told alive or dead.
"""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store.schema import Effect, EffectAttempt

_EFFECTS = Effect.__table__
_ATTEMPTS = EffectAttempt.__table__
_KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit

# How long a finished send may wait to be recorded with others in one transaction.
RECORD_WITHIN_S = 0.05
# An effect waiting for an older version of itself to settle looks again this soon.
DEFER_S = 5.0

# Outcomes of a talk that sent nothing: no external-write audit row.
NOT_SENT_OUTCOMES = frozenset(
    {"claim_lost", "superseded", "deferred", "read_back_failed", "read_back_rate_limited"}
)
# Refusals for the target's rate limit: not failures, never counted toward max_attempts.
RATE_LIMITED_OUTCOMES = frozenset({"rate_limited", "read_back_rate_limited"})
# Outcomes that neither reached the target nor end a run of rate-limit refusals.
_NEUTRAL_OUTCOMES = frozenset({"claim_lost", "deferred", "interrupted"})
# ``last_error`` of an effect whose last refusal was for the rate limit starts with this.
RATE_LIMITED_PREFIX = "rate limited: "


@dataclass(frozen=True)
class Claim:
    effect_id: int
    token: str
    kind: str
    target: str
    business_key: str
    idempotency_key: str
    payload: dict[str, Any]
    attempt_no: int
    needs_read_back: bool
    supersede_key: str | None = None


@dataclass
class DispatchReport:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, other: DispatchReport) -> None:
        self.claimed += other.claimed
        self.outcomes.update(other.outcomes)


@dataclass(frozen=True)
class Talked:
    """What one claim's talk with the target came to, before anything is recorded."""

    claim: Claim
    outcome: str  # the attempt's outcome as stored: sent, transient_error, ...
    duration_ms: int
    result: dict[str, Any] | None = None  # set when done
    error: BaseException | None = None  # set when it is to be retried or parked
    read_back: bool = False  # read the target back before any resend
    park: bool = False  # rejected, or out of attempts
    rate_limited: bool = False  # refused for the rate limit: not counted as an attempt
    settled_by_guard: bool = False  # the guard already gave the effect its new state

    @property
    def done(self) -> bool:
        return self.error is None and not self.settled_by_guard


def backoff_delay(
    attempts: int,
    settings: OutboxSettings,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Capped exponential backoff with full jitter; a larger server ``retry_after`` wins.

    The first refusal that names a wait (``Retry-After``) is retried after exactly that
    wait: the server said when it will take the request, and the backoff's jitter would
    only add up to ``backoff_initial_s`` on top. A second refusal backs off as usual, so a
    target that keeps refusing is not worn through ``max_attempts`` any faster than before.
    """
    if retry_after is not None and attempts <= 1:
        return float(retry_after)
    cap = min(settings.backoff_max_s, settings.backoff_initial_s * (2 ** max(attempts - 1, 0)))
    delay = (rng or random).uniform(0, cap)
    if retry_after is not None and retry_after > delay:
        return float(retry_after)
    return delay


def rate_limit_delay(
    retry_after: float | None,
    refused_for_s: float,
    settings: OutboxSettings,
    rng: random.Random | None = None,
) -> float:
    """When to ask again after a refusal for the rate limit.

    Exactly the target's ``Retry-After`` (cut to ``rate_limit_wait_max_s``). Without one,
    about as long as the effect has been refused so far (so the waits double), at least
    ``backoff_initial_s``, at most the cap, with jitter so refused effects do not come back
    all at once.
    """
    cap = settings.rate_limit_wait_max_s
    if retry_after is not None:
        return min(float(retry_after), cap)
    wait = min(max(settings.backoff_initial_s, refused_for_s), cap)
    return (rng or random).uniform(wait / 2, wait)


def rate_limited_since(outcomes: list[tuple[str, datetime]]) -> datetime | None:
    """Since when an effect has been refused for the rate limit without a break, from its
    attempts in order (None if its last attempt that reached the target was not refused)."""
    since: datetime | None = None
    for outcome, at in outcomes:
        if outcome in RATE_LIMITED_OUTCOMES:
            since = since or at
        elif outcome not in _NEUTRAL_OUTCOMES:
            since = None
    return since


def _this_host() -> str:
    return socket.gethostname()


def owner_is_dead(owner: str | None) -> bool:
    """True if ``owner`` was a dispatcher process on this host that no longer exists."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _this_host() or not pid_text.isdigit():
        return False  # another machine: only the lease can tell
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _error_text(exc: BaseException) -> str:
    """The error as the attempt history keeps it, with the failure-table row if known."""
    failure = getattr(exc, "failure", None)
    row = f" ({failure.name.lower()})" if failure is not None else ""
    return f"{type(exc).__name__}{row}: {exc}"[:2000]
