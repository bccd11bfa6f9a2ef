"""The stock group's tables as pandera models.

Snapshot counts, sellable and non-sellable stock, the push.
"""

import pandera.pandas as pa
from pandera.typing import Series


class SnapshotStatusCountsSchema(pa.DataFrameModel):
    """Units of one ACS snapshot per SKU and normalised status, with the status's bucket."""

    sku: Series[str]
    status: Series[str]
    bucket: Series[str] = pa.Field(
        isin=["sellable", "allocated", "non_sellable", "on_hire", "retired", "ignore", "unknown"]
    )
    units: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check
    def unknown_is_never_sellable(cls, df):
        return ~((df["status"] == "") & (df["bucket"] == "sellable"))

    class Config:
        strict = "filter"
        coerce = True


class SellableStockSchema(pa.DataFrameModel):
    """Per StockID: units free for sale and units allocated to orders at the snapshot."""

    stock_id: Series[int] = pa.Field(unique=True)
    stock_code: Series[str]
    site_id: Series[int]
    sellable_units: Series[int] = pa.Field(ge=0)
    allocated_units: Series[int] = pa.Field(ge=0)
    statuses: Series[str] = pa.Field(description="the normalised statuses counted, '|'-joined")

    class Config:
        strict = "filter"
        coerce = True


class NonSellableStockSchema(pa.DataFrameModel):
    """Per StockID × bucket × Khaos site: units that are not for sale."""

    stock_id: Series[int]
    stock_code: Series[str]
    bucket: Series[str] = pa.Field(isin=["non_sellable", "on_hire"])
    site_id: Series[int]
    units: Series[int] = pa.Field(ge=1)

    class Config:
        strict = "filter"
        coerce = True


class StockUpdateSchema(pa.DataFrameModel):
    """Every StockID × site the push considered, with its target and what was pushed."""

    stock_id: Series[int]
    site_id: Series[int]
    acs_units: Series[int] = pa.Field(ge=0)
    correction: Series[int]
    target: Series[int] = pa.Field(ge=0)
    # Khaos's Level can be below zero (invoices issued beyond it); a line held for finance
    # leaves it there, so what was pushed can be too. Only the target never is.
    level: Series[int]
    pushed_to: Series[int]
    held_units: Series[int]
    reason: Series[str]

    class Config:
        strict = "filter"
        coerce = True
