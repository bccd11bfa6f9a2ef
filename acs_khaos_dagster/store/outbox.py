"""Outbox of effects on other systems, and the dispatcher that sends them.

An effect is recorded (with a deterministic idempotency key) before anything is sent and
marked done only when confirmed. The dispatcher never holds a database transaction open
while it talks to another system:

1. claim: in one transaction, take due ``pending`` effects (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) and mark them ``in_flight`` with a claim
   token, the dispatcher's name and the time; attempts += 1;
2. talk, on up to ``concurrency`` worker threads: read back first if the effect may already
   have happened, else send;
3. finish: in one transaction for every talk that has ended meanwhile (checking each claim
   token), record the attempts, the audit rows and the new states.

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
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import AmbiguousError, PermanentError, TransientError
from acs_khaos_dagster.store.audit import AuditLog, ExternalWrite, canonical_json
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
    """Sends one kind of effect. Raise only the classes of ``connectors/errors.py``.

    A handler may declare ``idempotent = True`` when sending the same payload twice leaves
    the target as sending it once (ACS PUTs); only those are sent several at a time.
    """

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

    def next_due(self, kinds: Iterable[str] | None = None) -> datetime | None:
        """When the earliest pending effect (of ``kinds``) falls due; None if none is pending.

        Lets a caller that must see every effect through sleep until then instead of polling.
        """
        query = select(func.min(Effect.next_attempt_at)).where(Effect.state == PENDING)
        if kinds is not None:
            query = query.where(Effect.kind.in_([str(kind) for kind in kinds]))
        with self._db.transaction() as s:
            return s.scalar(query)

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


def _still_to_wait(since: datetime | None, now: datetime, grace: timedelta) -> timedelta:
    """What is left of ``grace`` counted from ``since`` (all of it when ``since`` is unknown
    or ahead of ``now``, as another process's clock may be)."""
    elapsed = now - since if since is not None and since <= now else timedelta(0)
    return max(grace - elapsed, timedelta(0))


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

    @property
    def done(self) -> bool:
        return self.error is None


# How long a finished send may wait to be recorded with others in one transaction.
RECORD_WITHIN_S = 0.05

_EFFECTS = Effect.__table__
_ATTEMPTS = EffectAttempt.__table__


def _update_effects(s: Session, rows: list[dict[str, Any]]) -> None:
    """One executemany per set of columns; each row names its effect and claim token."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for group in by_columns.values():
        s.execute(
            update(_EFFECTS).where(
                _EFFECTS.c.id == bindparam("effect_id_"),
                _EFFECTS.c.claim_token == bindparam("token_"),
            ),
            group,
        )


class Dispatcher:
    """Sends due effects with the registered handlers. Safe to run several at once.

    One dispatcher keeps up to ``settings.concurrency`` sends of idempotent handlers in
    flight on worker threads (handlers must be thread-safe; the HTTP clients are pooled);
    the others go one at a time. Only the calling thread
    touches the database: it claims in batches and records whatever sends have finished
    in one transaction, so the store sees two short transactions per batch rather than
    per effect. Effects sharing a target and business key (an order's release and its
    cancellation) are never in flight together and go in the order they were claimed.
    """

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
        grace = timedelta(seconds=self.settings.read_back_after_s)
        recovered = 0
        with self._db.transaction() as s:
            # Our own claims are alive for as long as we are: only the others can be stale.
            query = (
                select(
                    _EFFECTS.c.id,
                    _EFFECTS.c.idempotency_key,
                    _EFFECTS.c.attempts,
                    _EFFECTS.c.claimed_by,
                    _EFFECTS.c.claimed_at,
                )
                .where(
                    _EFFECTS.c.state == IN_FLIGHT,
                    _EFFECTS.c.kind.in_(list(self.handlers)),
                    or_(_EFFECTS.c.claimed_by.is_(None), _EFFECTS.c.claimed_by != self.owner),
                )
                .with_for_update(skip_locked=True)
            )
            for effect in s.execute(query).all():
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
                s.execute(
                    insert(_ATTEMPTS).values(
                        effect_id=effect.id,
                        attempt_no=effect.attempts,
                        at=now,
                        outcome="interrupted",
                        message=f"claimed by {effect.claimed_by} at {effect.claimed_at}",
                        duration_ms=0,
                        dispatcher=self.owner,
                    )
                )
                s.execute(
                    update(_EFFECTS)
                    .where(_EFFECTS.c.id == effect.id, _EFFECTS.c.state == IN_FLIGHT)
                    .values(
                        state=PENDING,
                        needs_read_back=True,
                        # A send cut off by the crash may still land: read back after that.
                        next_attempt_at=now + _still_to_wait(effect.claimed_at, now, grace),
                        claim_token=None,
                        updated_at=now,
                    )
                )
                recovered += 1
        return recovered

    def claim(self, limit: int) -> list[Claim]:
        now = self._db.now()
        with self._db.transaction() as s:
            query = (
                select(
                    _EFFECTS.c.id,
                    _EFFECTS.c.kind,
                    _EFFECTS.c.target,
                    _EFFECTS.c.business_key,
                    _EFFECTS.c.idempotency_key,
                    _EFFECTS.c.payload,
                    _EFFECTS.c.attempts,
                    _EFFECTS.c.needs_read_back,
                )
                .where(
                    _EFFECTS.c.state == PENDING,
                    _EFFECTS.c.next_attempt_at <= now,
                    _EFFECTS.c.kind.in_(list(self.handlers)),
                )
                .order_by(_EFFECTS.c.next_attempt_at, _EFFECTS.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            claims = [
                Claim(
                    effect_id=row.id,
                    token=uuid.uuid4().hex,
                    kind=row.kind,
                    target=row.target,
                    business_key=row.business_key,
                    idempotency_key=row.idempotency_key,
                    payload=dict(row.payload),
                    attempt_no=row.attempts + 1,
                    needs_read_back=bool(row.needs_read_back),
                )
                for row in s.execute(query).all()
            ]
            if claims:
                s.execute(
                    update(_EFFECTS)
                    .where(_EFFECTS.c.id == bindparam("effect_id_"))
                    .values(
                        state=IN_FLIGHT,
                        claim_token=bindparam("token_"),
                        claimed_by=self.owner,
                        claimed_at=now,
                        attempts=bindparam("attempts_"),
                        updated_at=now,
                    ),
                    [
                        {"effect_id_": c.effect_id, "token_": c.token, "attempts_": c.attempt_no}
                        for c in claims
                    ],
                )
        return claims

    # -- running -------------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> DispatchReport:
        """Claim one batch and send it."""
        return self._run(limit or self.settings.claim_batch, max_claims=1)

    def drain(self, until_idle: bool = True, max_rounds: int = 10_000) -> DispatchReport:
        """Send until nothing is due (or one batch if ``until_idle`` is False).

        While sends are in flight the next batch is claimed as soon as a worker would
        otherwise go idle, so the workers never wait for a whole batch to finish.
        """
        return self._run(self.settings.claim_batch, max_claims=max_rounds if until_idle else 1)

    def _run(self, limit: int, *, max_claims: int) -> DispatchReport:
        report = DispatchReport()
        width = self.settings.concurrency
        waiting: deque[Claim] = deque()  # claimed, not yet handed to a worker
        running: dict[Future[Talked], Claim] = {}
        busy: set[tuple[str, str]] = set()  # target and business key of what is in flight
        unrecorded: list[Talked] = []  # talks ended, outcome not yet in the store
        oldest = 0.0  # when the oldest unrecorded talk ended (monotonic)
        claims_made = 0
        # Whether claiming again could find something: after an empty claim, only a
        # recorded outcome (an effect retried at once) can change that.
        worth_claiming = True
        pool = ThreadPoolExecutor(max_workers=width, thread_name_prefix="outbox")
        try:
            while True:
                if worth_claiming and claims_made < max_claims and len(waiting) < width:
                    recovered = self.recover()
                    if recovered:
                        report.outcomes["recovered"] += recovered
                    claims = self.claim(limit)
                    claims_made += 1
                    report.claimed += len(claims)
                    waiting.extend(claims)
                    worth_claiming = bool(claims)
                self._hand_out(pool, waiting, running, busy, width)
                if running:
                    timeout = None
                    if unrecorded:
                        timeout = max(0.0, oldest + RECORD_WITHIN_S - self._monotonic())
                    finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                    if finished and not unrecorded:
                        oldest = self._monotonic()
                    for future in finished:
                        unrecorded.append(future.result())
                        claim = running.pop(future)
                        busy.discard((claim.target, claim.business_key))
                # Outcomes are recorded in batches (one transaction per batch rather than
                # per effect); a batch waits at most RECORD_WITHIN_S, and never while the
                # workers are idle.
                if unrecorded and (
                    not running
                    or len(unrecorded) >= limit
                    or self._monotonic() - oldest >= RECORD_WITHIN_S
                ):
                    report.outcomes.update(self._finish(unrecorded))
                    unrecorded = []
                    worth_claiming = True
                if not running and not waiting:
                    if worth_claiming and claims_made < max_claims:
                        continue
                    break
        finally:
            # After a crash (or Ctrl-C) nothing more is recorded: sends still in flight, or
            # ended but unrecorded, stay claimed and are read back by whoever recovers them.
            # No send starts after this returns, and none is left running behind the caller.
            pool.shutdown(wait=True, cancel_futures=True)
        return report

    def _hand_out(
        self,
        pool: ThreadPoolExecutor,
        waiting: deque[Claim],
        running: dict[Future[Talked], Claim],
        busy: set[tuple[str, str]],
        width: int,
    ) -> None:
        """Start waiting claims on free workers, keeping each business key's order.

        Effects whose handler is not idempotent go one at a time, as a lone dispatcher
        always sent them: a read-back cannot see a request still in transit from a
        dispatcher that was just killed, so a killed dispatcher must leave at most one such
        send behind.
        """
        kept: deque[Claim] = deque()
        single = sum(1 for c in running.values() if not self._idempotent(c.kind))
        while waiting and len(running) < width:
            claim = waiting.popleft()
            key = (claim.target, claim.business_key)
            idempotent = self._idempotent(claim.kind)
            if key in busy or (single and not idempotent):
                kept.append(claim)  # an earlier effect of this key (or kind) is in flight
                continue
            single += not idempotent
            crashpoint("after_claim")
            busy.add(key)
            running[pool.submit(self._talk, claim)] = claim
        kept.extend(waiting)
        waiting.clear()
        waiting.extend(kept)

    def _idempotent(self, kind: str) -> bool:
        return bool(getattr(self.handlers[kind], "idempotent", False))

    def _elapsed_ms(self, started: float) -> int:
        return int((self._monotonic() - started) * 1000)

    def _talk(self, claim: Claim) -> Talked:
        """Read back and/or send on a worker thread; classify the outcome. No database."""
        handler = self.handlers[claim.kind]
        started = self._monotonic()
        if claim.needs_read_back:
            try:
                found = handler.read_back(claim.payload)
            except PermanentError as exc:
                return self._failed(claim, started, "read_back_rejected", exc, park=True)
            except Exception as exc:
                return self._failed(claim, started, "read_back_failed", exc, read_back=True)
            if found is not None:
                return self._succeeded(claim, started, "confirmed_by_read_back", found)
        try:
            result = handler.send(claim.payload)
        except TransientError as exc:
            return self._failed(claim, started, "transient_error", exc)
        except PermanentError as exc:
            return self._failed(claim, started, "permanent_error", exc, park=True)
        except AmbiguousError as exc:
            return self._failed(claim, started, "ambiguous_error", exc, read_back=True)
        except Exception as exc:  # unknown: it may have been sent, so treat as ambiguous
            log.exception("effect %s: unexpected error from handler", claim.idempotency_key)
            return self._failed(claim, started, "unexpected_error", exc, read_back=True)
        crashpoint("after_send")
        return self._succeeded(claim, started, "sent", result)

    def _succeeded(self, claim: Claim, started: float, outcome: str, result: Any) -> Talked:
        if not isinstance(result, dict):
            result = {"value": result}
        return Talked(claim, outcome, self._elapsed_ms(started), result=result)

    def _failed(
        self,
        claim: Claim,
        started: float,
        outcome: str,
        exc: BaseException,
        *,
        read_back: bool = False,
        park: bool = False,
    ) -> Talked:
        return Talked(
            claim,
            outcome,
            self._elapsed_ms(started),
            error=exc,
            read_back=read_back,
            park=park or claim.attempt_no >= self.settings.max_attempts,
        )

    # -- finishing -----------------------------------------------------------------------

    def _finish(self, talked: list[Talked]) -> Counter[str]:
        """Record finished talks in one transaction: attempts, audit rows, new states.

        An effect whose claim no longer holds (another dispatcher recovered it meanwhile)
        gets its attempt and audit rows but keeps the state the other dispatcher gave it.
        """
        outcomes: Counter[str] = Counter()
        retries: list[tuple[Talked, float]] = []
        parks: list[tuple[Talked, BaseException]] = []
        with self._db.transaction() as s:
            now = self._db.now()
            ids = [t.claim.effect_id for t in talked]
            current = {
                row.id: row
                for row in s.execute(
                    select(
                        _EFFECTS.c.id,
                        _EFFECTS.c.state,
                        _EFFECTS.c.claim_token,
                        _EFFECTS.c.needs_read_back,
                    )
                    .where(_EFFECTS.c.id.in_(ids))
                    .with_for_update()
                )
            }
            s.execute(
                insert(_ATTEMPTS),
                [
                    {
                        "effect_id": t.claim.effect_id,
                        "attempt_no": t.claim.attempt_no,
                        "at": now,
                        "outcome": t.outcome,
                        "error_class": None if t.error is None else type(t.error).__name__,
                        "message": None if t.error is None else _error_text(t.error),
                        "duration_ms": t.duration_ms,
                        "dispatcher": self.owner,
                    }
                    for t in talked
                ],
            )
            self.store.audit.record_writes(
                [
                    ExternalWrite(
                        system=t.claim.target,
                        operation=t.claim.kind,
                        idempotency_key=t.claim.idempotency_key,
                        payload=t.claim.payload,
                        outcome=t.outcome,
                        duration_ms=t.duration_ms,
                        subject=f"effect:{t.claim.effect_id}",
                    )
                    for t in talked
                    if t.outcome != "read_back_failed"
                ],
                at=now,
                session=s,
            )
            changes: list[dict[str, Any]] = []
            done = 0
            for t in talked:
                row = current.get(t.claim.effect_id)
                held = (
                    row is not None and row.state == IN_FLIGHT and row.claim_token == t.claim.token
                )
                if not held:
                    log.warning(
                        "effect %s: claim lost while sending (now %s); another dispatcher took "
                        "over and will read back",
                        t.claim.idempotency_key,
                        None if row is None else row.state,
                    )
                    outcomes[t.outcome if t.done or t.park else "retried"] += 1
                    continue
                assert row is not None
                change: dict[str, Any] = {
                    "effect_id_": t.claim.effect_id,
                    "token_": t.claim.token,
                    "claim_token": None,
                    "updated_at": now,
                }
                if t.done:
                    change.update(
                        state=DONE, result=t.result, needs_read_back=False, last_error=None
                    )
                    outcomes[t.outcome] += 1
                    done += 1
                else:
                    assert t.error is not None
                    change.update(
                        needs_read_back=bool(row.needs_read_back) or t.read_back,
                        last_error=_error_text(t.error),
                    )
                    if t.park:
                        change["state"] = PARKED
                        parks.append((t, t.error))
                        outcomes["parked"] += 1
                    else:
                        retry_after = getattr(t.error, "retry_after", None)
                        delay = backoff_delay(
                            t.claim.attempt_no, self.settings, retry_after, self._rng
                        )
                        if t.read_back:  # let a late apply land before reading back
                            delay = max(delay, self.settings.read_back_after_s)
                        change.update(state=PENDING, next_attempt_at=now + timedelta(seconds=delay))
                        retries.append((t, delay))
                        outcomes["retried"] += 1
                changes.append(change)
            _update_effects(s, changes)
            for t, exc in parks:
                self._raise_parked(s, t.claim, exc)
            for _ in range(done):
                crashpoint("before_mark_done")
        for t, delay in retries:
            log.info(
                "effect %s: %s on attempt %d; retry in %.1f s",
                t.claim.idempotency_key,
                t.outcome,
                t.claim.attempt_no,
                delay,
            )
        for t, exc in parks:
            log.error("effect %s parked: %s", t.claim.idempotency_key, _error_text(exc))
        return outcomes

    def _raise_parked(self, s: Session, claim: Claim, exc: BaseException) -> None:
        reason = _error_text(exc)
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
