"""Returns: every returned unit ACS reported, the Khaos customer returns planned for them,
and the stock adjustments (write-offs, ex-hire) for units still in Khaos's Level."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from acs_khaos_dagster.store.schema import Base, UTCDateTime


class ReturnedUnit(Base):
    """One returned unit, keyed by (return ref, unique SKU); the first file that named it wins.

    The match columns are filled once the unit is linked to its Khaos order line;
    ``associated_ref`` once it is covered by a customer return part.
    """

    __tablename__ = "returned_units"

    return_ref: Mapped[str] = mapped_column(String(60), primary_key=True)
    unique_sku: Mapped[str] = mapped_column(String(60), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingested_files.id"), index=True)
    line_number: Mapped[int] = mapped_column(Integer)
    order_number: Mapped[str | None] = mapped_column(String(60))
    line_item_id: Mapped[str | None] = mapped_column(String(60))
    sku: Mapped[str] = mapped_column(String(60))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    grade: Mapped[str] = mapped_column(String(20))
    action_taken: Mapped[str] = mapped_column(String(30))
    action_reason: Mapped[str] = mapped_column(Text)
    defect_codes: Mapped[str] = mapped_column(Text)  # pipe-separated
    repair_cost: Mapped[str] = mapped_column(String(20))  # Decimal as text
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # -- the match to the source Khaos order line
    order_item_id: Mapped[int | None] = mapped_column(Integer)
    stock_id: Mapped[int | None] = mapped_column(Integer)
    stock_code: Mapped[str | None] = mapped_column(String(50))
    customer_urn: Mapped[str | None] = mapped_column(String(60))
    unit_net: Mapped[str | None] = mapped_column(String(20))
    is_hire: Mapped[bool | None] = mapped_column(Boolean)
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # -- the customer return part that covers it
    associated_ref: Mapped[str | None] = mapped_column(String(80), index=True)
    # -- settled outside the integration (a person closed its return_unmatched exception,
    # e.g. after raising the credit in Khaos by hand): never matched or credited afterwards
    settled_by_hand_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_by_hand_by: Mapped[str | None] = mapped_column(String(120))
    settled_by_hand_note: Mapped[str | None] = mapped_column(Text)


class ReturnPostingRow(Base):
    """One Khaos customer return part (one outbox effect), with its credit as last read back."""

    __tablename__ = "return_postings"

    associated_ref: Mapped[str] = mapped_column(String(80), primary_key=True)
    return_ref: Mapped[str] = mapped_column(String(60), index=True)
    part: Mapped[int] = mapped_column(Integer)
    batch_id: Mapped[str] = mapped_column(String(40))
    credit_mode: Mapped[str] = mapped_column(String(10))
    is_hire: Mapped[bool] = mapped_column(Boolean)
    units: Mapped[int] = mapped_column(Integer)
    written_off_units: Mapped[int] = mapped_column(Integer)
    credit_value: Mapped[str] = mapped_column(String(20))
    goods_value: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    credit_status: Mapped[str | None] = mapped_column(String(20))
    credit_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReturnStockMove(Base):
    """One stock adjustment group for a returned unit still in Level (one outbox effect)."""

    __tablename__ = "return_stock_moves"

    group_ref: Mapped[str] = mapped_column(String(120), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    unique_sku: Mapped[str] = mapped_column(String(60), index=True)
    return_ref: Mapped[str] = mapped_column(String(60))
    stock_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    adjust_by: Mapped[int] = mapped_column(Integer)
    reason_code: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(20))
    happened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReturnedUnitCorrection(Base):
    """A later ACS row for a unit already taken in (same return ref and unique SKU) whose
    data differs: kept with what it changed, and whether it could still be applied."""

    __tablename__ = "returned_unit_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_ref: Mapped[str] = mapped_column(String(60), index=True)
    unique_sku: Mapped[str] = mapped_column(String(60))
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingested_files.id"))
    line_number: Mapped[int] = mapped_column(Integer)
    changes: Mapped[str] = mapped_column(Text)  # JSON {field: [before, after]}
    outcome: Mapped[str] = mapped_column(String(30))  # applied | not_applied_posted | ...
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
