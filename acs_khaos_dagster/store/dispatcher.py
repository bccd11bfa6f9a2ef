"""The dispatcher: sends due outbox effects exactly once, however many dispatchers run.

It never holds a database transaction open while it talks to another system:

1. claim: in one transaction, take due ``pending`` effects (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) and mark them ``in_flight`` with a fresh claim
   token, the dispatcher's name and the time; attempts += 1;
2. talk, on up to ``concurrency`` worker threads: read the target back first if the effect
   may already have happened; then **guard** — one short transaction that renews the claim
   only if this dispatcher still holds it, and settles versions (a newer version of the
   same thing supersedes this one; an older one still landing makes this one wait) — and
   only then send;
3. finish: in one transaction for every talk that has ended meanwhile (checking each claim
   token), record the attempts, the audit rows and the new states.

While it works, the dispatcher renews every claim it holds each ``heartbeat_s`` (one
statement). A claim not renewed for ``lease_s`` may be recovered by another dispatcher
(at once when its dispatcher's process is gone from this host): back to ``pending``,
read back first, and not before the longest time a request sent under the old claim could
still take to land (``http.longest_request_s`` after the last renewal, plus
``read_back_after_s``). Because the guard renews atomically right before each send, a
dispatcher whose claim was taken over never sends: the effect goes out once.

Failures are classified by class (``connectors/errors.py``, from the per-operation table in
``connectors/failures.py``): transient (not sent) → retry with capped exponential backoff
and full jitter; permanent (rejected) → parked at once with an owned exception; ambiguous
(or anything unexpected) → retry no sooner than ``read_back_after_s``, reading the target
back before any resend, because Khaos does not de-duplicate.
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
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.config import HttpSettings, OutboxSettings
from acs_khaos_dagster.connectors.errors import AmbiguousError, PermanentError, TransientError
from acs_khaos_dagster.store.audit import ExternalWrite
from acs_khaos_dagster.store.crashpoints import crashpoint
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.outbox import DONE, HELD, IN_FLIGHT, PARKED, PENDING, EffectHandler
from acs_khaos_dagster.store.schema import Effect, EffectAttempt

if TYPE_CHECKING:
    from acs_khaos_dagster.store import Store

log = logging.getLogger(__name__)

_EFFECTS = Effect.__table__
_ATTEMPTS = EffectAttempt.__table__
_KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit

# How long a finished send may wait to be recorded with others in one transaction.
RECORD_WITHIN_S = 0.05
# An effect waiting for an older version of itself to settle looks again this soon.
DEFER_S = 5.0

# Outcomes of a talk that sent nothing: no external-write audit row.
NOT_SENT_OUTCOMES = frozenset({"claim_lost", "superseded", "deferred", "read_back_failed"})


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
    the others go one at a time. The calling thread claims in batches, renews the claims it
    holds and records whatever sends have finished in one transaction; a worker touches the
    database only for the guard right before its send. Effects sharing a target and
    business key (an order's release and its cancellation) are never in flight together
    and go in the order they were claimed.
    """

    def __init__(
        self,
        store: Store,
        handlers: Mapping[str, EffectHandler],
        settings: OutboxSettings | None = None,
        *,
        http: HttpSettings | None = None,
        lease: timedelta | None = None,
        name: str | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        owner_gone: Callable[[str | None], bool] = owner_is_dead,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.settings = settings or OutboxSettings()
        self.lease = lease if lease is not None else timedelta(seconds=self.settings.lease_s)
        # A request sent under a claim can still land this long after the claim's last
        # renewal (it was renewed right before the send): recovery reads back only then.
        self.longest_request = timedelta(seconds=(http or HttpSettings()).longest_request_s)
        self.late_apply = timedelta(seconds=self.settings.read_back_after_s)
        self.owner = f"{_this_host()}:{os.getpid()}:{name or uuid.uuid4().hex[:8]}"
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._owner_gone = owner_gone
        self._db: Database = store.db

    # -- claiming ------------------------------------------------------------------------

    def recover(self) -> int:
        """Back to pending, read back first: effects whose dispatcher died or lease ran out."""
        now = self._db.now()
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
                    _EFFECTS.c.renewed_at,
                )
                .where(
                    _EFFECTS.c.state == IN_FLIGHT,
                    _EFFECTS.c.kind.in_(list(self.handlers)),
                    (_EFFECTS.c.claimed_by.is_(None)) | (_EFFECTS.c.claimed_by != self.owner),
                )
                .with_for_update(skip_locked=True)
            )
            for effect in s.execute(query).all():
                renewed: datetime | None = effect.renewed_at or effect.claimed_at
                expired = renewed is None or renewed <= now - self.lease
                gone = self._owner_gone(effect.claimed_by)
                if not expired and not gone:
                    continue
                log.warning(
                    "effect %s (%s) was in flight with %s, last renewed %s; it will be read "
                    "back before any resend",
                    effect.id,
                    effect.idempotency_key,
                    effect.claimed_by,
                    renewed,
                )
                s.execute(
                    insert(_ATTEMPTS).values(
                        effect_id=effect.id,
                        attempt_no=effect.attempts,
                        at=now,
                        outcome="interrupted",
                        message=f"claimed by {effect.claimed_by}, last renewed {renewed}",
                        duration_ms=0,
                        dispatcher=self.owner,
                    )
                )
                # A send made under the old claim may still land: read back after that. A
                # process that is gone writes nothing more, so its last request left by now.
                on_the_wire_until = (renewed or now) + self.longest_request
                if gone:
                    on_the_wire_until = min(on_the_wire_until, now)
                landed_by = on_the_wire_until + self.late_apply
                s.execute(
                    update(_EFFECTS)
                    .where(_EFFECTS.c.id == effect.id, _EFFECTS.c.state == IN_FLIGHT)
                    .values(
                        state=PENDING,
                        needs_read_back=True,
                        next_attempt_at=max(now, landed_by),
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
                    _EFFECTS.c.supersede_key,
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
                    supersede_key=row.supersede_key,
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
                        renewed_at=now,
                        attempts=bindparam("attempts_"),
                        updated_at=now,
                    ),
                    [
                        {"effect_id_": c.effect_id, "token_": c.token, "attempts_": c.attempt_no}
                        for c in claims
                    ],
                )
        return claims

    def renew(self, claims: Iterable[Claim]) -> set[str]:
        """Renew every claim we still hold; the tokens of those we no longer hold."""
        tokens = sorted({claim.token for claim in claims})
        held: set[str] = set()
        if not tokens:
            return held
        now = self._db.now()
        with self._db.transaction() as s:
            for start in range(0, len(tokens), _KEYS_PER_QUERY):
                batch = tokens[start : start + _KEYS_PER_QUERY]
                ours = (_EFFECTS.c.claim_token.in_(batch), _EFFECTS.c.state == IN_FLIGHT)
                s.execute(update(_EFFECTS).where(*ours).values(renewed_at=now))
                held.update(s.scalars(select(_EFFECTS.c.claim_token).where(*ours)))
        return set(tokens) - held

    # -- the guard ---------------------------------------------------------------------------

    def guard(self, claim: Claim) -> str | None:
        """Right before a send: renew the claim if we still hold it, and settle versions.

        ``None`` means send now. Otherwise the outcome, with the effect's state already
        set: ``claim_lost`` (another dispatcher recovered it: it is theirs now),
        ``superseded`` (a newer version exists: this one is never sent) or ``deferred``
        (an older version is in flight or may still land: this one waits, the attempt not
        counted). One transaction, so no other dispatcher can act in between.
        """
        now = self._db.now()
        with self._db.transaction() as s:
            renewed = s.execute(
                update(_EFFECTS)
                .where(
                    _EFFECTS.c.id == claim.effect_id,
                    _EFFECTS.c.claim_token == claim.token,
                    _EFFECTS.c.state == IN_FLIGHT,
                )
                .values(renewed_at=now)
            )
            if renewed.rowcount != 1:
                return "claim_lost"
            if claim.supersede_key is None:
                return None
            same = _EFFECTS.c.supersede_key == claim.supersede_key
            newer = s.scalar(
                select(_EFFECTS.c.id)
                .where(same, _EFFECTS.c.id > claim.effect_id)
                .order_by(_EFFECTS.c.id.desc())
                .limit(1)
            )
            if newer is not None:
                self.store.outbox.supersede(s, [claim.effect_id], newer_id=newer)
                return "superseded"
            wait_until, settled = self._older_versions(s, claim, now)
            if settled:
                self.store.outbox.supersede(s, settled, newer_id=claim.effect_id)
            if wait_until is None:
                return None
            s.execute(
                update(_EFFECTS)
                .where(_EFFECTS.c.id == claim.effect_id)
                .values(
                    state=PENDING,
                    claim_token=None,
                    attempts=claim.attempt_no - 1,
                    next_attempt_at=wait_until,
                    updated_at=now,
                )
            )
            return "deferred"

    def _older_versions(
        self, s: Session, claim: Claim, now: datetime
    ) -> tuple[datetime | None, list[int]]:
        """Until when older versions may still land (None: they cannot), and the older
        versions that are settled and so superseded by this one."""
        rows = s.execute(
            select(
                _EFFECTS.c.id,
                _EFFECTS.c.state,
                _EFFECTS.c.needs_read_back,
                _EFFECTS.c.next_attempt_at,
                _EFFECTS.c.updated_at,
            ).where(
                _EFFECTS.c.supersede_key == claim.supersede_key,
                _EFFECTS.c.id < claim.effect_id,
                _EFFECTS.c.state.in_((PENDING, IN_FLIGHT, HELD, PARKED)),
            )
        ).all()
        soon = now + timedelta(seconds=DEFER_S)
        waits: list[datetime] = []
        settled: list[int] = []
        for row in rows:
            if row.state == IN_FLIGHT:
                waits.append(soon)  # on the wire, or about to be: let it finish first
            elif row.needs_read_back and row.state == PENDING:
                waits.append(max(soon, row.next_attempt_at))  # its read-back decides
            elif (
                row.needs_read_back
                and row.state == PARKED
                and row.updated_at + self.late_apply > now
            ):
                waits.append(row.updated_at + self.late_apply)  # gave up lately: may land
            else:
                settled.append(row.id)
        return (max(waits) if waits else None), settled

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
        heartbeat = self.settings.heartbeat_s
        waiting: deque[Claim] = deque()  # claimed, not yet handed to a worker
        running: dict[Future[Talked], Claim] = {}
        busy: set[tuple[str, str]] = set()  # target and business key of what is in flight
        unrecorded: list[Talked] = []  # talks ended, outcome not yet in the store
        oldest = 0.0  # when the oldest unrecorded talk ended (monotonic)
        next_renewal = self._monotonic() + heartbeat
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
                if self._monotonic() >= next_renewal:
                    lost = self.renew([*waiting, *running.values()])
                    if lost:
                        log.warning("%d claims were taken over by another dispatcher", len(lost))
                        report.outcomes["claim_lost"] += sum(c.token in lost for c in waiting)
                        kept = [c for c in waiting if c.token not in lost]
                        waiting.clear()
                        waiting.extend(kept)
                    next_renewal = self._monotonic() + heartbeat
                self._hand_out(pool, waiting, running, busy, width)
                if running:
                    timeout = max(0.0, next_renewal - self._monotonic())
                    if unrecorded:
                        timeout = min(
                            timeout, max(0.0, oldest + RECORD_WITHIN_S - self._monotonic())
                        )
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
                    report.outcomes.update(self.finish(unrecorded))
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
            running[pool.submit(self.talk, claim)] = claim
        kept.extend(waiting)
        waiting.clear()
        waiting.extend(kept)

    def _idempotent(self, kind: str) -> bool:
        return bool(getattr(self.handlers[kind], "idempotent", False))

    def _elapsed_ms(self, started: float) -> int:
        return int((self._monotonic() - started) * 1000)

    def talk(self, claim: Claim) -> Talked:
        """Read back, guard, send (on a worker thread); classify the outcome."""
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
        settled = self.guard(claim)
        if settled is not None:
            return Talked(claim, settled, self._elapsed_ms(started), settled_by_guard=True)
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

    def finish(self, talked: list[Talked]) -> Counter[str]:
        """Record finished talks in one transaction: attempts, audit rows, new states.

        An effect whose claim no longer holds (another dispatcher recovered it meanwhile,
        or the guard already settled it) gets its attempt row but keeps the state it has.
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
                    if t.outcome not in NOT_SENT_OUTCOMES
                ],
                at=now,
                session=s,
            )
            changes: list[dict[str, Any]] = []
            done = 0
            for t in talked:
                if t.settled_by_guard:
                    outcomes[t.outcome] += 1
                    continue
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
                # Whether a retry has to read the target back first (it may have landed).
                "may_have_landed": not permanent,
                # What the other system said (for example ACS's 422 error list).
                "error_code": getattr(exc, "code", None),
                "error_details": list(getattr(exc, "details", None) or []),
            },
            effect_id=claim.effect_id,
            session=s,
        )
