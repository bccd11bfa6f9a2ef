"""Products: which ACS SKU each Khaos StockID was first registered under, and what was pushed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from acs_khaos_dagster.store.schema import Base, UTCDateTime


class SkuIdentity(Base):
    """StockID ↔ ACS SKU. The ACS SKU is fixed at first registration and never changes."""

    __tablename__ = "sku_identity"

    stock_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    acs_sku: Mapped[str] = mapped_column(String(50), unique=True)
    first_stock_code: Mapped[str] = mapped_column(String(50))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_pushed_hash: Mapped[str | None] = mapped_column(String(64))
    last_pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
