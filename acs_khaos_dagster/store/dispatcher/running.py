"""The dispatcher itself: hands claimed effects to worker threads and talks to the target
(read back, guard, send), claiming and recording in batches around the sends.

Claiming and the guard are in ``claims.py``, recording in ``recording.py``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from acs_khaos_dagster.config import HttpSettings, OutboxSettings
from acs_khaos_dagster.connectors.errors import AmbiguousError, PermanentError, TransientError
from acs_khaos_dagster.store.crashpoints import crashpoint
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.dispatcher.claims import Claiming
from acs_khaos_dagster.store.dispatcher.handout import Lane, hand_out
from acs_khaos_dagster.store.dispatcher.recording import Recording
from acs_khaos_dagster.store.dispatcher.records import (
    RECORD_WITHIN_S,
    Claim,
    DispatchReport,
    Talked,
    _this_host,
    owner_is_dead,
)
from acs_khaos_dagster.store.dispatcher.workers import Workers
from acs_khaos_dagster.store.outbox import EffectHandler

if TYPE_CHECKING:
    from acs_khaos_dagster.store import Store

log = logging.getLogger(__name__)

# Claims handed to the workers at once, per worker: one sending and one queued behind it,
# so a worker that finishes starts its next send without waiting for this thread (busy
# recording or claiming) to hand one out. Still at most ``concurrency`` sends in flight
# (one per worker), never two of one business key, and at most ``import_concurrency``
# non-idempotent ones handed out, queued or sending.
HANDED_PER_WORKER = 2


class Dispatcher(Claiming, Recording):
    """Sends due effects with the registered handlers. Safe to run several at once.

    One dispatcher keeps up to ``settings.concurrency`` sends in flight on worker threads
    (handlers must be thread-safe; the HTTP clients are pooled); of those, up to
    ``settings.import_concurrency`` of handlers that are not idempotent, never two acting
    on the same entity (``handout.py``). The calling thread claims in batches, renews the claims it
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
        self._lanes: dict[str, Lane] = {}  # by claim token
        # One writer at a time on SQLite, queued here rather than in SQLite's busy handler.
        self._sqlite_writes = threading.Lock() if self._db.dialect == "sqlite" else None
        self._sqlite_guard = self._sqlite_guard_of()

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
        with self._guard_connection():
            workers = Workers(self.talk, self.settings.concurrency)
            try:
                return self._loop(limit, max_claims, workers)
            finally:
                # After a crash (or Ctrl-C) nothing more is recorded: sends still in flight,
                # or ended but unrecorded, stay claimed and are read back by whoever
                # recovers them. No send starts after this returns, and none is left
                # running behind the caller.
                workers.stop()

    def _guard_connection(self) -> AbstractContextManager[object]:
        """On SQLite, the workers' guards share one connection while the dispatcher runs."""
        if self._sqlite_guard is None:
            return nullcontext()
        return self._sqlite_guard[0].held()

    def _loop(self, limit: int, max_claims: int, workers: Workers) -> DispatchReport:
        report = DispatchReport()
        width = self.settings.concurrency
        heartbeat = self.settings.heartbeat_s
        waiting: deque[Claim] = deque()  # claimed, not yet handed to a worker
        running: dict[str, Claim] = {}  # handed to the workers, by claim token
        unrecorded: list[Talked] = []  # talks ended, outcome not yet in the store
        oldest = 0.0  # when the oldest unrecorded talk ended (monotonic)
        next_renewal = self._monotonic() + heartbeat
        # Stale claims of other dispatchers are looked for before the first claim, then
        # again once a heartbeat (a lease is many heartbeats long), not before every claim.
        next_recovery: float | None = None
        claims_made = 0
        # Whether claiming again could find something: after an empty claim, only a
        # recorded outcome (an effect retried at once) can change that.
        worth_claiming = True
        while True:
            if worth_claiming and claims_made < max_claims and len(waiting) < width:
                if next_recovery is None or self._monotonic() >= next_recovery:
                    recovered = self.recover()
                    if recovered:
                        report.outcomes["recovered"] += recovered
                    next_recovery = self._monotonic() + heartbeat
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
            self._hand_out(workers, waiting, running, width * HANDED_PER_WORKER)
            if running:
                timeout = max(0.0, next_renewal - self._monotonic())
                if unrecorded:
                    timeout = min(timeout, max(0.0, oldest + RECORD_WITHIN_S - self._monotonic()))
                finished = workers.collect(timeout)
                if finished and not unrecorded:
                    oldest = self._monotonic()
                for claim, talked in finished:
                    unrecorded.append(talked)
                    del running[claim.token]
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
        return report

    def _hand_out(
        self,
        workers: Workers,
        waiting: deque[Claim],
        running: dict[str, Claim],
        width: int,
    ) -> None:
        """Hand waiting claims to the workers, up to ``width`` handed out (``handout.hand_out``):
        each business key's order kept, and at most ``settings.import_concurrency`` that are
        not idempotent handed out, never two whose entities (order, stock item...) overlap.

        A killed dispatcher may so leave several such sends behind: each has its own claim
        and is read back on its own once its request can no longer land (``handout``'s
        docstring says why that is enough).
        """
        if not waiting or len(running) >= width:
            return
        start, kept = hand_out(
            waiting,
            [self._lane(c) for c in running.values()],
            self._lane,
            width=width,
            exclusive_width=self.settings.import_concurrency,
        )
        for claim in start:
            crashpoint("after_claim")
            running[claim.token] = claim
            workers.start(claim)
        waiting.clear()
        waiting.extend(kept)
        if len(self._lanes) > 4 * (len(kept) + len(running)) + 64:
            live = {c.token for c in (*kept, *running.values())}
            self._lanes = {t: lane for t, lane in self._lanes.items() if t in live}

    def _lane(self, claim: Claim) -> Lane:
        """How ``claim`` shares the workers (worked out once per claim)."""
        lane = self._lanes.get(claim.token)
        if lane is None:
            key = (claim.target, claim.business_key)
            handler = self.handlers[claim.kind]
            if self._idempotent(claim.kind):
                lane = Lane(key, exclusive=False)
            else:
                lane = Lane(key, exclusive=True, entities=self._entities(handler, claim))
            self._lanes[claim.token] = lane
        return lane

    @staticmethod
    def _entities(handler: EffectHandler, claim: Claim) -> frozenset[str] | None:
        """What ``claim`` acts on at the target; None (it goes alone) if the handler cannot
        say, or its payload does not tell (an effect stored by an older version)."""
        entities = getattr(handler, "entities", None)
        if entities is None:
            return None
        try:
            return frozenset(entities(claim.payload))
        except Exception:
            log.warning("effect %s: its entities are unknown; it goes alone", claim.idempotency_key)
            return None

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
            except TransientError as exc:
                if exc.rate_limited:
                    return self._rate_limited(claim, started, "read_back_rate_limited", exc)
                return self._failed(claim, started, "read_back_failed", exc, read_back=True)
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
            if exc.rate_limited:
                return self._rate_limited(claim, started, "rate_limited", exc)
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

    def _rate_limited(
        self, claim: Claim, started: float, outcome: str, exc: TransientError
    ) -> Talked:
        """Refused for the target's rate limit: nothing applied, and not a failed attempt,
        so it is never parked for it (it is retried when the target said)."""
        return Talked(claim, outcome, self._elapsed_ms(started), error=exc, rate_limited=True)

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
