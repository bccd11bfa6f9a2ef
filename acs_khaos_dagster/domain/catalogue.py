"""The SKU master as a table: pure conversions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from acs_khaos_dagster.domain.models import StockItem

SKU_MASTER_COLUMNS = [
    "stock_id",
    "stock_code",
    "description",
    "style",
    "colour",
    "size",
    "barcode",
    "cost_price",
    "sell_price",
    "is_hire",
    "discontinued",
    "publish_on_web",
    "stock_controlled",
    "scs_parent_id",
]

# Typed up front: an empty stock list (a new install, a full refresh that finds nothing)
# must give the same columns and dtypes as a full one, or a boolean mask on it fails.
SKU_MASTER_DTYPES = {
    "stock_id": "int64",
    "stock_code": "object",
    "description": "object",
    "style": "object",
    "colour": "object",
    "size": "object",
    "barcode": "object",
    "cost_price": "float64",
    "sell_price": "float64",
    "is_hire": "bool",
    "discontinued": "bool",
    "publish_on_web": "bool",
    "stock_controlled": "bool",
    "scs_parent_id": "Int64",
}


def sku_master_frame(items: Iterable[StockItem]) -> pd.DataFrame:
    """One row per Khaos stock item, keyed by ``stock_id`` (the id that never changes)."""
    rows = [
        {
            "stock_id": item.stock_id,
            "stock_code": item.stock_code,
            "description": item.description,
            "style": item.style,
            "colour": item.colour,
            "size": item.size,
            "barcode": item.barcodes[0].value if item.barcodes else "",
            "cost_price": float(item.cost_price),
            "sell_price": float(item.sell_price),
            "is_hire": item.is_hire,
            "discontinued": item.discontinued,
            "publish_on_web": item.publish_on_web,
            "stock_controlled": item.stock_controlled,
            "scs_parent_id": item.scs_parent_id,
        }
        for item in items
    ]
    frame = pd.DataFrame(rows, columns=SKU_MASTER_COLUMNS).astype(SKU_MASTER_DTYPES)
    return frame.sort_values("stock_id", kind="stable").reset_index(drop=True)
