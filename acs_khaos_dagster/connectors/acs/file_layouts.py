"""The column layouts of ACS's CSV files (the only place that knows their header names)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from acs_khaos_dagster.domain.returns import ACTIONS, GRADES

STOCK_UNITS_COLUMNS: tuple[str, ...] = (
    "account_code",
    "snapshot_at",
    "sku",
    "unique_sku",
    "rfid_epc",
    "status",
    "location_code",
    "grade",
    "last_event_at",
    "order_number",
    "expected_return_date",
)

RETURNS_COLUMNS: tuple[str, ...] = (
    "return_ref",
    "order_number",
    "line_item_id",
    "sku",
    "unique_sku",
    "received_at",
    "grade",
    "action_taken",
    "action_reason",
    "defect_codes",
    "repair_cost",
)

# The grades and actions the contract names; the grade policy lives in the domain.
RETURN_GRADES: tuple[str, ...] = GRADES
RETURN_ACTIONS: tuple[str, ...] = ACTIONS


@dataclass(frozen=True)
class FileLayout:
    name: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    file_prefix: str

    def file_name(self, account_code: str, stamp: str) -> str:
        """``{prefix}_{account}_{yyyymmddHHMMSS}.csv``."""
        return f"{self.file_prefix}_{account_code}_{stamp}.csv"


STOCK_UNITS_LAYOUT = FileLayout(
    name="stock units",
    columns=STOCK_UNITS_COLUMNS,
    # A snapshot without these columns cannot be used; the rest may be absent (read as empty).
    required=("account_code", "snapshot_at", "sku", "unique_sku", "status", "last_event_at"),
    file_prefix="stock_units",
)

RETURNS_LAYOUT = FileLayout(
    name="returns",
    columns=RETURNS_COLUMNS,
    required=(
        "return_ref",
        "order_number",
        "sku",
        "unique_sku",
        "received_at",
        "grade",
        "action_taken",
    ),
    file_prefix="returns",
)

_HEADER_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015.]+")


def canonical_header(name: str) -> str:
    """``" Unique SKU "``, ``"Unique-Sku"`` and ``"UNIQUE_SKU"`` all become ``unique_sku``."""
    cleaned = name.replace("\ufeff", "").strip().casefold()
    return _HEADER_SEPARATORS.sub("_", cleaned).strip("_")
