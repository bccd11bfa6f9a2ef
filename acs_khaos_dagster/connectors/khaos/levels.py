"""Khaos's physical Level per StockID × site, whether or not the install reports it.

The modelled ``ExportStockStatus`` gives ``Level``, ``Available`` and ``OnOrder``; public
material shows real installs exposing per site only ``Available`` (not yet allotted to
orders) and ``OnOrder``. Where ``Level`` is absent (``khaos.stock_level_source =
available_plus_allocated``) it is rebuilt from what the contract does give:

    Level = Available + the units open invoices at that site allocate

an open invoice being one at an allocating stage (``khaos.allocating_stages``, 9–21 by
default: neither cancelled nor issued), its hire lines allocating nothing. The stock
push and reconciliation keep receiving the same ``StockLevel`` records either way.

Never map ``Available`` to ``Level``: every push would then adjust by the quantity on
open orders, selling stock twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import Literal

from acs_khaos_dagster.connectors.khaos.records import StockFigures
from acs_khaos_dagster.domain.models import SalesOrder, StockLevel

StockLevelSource = Literal["level", "available_plus_allocated"]
DEFAULT_ALLOCATING_STAGES: tuple[int, ...] = tuple(range(9, 22))


class LevelNotReported(ValueError):
    """The reply lacks ``Level`` although the settings say the install reports it."""


def allocated_units(
    orders: Iterable[SalesOrder], allocating_stages: Collection[int]
) -> Counter[tuple[int, int]]:
    """Units open invoices allocate per (StockID, site): sale lines only.

    >>> from datetime import UTC, datetime
    >>> from acs_khaos_dagster.domain.models import Invoice, InvoiceLine, OrderLine
    >>> line = OrderLine(order_item_id=1, stock_id=7, stock_code="A", quantity=2, unit_net=1)
    >>> inv = Invoice(invoice_id=9, invoice_code="I9", stage_id=12,
    ...               lines=(InvoiceLine(order_item_id=1, stock_id=7, quantity=2),))
    >>> order = SalesOrder(order_id=1, order_code="SO1", order_date=datetime(2026, 1, 1,
    ...                    tzinfo=UTC), site_id=1, lines=(line,), invoices=(inv,))
    >>> allocated_units([order], [12])
    Counter({(7, 1): 2})
    """
    totals: Counter[tuple[int, int]] = Counter()
    seen: set[int] = set()
    for order in orders:
        hire = {line.order_item_id for line in order.lines if line.is_hire}
        for invoice in order.invoices:
            if invoice.stage_id not in allocating_stages or invoice.invoice_id in seen:
                continue
            seen.add(invoice.invoice_id)
            for line in invoice.lines:
                if line.order_item_id not in hire:
                    totals[(line.stock_id, order.site_id)] += line.quantity
    return totals


def stock_levels(
    figures: Iterable[StockFigures],
    source: StockLevelSource,
    allocated: Counter[tuple[int, int]] | None = None,
) -> list[StockLevel]:
    """``StockLevel`` records from ``ExportStockStatus`` figures (``stock_code`` is not in
    that reply and is left empty)."""
    out = []
    for row in figures:
        if source == "level":
            if row.level is None:
                raise LevelNotReported(
                    "ExportStockStatus gave no Level: if this install reports only Available "
                    "and OnOrder, set khaos.stock_level_source to available_plus_allocated"
                )
            level = row.level
        else:
            level = row.available + (allocated or Counter())[(row.stock_id, row.site_id)]
        out.append(
            StockLevel(
                stock_id=row.stock_id,
                stock_code="",
                site_id=row.site_id,
                level=level,
                available=row.available,
                on_order=row.on_order,
            )
        )
    return out
