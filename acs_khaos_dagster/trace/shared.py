"""Sections every trace shows: outbox effects, open exceptions and the audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.schema import AuditEntry, Effect
from acs_khaos_dagster.trace.model import Section, _mentions, _short, _when


def _effects(store: Store, effects: Sequence[Effect], title: str = "Outbox effects") -> Section:
    rows = []
    for effect in effects:
        attempts = store.outbox.attempts(effect.id)
        tries = "; ".join(
            f"#{a.attempt_no} {_when(a.at)} {a.outcome}"
            + (f" ({a.error_class})" if a.error_class else "")
            for a in attempts
        )
        result = effect.result or {}
        outcome = ", ".join(
            f"{k}={v}" for k, v in sorted(result.items()) if k not in ("read_back", "moved")
        )
        rows.append(
            (
                str(effect.id),
                effect.kind,
                effect.idempotency_key,
                effect.state,
                str(effect.attempts),
                tries,
                outcome,
                _short(effect.last_error),
            )
        )
    columns = ("id", "kind", "key", "state", "attempts", "tries", "result", "last error")
    return Section(title, columns, rows, "" if rows else "no effect in the outbox")


def _exceptions(store: Store, refs: Iterable[str]) -> tuple[Section, list[int]]:
    pattern = _mentions(refs)
    rows, ids = [], []
    if pattern is not None:
        for item in store.exceptions.list(status=None):
            row = item.row
            if pattern.search(row.entity_ref) or pattern.search(row.message or ""):
                ids.append(row.id)
                rows.append(
                    (
                        str(row.id),
                        row.type,
                        row.owner,
                        row.status,
                        _when(row.opened_at),
                        str(row.count),
                        _short(row.message),
                    )
                )
    columns = ("id", "type", "owner", "status", "opened", "seen", "message")
    return Section("Exceptions", columns, rows, "" if rows else "no exception mentions it"), ids


def _audit(store: Store, subjects: Iterable[str], keys: Iterable[str]) -> Section:
    subjects, keys = set(subjects), set(keys)
    with store.db.transaction() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    rows = [
        (
            _when(e.at),
            e.category,
            e.actor,
            e.action,
            e.system or "",
            e.subject or "",
            e.outcome or "",
            _short(e.note),
        )
        for e in entries
        if (e.subject in subjects) or (e.idempotency_key in keys)
    ]
    columns = ("at", "category", "actor", "action", "system", "subject", "outcome", "note")
    return Section("Audit log", columns, rows, "" if rows else "no audit entry")


def _effects_where(store: Store, predicate: Any) -> list[Effect]:
    with store.db.transaction() as s:
        return [e for e in s.scalars(select(Effect).order_by(Effect.id)) if predicate(e)]


def _tail(store: Store, refs: Sequence[str], effects: Sequence[Effect]) -> list[Section]:
    """Exceptions and audit entries about the refs and their effects."""
    exceptions, ids = _exceptions(store, refs)
    subjects = [f"effect:{e.id}" for e in effects] + [f"exception:{i}" for i in ids]
    keys = [e.idempotency_key for e in effects]
    return [exceptions, _audit(store, [*subjects, *refs], keys)]
