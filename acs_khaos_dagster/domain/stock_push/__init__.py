"""The snapshot push: what each Khaos site's Level should be, and the planned changes.

Pure and vectorised (pandas): no Dagster, no network, no database. The lead's
``khaos_stock_update`` asset reads the inputs, calls these functions, records the
groups in the outbox, and raises the held lines as ``stock_variance_held``.

The specification is "Stock arithmetic" in ARCHITECTURE.md. In one sentence:

    target Level (StockID × site) = ACS's physical units on that site at the snapshot
                                    + timing corrections taken at the push

and the target is **what Khaos's Level would be at the push if it agreed with ACS
at the snapshot**. Khaos computes ``Available = Level − allocated`` itself, so the
selling site's units include what ACS holds for orders (allocated, picking,
packed): those units are in Khaos's Level until their invoice is issued. No
safety buffer ever goes into Level.

Pipeline::

    counts (snapshot.status_counts) ──acs_site_units──▶ SiteUnits.units
    despatches / returns / adjustments ──timing_corrections──▶ corrections
    SiteUnits.units + corrections + Khaos levels ──plan_push──▶ PushPlan
        (groups of AdjustmentLine per site, held variances, the full target table)

Worked example (one dress, sites selling=1, refurbishment=5). ACS at the snapshot:
7 ready, 2 packed for an order, 1 in refurbishment; a unit despatched before the
snapshot whose invoice is not issued yet at the push. Khaos at the push: selling
Level 11, refurbishment 0.

* ACS units: selling 7 + 2 = 9, refurbishment 1.
* Correction: +1 on selling (Khaos still holds the despatched unit until its
  invoice is issued; the invoice, not the push, will remove it).
* Target: selling 10, refurbishment 1. Against Khaos: selling −1, refurbishment
  +1: the StockID's total is unchanged, so it is a status move, pushed as the
  pair ``adjust to 10`` / ``adjust to 1`` with reason ``REFURBISH``.

The package's modules follow the pipeline: ``site_units`` (1), ``timing`` (2), ``plan`` (3)
with ``groups`` (its outbox units) and ``variance`` (tolerance, held lines, approvals);
``common`` holds the reason codes and the cost scale.
"""

from __future__ import annotations

from acs_khaos_dagster.domain.stock_push.common import (
    REASON_REFURBISH,
    REASON_TRANSFER,
    REASON_VARIANCE,
)
from acs_khaos_dagster.domain.stock_push.groups import group_ref, move_ref
from acs_khaos_dagster.domain.stock_push.plan import (
    PushPlan,
    cost_prices_from,
    plan_push,
    price_floats,
    price_series,
    should_push,
)
from acs_khaos_dagster.domain.stock_push.site_units import (
    SITE_DETAIL_COLUMNS,
    SITE_UNITS_COLUMNS,
    SiteUnits,
    acs_site_units,
)
from acs_khaos_dagster.domain.stock_push.timing import (
    ADJUSTMENT_COLUMNS,
    DESPATCH_COLUMNS,
    RETURN_COLUMNS,
    TIMING_CORRECTION_COLUMNS,
    CorrectionKind,
    Moment,
    empty_corrections,
    timing_corrections,
)
from acs_khaos_dagster.domain.stock_push.variance import (
    HeldVariance,
    VarianceTolerance,
    approved_variance_groups,
)

__all__ = [
    "ADJUSTMENT_COLUMNS",
    "DESPATCH_COLUMNS",
    "REASON_REFURBISH",
    "REASON_TRANSFER",
    "REASON_VARIANCE",
    "RETURN_COLUMNS",
    "SITE_DETAIL_COLUMNS",
    "SITE_UNITS_COLUMNS",
    "TIMING_CORRECTION_COLUMNS",
    "CorrectionKind",
    "HeldVariance",
    "Moment",
    "PushPlan",
    "SiteUnits",
    "VarianceTolerance",
    "acs_site_units",
    "approved_variance_groups",
    "cost_prices_from",
    "empty_corrections",
    "group_ref",
    "move_ref",
    "plan_push",
    "price_floats",
    "price_series",
    "should_push",
    "timing_corrections",
]
