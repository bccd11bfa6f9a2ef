"""Append-only audit log: every external write and every human action.

Payloads are never stored, only their SHA-256 (so the log holds no customer addresses or
secrets but still proves which exact payload went out).
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import AuditEntry

SYSTEM_ACTOR = "integration"
EXTERNAL_WRITE = "external_write"
HUMAN_ACTION = "human_action"


def default_actor() -> str:
    """The operating-system user; the CLI's ``--actor`` overrides it."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def payload_sha256(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ExternalWrite:
    """One write to another system, for ``AuditLog.record_writes``."""

    system: str
    operation: str
    idempotency_key: str
    payload: Any
    outcome: str
    duration_ms: int
    subject: str | None = None
    actor: str = SYSTEM_ACTOR


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_write(
        self,
        *,
        system: str,
        operation: str,
        idempotency_key: str,
        payload: Any,
        outcome: str,
        duration_ms: int,
        subject: str | None = None,
        actor: str = SYSTEM_ACTOR,
        session: Session | None = None,
    ) -> AuditEntry:
        entry = AuditEntry(
            at=self._db.now(),
            category=EXTERNAL_WRITE,
            actor=actor,
            action=operation,
            system=system,
            subject=subject,
            idempotency_key=idempotency_key,
            payload_sha256=payload_sha256(payload),
            outcome=outcome,
            duration_ms=int(duration_ms),
        )
        with self._db.transaction(session) as s:
            s.add(entry)
            s.flush()
        return entry

    def record_writes(
        self, writes: Sequence[ExternalWrite], *, at: datetime, session: Session
    ) -> None:
        """Several writes in one multi-row INSERT: the outbox records a batch of sends at once."""
        if not writes:
            return
        session.execute(
            insert(AuditEntry.__table__),
            [
                {
                    "at": at,
                    "category": EXTERNAL_WRITE,
                    "actor": w.actor,
                    "action": w.operation,
                    "system": w.system,
                    "subject": w.subject,
                    "idempotency_key": w.idempotency_key,
                    "payload_sha256": payload_sha256(w.payload),
                    "outcome": w.outcome,
                    "duration_ms": int(w.duration_ms),
                    "note": None,
                }
                for w in writes
            ],
        )

    def record_action(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        note: str | None = None,
        outcome: str = "ok",
        session: Session | None = None,
    ) -> AuditEntry:
        entry = AuditEntry(
            at=self._db.now(),
            category=HUMAN_ACTION,
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            note=note,
        )
        with self._db.transaction(session) as s:
            s.add(entry)
            s.flush()
        return entry

    def list(
        self,
        *,
        category: str | None = None,
        subject: str | None = None,
        idempotency_key: str | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if category:
            query = query.where(AuditEntry.category == category)
        if subject:
            query = query.where(AuditEntry.subject == subject)
        if idempotency_key:
            query = query.where(AuditEntry.idempotency_key == idempotency_key)
        if action:
            query = query.where(AuditEntry.action == action)
        if limit:
            query = query.limit(limit)
        with self._db.transaction() as s:
            return list(s.scalars(query))
