"""Outbox of effects on other systems, and the dispatcher that sends them.

An effect is recorded (with a deterministic idempotency key) before anything is sent and
marked done only when confirmed. The dispatcher never holds a database transaction open
while it talks to another system:

1. claim: in one transaction, take due ``pending`` effects (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) and mark them ``in_flight`` with a claim
   token, the dispatcher's name and the time; attempts += 1;
2. talk: read back first if the effect may already have happened, else send;
3. finish: in one transaction (checking the claim token), record the attempt, the audit row
   and the new state.

Failures are classified by class (``connectors/errors.py``): transient → retry with capped
exponential backoff and full jitter; permanent → parked at once; ambiguous (or anything
unexpected) → retry, but read the target back before any resend, because Khaos does not
de-duplicate. An effect left ``in_flight`` by a dead dispatcher (same host, process gone)
or whose claim is older than the lease goes through the same read-back rule.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import AmbiguousError, PermanentError, TransientError
from acs_khaos_dagster.store.audit import AuditLog, canonical_json
from acs_khaos_dagster.store.crashpoints import crashpoint
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import Effect, EffectAttempt

if TYPE_CHECKING:
    from acs_khaos_dagster.store import Store

log = logging.getLogger(__name__)

PENDING, IN_FLIGHT, DONE, FAILED, PARKED, HELD = (
    "pending",
    "in_flight",
    "done",
    "failed",
    "parked",
    "held",
)


@runtime_checkable
class EffectHandler(Protocol):
    """Sends one kind of effect. Raise only the classes of ``connectors/errors.py``."""

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Apply the effect; return what the target system answered (stored as the result)."""
        ...

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Ask the target whether the effect already happened: its result if so, else None."""
        ...


_KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit


class EffectNotFound(KeyError):
    pass


class Outbox:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    def enqueue(
        self,
        kind: str,
        target: str,
        business_key: str,
        idempotency_key: str,
        payload: dict[str, Any],
        hold: bool = False,
        session: Session | None = None,
    ) -> Effect:
        """Record an effect. The same idempotency key again returns the first effect as is."""
        now = self._db.now()
        with self._db.transaction(session) as s:
            s.execute(
                self._db.insert(Effect)
                .values(
                    kind=kind,
                    target=target,
                    business_key=business_key,
                    idempotency_key=idempotency_key,
                    payload=payload,
                    state=HELD if hold else PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    needs_read_back=False,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
            )
            effect = s.scalars(
                select(Effect)
                .where(Effect.idempotency_key == idempotency_key)
                .execution_options(populate_existing=True)
            ).one()
            if effect.created_at != now and canonical_json(effect.payload) != canonical_json(
                payload
            ):
                log.warning(
                    "effect %s enqueued again with a different payload; keeping the first",
                    idempotency_key,
                )
        if session is None:
            crashpoint("after_record")
        return effect

    def get(self, effect_id: int, session: Session | None = None) -> Effect:
        with self._db.transaction(session) as s:
            effect = s.get(Effect, effect_id)
            if effect is None:
                raise EffectNotFound(effect_id)
            return effect

    def by_key(self, idempotency_key: str) -> Effect | None:
        with self._db.transaction() as s:
            return s.scalars(
                select(Effect).where(Effect.idempotency_key == idempotency_key)
            ).one_or_none()

    def states(self, idempotency_keys: Iterable[str]) -> dict[str, str]:
        """The state of each effect known by key (unknown keys are left out), in a few
        queries however many keys: a day's postings ask for thousands."""
        keys = sorted(set(idempotency_keys))
        found: dict[str, str] = {}
        with self._db.transaction() as s:
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                batch = keys[start : start + _KEYS_PER_QUERY]
                query = select(Effect.idempotency_key, Effect.state).where(
                    Effect.idempotency_key.in_(batch)
                )
                found.update({key: state for key, state in s.execute(query)})
        return found

    def find(self, *, state: str | None = None, kind: str | None = None) -> list[Effect]:
        query = select(Effect).order_by(Effect.id)
        if state:
            query = query.where(Effect.state == state)
        if kind:
            query = query.where(Effect.kind == kind)
        with self._db.transaction() as s:
            return list(s.scalars(query))

    def attempts(self, effect_id: int) -> list[EffectAttempt]:
        query = (
            select(EffectAttempt)
            .where(EffectAttempt.effect_id == effect_id)
            .order_by(EffectAttempt.id)
        )
        with self._db.transaction() as s:
            return list(s.scalars(query))

    # -- human actions -------------------------------------------------------------------

    def _locked(self, s: Session, effect_id: int) -> Effect:
        effect = s.get(Effect, effect_id, with_for_update=True, populate_existing=True)
        if effect is None:
            raise EffectNotFound(effect_id)
        return effect

    def approve(self, effect_id: int, actor: str, session: Session | None = None) -> bool:
        """Release a held effect to pending. False (and nothing recorded) if not held."""
        with self._db.transaction(session) as s:
            effect = self._locked(s, effect_id)
            if effect.state != HELD:
                return False
            now = self._db.now()
            effect.state = PENDING
            effect.next_attempt_at = now
            effect.approved_by = actor
            effect.approved_at = now
            effect.updated_at = now
            self._audit.record_action(
                actor=actor, action="approve", subject=f"effect:{effect.id}", session=s
            )
            return True

    def requeue(self, effect_id: int, actor: str, session: Session | None = None) -> bool:
        """Put a parked (or abandoned) effect back to pending with its attempts reset."""
        with self._db.transaction(session) as s:
            effect = self._locked(s, effect_id)
            if effect.state not in (PARKED, FAILED):
                return False
            now = self._db.now()
            effect.state = PENDING
            effect.attempts = 0
            effect.next_attempt_at = now
            effect.updated_at = now
            self._audit.record_action(
                actor=actor, action="requeue", subject=f"effect:{effect.id}", session=s
            )
            return True

    def abandon(self, effect_id: int, actor: str, session: Session | None = None) -> bool:
        """A person closed the problem without a retry: parked → failed (never sent again)."""
        with self._db.transaction(session) as s:
            effect = self._locked(s, effect_id)
            if effect.state != PARKED:
                return False
            effect.state = FAILED
            effect.updated_at = self._db.now()
            self._audit.record_action(
                actor=actor, action="abandon", subject=f"effect:{effect.id}", session=s
            )
            return True

    # -- status ----------------------------------------------------------------------------

    def status(self) -> OutboxStatus:
        with self._db.transaction() as s:
            counts = {
                (kind, state): n
                for kind, state, n in s.execute(
                    select(Effect.kind, Effect.state, func.count()).group_by(
                        Effect.kind, Effect.state
                    )
                )
            }
            oldest = s.scalar(select(func.min(Effect.created_at)).where(Effect.state == PENDING))
        return OutboxStatus(
            counts=counts,
            oldest_pending_age=None if oldest is None else self._db.now() - oldest,
        )


