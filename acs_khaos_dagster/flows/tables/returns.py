"""The returns group's tables as pandera models.

Returned units, postings, stock moves, refund clock, hire lifecycle.
"""

import pandera.pandas as pa
from pandera.typing import Series

from acs_khaos_dagster.domain.hire import HireStage
from acs_khaos_dagster.domain.returns import StockMoveKind

CREDIT_MODES = ["auto", "review", "none"]


class ReturnedUnitsSchema(pa.DataFrameModel):
    """Every returned unit ACS reported, keyed by (return ref, unique SKU)."""

    return_ref: Series[str] = pa.Field(str_length={"min_value": 1})
    unique_sku: Series[str] = pa.Field(str_length={"min_value": 1})
    batch_id: Series[int]
    sku: Series[str]
    grade: Series[str]
    action_taken: Series[str]
    repair_cost: Series[float] = pa.Field(ge=0)
    matched: Series[bool]
    posted: Series[bool]

    class Config:
        strict = False
        coerce = True
        unique = ["return_ref", "unique_sku"]  # noqa: RUF012 (pandera reads it as is)


class ReturnPostingsSchema(pa.DataFrameModel):
    """Khaos customer return parts, one outbox effect each."""

    associated_ref: Series[str] = pa.Field(unique=True)
    return_ref: Series[str]
    part: Series[int] = pa.Field(ge=1)
    credit_mode: Series[str] = pa.Field(isin=CREDIT_MODES)
    is_hire: Series[bool]
    units: Series[int] = pa.Field(ge=1)
    credit_value: Series[float] = pa.Field(ge=0)
    state: Series[str]

    class Config:
        strict = False
        coerce = True


class ReturnStockMovesSchema(pa.DataFrameModel):
    """Adjustment groups for returned units still in Level (write-off, ex-hire)."""

    group_ref: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=[k.value for k in StockMoveKind])
    unique_sku: Series[str]
    stock_id: Series[int]
    adjust_by: Series[int] = pa.Field(isin=[-1, 1])
    value: Series[float] = pa.Field(ge=0)
    state: Series[str]

    class Config:
        strict = False
        coerce = True


class RefundClockSchema(pa.DataFrameModel):
    """Sale return parts and their 14-day refund deadline."""

    associated_ref: Series[str] = pa.Field(unique=True)
    credit_status: Series[str]
    days_left: Series[float]
    due: Series[bool]
    breached: Series[bool]

    class Config:
        strict = False
        coerce = True


class HireLifecycleSchema(pa.DataFrameModel):
    """Per hire unit: where it is now and since when."""

    unique_sku: Series[str] = pa.Field(unique=True)
    stage: Series[str] = pa.Field(isin=[s.value for s in HireStage])
    times_out: Series[int] = pa.Field(ge=0)

    class Config:
        strict = False
        coerce = True
