"""Returned units, the customer return parts planned for them, and their stock moves.

What has been posted (and under which part numbers) is read from here, never from Khaos:
a part whose effect is still in the outbox is as taken as one Khaos confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.returns import ReturnPosting, StockMove, UnitKey
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.return_corrections import (
    APPLIED,
    corrections,
    settle_units_closed_by_hand,
    take_correction,
)
from acs_khaos_dagster.store.tables.returns import ReturnedUnit, ReturnPostingRow, ReturnStockMove

UNIT_COLUMNS: tuple[str, ...] = (
    "return_ref",
    "unique_sku",
    "batch_id",
    "line_number",
    "order_number",
    "line_item_id",
    "sku",
    "received_at",
    "grade",
    "action_taken",
    "action_reason",
    "defect_codes",
    "repair_cost",
    "order_item_id",
    "stock_id",
    "stock_code",
    "customer_urn",
    "unit_net",
    "is_hire",
    "associated_ref",
    "settled_by_hand_at",
    "settled_by_hand_by",
    "settled_by_hand_note",
)
POSTING_COLUMNS: tuple[str, ...] = (
    "associated_ref",
    "return_ref",
    "part",
    "batch_id",
    "credit_mode",
    "is_hire",
    "units",
    "written_off_units",
    "credit_value",
    "goods_value",
    "received_at",
    "idempotency_key",
    "credit_status",
)
MOVE_COLUMNS: tuple[str, ...] = (
    "group_ref",
    "kind",
    "unique_sku",
    "return_ref",
    "stock_id",
    "site_id",
    "adjust_by",
    "reason_code",
    "value",
    "happened_at",
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None


def _frame(rows: list[Any], columns: tuple[str, ...]) -> pd.DataFrame:
    data = [{c: getattr(r, c) for c in columns} for r in rows]
    if not data:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame(data, columns=list(columns))


class StoredUnits(NamedTuple):
    """What one file's units did: new units, corrections applied, corrections kept but
    not applied (the unit was already posted or settled by hand)."""

    new: int
    corrected: int
    correction_not_applied: int


class ReturnsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- units ------------------------------------------------------------------------

    def store_units(self, file_id: int, units: pd.DataFrame, session: Session) -> StoredUnits:
        """Keep each unit of a file. A unit already known (same key) with the same data is a
        re-delivery and changes nothing; with different data it is a correction, recorded
        with its audit trail and applied while the unit is neither posted nor settled by
        hand (``store/return_corrections.py``)."""
        now = self._db.now()
        added = applied = refused = 0
        for row in units.to_dict("records"):
            defects = row.get("defect_codes")
            defects_text = "|".join(str(d) for d in defects) if defects is not None else ""
            cost = row.get("repair_cost")
            values = {
                "return_ref": str(row["return_ref"]),
                "unique_sku": str(row["unique_sku"]),
                "order_number": _text(row.get("order_number")),
                "line_item_id": _text(row.get("line_item_id")),
                "sku": str(row["sku"]),
                "received_at": pd.Timestamp(row["received_at"]).to_pydatetime(),
                "grade": _text(row.get("grade")) or "",
                "action_taken": _text(row.get("action_taken")) or "",
                "action_reason": _text(row.get("action_reason")) or "",
                "defect_codes": defects_text,
                "repair_cost": str(Decimal(str(cost)) if _text(cost) else Decimal("0.00")),
            }
            stmt = (
                self._db.insert(ReturnedUnit)
                .values(
                    **values,
                    batch_id=file_id,
                    line_number=int(row["line_number"]),
                    stored_at=now,
                )
                .on_conflict_do_nothing(index_elements=["return_ref", "unique_sku"])
            )
            if session.execute(stmt).rowcount:
                added += 1
                continue
            taken = take_correction(self._db, session, file_id, int(row["line_number"]), values)
            if taken is not None:
                applied += taken.outcome == APPLIED
                refused += taken.outcome != APPLIED
        return StoredUnits(added, applied, refused)

    def settle_units_closed_by_hand(self, session: Session | None = None) -> int:
        return settle_units_closed_by_hand(self._db, session)

    def settled_units(self, session: Session | None = None) -> set[tuple[str, str]]:
        """(return_ref, unique_sku) of every unit settled by hand."""
        with self._db.transaction(session) as s:
            rows = s.execute(
                select(ReturnedUnit.return_ref, ReturnedUnit.unique_sku).where(
                    ReturnedUnit.settled_by_hand_at.is_not(None)
                )
            )
            return {(str(r), str(u)) for r, u in rows}

    def corrections(self, session: Session | None = None) -> pd.DataFrame:
        return corrections(self._db, session)

    def units(self, session: Session | None = None) -> pd.DataFrame:
        """Every returned unit, in arrival order (file, then line)."""
        with self._db.transaction(session) as s:
            rows = list(
                s.scalars(
                    select(ReturnedUnit).order_by(ReturnedUnit.batch_id, ReturnedUnit.line_number)
                )
            )
            return _frame(rows, UNIT_COLUMNS)

    def record_matches(self, matched: pd.DataFrame, session: Session) -> None:
        now = self._db.now()
        for row in matched.to_dict("records"):
            session.execute(
                update(ReturnedUnit)
                .where(
                    ReturnedUnit.return_ref == row["return_ref"],
                    ReturnedUnit.unique_sku == row["unique_sku"],
                    ReturnedUnit.order_item_id.is_(None),
                    # settled by hand: a match now would credit it a second time
                    ReturnedUnit.settled_by_hand_at.is_(None),
                )
                .values(
                    order_item_id=int(row["order_item_id"]),
                    stock_id=int(row["stock_id"]),
                    stock_code=str(row["stock_code"]),
                    customer_urn=str(row["customer_urn"] or ""),
                    unit_net=str(row["unit_net"]),
                    is_hire=bool(row["is_hire"]),
                    matched_at=now,
                )
            )

    # -- postings ---------------------------------------------------------------------

    def posted_units(self, session: Session | None = None) -> set[UnitKey]:
        with self._db.transaction(session) as s:
            rows = s.execute(
                select(ReturnedUnit.return_ref, ReturnedUnit.unique_sku).where(
                    ReturnedUnit.associated_ref.is_not(None)
                )
            )
            return {(r, u) for r, u in rows}

    def part_numbers_used(self, session: Session | None = None) -> dict[str, int]:
        with self._db.transaction(session) as s:
            rows = s.execute(
                select(ReturnPostingRow.return_ref, func.max(ReturnPostingRow.part)).group_by(
                    ReturnPostingRow.return_ref
                )
            )
            return {ref: int(part) for ref, part in rows}

    def record_postings(self, postings: Iterable[ReturnPosting], session: Session) -> None:
        """Parts and the units they cover, in the caller's transaction (with the effects)."""
        now = self._db.now()
        for p in postings:
            session.add(
                ReturnPostingRow(
                    associated_ref=p.associated_ref,
                    return_ref=p.return_ref,
                    part=p.part,
                    batch_id=p.batch_id,
                    credit_mode=str(p.credit_mode),
                    is_hire=p.is_hire,
                    units=len(p.unique_skus),
                    written_off_units=p.written_off_units,
                    credit_value=str(p.credit_value),
                    goods_value=str(p.goods_value),
                    received_at=p.received_at,
                    idempotency_key=p.idempotency_key,
                    created_at=now,
                )
            )
            session.execute(
                update(ReturnedUnit)
                .where(
                    ReturnedUnit.return_ref == p.return_ref,
                    ReturnedUnit.unique_sku.in_(p.unique_skus),
                )
                .values(associated_ref=p.associated_ref)
            )
        session.flush()

    def postings(self, session: Session | None = None) -> pd.DataFrame:
        with self._db.transaction(session) as s:
            rows = list(s.scalars(select(ReturnPostingRow).order_by(ReturnPostingRow.created_at)))
            return _frame(rows, POSTING_COLUMNS)

    def set_credit_status(
        self, statuses: Mapping[str, str], checked_at: datetime, session: Session | None = None
    ) -> None:
        with self._db.transaction(session) as s:
            for ref, status in statuses.items():
                s.execute(
                    update(ReturnPostingRow)
                    .where(ReturnPostingRow.associated_ref == ref)
                    .values(credit_status=status, credit_checked_at=checked_at)
                )

    # -- stock moves ------------------------------------------------------------------

    def planned_group_refs(self, session: Session | None = None) -> set[str]:
        with self._db.transaction(session) as s:
            return set(s.scalars(select(ReturnStockMove.group_ref)))

    def record_moves(self, moves: Iterable[StockMove], session: Session) -> None:
        now = self._db.now()
        for move in moves:
            for group in move.groups:
                [line] = group.lines
                session.add(
                    ReturnStockMove(
                        group_ref=group.group_ref,
                        kind=str(move.kind),
                        unique_sku=move.unique_sku,
                        return_ref=move.return_ref,
                        stock_id=line.stock_id,
                        site_id=group.site_id,
                        adjust_by=int(line.adjust_by or 0),
                        reason_code=line.reason_code,
                        value=str(line.value),
                        happened_at=move.happened_at,
                        created_at=now,
                    )
                )
        session.flush()

    def moves(self, session: Session | None = None) -> pd.DataFrame:
        with self._db.transaction(session) as s:
            rows = list(s.scalars(select(ReturnStockMove).order_by(ReturnStockMove.created_at)))
            return _frame(rows, MOVE_COLUMNS)

    def restock_moments(
        self, session: Session | None = None
    ) -> tuple[dict[str, datetime], dict[str, datetime]]:
        """(each posted return part's receipt at ACS by AssociatedRef, each stock move's
        moment by GroupRef); parts and moves without a moment are left out."""
        with self._db.transaction(session) as s:
            received = dict(
                s.execute(
                    select(ReturnPostingRow.associated_ref, ReturnPostingRow.received_at)
                ).all()
            )
            happened = dict(
                s.execute(select(ReturnStockMove.group_ref, ReturnStockMove.happened_at)).all()
            )
        return (
            {k: v for k, v in received.items() if v is not None},
            {k: v for k, v in happened.items() if v is not None},
        )
