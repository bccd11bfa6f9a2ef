"""Despatch back: ACS shipments as a table, and each shipment as one Khaos ``ImportDespatch``.

Pure functions over ``domain.models`` records; no Dagster, no network, no database.

Rules (each function's docstring has the detail):
- Events arrive at least once and in any order. ``shipment_rows`` keeps one row per
  shipment whatever the arrival order or repeats.
- One ACS shipment = one ``DespatchPosting`` keyed by the ACS shipment id
  (``external_ref``); it carries only that shipment's lines. Anything that does not
  add up is a ``PostingProblem``, never a guess: unknown order or line, more units
  than are still open, an unmapped courier, an empty event.
- Lines ACS closes short are ``ShortLine`` problems for operations with the action
  to take in Khaos.
- An order is ``shipped`` only when every unit is posted or closed short.

The package's modules: ``events`` (the shipments table, the carrier map), ``postings``
(one ``ImportDespatch`` per shipment) and ``completion`` (short closures, shipped).
"""

from __future__ import annotations

from acs_khaos_dagster.domain.shipments.completion import (
    Completion,
    ShortLine,
    closed_quantities,
    order_completion,
    short_closures,
)
from acs_khaos_dagster.domain.shipments.events import (
    SHIPMENT_COLUMNS,
    CarrierMap,
    shipment_rows,
    unique_events,
)
from acs_khaos_dagster.domain.shipments.postings import (
    PostingProblem,
    ProblemKind,
    line_item_to_order_item,
    posted_quantities,
    posted_quantities_from_invoices,
    to_despatch_posting,
)

__all__ = [
    "SHIPMENT_COLUMNS",
    "CarrierMap",
    "Completion",
    "PostingProblem",
    "ProblemKind",
    "ShortLine",
    "closed_quantities",
    "line_item_to_order_item",
    "order_completion",
    "posted_quantities",
    "posted_quantities_from_invoices",
    "shipment_rows",
    "short_closures",
    "to_despatch_posting",
    "unique_events",
]
