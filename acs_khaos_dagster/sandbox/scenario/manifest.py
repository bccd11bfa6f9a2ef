"""The scenario manifest: what the generator writes and both simulators load.

A scenario is a folder holding ``manifest.json`` (this model) and the ACS files
named in ``files``. Everything is generated from ``seed``; the same seed gives
the same bytes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from acs_khaos_dagster.domain.models import (
    AcsProduct,
    Address,
    Contact,
    SalesOrder,
    Site,
    StockItem,
)

MANIFEST_NAME = "manifest.json"


class Customer(BaseModel):
    urn: str
    contact: Contact
    address: Address


class SiteLevel(BaseModel):
    """Khaos's opening Level of one StockID at one site (agrees with the ACS units)."""

    stock_id: int
    site_id: int
    level: int


class PlannedShipmentLine(BaseModel):
    order_item_id: int
    quantity: int


class FulfilmentPlan(BaseModel):
    """How ACS will fulfil one order: shipments in order, and what it closes short."""

    order_code: str
    shipments: list[list[PlannedShipmentLine]]
    closed_short: list[PlannedShipmentLine] = Field(default_factory=list)
    short_reason: str = "STOCK_NOT_FOUND"


class ScenarioFiles(BaseModel):
    stock_units: str
    returns: str


class ScenarioManifest(BaseModel):
    seed: int
    size: str
    account_code: str
    start_at: datetime  # the simulated clock's start (UTC)
    sites: list[Site]
    stock_items: list[StockItem]
    acs_registry: list[AcsProduct]  # what ACS already holds at the start
    khaos_levels: list[SiteLevel]
    customers: list[Customer]
    orders: list[SalesOrder]  # released (invoice at stage 9) at the start
    fulfilment_plans: list[FulfilmentPlan]
    files: ScenarioFiles
    counts: dict[str, int] = Field(default_factory=dict)  # summary figures for humans and tests

    @classmethod
    def load(cls, folder: Path) -> ScenarioManifest:
        return cls.model_validate_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
