"""Khaos read-back records that are not (yet) shared domain models.

Named in the business's words, no wire field names: the outbox reads these back to
decide whether an ambiguous write was applied, and reconciliation reads them to find a
record Khaos holds twice. Each carries only what the modelled contract names.
"""

from __future__ import annotations

from decimal import Decimal

from acs_khaos_dagster.domain.models import AdjustmentLine, Record, ReturnItem


class KhaosCustomerReturn(Record):
    """A customer return as Khaos holds it, with the credit raised from it (if any)."""

    return_id: int
    associated_ref: str
    items: tuple[ReturnItem, ...]
    credit_note_id: int | None = None
    credit_value: Decimal = Decimal("0")
    credit_status: str = "none"  # none | review (pre-credit waiting for finance) | raised


class KhaosAdjustmentGroup(Record):
    """One saved stock adjustment group: Khaos's group id, the GroupRef it was sent with."""

    group_id: int
    site_id: int
    group_ref: str
    lines: tuple[AdjustmentLine, ...]


class StockFigures(Record):
    """``ExportStockStatus`` as read: ``level`` is None where the install does not report it."""

    stock_id: int
    site_id: int
    level: int | None
    available: int
    on_order: int = 0