@dataclass(frozen=True)
class OutboxStatus:
    counts: dict[tuple[str, str], int]
    oldest_pending_age: timedelta | None

    def total(self, state: str) -> int:
        return sum(n for (_, s), n in self.counts.items() if s == state)

    @property
    def parked(self) -> int:
        return self.total(PARKED)

    @property
    def held(self) -> int:
        return self.total(HELD)

    @property
    def pending(self) -> int:
        return self.total(PENDING)

    @property
    def in_flight(self) -> int:
        return self.total(IN_FLIGHT)


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


@dataclass
class DispatchReport:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, other: DispatchReport) -> None:
        self.claimed += other.claimed
        self.outcomes.update(other.outcomes)


def backoff_delay(
    attempts: int,
    settings: OutboxSettings,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Capped exponential backoff with full jitter; a larger server ``retry_after`` wins."""
    cap = min(settings.backoff_max_s, settings.backoff_initial_s * (2 ** max(attempts - 1, 0)))
    delay = (rng or random).uniform(0, cap)
    if retry_after is not None and retry_after > delay:
        return float(retry_after)
    return delay


def _this_host() -> str:
    return socket.gethostname()


def _owner_is_dead(owner: str | None) -> bool:
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
    return f"{type(exc).__name__}: {exc}"[:2000]


class Dispatcher:
    """Sends due effects with the registered handlers. Safe to run several at once."""

    def __init__(
        self,
        store: Store,
        handlers: Mapping[str, EffectHandler],
        settings: OutboxSettings | None = None,
        *,
        lease: timedelta = timedelta(minutes=10),
        name: str | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.settings = settings or OutboxSettings()
        self.lease = lease
        self.owner = f"{_this_host()}:{os.getpid()}:{name or uuid.uuid4().hex[:8]}"
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._db: Database = store.db

    # -- claiming ------------------------------------------------------------------------

    def recover(self) -> int:
        """Back to pending, read back first: effects whose dispatcher died or lease ran out."""
        now = self._db.now()
        recovered = 0
        with self._db.transaction() as s:
            query = (
                select(Effect)
                .where(Effect.state == IN_FLIGHT, Effect.kind.in_(list(self.handlers)))
                .with_for_update(skip_locked=True)
            )
            for effect in s.scalars(query):
                expired = effect.claimed_at is None or effect.claimed_at <= now - self.lease
                if not expired and not _owner_is_dead(effect.claimed_by):
                    continue
                log.warning(
                    "effect %s (%s) was in flight with %s when it stopped; it will be read "
                    "back before any resend",
                    effect.id,
                    effect.idempotency_key,
                    effect.claimed_by,
                )
                s.add(
                    EffectAttempt(
                        effect_id=effect.id,
                        attempt_no=effect.attempts,
                        at=now,
                        outcome="interrupted",
                        message=f"claimed by {effect.claimed_by} at {effect.claimed_at}",
                        duration_ms=0,
                        dispatcher=self.owner,
                    )
                )
                effect.state = PENDING
                effect.needs_read_back = True
                effect.next_attempt_at = now
                effect.claim_token = None
                effect.updated_at = now
                recovered += 1
        return recovered

    def claim(self, limit: int) -> list[Claim]:
        now = self._db.now()
        claims: list[Claim] = []
        with self._db.transaction() as s:
            query = (
                select(Effect)
                .where(
                    Effect.state == PENDING,
                    Effect.next_attempt_at <= now,
                    Effect.kind.in_(list(self.handlers)),
                )
                .order_by(Effect.next_attempt_at, Effect.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            for effect in s.scalars(query):
                effect.state = IN_FLIGHT
                effect.claim_token = uuid.uuid4().hex
                effect.claimed_by = self.owner
                effect.claimed_at = now
                effect.attempts += 1
                effect.updated_at = now
                claims.append(
                    Claim(
                        effect_id=effect.id,
                        token=effect.claim_token,
                        kind=effect.kind,
                        target=effect.target,
                        business_key=effect.business_key,
                        idempotency_key=effect.idempotency_key,
                        payload=dict(effect.payload),
                        attempt_no=effect.attempts,
                        needs_read_back=effect.needs_read_back,
                    )
                )
        return claims

    # -- running -------------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> DispatchReport:
        report = DispatchReport()
        recovered = self.recover()
        if recovered:
            report.outcomes["recovered"] += recovered
        claims = self.claim(limit or self.settings.claim_batch)
        report.claimed = len(claims)
        for claim in claims:
            crashpoint("after_claim")
            report.outcomes[self._process(claim)] += 1
        return report

    def drain(self, until_idle: bool = True, max_rounds: int = 10_000) -> DispatchReport:
        """Run rounds until nothing is due (or one round if ``until_idle`` is False)."""
        total = DispatchReport()
        for _ in range(max_rounds):
            report = self.run_once()
            total.add(report)
            if not until_idle or report.claimed == 0:
                break
        return total

    def _elapsed_ms(self, started: float) -> int:
        return int((self._monotonic() - started) * 1000)

    def _process(self, claim: Claim) -> str:
        handler = self.handlers[claim.kind]
        started = self._monotonic()
        if claim.needs_read_back:
            try:
                found = handler.read_back(claim.payload)
            except PermanentError as exc:
                return self._park(claim, exc, started, "read_back_rejected")
            except Exception as exc:
                return self._retry(claim, exc, started, "read_back_failed", read_back=True)
            if found is not None:
                return self._done(claim, found, started, "confirmed_by_read_back")
        try:
            result = handler.send(claim.payload)
        except TransientError as exc:
            return self._retry(claim, exc, started, "transient_error", read_back=False)
        except PermanentError as exc:
            return self._park(claim, exc, started, "permanent_error")
        except AmbiguousError as exc:
            return self._retry(claim, exc, started, "ambiguous_error", read_back=True)
        except Exception as exc:  # unknown: it may have been sent, so treat as ambiguous
            log.exception("effect %s: unexpected error from handler", claim.idempotency_key)
            return self._retry(claim, exc, started, "unexpected_error", read_back=True)
        crashpoint("after_send")
        return self._done(claim, result, started, "sent")

    # -- finishing -----------------------------------------------------------------------

    def _record(
        self,
        s: Session,
        claim: Claim,
        outcome: str,
        duration_ms: int,
        exc: BaseException | None,
    ) -> Effect | None:
        """Attempt and audit rows; the effect row if our claim still holds, else None."""
        s.add(
            EffectAttempt(
                effect_id=claim.effect_id,
                attempt_no=claim.attempt_no,
                at=self._db.now(),
                outcome=outcome,
                error_class=None if exc is None else type(exc).__name__,
                message=None if exc is None else _error_text(exc),
                duration_ms=duration_ms,
                dispatcher=self.owner,
            )
        )
        if outcome != "read_back_failed":
            self.store.audit.record_write(
                system=claim.target,
                operation=claim.kind,
                idempotency_key=claim.idempotency_key,
                payload=claim.payload,
                outcome=outcome,
                duration_ms=duration_ms,
                subject=f"effect:{claim.effect_id}",
                session=s,
            )
        effect = s.get(Effect, claim.effect_id, with_for_update=True, populate_existing=True)
        if effect is None or effect.state != IN_FLIGHT or effect.claim_token != claim.token:
            log.warning(
                "effect %s: claim lost while sending (now %s); another dispatcher took over "
                "and will read back",
                claim.idempotency_key,
                None if effect is None else effect.state,
            )
            return None
        return effect

    def _done(self, claim: Claim, result: Any, started: float, outcome: str) -> str:
        duration = self._elapsed_ms(started)
        if not isinstance(result, dict):
            result = {"value": result}
        with self._db.transaction() as s:
            effect = self._record(s, claim, outcome, duration, None)
            if effect is not None:
                effect.state = DONE
                effect.result = result
                effect.needs_read_back = False
                effect.last_error = None
                effect.claim_token = None
                effect.updated_at = self._db.now()
                s.flush()
                crashpoint("before_mark_done")
        return outcome

    def _retry(
        self,
        claim: Claim,
        exc: BaseException,
        started: float,
        outcome: str,
        *,
        read_back: bool,
    ) -> str:
        if claim.attempt_no >= self.settings.max_attempts:
            return self._park(claim, exc, started, outcome, read_back=read_back)
        duration = self._elapsed_ms(started)
        retry_after = getattr(exc, "retry_after", None)
        delay = backoff_delay(claim.attempt_no, self.settings, retry_after, self._rng)
        with self._db.transaction() as s:
            effect = self._record(s, claim, outcome, duration, exc)
            if effect is not None:
                now = self._db.now()
                effect.state = PENDING
                effect.needs_read_back = effect.needs_read_back or read_back
                effect.next_attempt_at = now + timedelta(seconds=delay)
                effect.last_error = _error_text(exc)
                effect.claim_token = None
                effect.updated_at = now
        log.info(
            "effect %s: %s on attempt %d; retry in %.1f s",
            claim.idempotency_key,
            outcome,
            claim.attempt_no,
            delay,
        )
        return "retried"

    def _park(
        self,
        claim: Claim,
        exc: BaseException,
        started: float,
        outcome: str,
        *,
        read_back: bool = False,
    ) -> str:
        duration = self._elapsed_ms(started)
        reason = _error_text(exc)
        with self._db.transaction() as s:
            effect = self._record(s, claim, outcome, duration, exc)
            if effect is None:
                return outcome
            now = self._db.now()
            effect.state = PARKED
            effect.needs_read_back = effect.needs_read_back or read_back
            effect.last_error = reason
            effect.claim_token = None
            effect.updated_at = now
            s.flush()
            permanent = isinstance(exc, PermanentError)
            self.store.exceptions.raise_exception(
                "effect_failed",
                claim.idempotency_key,
                (
                    f"{claim.kind} to {claim.target} for {claim.business_key} "
                    + ("rejected" if permanent else f"failed {claim.attempt_no} times")
                    + f": {reason}"
                ),
                details={
                    "effect_id": claim.effect_id,
                    "kind": claim.kind,
                    "target": claim.target,
                    "business_key": claim.business_key,
                    "attempts": claim.attempt_no,
                    "error_class": type(exc).__name__,
                    "permanent": permanent,
                    # What the other system said (for example ACS's 422 error list).
                    "error_code": getattr(exc, "code", None),
                    "error_details": list(getattr(exc, "details", None) or []),
                },
                effect_id=claim.effect_id,
                session=s,
            )
        log.error("effect %s parked: %s", claim.idempotency_key, reason)
        return "parked"
