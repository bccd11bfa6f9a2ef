"""Pandera models of every table asset, used as their Dagster types.

A pandera Dagster type fails the step *before* the IO manager stores the value,
so a table that breaks its schema never reaches a downstream push.
"""


import pandera.pandas as pa
from dagster_pandera import pandera_schema_to_dagster_type
from pandera.typing import Series


class SkuMasterSchema(pa.DataFrameModel):
    """Khaos stock items keyed by the stable ``stock_id``."""

    stock_id: Series[int] = pa.Field(unique=True)
    stock_code: Series[str] = pa.Field(str_length={"min_value": 1})
    description: Series[str]
    style: Series[str]
    colour: Series[str]
    size: Series[str]
    barcode: Series[str] = pa.Field(description="first barcode, empty if none")
    cost_price: Series[float] = pa.Field(ge=0)
    sell_price: Series[float] = pa.Field(ge=0)
    is_hire: Series[bool]
    discontinued: Series[bool]
    publish_on_web: Series[bool]
    stock_controlled: Series[bool]
    scs_parent_id: Series[pa.Int64] = pa.Field(nullable=True)

    class Config:
        strict = "filter"
        coerce = True


class ReleasedOrderLinesSchema(pa.DataFrameModel):
    """One row per line of an order whose invoice waits at the release stage."""

    order_id: Series[int]
    order_code: Series[str]
    associated_ref: Series[str]
    site_id: Series[int]
    invoice_id: Series[int]
    order_item_id: Series[int] = pa.Field(unique=True)
    stock_id: Series[int]
    stock_code: Series[str]
    quantity: Series[int] = pa.Field(gt=0)
    unit_net: Series[float] = pa.Field(ge=0)
    is_hire: Series[bool]

    class Config:
        strict = "filter"
        coerce = True


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


SkuMasterType = pandera_schema_to_dagster_type(SkuMasterSchema)
ReleasedOrderLinesType = pandera_schema_to_dagster_type(ReleasedOrderLinesSchema)
SnapshotStatusCountsType = pandera_schema_to_dagster_type(SnapshotStatusCountsSchema)
