"""Stock: every ACS unit snapshot taken in, and whether it was refused or pushed to Khaos."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from acs_khaos_dagster.store.schema import Base, JsonType, UTCDateTime

SNAPSHOT_STATES = ("ingested", "refused", "pushed", "skipped")


class StockSnapshot(Base):
    """One ACS stock file taken in (its unit-level data lives in Parquet under the data folder).

    ``state``: ``ingested`` (read, not pushed yet), ``refused`` (the plausibility guard said
    no; nothing pushed), ``pushed`` (its adjustment groups are in the outbox; its totals are
    the baseline of the next guard), ``skipped`` (not newer than a snapshot already pushed).
    """

    __tablename__ = "stock_snapshot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(String(60), unique=True)
    file_id: Mapped[int] = mapped_column(Integer, unique=True)
    file_name: Mapped[str] = mapped_column(String(300))
    snapshot_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    partition_day: Mapped[str] = mapped_column(String(10))
    total_units: Mapped[int] = mapped_column(Integer)
    sellable_units: Mapped[int] = mapped_column(Integer)
    unknown_units: Mapped[int] = mapped_column(Integer)
    counts_path: Mapped[str] = mapped_column(String(500))
    units_path: Mapped[str] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(20), index=True)
    reasons: Mapped[list[str] | None] = mapped_column(JsonType)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the retention removed its unit-level files (``retention.snapshot_days``), and
    # its per-status counts (kept longer while its month's final pack is not built).
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
