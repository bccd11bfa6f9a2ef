"""Alerts: one row per alert per channel, so each is sent once and a failed one is retried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from acs_khaos_dagster.store.schema import Base, JsonType, UTCDateTime

DELIVERY_STATES = ("pending", "sending", "sent", "failed", "abandoned")


class AlertDelivery(Base):
    """An alert owed to one channel of one team.

    Keyed by what it is about (``exception:<id>``, ``run:<id>``), which occurrence
    (an exception's ``opened_at``; empty for a run), the kind (opened, closed, run_failed,
    check_failed) and the channel: the row is written before the send, so a rerun
    finds it and never sends the same alert twice. No webhook URL is stored, only the
    channel's name.
    """

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    occurrence: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    alert: Mapped[dict[str, Any]] = mapped_column(JsonType)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint(
            "subject", "occurrence", "kind", "channel", name="uq_alert_deliveries_key"
        ),
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    )

    def __repr__(self) -> str:
        return f"<AlertDelivery {self.id} {self.subject} {self.kind} {self.channel} {self.status}>"
