"""The products group's asset checks, as rules over its tables: each returns a ``Verdict``.

- ``no_invalid_code_pushed``: no SKU whose code breaks the Khaos/ACS rules went to ACS.
- ``web_coverage``: enough of the web-published SKUs are ready for sale (a warning).
- ``ready_skus_active_at_acs`` (check ``every_ready_sku_is_active_at_acs``): re-derived
  from ACS's registry, not from ``sku_mapping``: the order flow trusts
  ``ready_for_sale_skus``.
- ``not_ready_share_within_limit``: not too many SKUs on sale wait to be ready (a warning).

No Dagster here: ``defs/products.py`` turns each verdict into a check result.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.readiness import not_ready_for_sale, on_sale, ready_but_not_active
from acs_khaos_dagster.domain.sku_mapping import code_problems_series, coverage
from acs_khaos_dagster.flows.figures import Verdict, setting, table


def no_invalid_code_pushed(pushed: pd.DataFrame) -> Verdict:
    problems = code_problems_series(pushed["acs_sku"].astype(str))
    bad = pushed[problems != ""]
    return Verdict(bad.empty, {"invalid_pushed": len(bad), "sample": table(bad)})


def web_coverage(conf: Settings, sku_mapping: pd.DataFrame) -> Verdict:
    threshold = conf.products.coverage_warn_below
    share = coverage(sku_mapping)
    not_live = sku_mapping[sku_mapping["publish_on_web"] & ~sku_mapping["ready_for_sale"]]
    figures = {
        "coverage": round(share, 4),
        "threshold": setting(threshold, "products.coverage_warn_below"),
        "published_not_ready": len(not_live),
        "sample": table(not_live[["stock_id", "stock_code", "classification"]]),
    }
    return Verdict(share >= threshold, figures, warn=True)


def ready_skus_active_at_acs(ready: pd.DataFrame, registry: pd.DataFrame) -> Verdict:
    bad = ready_but_not_active(ready, registry)
    return Verdict(bad.empty, {"ready_not_active": len(bad), "skus": table(bad, limit=50)})


def not_ready_share_within_limit(conf: Settings, sku_mapping: pd.DataFrame) -> Verdict:
    """The share of Khaos SKUs on sale (not discontinued) not ready, against the setting."""
    limit = conf.products.not_ready_warn_above
    selling = on_sale(sku_mapping)
    waiting = not_ready_for_sale(selling)
    share = len(waiting) / len(selling) if len(selling) else 0.0
    figures = {
        "not_ready": len(waiting),
        "on_sale": len(selling),
        "not_ready_share": round(share, 4),
        "limit": setting(limit, "products.not_ready_warn_above"),
        "skus": table(waiting, limit=50),
    }
    return Verdict(share <= limit, figures, warn=True)
