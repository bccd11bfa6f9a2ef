"""The exception queue: one row per open problem a person has to look at.

A problem is keyed by its type and entity reference; seeing it again updates that row
(count, last seen) instead of adding one. Flows call ``auto_resolve`` with the references
still wrong, so fixed problems close themselves.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.config import OwnerTargets
from acs_khaos_dagster.domain.approvals import ApprovalLimits, needs_second_approval
from acs_khaos_dagster.store.audit import AuditLog
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import ExceptionRow

if TYPE_CHECKING:
    from acs_khaos_dagster.store.outbox import Outbox


class SecondApprovalNeeded(ValueError):
    """A held variance above the approval limits waits for a second, different approver."""


class ExceptionType(StrEnum):
    SKU_MISMATCH = "sku_mismatch"
    SKU_MISSING_IN_ACS = "sku_missing_in_acs"
    INVALID_SKU_CODE = "invalid_sku_code"
    SKU_RENAMED = "sku_renamed"
    SKU_NOT_LIVE = "sku_not_live"
    SKU_UNKNOWN_TO_KHAOS = "sku_unknown_to_khaos"
    SHIPMENT_UNPOSTABLE = "shipment_unpostable"
    RESALE_UNMAPPED = "resale_unmapped"
    STOCK_ITEM_UNKNOWN = "stock_item_unknown"
    ORDER_HELD = "order_held"
    ORDER_LOCKED = "order_locked"
    UNKNOWN_STOCK_STATUS = "unknown_stock_status"
    STOCK_VARIANCE_HELD = "stock_variance_held"
    SNAPSHOT_REFUSED = "snapshot_refused"
    STOCK_FILE_TRUNCATED = "stock_file_truncated"
    EFFECT_FAILED = "effect_failed"
    OUTBOX_BACKLOG = "outbox_backlog"
    ORDER_SLA_BREACH = "order_sla_breach"
    DESPATCH_CLOSED_SHORT = "despatch_closed_short"
    COURIER_UNMAPPED = "courier_unmapped"
    RETURN_UNMATCHED = "return_unmatched"
    UNKNOWN_GRADE = "unknown_grade"
    REFUND_DUE = "refund_due"
    DRIFT = "drift"
    KHAOS_DUPLICATE = "khaos_duplicate"
    HIRE_OVERDUE = "hire_overdue"
    SNAPSHOT_OVERDUE = "snapshot_overdue"
    RECONCILIATION_OVERDUE = "reconciliation_overdue"


class Owner(StrEnum):
    OPERATIONS = "operations"
    FINANCE = "finance"
    ECOMMERCE = "ecommerce"
    INTEGRATION = "integration"


SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("open", "resolved", "ignored")

# Who fixes what, by default. The product data is ecommerce's; anything that needs a
# mapping or a code change is integration's; stock value and money are finance's;
# orders and parcels are operations'.
DEFAULT_OWNERS: dict[str, Owner] = {
    ExceptionType.SKU_MISMATCH: Owner.ECOMMERCE,
    ExceptionType.SKU_MISSING_IN_ACS: Owner.ECOMMERCE,
    ExceptionType.INVALID_SKU_CODE: Owner.ECOMMERCE,
    ExceptionType.SKU_RENAMED: Owner.ECOMMERCE,
    # Published on the website but not active at ACS: nothing is sold before ACS can fulfil it.
    ExceptionType.SKU_NOT_LIVE: Owner.ECOMMERCE,
    ExceptionType.SKU_UNKNOWN_TO_KHAOS: Owner.ECOMMERCE,
    # Held for an unknown, inactive or mismatched SKU: the fix is in the product data.
    ExceptionType.ORDER_HELD: Owner.ECOMMERCE,
    ExceptionType.ORDER_LOCKED: Owner.OPERATIONS,
    # The warehouse knows what a new status means; operations decide its bucket.
    ExceptionType.UNKNOWN_STOCK_STATUS: Owner.OPERATIONS,
    ExceptionType.STOCK_VARIANCE_HELD: Owner.FINANCE,
    ExceptionType.SNAPSHOT_REFUSED: Owner.INTEGRATION,
    # ACS sent a stock file cut short: operations ask ACS to send it again.
    ExceptionType.STOCK_FILE_TRUNCATED: Owner.OPERATIONS,
    ExceptionType.EFFECT_FAILED: Owner.INTEGRATION,
    # Due effects left waiting: the sensor, the daemon or a pool is not doing its job.
    ExceptionType.OUTBOX_BACKLOG: Owner.INTEGRATION,
    ExceptionType.ORDER_SLA_BREACH: Owner.OPERATIONS,
    ExceptionType.DESPATCH_CLOSED_SHORT: Owner.OPERATIONS,
    ExceptionType.COURIER_UNMAPPED: Owner.INTEGRATION,
    # A despatch for an unknown order or line, or more units than ordered.
    ExceptionType.SHIPMENT_UNPOSTABLE: Owner.OPERATIONS,
    # An ex-hired unit to be sold with no resale StockID: the product team creates it.
    ExceptionType.RESALE_UNMAPPED: Owner.ECOMMERCE,
    # A returned or written-off unit whose stock item Khaos cannot find.
    ExceptionType.STOCK_ITEM_UNKNOWN: Owner.ECOMMERCE,
    ExceptionType.RETURN_UNMATCHED: Owner.OPERATIONS,
    ExceptionType.UNKNOWN_GRADE: Owner.INTEGRATION,
    ExceptionType.REFUND_DUE: Owner.FINANCE,
    ExceptionType.DRIFT: Owner.FINANCE,
    # Khaos holds one invoice, adjustment or return twice: stock value or money moved twice.
    ExceptionType.KHAOS_DUPLICATE: Owner.FINANCE,
    # A hire unit past its expected return date: operations chase the customer.
    ExceptionType.HIRE_OVERDUE: Owner.OPERATIONS,
    # Past its freshness deadline (defs/freshness.py): the owner of the late asset chases it.
    ExceptionType.SNAPSHOT_OVERDUE: Owner.OPERATIONS,
    ExceptionType.RECONCILIATION_OVERDUE: Owner.FINANCE,
}

DEFAULT_SEVERITIES: dict[str, str] = {
    ExceptionType.EFFECT_FAILED: "high",
    ExceptionType.STOCK_VARIANCE_HELD: "high",
    ExceptionType.ORDER_SLA_BREACH: "high",
    ExceptionType.DRIFT: "high",
    ExceptionType.REFUND_DUE: "high",
    ExceptionType.KHAOS_DUPLICATE: "high",
    ExceptionType.SKU_RENAMED: "low",
}


@dataclass(frozen=True)
class ListedException:
    row: ExceptionRow
    age: timedelta
    target_hours: float
    over_target: bool


class ExceptionNotFound(KeyError):
    pass


class ExceptionQueue:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        outbox: Outbox,
        *,
        owners: dict[str, str] | None = None,
        targets: OwnerTargets | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._outbox = outbox
        self.owners: dict[str, str] = {str(k): str(v) for k, v in DEFAULT_OWNERS.items()}
        self.owners.update(owners or {})
        self.targets = targets or OwnerTargets()

    # -- raising -----------------------------------------------------------------------

    def owner_for(self, type_: str) -> str:
        try:
            return self.owners[str(type_)]
        except KeyError:
            raise ValueError(
                f"unknown exception type {type_!r}; add it to ExceptionType or the owner map"
            ) from None

    def raise_exception(
        self,
        type: str,
        entity_ref: str,
        message: str,
        details: dict[str, Any] | None = None,
        severity: str | None = None,
        *,
        effect_id: int | None = None,
        session: Session | None = None,
    ) -> ExceptionRow:
        """Open the problem, or count one more sighting of it.

        A resolved problem seen again is reopened (a new occurrence); an ignored one stays
        ignored but its count and last sighting still move.
        """
        type_ = str(type)
        owner = self.owner_for(type_)
        severity = severity or DEFAULT_SEVERITIES.get(type_, "medium")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        now = self._db.now()
        with self._db.transaction(session) as s:
            inserted = s.execute(
                self._db.insert(ExceptionRow)
                .values(
                    type=type_,
                    entity_ref=entity_ref,
                    owner=owner,
                    severity=severity,
                    status="open",
                    message=message,
                    details=details,
                    count=1,
                    first_seen=now,
                    last_seen=now,
                    opened_at=now,
                    effect_id=effect_id,
                )
                .on_conflict_do_nothing(index_elements=["type", "entity_ref"])
            )
            row = s.scalars(
                select(ExceptionRow)
                .where(ExceptionRow.type == type_, ExceptionRow.entity_ref == entity_ref)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one()
            if inserted.rowcount == 1:
                return row
            row.count += 1
            row.last_seen = now
            row.message = message
            row.severity = severity
            if details is not None:
                row.details = details
            if effect_id is not None:
                row.effect_id = effect_id
            if row.status == "resolved":
                row.status = "open"
                row.opened_at = now
            s.flush()
            return row

    # -- reading -----------------------------------------------------------------------

    def get(self, exception_id: int, session: Session | None = None) -> ExceptionRow:
        with self._db.transaction(session) as s:
            row = s.get(ExceptionRow, exception_id)
            if row is None:
                raise ExceptionNotFound(exception_id)
            return row

    def describe(self, row: ExceptionRow) -> ListedException:
        now = self._db.now()
        end = now if row.status == "open" else (row.acted_at or now)
        age = end - row.opened_at
        target = self.targets.for_owner(row.owner)
        return ListedException(
            row=row,
            age=age,
            target_hours=target,
            over_target=row.status == "open" and age > timedelta(hours=target),
        )

    def list(
        self,
        *,
        type: str | None = None,
        owner: str | None = None,
        status: str | None = "open",
        older_than: timedelta | None = None,
        entity_ref: str | None = None,
    ) -> builtins.list[ListedException]:
        query = select(ExceptionRow).order_by(ExceptionRow.opened_at, ExceptionRow.id)
        if type:
            query = query.where(ExceptionRow.type == str(type))
        if owner:
            query = query.where(ExceptionRow.owner == str(owner))
        if status:
            query = query.where(ExceptionRow.status == status)
        if entity_ref:
            query = query.where(ExceptionRow.entity_ref == entity_ref)
        if older_than is not None:
            query = query.where(ExceptionRow.opened_at <= self._db.now() - older_than)
        with self._db.transaction() as s:
            rows = list(s.scalars(query))
        return [self.describe(row) for row in rows]

    # -- acting --------------------------------------------------------------------------

    def _close(
        self, exception_id: int, status: str, actor: str, note: str | None, action: str
    ) -> ExceptionRow:
        with self._db.transaction() as s:
            row = s.get(ExceptionRow, exception_id, with_for_update=True)
            if row is None:
                raise ExceptionNotFound(exception_id)
            row.status = status
            row.resolution_note = note
            row.acted_by = actor
            row.acted_at = self._db.now()
            if row.type == ExceptionType.EFFECT_FAILED and row.effect_id is not None:
                # Closed by a person without a retry: the effect will never be sent.
                self._outbox.abandon(row.effect_id, actor, session=s)
            self._audit.record_action(
                actor=actor, action=action, subject=f"exception:{row.id}", note=note, session=s
            )
            return row

    def resolve(self, exception_id: int, actor: str, note: str | None = None) -> ExceptionRow:
        return self._close(exception_id, "resolved", actor, note, "resolve")

    def ignore(self, exception_id: int, actor: str, note: str | None = None) -> ExceptionRow:
        return self._close(exception_id, "ignored", actor, note, "ignore")

    def retry(self, exception_id: int, actor: str) -> ExceptionRow:
        """Send a parked effect again: back to pending with its attempts reset."""
        with self._db.transaction() as s:
            row = s.get(ExceptionRow, exception_id, with_for_update=True)
            if row is None:
                raise ExceptionNotFound(exception_id)
            if row.type != ExceptionType.EFFECT_FAILED or row.effect_id is None:
                raise ValueError(
                    f"exception {exception_id} is {row.type}: only effect_failed can be retried"
                )
            requeued = self._outbox.requeue(row.effect_id, actor, session=s)
            row.status = "resolved"
            row.resolution_note = "retried" if requeued else "retry: effect was not parked"
            row.acted_by = actor
            row.acted_at = self._db.now()
            self._audit.record_action(
                actor=actor,
                action="retry",
                subject=f"exception:{row.id}",
                note=f"effect:{row.effect_id}",
                outcome="requeued" if requeued else "no_change",
                session=s,
            )
            return row

    def approve(self, exception_id: int, actor: str, limits: ApprovalLimits | None = None) -> bool:
        """Release the held effect this exception is about. Approving twice does nothing.

        With ``limits``, a held stock variance at or above them needs two people: the first
        approval is recorded (audited) and ``SecondApprovalNeeded`` raised; a second,
        different person's approval releases it. The check and the release are one locked
        transaction, whatever the exception's status: closing the exception first does not
        skip it, and a held effect behind an exception a person closed is not released."""
        waiting_for_second = False
        with self._db.transaction() as s:
            row = s.get(ExceptionRow, exception_id, with_for_update=True)
            if row is None:
                raise ExceptionNotFound(exception_id)
            if row.effect_id is None:
                raise ValueError(f"exception {exception_id} has no effect waiting for approval")
            held = self._outbox.is_held(row.effect_id, session=s)
            if row.status != "open" and held:
                raise ValueError(
                    f"exception {exception_id} was {row.status} by {row.acted_by}: its held "
                    "effect is not released by an approval; a newer snapshot's push "
                    "supersedes it"
                )
            details = dict(row.details or {})
            if (
                held
                and limits is not None
                and row.type == ExceptionType.STOCK_VARIANCE_HELD
                and needs_second_approval(details, limits)
            ):
                first = details.get("first_approved_by")
                if first == actor:
                    raise SecondApprovalNeeded(
                        f"exception {exception_id} is above the approval limits "
                        f"({limits.units} units / £{limits.value}): {actor} approved it "
                        "already; a second, different person must approve it"
                    )
                if first is None:
                    row.details = {
                        **details,
                        "first_approved_by": actor,
                        "first_approved_at": self._db.now().isoformat(),
                    }
                    self._audit.record_action(
                        actor=actor,
                        action="first_approval",
                        subject=f"exception:{row.id}",
                        note="above the approval limits: waits for a second approver",
                        session=s,
                    )
                    waiting_for_second = True
            released = not waiting_for_second and self._outbox.approve(
                row.effect_id, actor, session=s
            )
            if released and row.status == "open":
                row.status = "resolved"
                row.resolution_note = "approved"
                row.acted_by = actor
                row.acted_at = self._db.now()
        if waiting_for_second:
            assert limits is not None
            raise SecondApprovalNeeded(
                f"exception {exception_id}: {actor}'s approval is recorded; it is above the "
                f"approval limits ({limits.units} units / £{limits.value}), so nothing is "
                "booked until a second, different person approves it"
            )
        return released

    def auto_resolve(
        self,
        type: str,
        still_open_refs: Iterable[str],
        actor: str = "integration",
    ) -> builtins.list[int]:
        """Close the open exceptions of ``type`` whose entity is no longer reported."""
        keep = set(still_open_refs)
        now = self._db.now()
        with self._db.transaction() as s:
            rows = list(
                s.scalars(
                    select(ExceptionRow)
                    .where(ExceptionRow.type == str(type), ExceptionRow.status == "open")
                    .with_for_update()
                )
            )
            closed = [row.id for row in rows if row.entity_ref not in keep]
            if closed:
                s.execute(
                    update(ExceptionRow)
                    .where(ExceptionRow.id.in_(closed))
                    .values(
                        status="resolved",
                        resolution_note="no longer seen",
                        acted_by=actor,
                        acted_at=now,
                    )
                )
                for exception_id in closed:
                    self._audit.record_action(
                        actor=actor,
                        action="auto_resolve",
                        subject=f"exception:{exception_id}",
                        session=s,
                    )
            return closed

    def close_for_superseded(self, s: Session, effect_ids: list[int], reason: str) -> None:
        """A newer version replaced these effects: what was open about them is closed."""
        rows = list(
            s.scalars(
                select(ExceptionRow)
                .where(ExceptionRow.effect_id.in_(effect_ids), ExceptionRow.status == "open")
                .with_for_update()
            )
        )
        now = self._db.now()
        for row in rows:
            row.status = "resolved"
            row.resolution_note = reason
            row.acted_by = "integration"
            row.acted_at = now
            self._audit.record_action(
                actor="integration",
                action="auto_resolve",
                subject=f"exception:{row.id}",
                note=row.resolution_note,
                session=s,
            )

    def opened_since(self, since: datetime) -> builtins.list[ExceptionRow]:
        with self._db.transaction() as s:
            return list(s.scalars(select(ExceptionRow).where(ExceptionRow.opened_at >= since)))
