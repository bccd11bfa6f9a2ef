"""The ``Outbox``: records effects, answers questions about them, carries out decisions.

Recording, superseding and settling versions, looking effects up, what is due, and
people's decisions (approve, requeue, abandon) — each in the store's transactions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.audit import AuditLog, canonical_json
from acs_khaos_dagster.store.crashpoints import crashpoint
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.outbox.records import (
    FAILED,
    HELD,
    IN_FLIGHT,
    PARKED,
    PENDING,
    SUPERSEDED,
    DueEffects,
    EffectNotFound,
    NotApprovable,
    OutboxStatus,
    Settling,
    SupersededHook,
)
from acs_khaos_dagster.store.schema import Effect, EffectAttempt

log = logging.getLogger(__name__)

_KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit


class Outbox:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        self.on_superseded: SupersededHook | None = None

    def enqueue(
        self,
        kind: str,
        target: str,
        business_key: str,
        idempotency_key: str,
        payload: dict[str, Any],
        hold: bool = False,
        session: Session | None = None,
        supersede_key: str | None = None,
    ) -> Effect:
        """Record an effect. The same idempotency key again returns the first effect as is.

        With ``supersede_key``, the new effect is the newest version of that thing: older
        versions that were never sent (or were, but long enough ago to be settled) become
        ``superseded`` in the same transaction. One still in flight, or waiting to be read
        back, is settled by the dispatcher before the new one goes (see ``Dispatcher``).
        """
        now = self._db.now()
        with self._db.transaction(session) as s:
            inserted = s.execute(
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
                    supersede_key=supersede_key,
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
            if inserted.rowcount != 1 and canonical_json(effect.payload) != canonical_json(payload):
                log.warning(
                    "effect %s enqueued again with a different payload; keeping the first",
                    idempotency_key,
                )
            if inserted.rowcount == 1 and supersede_key is not None:
                self._supersede_settled_older(s, effect)
        if session is None:
            crashpoint("after_record")
        return effect

    def _supersede_settled_older(self, s: Session, newer: Effect) -> list[int]:
        """Older versions that cannot still land become superseded by ``newer``.

        One that may have landed — in flight, or waiting to be read back, or parked after an
        ambiguous failure — is left for the dispatcher's guard, which knows how long a late
        apply can take.
        """
        older = Effect.supersede_key == newer.supersede_key, Effect.id < newer.id
        settled = or_(
            Effect.state == HELD,
            and_(Effect.state.in_((PENDING, PARKED)), Effect.needs_read_back.is_(False)),
        )
        ids = list(s.scalars(select(Effect.id).where(*older, settled).with_for_update()))
        if ids:
            self.supersede(s, ids, newer_id=newer.id)
        return ids

    def supersede(
        self,
        s: Session,
        effect_ids: list[int],
        *,
        newer_id: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Mark effects superseded (audited, with why): they are never sent."""
        if not effect_ids:
            return
        now = self._db.now()
        why = reason or f"superseded by effect {newer_id}, a newer version"
        s.execute(
            update(Effect)
            .where(Effect.id.in_(effect_ids))
            .values(
                state=SUPERSEDED,
                superseded_by=newer_id,
                superseded_reason=why,
                claim_token=None,
                updated_at=now,
            )
        )
        for effect_id in effect_ids:
            self._audit.record_action(
                actor="integration",
                action="supersede",
                subject=f"effect:{effect_id}",
                note=why,
                session=s,
            )
        if self.on_superseded is not None:
            self.on_superseded(s, effect_ids, why)

    def settle_older(
        self,
        *,
        kinds: Iterable[str],
        business_key_prefix: str,
        reason: str,
        late_apply: timedelta,
    ) -> Settling:
        """Before planning a newer version of many things at once (a snapshot's push):
        supersede every earlier effect of ``kinds`` under ``business_key_prefix`` that
        cannot land any more, and say which may still land — in flight, waiting for a
        read-back, or parked after an ambiguous failure less than ``late_apply`` ago. The
        plan must wait for those, or it would count them twice.
        """
        now = self._db.now()
        mine = and_(
            Effect.kind.in_([str(k) for k in kinds]),
            Effect.business_key.startswith(business_key_prefix),
        )
        may_land = or_(
            Effect.state == IN_FLIGHT,
            and_(Effect.state == PENDING, Effect.needs_read_back.is_(True)),
            and_(
                Effect.state == PARKED,
                Effect.needs_read_back.is_(True),
                Effect.updated_at > now - late_apply,
            ),
        )
        unsent = Effect.state.in_((HELD, PENDING, PARKED))
        with self._db.transaction() as s:
            # One locked pass: read apart, an effect claimed between the two reads was
            # neither waited for nor superseded, and the plan counted it twice.
            rows = s.execute(
                select(Effect.id, Effect.state, may_land.label("may_land"))
                .where(mine, or_(may_land, unsent))
                .with_for_update()
            ).all()
            waiting = {row.id: row.state for row in rows if row.may_land}
            ids = [row.id for row in rows if not row.may_land]
            self.supersede(s, ids, reason=reason)
        return Settling(superseded=ids, unsettled=waiting)

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

    def find(
        self, *, state: str | None = None, kind: str | None = None, session: Session | None = None
    ) -> list[Effect]:
        query = select(Effect).order_by(Effect.id)
        if state:
            query = query.where(Effect.state == state)
        if kind:
            query = query.where(Effect.kind == kind)
        with self._db.transaction(session) as s:
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

    def is_held(self, effect_id: int, session: Session | None = None) -> bool:
        with self._db.transaction(session) as s:
            return self._locked(s, effect_id).state == HELD

    def approve(self, effect_id: int, actor: str, session: Session | None = None) -> bool:
        """Release a held effect to pending. False (and nothing recorded) if not held;
        ``NotApprovable`` naming the newer version if it was superseded."""
        with self._db.transaction(session) as s:
            effect = self._locked(s, effect_id)
            if effect.state == SUPERSEDED:
                raise NotApprovable(
                    f"effect {effect.id} cannot be approved: {effect.superseded_reason}"
                )
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

    def due(self, *, lease: timedelta, kinds: Iterable[str] | None = None) -> DueEffects:
        """What a dispatcher could take now: pending effects past their time, and claims
        whose lease ran out (their dispatcher stopped renewing them)."""
        now = self._db.now()
        pending_due = and_(Effect.state == PENDING, Effect.next_attempt_at <= now)
        stale = and_(
            Effect.state == IN_FLIGHT,
            func.coalesce(Effect.renewed_at, Effect.claimed_at) <= now - lease,
        )
        query = select(Effect.target, func.count(), func.min(Effect.next_attempt_at)).where(
            or_(pending_due, stale)
        )
        if kinds is not None:
            query = query.where(Effect.kind.in_([str(kind) for kind in kinds]))
        with self._db.transaction() as s:
            rows = s.execute(query.group_by(Effect.target)).all()
        by_target = {target: count for target, count, _ in rows}
        oldest = min((since for *_, since in rows if since is not None), default=None)
        return DueEffects(
            by_target=by_target,
            oldest_due_age=None if oldest is None else max(now - oldest, timedelta(0)),
        )

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
