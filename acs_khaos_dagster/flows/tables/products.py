"""The products group's tables as pandera models.

SKU master, ACS registry, mapping, ready SKUs, SKU push.
"""

import pandera.pandas as pa
from pandera.typing import Series

from acs_khaos_dagster.domain.sku_mapping import CLASSIFICATIONS


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


class AcsRegistrySchema(pa.DataFrameModel):
    """The SKU registry as ACS holds it."""

    sku: Series[str] = pa.Field(unique=True)
    barcode: Series[str]
    style: Series[str]
    colour: Series[str]
    size: Series[str]
    is_hire: Series[bool]
    status: Series[str] = pa.Field(isin=["active", "inactive", "pending"])

    class Config:
        strict = "filter"
        coerce = True


SKU_CLASSES = list(CLASSIFICATIONS)


class SkuMappingSchema(pa.DataFrameModel):
    """One row per SKU with its classification; only valid, active, matching SKUs are ready."""

    stock_id: Series[pa.Int64] = pa.Field(nullable=True)
    stock_code: Series[str]
    acs_sku: Series[str]
    classification: Series[str] = pa.Field(isin=SKU_CLASSES)
    ready_for_sale: Series[bool]
    acs_status: Series[str] = pa.Field(isin=["active", "inactive", "pending", "missing"])
    publish_on_web: Series[bool]
    mismatch_fields: Series[str]
    mismatch_detail: Series[str]
    code_problems: Series[str]

    @pa.dataframe_check
    def ready_only_when_active_valid_and_matching(cls, df):
        ready = df["ready_for_sale"]
        return ~ready | (
            (df["acs_status"] == "active")
            & (df["code_problems"] == "")
            & (df["mismatch_fields"] == "")
        )

    class Config:
        strict = False
        coerce = True


class ReadyForSaleSchema(pa.DataFrameModel):
    stock_id: Series[int] = pa.Field(unique=True)
    stock_code: Series[str]
    acs_sku: Series[str] = pa.Field(unique=True)
    is_hire: Series[bool]
    cost_price: Series[float] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


class SkuPushSchema(pa.DataFrameModel):
    """SKUs queued for ACS this run, with their outbox state."""

    stock_id: Series[int]
    acs_sku: Series[str]
    reason: Series[str] = pa.Field(isin=["new", "changed"])
    content_hash: Series[str] = pa.Field(str_length=64)
    state: Series[str]

    class Config:
        strict = "filter"
        coerce = True
