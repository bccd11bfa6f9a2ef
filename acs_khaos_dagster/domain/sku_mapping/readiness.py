"""What a classified mapping gives the other flows: identity to record, SKUs ready for
sale, web coverage and the count per classification.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.domain.sku_mapping.classify import (
    CLASSIFICATIONS,
    READY_COLUMNS,
    IdentityInput,
    RegistryInput,
    _identity_dict,
    _khaos_skus,
    _registry,
)


def identity_updates(
    master: pd.DataFrame, identity: IdentityInput, registry: RegistryInput | None = None
) -> dict[int, str]:
    """StockID → ACS SKU for StockIDs to record in the identity map now.

    A StockID is recorded the first time its code is either about to be pushed (valid,
    uncontested, not discontinued) or already in ACS's registry (pass ``registry``; this
    adopts what ACS holds on the first run). An invalid or contested code is never
    recorded, so fixing it in Khaos is not mistaken for a rename. Store these in the same
    transaction as the pushes are enqueued, so a rename between the push and the next
    registry read cannot register a second SKU.
    """
    ident = _identity_dict(identity)
    skus = _khaos_skus(master, ident)
    known = set(_registry(registry)["sku"]) if registry is not None else set()
    fresh = skus.loc[
        ~skus["registered"]
        & (skus["code_problems"] == "")
        & (~skus["discontinued"] | skus["acs_sku"].isin(known))
    ]
    return {int(s): str(k) for s, k in zip(fresh["stock_id"], fresh["acs_sku"], strict=True)}


def ready_for_sale(mapping: pd.DataFrame) -> pd.DataFrame:
    """SKUs active at ACS with matching attributes: what order and stock flows may use."""
    ready = mapping.loc[mapping["ready_for_sale"], READY_COLUMNS].copy()
    ready["stock_id"] = ready["stock_id"].astype("int64")
    return ready.sort_values("stock_id", kind="stable").reset_index(drop=True)


def coverage(mapping: pd.DataFrame) -> float:
    """Share of web-published Khaos SKUs that are ready for sale (1.0 when none publish)."""
    published = mapping.loc[mapping["stock_id"].notna() & mapping["publish_on_web"]]
    if published.empty:
        return 1.0
    return float(published["ready_for_sale"].sum()) / len(published)


def summary_counts(mapping: pd.DataFrame) -> dict[str, int]:
    """Rows per classification, every classification present (zero when none)."""
    counts = mapping["classification"].value_counts()
    return {name: int(counts.get(name, 0)) for name in CLASSIFICATIONS}
