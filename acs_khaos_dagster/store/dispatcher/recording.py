"""Recording what the dispatcher's sends came to: attempts, audit rows, new states, and an
owned exception for each effect parked.

``Recording`` is mixed into ``Dispatcher`` (``store/dispatcher/running.py``), whose
``__init__`` sets the attributes it declares.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.store.audit import ExternalWrite
from acs_khaos_dagster.store.crashpoints import crashpoint
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.dispatcher.records import (
    _ATTEMPTS,
    _EFFECTS,
    _KEYS_PER_QUERY,
    NOT_SENT_OUTCOMES,
    RATE_LIMITED_PREFIX,
    Claim,
    Talked,
    _error_text,
    backoff_delay,
    rate_limit_delay,
    rate_limited_since,
)
from acs_khaos_dagster.store.exceptions import ExceptionType
from acs_khaos_dagster.store.outbox import DONE, IN_FLIGHT, PARKED, PENDING

if TYPE_CHECKING:
    from acs_khaos_dagster.store import Store

log = logging.getLogger(__name__)


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


class Recording:
    """Finish talks in one transaction each batch; park what was rejected or ran out."""

    # Set by ``Dispatcher.__init__``.
    store: Store
    settings: OutboxSettings
    owner: str
    _rng: random.Random
    _db: Database
    _writing: Callable[[], AbstractContextManager[object]]  # from ``Claiming``

    # -- finishing -----------------------------------------------------------------------

    def finish(self, talked: list[Talked]) -> Counter[str]:
        """Record finished talks in one transaction: attempts, audit rows, new states.

        An effect whose claim no longer holds (another dispatcher recovered it meanwhile,
        or the guard already settled it) gets its attempt row but keeps the state it has.
        """
        outcomes: Counter[str] = Counter()
        retries: list[tuple[Talked, float]] = []
        parks: list[tuple[Talked, BaseException]] = []
        with self._writing(), self._db.transaction() as s:
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
                        _EFFECTS.c.last_error,
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
            refused_since = self._refused_since(s, talked, current)
            let_through: list[int] = []  # were refused for the rate limit, are not any more
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
                    outcomes[t.outcome if t.done or t.park or t.rate_limited else "retried"] += 1
                    continue
                assert row is not None
                was_refused = (row.last_error or "").startswith(RATE_LIMITED_PREFIX)
                if was_refused and not t.rate_limited:
                    let_through.append(t.claim.effect_id)
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
                    if t.rate_limited:
                        since = refused_since.get(t.claim.effect_id, now)
                        delay = rate_limit_delay(
                            getattr(t.error, "retry_after", None),
                            (now - since).total_seconds(),
                            self.settings,
                            self._rng,
                        )
                        change.update(
                            state=PENDING,
                            # Not an attempt: the count stays where it was before the claim.
                            attempts=t.claim.attempt_no - 1,
                            next_attempt_at=now + timedelta(seconds=delay),
                            last_error=RATE_LIMITED_PREFIX + _error_text(t.error),
                        )
                        retries.append((t, delay))
                        outcomes[t.outcome] += 1
                        if now - since > timedelta(seconds=self.settings.rate_limit_alert_after_s):
                            self._raise_rate_limited(s, t.claim, t.error, now - since)
                    elif t.park:
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
            if let_through:
                self.store.exceptions.close_for_effects(
                    s,
                    let_through,
                    "no longer refused for the rate limit",
                    type=ExceptionType.EFFECT_RATE_LIMITED,
                )
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

    def _refused_since(
        self, s: Session, talked: list[Talked], current: dict[int, Any]
    ) -> dict[int, datetime]:
        """Since when each effect refused again for the rate limit has been refused without
        a break (from its attempts, this one included). A first refusal is not looked up:
        it started now."""
        again = [
            t.claim.effect_id
            for t in talked
            if t.rate_limited
            and (row := current.get(t.claim.effect_id)) is not None
            and (row.last_error or "").startswith(RATE_LIMITED_PREFIX)
        ]
        history: dict[int, list[tuple[str, datetime]]] = {}
        for start in range(0, len(again), _KEYS_PER_QUERY):
            rows = s.execute(
                select(_ATTEMPTS.c.effect_id, _ATTEMPTS.c.outcome, _ATTEMPTS.c.at)
                .where(_ATTEMPTS.c.effect_id.in_(again[start : start + _KEYS_PER_QUERY]))
                .order_by(_ATTEMPTS.c.id)
            )
            for effect_id, outcome, at in rows:
                history.setdefault(effect_id, []).append((outcome, at))
        found = {eid: rate_limited_since(history.get(eid, [])) for eid in again}
        return {eid: since for eid, since in found.items() if since is not None}

    def _raise_rate_limited(
        self, s: Session, claim: Claim, exc: BaseException | None, waited: timedelta
    ) -> None:
        minutes = waited.total_seconds() / 60
        self.store.exceptions.raise_exception(
            ExceptionType.EFFECT_RATE_LIMITED,
            claim.idempotency_key,
            (
                f"{claim.kind} to {claim.target} for {claim.business_key} has been refused "
                f"for the rate limit for {minutes:.0f} min (alert after "
                f"{self.settings.rate_limit_alert_after_s / 60:.0f} min); it is still retried "
                "when the target says"
            ),
            details={
                "effect_id": claim.effect_id,
                "kind": claim.kind,
                "target": claim.target,
                "business_key": claim.business_key,
                "refused_for_s": round(waited.total_seconds()),
                "retry_after_s": getattr(exc, "retry_after", None),
            },
            effect_id=claim.effect_id,
            session=s,
        )

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
