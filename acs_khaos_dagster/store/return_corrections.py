"""Corrected ACS return rows and units settled by hand: the two ways a returned unit's
story changes after it was first taken in, each with its audit trail.

- **A corrected row.** ACS re-sends a unit (same ``return_ref`` and ``unique_sku``) with
  different data, usually because operations asked them to fix an order number. While the
  unit has not been posted to Khaos nor settled by hand, the correction replaces the
  stored data and clears the unit's match, so the next run matches it afresh. Once posted
  or settled it cannot change what Khaos holds: it is kept, marked not applied, for a
  person to look at. Either way the change is recorded here and in the audit log — never
  dropped silently.
- **Settled by hand.** A person closing a unit's ``return_unmatched`` exception (resolve
  or ignore) has dealt with it outside the integration — the runbook's "credit raised by
  hand". The unit is marked so, and is never matched, posted or credited automatically
  afterwards, even if a later file or a corrected row would make it match: that would be
  a second refund.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.audit import AuditLog
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import ExceptionRow
from acs_khaos_dagster.store.tables.returns import ReturnedUnit, ReturnedUnitCorrection

# The data ACS sends for a unit; the match columns are the integration's own.
CORRECTABLE = (
    "order_number",
    "line_item_id",
    "sku",
    "received_at",
    "grade",
    "action_taken",
    "action_reason",
    "defect_codes",
    "repair_cost",
)
_MATCH_COLUMNS = (
    "order_item_id",
    "stock_id",
    "stock_code",
    "customer_urn",
    "unit_net",
    "is_hire",
    "matched_at",
)
APPLIED = "applied"
NOT_APPLIED_POSTED = "not_applied_posted"
NOT_APPLIED_SETTLED = "not_applied_settled_by_hand"
INTEGRATION_ACTOR = "integration"
UNMATCHED_PREFIX = "return:return_unmatched:"
CORRECTION_COLUMNS = (
    "id",
    "return_ref",
    "unique_sku",
    "batch_id",
    "line_number",
    "changes",
    "outcome",
    "recorded_at",
)


def _comparable(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return pd.Timestamp(value).tz_convert("UTC").isoformat()
    return str(value)


@dataclass(frozen=True)
class CorrectionTaken:
    outcome: str
    changes: dict[str, list[str]]


def take_correction(
    db: Database,
    session: Session,
    file_id: int,
    line_number: int,
    incoming: dict[str, Any],
) -> CorrectionTaken | None:
    """Compare an incoming row with the stored unit; record (and apply if still possible)
    what differs. ``None`` when the row is the same data again (a re-delivery)."""
    unit = session.get(
        ReturnedUnit, (incoming["return_ref"], incoming["unique_sku"]), with_for_update=True
    )
    if unit is None:  # pragma: no cover - the caller saw a conflict on this key
        return None
    changes = {
        field: [_comparable(getattr(unit, field)), _comparable(incoming[field])]
        for field in CORRECTABLE
        if _comparable(getattr(unit, field)) != _comparable(incoming[field])
    }
    if not changes:
        return None
    if unit.associated_ref is not None:
        outcome = NOT_APPLIED_POSTED
    elif unit.settled_by_hand_at is not None:
        outcome = NOT_APPLIED_SETTLED
    else:
        outcome = APPLIED
        for field in CORRECTABLE:
            setattr(unit, field, incoming[field])
        for field in _MATCH_COLUMNS:
            setattr(unit, field, None)  # matched again from the corrected data
    now = db.now()
    session.add(
        ReturnedUnitCorrection(
            return_ref=unit.return_ref,
            unique_sku=unit.unique_sku,
            batch_id=file_id,
            line_number=line_number,
            changes=json.dumps(changes, sort_keys=True),
            outcome=outcome,
            recorded_at=now,
        )
    )
    AuditLog(db).record_action(
        actor=INTEGRATION_ACTOR,
        action="return_corrected",
        subject=f"return:{unit.return_ref}:{unit.unique_sku}",
        note=json.dumps(changes, sort_keys=True),
        outcome=outcome,
        session=session,
    )
    session.flush()
    return CorrectionTaken(outcome, changes)


def corrections(db: Database, session: Session | None = None) -> pd.DataFrame:
    with db.transaction(session) as s:
        rows = list(s.scalars(select(ReturnedUnitCorrection).order_by(ReturnedUnitCorrection.id)))
    data = [{c: getattr(r, c) for c in CORRECTION_COLUMNS} for r in rows]
    return pd.DataFrame(data, columns=list(CORRECTION_COLUMNS))


def settle_units_closed_by_hand(db: Database, session: Session | None = None) -> int:
    """Mark settled every unmatched, unposted unit whose ``return_unmatched`` exception a
    person closed (resolved or ignored). Returns how many were newly marked."""
    with db.transaction(session) as s:
        closed = list(
            s.scalars(
                select(ExceptionRow).where(
                    ExceptionRow.type == "return_unmatched",
                    ExceptionRow.status.in_(("resolved", "ignored")),
                    ExceptionRow.acted_by.is_not(None),
                    ExceptionRow.acted_by != INTEGRATION_ACTOR,
                    ExceptionRow.entity_ref.startswith(UNMATCHED_PREFIX),
                )
            )
        )
        marked = 0
        for row in closed:
            return_ref, _, unique_sku = row.entity_ref.removeprefix(UNMATCHED_PREFIX).rpartition(
                ":"
            )
            done = s.execute(
                update(ReturnedUnit)
                .where(
                    ReturnedUnit.return_ref == return_ref,
                    ReturnedUnit.unique_sku == unique_sku,
                    ReturnedUnit.settled_by_hand_at.is_(None),
                    ReturnedUnit.associated_ref.is_(None),
                )
                .values(
                    settled_by_hand_at=row.acted_at,
                    settled_by_hand_by=row.acted_by,
                    settled_by_hand_note=f"{row.status}: {row.resolution_note or ''}".strip(),
                )
            ).rowcount
            if done:
                marked += 1
                AuditLog(db).record_action(
                    actor=str(row.acted_by),
                    action="return_settled_by_hand",
                    subject=f"return:{return_ref}:{unique_sku}",
                    note=row.resolution_note,
                    session=s,
                )
        return marked
