"""Reconciliation's duplicate check: Khaos's records as read, to ``domain.duplicates``.

The nightly reconciliation flows call these with what they already read from Khaos
(invoices, customer returns) or one extra read (adjustment groups saved since the
look-back), and raise each finding as a ``khaos_duplicate`` exception (owner finance).
An exception stays open while Khaos holds the records twice; once finance has put it
right in Khaos (a duplicate invoice cancelled, a counter-adjustment or credit reversal
booked) they mark it ignored, as the repeated record itself cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal

import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.connectors.khaos.records import KhaosAdjustmentGroup, KhaosCustomerReturn
from acs_khaos_dagster.domain import duplicates as rules
from acs_khaos_dagster.domain.models import SalesOrder
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.common import sync_exceptions
from acs_khaos_dagster.store import Store

_SYNCED_DAY = "reconciliation.duplicates_day.{source}"
# How far back adjustment groups are read (invoices and returns are read with the
# shipments and returns reconciliation already covers).
LOOKBACK = timedelta(days=92)


def invoice_frame(orders: Iterable[SalesOrder]) -> pd.DataFrame:
    """One row per invoice (``rules.INVOICE_COLUMNS``), valued at the order lines' UnitNet."""
    rows = []
    for order in orders:
        nets = {line.order_item_id: line.unit_net for line in order.lines}
        for invoice in order.invoices:
            value = sum(
                (
                    nets.get(line.order_item_id, Decimal("0")) * line.quantity
                    for line in invoice.lines
                ),
                Decimal("0"),
            )
            rows.append(
                (
                    invoice.invoice_id,
                    invoice.invoice_code,
                    invoice.external_ref,
                    invoice.stage_id,
                    sum(line.quantity for line in invoice.lines),
                    value,
                )
            )
    return pd.DataFrame(rows, columns=list(rules.INVOICE_COLUMNS))


def adjustment_frame(groups: Iterable[KhaosAdjustmentGroup], refs: set[str]) -> pd.DataFrame:
    """One row per line (``rules.ADJUSTMENT_COLUMNS``) of the groups whose GroupRef the
    integration sent (``refs``): other people's adjustments are theirs to name."""
    rows = [
        (g.group_id, g.group_ref, g.site_id, line.reason_code, line.adjust_by, line.value)
        for g in groups
        if g.group_ref in refs
        for line in g.lines
    ]
    return pd.DataFrame(rows, columns=list(rules.ADJUSTMENT_COLUMNS))


def return_frame(
    returns: Iterable[KhaosCustomerReturn], goods: Mapping[str, Decimal]
) -> pd.DataFrame:
    """One row per return (``rules.RETURN_COLUMNS``): its credit value, or where none was
    raised the goods value the integration posted under its AssociatedRef (``goods``)."""
    rows = [
        (
            r.return_id,
            r.associated_ref,
            r.credit_note_id,
            sum(i.quantity for i in r.items),
            r.credit_value or goods.get(r.associated_ref, Decimal("0")),
        )
        for r in returns
    ]
    return pd.DataFrame(rows, columns=list(rules.RETURN_COLUMNS))


def raise_duplicates(
    db: Store, source: str, found: list[rules.KhaosDuplicate], day: str
) -> int | None:
    """Open each finding of ``source`` (``invoice``, ``adjustment``, ``return``) and close
    that source's own that are gone, unless a newer day was checked already (re-running a
    past partition changes no open exception). Returns how many are open, or None."""
    name = _SYNCED_DAY.format(source=source)
    newest = db.cursors.get(name)
    if newest is not None and str(newest) > day:
        return None
    slugs = {"invoice": ("invoice",), "adjustment": ("adjustment", "write_off")}
    slugs["return"] = ("return",)
    prefixes = tuple(f"{rules.REF_PREFIX}{s}:" for s in slugs[source])
    counts = sync_exceptions(
        db,
        [d for d in found if d.entity_ref.startswith(prefixes)],
        [rules.EXCEPTION_TYPE],
        owns=lambda ref: ref.startswith(prefixes),
    )
    with db.transaction() as session:
        db.cursors.set(name, day, session)
    return counts.get(rules.EXCEPTION_TYPE, 0)


def adjustment_duplicates(
    db: Store, client: KhaosClient, conf: Settings
) -> list[rules.KhaosDuplicate]:
    """Adjustment groups Khaos saved since ``LOOKBACK`` ago, checked for a GroupRef the
    integration sent (any outbox stock adjustment) saved twice."""
    refs = {
        str(effect.payload.get("group_ref", ""))
        for effect in db.outbox.find(kind=EffectKind.KHAOS_STOCK_ADJUSTMENT)
    }
    since = integration_now(conf) - LOOKBACK
    groups = client.export_stock_adjustments(date_from=since)
    return rules.duplicate_adjustments(
        adjustment_frame(groups, refs), write_off_code=conf.khaos.reasons.write_off
    )
