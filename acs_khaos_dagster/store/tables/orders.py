"""Orders: what was released to ACS, what ACS despatched, and the clock of each order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, false, or_
from sqlalchemy.orm import Mapped, mapped_column

from acs_khaos_dagster.store.schema import Base, JsonType, UTCDateTime


class OrderRelease(Base):
    """One Khaos order sent to ACS: the body last sent, its acknowledgement and cancellation."""

    __tablename__ = "order_releases"

    order_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    order_id: Mapped[int] = mapped_column(Integer, index=True)
    invoice_ids: Mapped[list[int]] = mapped_column(JsonType)
    revision: Mapped[str] = mapped_column(String(32))
    outbox_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    released_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # None while live at ACS; requested | cancelled | locked once Khaos cancelled it.
    cancel_state: Mapped[str | None] = mapped_column(String(20))
    cancel_outbox_key: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the order was over at ACS (every unit posted or closed short, or cancelled
    # there); None while open. The cycle's release and SLA reads take only open orders.
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class OrderObservation(Base):
    """When the integration first saw an order waiting (the stuck-order clock's inputs)."""

    __tablename__ = "order_observations"

    order_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    order_id: Mapped[int] = mapped_column(Integer)
    at_release_since: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    back_order_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # The clocks still running, by partial indexes whose condition is the reads' own
    # (``OrderBook.observe``, ``open_observations``): SQLite's planner scanned the whole
    # table for ``IS NOT NULL`` on the plain index, so the SLA's reads grew with every
    # order ever observed (BENCHMARKS.md §6).
    __table_args__ = (
        Index(
            "ix_order_observations_at_release",
            "order_code",
            sqlite_where=at_release_since.is_not(None),
            postgresql_where=at_release_since.is_not(None),
        ),
        Index(
            "ix_order_observations_running",
            "order_code",
            sqlite_where=or_(at_release_since.is_not(None), back_order_since.is_not(None)),
            postgresql_where=or_(at_release_since.is_not(None), back_order_since.is_not(None)),
        ),
    )


class DespatchEventRow(Base):
    """One ACS despatch event as received; the same ``event_id`` again changes nothing."""

    __tablename__ = "despatch_events"

    event_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    order_number: Mapped[str] = mapped_column(String(50), index=True)
    shipment_id: Mapped[str] = mapped_column(String(80), index=True)
    despatched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Its shipment is decided (queued to Khaos, or nothing to post): set by
    # ``OrderBook.record_postings``, so the day's undecided events are found by index.
    decided: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), index=True
    )


class ShipmentPosting(Base):
    """What became of one ACS shipment: queued to Khaos, nothing to post, or a problem."""

    __tablename__ = "shipment_postings"

    shipment_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    order_number: Mapped[str] = mapped_column(String(50), index=True)
    order_id: Mapped[int | None] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(String(80))
    # queued (an ImportDespatch effect exists) | nothing (closures only) | problem
    state: Mapped[str] = mapped_column(String(20))
    lines: Mapped[list[list[int]]] = mapped_column(JsonType)  # [[order_item_id, quantity]]
    closed: Mapped[list[list[int]]] = mapped_column(JsonType)  # closed short, same shape
    outbox_key: Mapped[str | None] = mapped_column(String(200))
    problem: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ShipmentInvoice(Base):
    """A shipment whose Khaos invoice was seen issued: from then on the stock push has no
    timing correction to make for it, and no longer asks Khaos about it."""

    __tablename__ = "shipment_invoices"

    shipment_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
