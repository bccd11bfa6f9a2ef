"""Products flow, the ACS side: ACS's registry, each SKU classified against Khaos's master,
and the SKUs ready for sale with ecommerce's worklist of those that are not.

- ``map_skus`` classifies every SKU (``domain.sku_mapping.classify_skus``) with the
  identities the store keeps, and keeps one exception per mapping problem open (invalid
  codes Khaos refused are ``flows.products``' own, keyed by code).
- ``ready_for_sale_skus`` keeps the ready ones and writes every one that is not, with why,
  to a CSV beside the SKU master.

No Dagster here: ``defs/products.py`` wires these in; ``flows.products_checks`` holds the
checks' rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.readiness import NOT_READY_COLUMNS, not_ready_for_sale
from acs_khaos_dagster.domain.sku_mapping import (
    classify_skus,
    coverage,
    mapping_exceptions,
    ready_for_sale,
    summary_counts,
)
from acs_khaos_dagster.flows.figures import Figures, file_link, table
from acs_khaos_dagster.flows.products import is_code_ref
from acs_khaos_dagster.flows.queues import sync_exceptions
from acs_khaos_dagster.reports._tables import neutralise_text, write_csv
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.products import SkuIdentities

MAPPING_EXCEPTION_TYPES = (
    "invalid_sku_code",
    "sku_missing_in_acs",
    "sku_mismatch",
    "sku_renamed",
    "sku_not_live",
)
PROBLEM_COLUMNS = [
    "stock_id",
    "stock_code",
    "acs_sku",
    "classification",
    "mismatch_detail",
    "code_problems",
]


def registry_figures(registry: pd.DataFrame) -> Figures:
    """ACS's registry: SKUs in all and per status."""
    statuses = registry["status"].value_counts().items()
    return {"skus": len(registry), **{f"status_{k}": int(v) for k, v in statuses}}


@dataclass(frozen=True)
class SkuMapping:
    """One row per SKU with its classification, and the mapping exceptions open after it."""

    frame: pd.DataFrame
    open_counts: dict[str, int]

    def figures(self) -> Figures:
        mapping = self.frame
        problems = mapping[mapping["classification"] != "matched"]
        return {
            **{f"class_{name}": count for name, count in summary_counts(mapping).items()},
            "ready_for_sale": int(mapping["ready_for_sale"].sum()),
            "web_coverage": round(coverage(mapping), 4),
            **{f"open_{t}": n for t, n in self.open_counts.items()},
            "problems_sample": table(problems[PROBLEM_COLUMNS]),
        }


def map_skus(db: Store, khaos_sku_master: pd.DataFrame, registry: pd.DataFrame) -> SkuMapping:
    """Classify every SKU and sync the mapping exceptions (not those keyed by code)."""
    identity = SkuIdentities(db.db).identity()
    mapping = classify_skus(khaos_sku_master, registry, identity)
    open_counts = sync_exceptions(
        db,
        mapping_exceptions(mapping),
        MAPPING_EXCEPTION_TYPES,
        owns=lambda ref: not is_code_ref(ref),
    )
    return SkuMapping(mapping, open_counts)


def not_ready_csv_path(conf: Settings) -> Path:
    return conf.data_dir / "products" / "not_ready_for_sale.csv"


@dataclass(frozen=True)
class ReadyForSale:
    """The SKUs ready for sale, those that are not (with why) and the CSV listing them."""

    ready: pd.DataFrame
    waiting: pd.DataFrame
    csv: Path

    def figures(self, conf: Settings) -> Figures:
        return {
            "ready_for_sale": len(self.ready),
            "not_ready_for_sale": len(self.waiting),
            "not_ready_first_50": table(self.waiting, limit=50),
            "not_ready_csv": file_link(conf, self.csv),
        }


def ready_for_sale_skus(conf: Settings, sku_mapping: pd.DataFrame) -> ReadyForSale:
    """The ready SKUs; ecommerce's worklist is every other one, in the CSV (the run's
    metadata shows the first 50)."""
    waiting = not_ready_for_sale(sku_mapping)
    path = write_csv(
        not_ready_csv_path(conf),
        NOT_READY_COLUMNS,
        [[neutralise_text(str(v)) for v in row] for row in waiting.itertuples(index=False)],
    )
    return ReadyForSale(ready_for_sale(sku_mapping), waiting, path)
