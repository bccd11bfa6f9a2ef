"""Order release rules: which Khaos orders go to ACS, in what shape, and which are held.

Pure functions over ``domain.models`` records; no Dagster, no network, no database.
The flow that wires them (lead's assets) is, per order read at the release stage:

1. ``release_plan`` splits the orders into those to send and back orders of orders
   already at ACS (never sent again).
2. ``validate_against_ready_skus`` decides ``release`` or ``hold``; a hold becomes an
   ``order_held`` exception naming the order and its SKUs (``ReleaseDecision.message``).
3. ``to_acs_order`` maps a releasable order; ``release_revision`` hashes the mapped body
   and ``release_outbox_key`` gives the outbox key ``order:{order_number}:{revision}``,
   so an unchanged order is never re-sent and a changed one gets a new key.
4. A 422 ``UNKNOWN_SKU``/``INACTIVE_SKU`` from ACS is turned into the same hold by
   ``hold_from_acs_rejection``.
5. ``orders_to_cancel`` finds orders cancelled in Khaos but still live at ACS;
   ``cancellation_body`` is the ``PUT`` that cancels them (its own revision, so its own
   outbox key).

The package's modules: ``couriers`` (the courier map), ``mapping`` (step 3: the ACS
body, revision and key), ``holds`` (steps 2 and 4) and ``cancellations`` (steps 1 and 5).
"""

from __future__ import annotations

from acs_khaos_dagster.domain.order_release.cancellations import (
    ReleasePlan,
    cancellation_body,
    is_back_order_of_released_order,
    needs_cancelling_at_acs,
    orders_to_cancel,
    release_plan,
)
from acs_khaos_dagster.domain.order_release.couriers import (
    CourierMap,
    DeliveryRoute,
    UnmappedCourierError,
)
from acs_khaos_dagster.domain.order_release.holds import (
    ORDER_HELD_OWNER,
    HoldReason,
    ReadySku,
    ReleaseDecision,
    SkuProblem,
    SkuReadiness,
    hold_from_acs_rejection,
    readiness_from_classification,
    validate_against_ready_skus,
)
from acs_khaos_dagster.domain.order_release.mapping import (
    HireDates,
    release_invoice,
    release_lines,
    release_outbox_key,
    release_revision,
    to_acs_order,
)

__all__ = [
    "ORDER_HELD_OWNER",
    "CourierMap",
    "DeliveryRoute",
    "HireDates",
    "HoldReason",
    "ReadySku",
    "ReleaseDecision",
    "ReleasePlan",
    "SkuProblem",
    "SkuReadiness",
    "UnmappedCourierError",
    "cancellation_body",
    "hold_from_acs_rejection",
    "is_back_order_of_released_order",
    "needs_cancelling_at_acs",
    "orders_to_cancel",
    "readiness_from_classification",
    "release_invoice",
    "release_lines",
    "release_outbox_key",
    "release_plan",
    "release_revision",
    "to_acs_order",
    "validate_against_ready_skus",
]
