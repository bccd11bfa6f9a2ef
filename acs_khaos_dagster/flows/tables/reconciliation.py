"""The reconciliation group's tables as pandera models.

Stock, order status, order to cash, returns, exceptions.
"""

import pandera.pandas as pa
from pandera.typing import Series

from acs_khaos_dagster.domain.reconciliation import CashStatus, OrderMismatch, StockClass


class StockReconciliationSchema(pa.DataFrameModel):
    """Per StockID × Khaos site: ACS's units against Khaos's Level, explained."""

    stock_id: Series[int]
    site_id: Series[int]
    stock_code: Series[str]
    site_name: Series[str]
    acs_units: Series[int]
    khaos_level: Series[int]
    difference: Series[int]
    value: Series[float] = pa.Field(nullable=True)
    explained_in_flight: Series[int]
    explained_push_missing: Series[int]
    unexplained: Series[int]
    unexplained_value: Series[float] = pa.Field(nullable=True)
    classification: Series[str] = pa.Field(isin=[str(c) for c in StockClass])
    in_flight_items: Series[str]
    push_missing_refs: Series[str]

    class Config:
        coerce = True


class OrderStatusReconciliationSchema(pa.DataFrameModel):
    """Per open order: its status at ACS against Khaos's."""

    order_number: Series[str] = pa.Field(unique=True)
    acs_status: Series[str]
    khaos_stage_ids: Series[str]
    khaos_cancelled: Series[bool]
    acs_shipment_ids: Series[str]
    missing_shipment_ids: Series[str]
    mismatch: Series[str] = pa.Field(isin=[str(m) for m in OrderMismatch])
    message: Series[str]

    class Config:
        coerce = True


class OrderToCashSchema(pa.DataFrameModel):
    """Per ACS shipment: its Khaos posting and invoice, age and value waiting."""

    shipment_id: Series[str] = pa.Field(unique=True)
    order_number: Series[str]
    units: Series[int] = pa.Field(ge=0)
    value: Series[float] = pa.Field(nullable=True)
    status: Series[str] = pa.Field(isin=[str(s) for s in CashStatus])
    age_hours: Series[float]
    age_bucket: Series[str]
    value_waiting: Series[float] = pa.Field(nullable=True)

    class Config:
        coerce = True


class ReturnsReconciliationSchema(pa.DataFrameModel):
    """Per graded returned unit: its credit, write-off and refund clock."""

    return_ref: Series[str]
    unique_sku: Series[str]
    associated_ref: Series[str]
    is_hire: Series[bool]
    credit_mode: Series[str]
    credit_status: Series[str]
    credit_value: Series[float] = pa.Field(nullable=True)
    credit_pending_value: Series[float] = pa.Field(nullable=True)
    days_left: Series[float] = pa.Field(nullable=True)
    refund_state: Series[str] = pa.Field(
        isin=["credited", "not_owed", "open", "due_soon", "overdue"]
    )
    written_off: Series[bool]
    write_off_status: Series[str] = pa.Field(
        isin=["not_needed", "written_off", "pending", "missing", "missing_reason"]
    )

    class Config:
        coerce = True


class IntegrationExceptionsSchema(pa.DataFrameModel):
    """The open exception queue by owner team and type."""

    type: Series[str]
    owner: Series[str]
    count: Series[int] = pa.Field(ge=1)
    oldest_age_hours: Series[float]
    target_hours: Series[float] = pa.Field(gt=0)
    over_target: Series[int] = pa.Field(ge=0)

    class Config:
        coerce = True
