"""Hire: each hire unit's lifecycle as folded so far (``domain.hire_fold``), so that a run
folds only the snapshots and events that are new since the last one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from acs_khaos_dagster.store.schema import Base, UTCDateTime


class HireLifecycleEntry(Base):
    """One stage a hire unit entered, in order (``position``) per unit."""

    __tablename__ = "hire_lifecycle_entries"

    unique_sku: Mapped[str] = mapped_column(String(60), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(60))
    stage: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(120))
    # snapshot, event or inferred (a ``back`` implied by leaving ``out``).
    source: Mapped[str] = mapped_column(String(20))
    # The snapshot time of the observation that opened the entry (orders ties on ``at``).
    snapshot_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HireLifecycleUnit(Base):
    """A hire unit some snapshot listed, and when the newest that listed it was taken:
    NULL while that is the newest snapshot folded (the ``hire.lifecycle`` cursor's
    ``latest``), so a run that lists the same units as the last one rewrites no row."""

    __tablename__ = "hire_lifecycle_units"

    unique_sku: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
