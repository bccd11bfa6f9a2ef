"""What the parts of the Khaos books share: invoice stages, the install's codes, the
SOAP faults, the finance batch's ``IssuePolicy`` and the records held (invoices, orders,
adjustment groups, returns, despatch calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, Field

from acs_khaos_dagster.domain.models import Package, SalesOrder
from acs_khaos_dagster.sandbox.khaos.install import (
    STANDARD_ADJUSTMENT_REASONS,
    STANDARD_RETURN_REASONS,
)

STAGE_CANCELLED = 1
STAGE_RELEASED = 9
STAGE_ISSUE = 16
STAGE_AWAITING_STOCK = 18
STAGE_ISSUED = 70
ISSUED_STAGES = frozenset({70, 71, 72, 73})
KNOWN_STAGES = frozenset({1, *range(9, 22), *ISSUED_STAGES})

# The modelled install's codes (``install.py``); a simulator may be set up with others.
ADJUSTMENT_REASONS = STANDARD_ADJUSTMENT_REASONS
RETURN_REASONS = STANDARD_RETURN_REASONS
CREDIT_MODES = frozenset({"auto", "review", "none"})
MAX_EXPORT_STOCK_CODES = 100


class SimFault(Exception):
    """A SOAP fault the simulator answers with (``code`` without the ``soap:`` prefix)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validation(message: str) -> SimFault:
    return SimFault("Client.Validation", message)


def not_found(message: str) -> SimFault:
    return SimFault("Client.NotFound", message)


class IssuePolicy(BaseModel):
    """How the simulated finance batch issues invoices waiting at stage 16."""

    delay: timedelta = timedelta(hours=1)
    unissued_share: float = Field(0.0, ge=0.0, le=1.0)
    hold_invoice_ids: set[int] = Field(default_factory=set)
    enabled: bool = True


@dataclass
class SimInvoice:
    invoice_id: int
    invoice_code: str
    order_id: int
    site_id: int
    stage: int
    lines: dict[int, int]  # order_item_id -> quantity
    created_at: datetime
    updated_at: datetime
    issue_date: datetime | None = None
    external_ref: str = ""
    packages: list[Package] = field(default_factory=list)
    shipped: bool = False  # created by a despatch (holds shipped quantity)
    at_issue_since: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.stage != STAGE_CANCELLED and self.stage not in ISSUED_STAGES


@dataclass
class SimOrder:
    header: SalesOrder  # header and lines; invoices live in ``invoice_ids``
    invoice_ids: list[int]
    updated_at: datetime


@dataclass
class AdjustmentRecord:
    stock_id: int
    reason_code: str
    value: Decimal
    adjust_to: int | None
    adjust_by: int | None
    level_before: int
    level_after: int


@dataclass
class AdjustmentGroupRecord:
    group_id: int
    group_ref: str
    site_id: int
    created_at: datetime
    lines: list[AdjustmentRecord]


@dataclass
class ReturnItemRecord:
    sku: str
    stock_id: int
    quantity: int
    return_reason: str
    processing: str
    source_order_item_id: int | None
    unit_net: Decimal


@dataclass
class ReturnRecord:
    return_id: int
    associated_ref: str
    customer_urn: str
    site_id: int
    created_at: datetime
    processed: bool
    credit_mode: str
    items: list[ReturnItemRecord]
    credit_note_id: int | None = None
    credit_value: Decimal = Decimal("0")
    credit_status: str = "none"  # none | review | raised


@dataclass
class DespatchCall:
    call_no: int
    order_id: int
    external_ref: str
    lines: list[tuple[int, int]]
    packages: list[Package]
    at: datetime
    invoice_id: int
    back_order_invoice_id: int | None
