"""Alert deliveries: what is owed to which channel, what was sent, what to try again."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.tables.alerts import AlertDelivery

# Keeps the text of an error short; the notifier's errors are already free of secrets.
ERROR_MAX = 500

Key = tuple[str, str, str, str]  # subject, occurrence, kind, channel


@dataclass(frozen=True)
class PlannedDelivery:
    subject: str
    occurrence: str
    kind: str
    channel: str
    owner: str
    alert: dict[str, Any]

    @property
    def key(self) -> Key:
        return (self.subject, self.occurrence, self.kind, self.channel)


class AlertDeliveries:
    def __init__(self, db: Database) -> None:
        self._db = db

    def plan(
        self, deliveries: Iterable[PlannedDelivery], now: datetime, session: Session | None = None
    ) -> int:
        """Record deliveries owed (before anything is sent). Known keys are left alone.

        Returns how many were new.
        """
        added = 0
        with self._db.transaction(session) as s:
            for item in deliveries:
                stmt = (
                    self._db.insert(AlertDelivery)
                    .values(
                        subject=item.subject,
                        occurrence=item.occurrence,
                        kind=item.kind,
                        channel=item.channel,
                        owner=item.owner,
                        status="pending",
                        attempts=0,
                        alert=item.alert,
                        created_at=now,
                        updated_at=now,
                        next_attempt_at=now,
                    )
                    .on_conflict_do_nothing(
                        index_elements=["subject", "occurrence", "kind", "channel"]
                    )
                )
                added += s.execute(stmt).rowcount
        return added

    def keys_for(self, subjects: Iterable[str], kind: str) -> set[Key]:
        wanted = sorted(set(subjects))
        found: set[Key] = set()
        with self._db.transaction() as s:
            # Chunked: SQLite caps the number of bound parameters.
            for start in range(0, len(wanted), 500):
                rows = s.execute(
                    select(
                        AlertDelivery.subject,
                        AlertDelivery.occurrence,
                        AlertDelivery.kind,
                        AlertDelivery.channel,
                    ).where(
                        AlertDelivery.subject.in_(wanted[start : start + 500]),
                        AlertDelivery.kind == kind,
                    )
                )
                found.update((a, b, c, d) for a, b, c, d in rows)
        return found

    def unmatched(self, kind: str, closing_kind: str, subject_prefix: str) -> list[AlertDelivery]:
        """Rows of ``kind`` with no ``closing_kind`` row for the same occurrence and channel."""
        closing = aliased(AlertDelivery)
        query = (
            select(AlertDelivery)
            .outerjoin(
                closing,
                and_(
                    closing.subject == AlertDelivery.subject,
                    closing.occurrence == AlertDelivery.occurrence,
                    closing.channel == AlertDelivery.channel,
                    closing.kind == closing_kind,
                ),
            )
            .where(
                AlertDelivery.kind == kind,
                AlertDelivery.subject.startswith(subject_prefix),
                closing.id.is_(None),
            )
            .order_by(AlertDelivery.id)
        )
        with self._db.transaction() as s:
            return list(s.scalars(query))

    def claim_due(
        self, now: datetime, limit: int, stale_after: timedelta
    ) -> builtins.list[AlertDelivery]:
        """Mark up to ``limit`` due deliveries as sending and return them (oldest first).

        A delivery left "sending" by a crashed process is due again after ``stale_after``:
        a possible duplicate is better than an alert never sent. A "closed" waits for its
        "opened" on the same channel, so the two never arrive the wrong way round.
        """
        due = or_(
            and_(
                AlertDelivery.status.in_(("pending", "failed")),
                AlertDelivery.next_attempt_at <= now,
            ),
            and_(AlertDelivery.status == "sending", AlertDelivery.updated_at <= now - stale_after),
        )
        claimed: list[AlertDelivery] = []
        with self._db.transaction() as s:
            candidates = list(
                s.scalars(select(AlertDelivery).where(due).order_by(AlertDelivery.id).limit(limit))
            )
            waiting = self._openings_not_done(s, [c for c in candidates if c.kind == "closed"])
            for row in candidates:
                if row.kind == "closed" and (row.subject, row.occurrence, row.channel) in waiting:
                    continue
                done = s.execute(
                    update(AlertDelivery)
                    .where(AlertDelivery.id == row.id, AlertDelivery.status == row.status)
                    .values(status="sending", updated_at=now)
                )
                if done.rowcount == 1:
                    s.refresh(row)
                    claimed.append(row)
        return claimed

    @staticmethod
    def _openings_not_done(
        s: Session, closings: builtins.list[AlertDelivery]
    ) -> set[tuple[str, str, str]]:
        if not closings:
            return set()
        rows = s.execute(
            select(AlertDelivery.subject, AlertDelivery.occurrence, AlertDelivery.channel).where(
                AlertDelivery.kind == "opened",
                AlertDelivery.subject.in_({c.subject for c in closings}),
                AlertDelivery.status.in_(("pending", "sending", "failed")),
            )
        )
        return {(a, b, c) for a, b, c in rows}

    def mark_sent(self, delivery_id: int, now: datetime) -> None:
        with self._db.transaction() as s:
            s.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id == delivery_id)
                .values(
                    status="sent",
                    attempts=AlertDelivery.attempts + 1,
                    sent_at=now,
                    updated_at=now,
                    last_error=None,
                )
            )

    def mark_failed(
        self, delivery_id: int, now: datetime, error: str, retry_at: datetime | None
    ) -> None:
        """Record a failed try; with no ``retry_at`` the delivery is given up."""
        with self._db.transaction() as s:
            s.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id == delivery_id)
                .values(
                    status="failed" if retry_at is not None else "abandoned",
                    attempts=AlertDelivery.attempts + 1,
                    last_error=error[:ERROR_MAX],
                    updated_at=now,
                    next_attempt_at=retry_at or now,
                )
            )

    def list(
        self,
        *,
        subject: str | None = None,
        kind: str | None = None,
        status: str | None = None,
    ) -> builtins.list[AlertDelivery]:
        query = select(AlertDelivery).order_by(AlertDelivery.id)
        if subject is not None:
            query = query.where(AlertDelivery.subject == subject)
        if kind is not None:
            query = query.where(AlertDelivery.kind == kind)
        if status is not None:
            query = query.where(AlertDelivery.status == status)
        with self._db.transaction() as s:
            return list(s.scalars(query))
