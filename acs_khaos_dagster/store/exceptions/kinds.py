"""What an exception is: its types, owners, severities and the rows the queue lists.
Part of ``store.exceptions``; code moved verbatim."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from acs_khaos_dagster.store.schema import ExceptionRow


class SecondApprovalNeeded(ValueError):
    """A held variance above the approval limits waits for a second, different approver."""


class ExceptionType(StrEnum):
    SKU_MISMATCH = "sku_mismatch"
    SKU_MISSING_IN_ACS = "sku_missing_in_acs"
    INVALID_SKU_CODE = "invalid_sku_code"
    SKU_RENAMED = "sku_renamed"
    SKU_NOT_LIVE = "sku_not_live"
    SKU_UNKNOWN_TO_KHAOS = "sku_unknown_to_khaos"
    SHIPMENT_UNPOSTABLE = "shipment_unpostable"
    RESALE_UNMAPPED = "resale_unmapped"
    STOCK_ITEM_UNKNOWN = "stock_item_unknown"
    ORDER_HELD = "order_held"
    ORDER_LOCKED = "order_locked"
    UNKNOWN_STOCK_STATUS = "unknown_stock_status"
    STOCK_VARIANCE_HELD = "stock_variance_held"
    SNAPSHOT_REFUSED = "snapshot_refused"
    STOCK_FILE_TRUNCATED = "stock_file_truncated"
    EFFECT_FAILED = "effect_failed"
    OUTBOX_BACKLOG = "outbox_backlog"
    EFFECT_RATE_LIMITED = "effect_rate_limited"
    ORDER_SLA_BREACH = "order_sla_breach"
    DESPATCH_CLOSED_SHORT = "despatch_closed_short"
    COURIER_UNMAPPED = "courier_unmapped"
    RETURN_UNMATCHED = "return_unmatched"
    UNKNOWN_GRADE = "unknown_grade"
    REFUND_DUE = "refund_due"
    DRIFT = "drift"
    KHAOS_DUPLICATE = "khaos_duplicate"
    HIRE_OVERDUE = "hire_overdue"
    SNAPSHOT_OVERDUE = "snapshot_overdue"
    RECONCILIATION_OVERDUE = "reconciliation_overdue"
    EXCEPTION_QUEUE_OVERDUE = "exception_queue_overdue"


class Owner(StrEnum):
    OPERATIONS = "operations"
    FINANCE = "finance"
    ECOMMERCE = "ecommerce"
    INTEGRATION = "integration"


SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("open", "resolved", "ignored")

# Who fixes what, by default. The product data is ecommerce's; anything that needs a
# mapping or a code change is integration's; stock value and money are finance's;
# orders and parcels are operations'.
DEFAULT_OWNERS: dict[str, Owner] = {
    ExceptionType.SKU_MISMATCH: Owner.ECOMMERCE,
    ExceptionType.SKU_MISSING_IN_ACS: Owner.ECOMMERCE,
    ExceptionType.INVALID_SKU_CODE: Owner.ECOMMERCE,
    ExceptionType.SKU_RENAMED: Owner.ECOMMERCE,
    # Published on the website but not active at ACS: nothing is sold before ACS can fulfil it.
    ExceptionType.SKU_NOT_LIVE: Owner.ECOMMERCE,
    ExceptionType.SKU_UNKNOWN_TO_KHAOS: Owner.ECOMMERCE,
    # Held for an unknown, inactive or mismatched SKU: the fix is in the product data.
    ExceptionType.ORDER_HELD: Owner.ECOMMERCE,
    ExceptionType.ORDER_LOCKED: Owner.OPERATIONS,
    # The warehouse knows what a new status means; operations decide its bucket.
    ExceptionType.UNKNOWN_STOCK_STATUS: Owner.OPERATIONS,
    ExceptionType.STOCK_VARIANCE_HELD: Owner.FINANCE,
    ExceptionType.SNAPSHOT_REFUSED: Owner.INTEGRATION,
    # ACS sent a stock file cut short: operations ask ACS to send it again.
    ExceptionType.STOCK_FILE_TRUNCATED: Owner.OPERATIONS,
    ExceptionType.EFFECT_FAILED: Owner.INTEGRATION,
    # Due effects left waiting: the sensor, the daemon or a pool is not doing its job.
    ExceptionType.OUTBOX_BACKLOG: Owner.INTEGRATION,
    # One change refused for the target's rate limit for too long: ask the vendor about
    # the quota, or spread the load.
    ExceptionType.EFFECT_RATE_LIMITED: Owner.INTEGRATION,
    ExceptionType.ORDER_SLA_BREACH: Owner.OPERATIONS,
    ExceptionType.DESPATCH_CLOSED_SHORT: Owner.OPERATIONS,
    ExceptionType.COURIER_UNMAPPED: Owner.INTEGRATION,
    # A despatch for an unknown order or line, or more units than ordered.
    ExceptionType.SHIPMENT_UNPOSTABLE: Owner.OPERATIONS,
    # An ex-hired unit to be sold with no resale StockID: the product team creates it.
    ExceptionType.RESALE_UNMAPPED: Owner.ECOMMERCE,
    # A returned or written-off unit whose stock item Khaos cannot find.
    ExceptionType.STOCK_ITEM_UNKNOWN: Owner.ECOMMERCE,
    ExceptionType.RETURN_UNMATCHED: Owner.OPERATIONS,
    ExceptionType.UNKNOWN_GRADE: Owner.INTEGRATION,
    ExceptionType.REFUND_DUE: Owner.FINANCE,
    ExceptionType.DRIFT: Owner.FINANCE,
    # Khaos holds one invoice, adjustment or return twice: stock value or money moved twice.
    ExceptionType.KHAOS_DUPLICATE: Owner.FINANCE,
    # A hire unit past its expected return date: operations chase the customer.
    ExceptionType.HIRE_OVERDUE: Owner.OPERATIONS,
    # Past its freshness deadline (defs/freshness.py): the owner of the late asset chases it.
    ExceptionType.SNAPSHOT_OVERDUE: Owner.OPERATIONS,
    ExceptionType.RECONCILIATION_OVERDUE: Owner.FINANCE,
    # The night's exception-queue table (integration_exceptions) is the integration's own.
    ExceptionType.EXCEPTION_QUEUE_OVERDUE: Owner.INTEGRATION,
}

DEFAULT_SEVERITIES: dict[str, str] = {
    ExceptionType.EFFECT_FAILED: "high",
    ExceptionType.STOCK_VARIANCE_HELD: "high",
    ExceptionType.ORDER_SLA_BREACH: "high",
    ExceptionType.DRIFT: "high",
    ExceptionType.REFUND_DUE: "high",
    ExceptionType.KHAOS_DUPLICATE: "high",
    ExceptionType.SKU_RENAMED: "low",
}


@dataclass(frozen=True)
class ListedException:
    row: ExceptionRow
    age: timedelta
    target_hours: float
    over_target: bool


class ExceptionNotFound(KeyError):
    pass
