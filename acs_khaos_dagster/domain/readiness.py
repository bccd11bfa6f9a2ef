"""Why a Khaos SKU is not ready for sale: the list ecommerce works through.

Pure: from ``sku_mapping``'s table (``domain.sku_mapping.MAPPING_COLUMNS``).
"""

from __future__ import annotations

import pandas as pd

NOT_READY_COLUMNS = ["stock_code", "acs_sku", "classification", "acs_status", "why"]

# What to do, in ecommerce's words, per mapping classification.
_WHY = {
    "missing_in_acs": "not at ACS yet: sent by the SKU push, ACS must set it up",
    "pending_in_acs": "ACS has it pending: waits for ACS to activate it",
    "inactive_in_acs": "inactive at ACS: ask ACS to activate it, or discontinue it in Khaos",
    "attribute_mismatch": "ACS holds other details",
    "invalid_code": "its code cannot be sent to ACS",
    "renamed": "renamed in Khaos after ACS registered it",
    "discontinued": "discontinued in Khaos",
}


def not_ready_for_sale(mapping: pd.DataFrame) -> pd.DataFrame:
    """Khaos SKUs (not ACS-only ones) that are not ready for sale, with why; published
    SKUs first (they are on the website), then by stock code."""
    khaos = mapping.loc[mapping["stock_id"].notna() & ~mapping["ready_for_sale"].astype(bool)]
    why = khaos["classification"].map(_WHY).fillna(khaos["classification"].astype(str))
    detail = khaos["mismatch_detail"].fillna("").astype(str)
    problems = khaos["code_problems"].fillna("").astype(str)
    why = why.where(detail == "", why + ": " + detail)
    why = why.where(problems == "", why + " (" + problems + ")")
    out = pd.DataFrame(
        {
            "stock_code": khaos["stock_code"].astype(str),
            "acs_sku": khaos["acs_sku"].astype(str),
            "classification": khaos["classification"].astype(str),
            "acs_status": khaos["acs_status"].astype(str),
            "why": why.astype(str),
            "_published": khaos["publish_on_web"].astype(bool),
        }
    )
    out = out.sort_values(["_published", "stock_code"], ascending=[False, True], kind="stable")
    return out[NOT_READY_COLUMNS].reset_index(drop=True)


READY_NOT_ACTIVE_COLUMNS = ["stock_id", "stock_code", "acs_sku", "acs_status"]


def ready_but_not_active(ready: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """SKUs in ``ready`` (``ready_for_sale_skus``) that ACS's registry does not hold as
    active, with ACS's status (``missing`` when ACS has no such SKU).

    Re-derived from the registry alone, not from ``sku_mapping``'s classification: the
    order flow trusts ``ready_for_sale_skus``, so a SKU in it that ACS cannot fulfil would
    have orders released for it.
    """
    status = registry.drop_duplicates("sku", keep="last").set_index("sku")["status"].astype(str)
    found = ready["acs_sku"].astype(str).map(status).fillna("missing")
    bad = ready.loc[found != "active"]
    return pd.DataFrame(
        {
            "stock_id": bad["stock_id"],
            "stock_code": bad["stock_code"].astype(str),
            "acs_sku": bad["acs_sku"].astype(str),
            "acs_status": found.loc[bad.index],
        },
        columns=READY_NOT_ACTIVE_COLUMNS,
    ).reset_index(drop=True)


def on_sale(mapping: pd.DataFrame) -> pd.DataFrame:
    """The Khaos SKUs meant to be on sale: not discontinued (ACS-only rows are not Khaos's)."""
    return mapping.loc[mapping["stock_id"].notna() & ~mapping["discontinued"].astype(bool)]
