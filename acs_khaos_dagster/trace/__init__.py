"""The journey of one order, SKU or return across Khaos, ACS and the integration's store.

Pure gathering: ``trace_order``, ``trace_sku`` and ``trace_return`` read the store (and,
for an order's invoice stages, Khaos when a client is given) and return a ``Trace`` of
titled sections of text rows. ``cli_trace`` renders it. Only references are gathered
(order numbers, shipment ids, SKUs, invoice ids): never a customer's name or address.

The package's modules: ``model`` (``Trace``, ``Section``, formatting), ``shared`` (the
effects, exceptions and audit sections), and one per subject: ``orders``, ``skus``,
``returns``.
"""

from __future__ import annotations

from acs_khaos_dagster.trace.model import MAX_ERROR, UK, Section, Trace
from acs_khaos_dagster.trace.orders import trace_order
from acs_khaos_dagster.trace.returns import trace_return
from acs_khaos_dagster.trace.skus import trace_sku

__all__ = [
    "MAX_ERROR",
    "UK",
    "Section",
    "Trace",
    "trace_order",
    "trace_return",
    "trace_sku",
]
