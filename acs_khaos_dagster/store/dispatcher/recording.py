"""Recording what the dispatcher's sends came to: attempts, audit rows, new states, and an
owned exception for each effect parked.

``Recording`` is mixed into ``Dispatcher`` (``store/dispatcher/running.py``), whose
``__init__`` sets the attributes it declares.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import timedelta
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
    NOT_SENT_OUTCOMES,
    Claim,
    Talked,
    _error_text,
    backoff_delay,
)
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
