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
    frame = pd.DataFrame(rows, columns=SKU_MASTER_COLUMNS)
    frame["scs_parent_id"] = frame["scs_parent_id"].astype("Int64")
    return frame.sort_values("stock_id", kind="stable").reset_index(drop=True)
