"""Khaos read-back records that are not (yet) shared domain models.

Named in the business's words, no wire field names: the outbox reads these back
to decide whether an ambiguous ``ImportCustomerReturns`` was applied.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import field_validator

from acs_khaos_dagster.domain.models import Record, ReturnItem, _require_utc


class KhaosCustomerReturn(Record):
    """A customer return as Khaos holds it, with the credit raised from it (if any)."""

    return_id: int
    associated_ref: str
    customer_urn: str
    site_id: int
    created_at: datetime
    processed: bool
    credit_mode: str
    items: tuple[ReturnItem, ...]
    credit_note_id: int | None = None
    credit_value: Decimal = Decimal("0")
    credit_status: str = "none"  # none | review (pre-credit waiting for finance) | raised

    _utc = field_validator("created_at")(_require_utc)
