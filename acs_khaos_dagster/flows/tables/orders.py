"""The orders group's tables as pandera models.

Released lines, releases, shipments, postings, SLA breaches.
"""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from acs_khaos_dagster.flows.despatch_postings import POSTING_STATES
from acs_khaos_dagster.flows.order_release import RELEASE_ACTIONS
from acs_khaos_dagster.flows.order_sla import SLA_KINDS


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


class OrderReleaseSchema(pa.DataFrameModel):
    """What happened to each order this run."""

    order_code: Series[str]
    order_id: Series[int]
    action: Series[str] = pa.Field(isin=RELEASE_ACTIONS)
    acknowledged: Series[bool]
    outbox_key: Series[str]
    detail: Series[str]

    class Config:
        strict = "filter"
        coerce = True


class ShipmentsSchema(pa.DataFrameModel):
    """One row per ACS shipment received this run."""

    order_number: Series[str]
    shipment_id: Series[str] = pa.Field(unique=True)
    event_id: Series[str]
    despatched_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"tz": "UTC"})
    carrier: Series[str]
    service: Series[str]
    lines: Series[str]
    units: Series[int] = pa.Field(ge=0)
    parcels: Series[int] = pa.Field(ge=0)
    tracking_numbers: Series[str]
    tracking_urls: Series[str]
    closed_short_units: Series[int] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


class ShipmentPostingsSchema(pa.DataFrameModel):
    """Each shipment handled this run and what became of it in Khaos."""

    shipment_id: Series[str] = pa.Field(unique=True)
    order_number: Series[str]
    state: Series[str] = pa.Field(isin=POSTING_STATES)
    effect_state: Series[str]
    units: Series[int] = pa.Field(ge=0)
    closed_short_units: Series[int] = pa.Field(ge=0)
    order_completion: Series[str]
    problem: Series[str]

    class Config:
        strict = "filter"
        coerce = True


class SlaBreachesSchema(pa.DataFrameModel):
    key: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=list(SLA_KINDS))
    order_number: Series[str]
    age_working_hours: Series[float]
    age_hours: Series[float]
    due_at: Series[str]

    class Config:
        strict = "filter"
        coerce = True
