"""ACS's daily files and times as the simulator writes them, from ``contracts/acs.md`` alone.

Never imported from the integration's readers (``connectors/acs``): a layout mistake on
one side must show on the other, not cancel out.

- ``stock_units_{account}_{yyyymmddHHMMSS}.csv``: one row per physical unit.
- ``returns_{account}_{yyyymmddHHMMSS}.csv``: one row per returned unit.
- UTF-8, comma separated, header row, CRLF line ends.

ACS publishes no spec of its timestamps, and accounts differ (``AcsInstall.timestamps``):

=======================  ===============================  =============
``timestamps``           a timestamp                       a date
=======================  ===============================  =============
``utc_z`` (modelled)     ``2026-06-01T08:30:00Z``          ``2026-06-01``
``offset``               ``2026-06-01T09:30:00+01:00``     ``2026-06-01``
``uk_local``             ``2026-06-01T09:30:00``           ``2026-06-01``
``uk_local_day_first``   ``01/06/2026 09:30:00``           ``01/06/2026``
=======================  ===============================  =============

The simulator keeps its own times as UTC ``Z`` text and converts them here, on the way
out (files, despatch feed, order status), so every variant carries the same instants.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")

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
STOCK_UNITS = "stock_units"
RETURNS = "returns"
# Which columns hold a timestamp, which a date.
_TIMESTAMPS = {STOCK_UNITS: ("snapshot_at", "last_event_at"), RETURNS: ("received_at",)}
_DATES = {STOCK_UNITS: ("expected_return_date",), RETURNS: ()}

Timestamps = Literal["utc_z", "offset", "uk_local", "uk_local_day_first"]


def file_name(kind: str, account_code: str, stamp: datetime) -> str:
    """``{kind}_{account}_{yyyymmddHHMMSS}.csv``, the stamp in UTC."""
    return f"{kind}_{account_code}_{stamp.astimezone(UTC).strftime('%Y%m%d%H%M%S')}.csv"


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_instant(value: str) -> datetime | None:
    """The simulator's own text (``…Z`` or with an offset) back to an aware instant."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class AcsTimes:
    """How one ACS account writes timestamps and dates."""

    timestamps: Timestamps = "utc_z"

    def timestamp(self, value: str | datetime) -> str:
        moment = read_instant(value) if isinstance(value, str) else value
        if moment is None:
            return value if isinstance(value, str) else ""
        if self.timestamps == "utc_z":
            return utc_text(moment)
        local = moment.astimezone(UK)
        if self.timestamps == "offset":
            return local.isoformat(timespec="seconds")
        if self.timestamps == "uk_local":
            return local.strftime("%Y-%m-%dT%H:%M:%S")
        return local.strftime("%d/%m/%Y %H:%M:%S")

    def date(self, value: str) -> str:
        """A date column: written as the UK date of the value."""
        if not value.strip():
            return value
        moment = read_instant(value)
        day: date | None = moment.astimezone(UK).date() if moment is not None else None
        if day is None:
            try:
                day = date.fromisoformat(value.strip()[:10])
            except ValueError:
                return value
        return (
            day.strftime("%d/%m/%Y") if self.timestamps == "uk_local_day_first" else day.isoformat()
        )

    def row(self, kind: str, row: dict[str, str]) -> dict[str, str]:
        out = dict(row)
        for column in _TIMESTAMPS[kind]:
            if out.get(column):
                out[column] = self.timestamp(out[column])
        for column in _DATES[kind]:
            if out.get(column):
                out[column] = self.date(out[column])
        return out

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A despatch event (feed, order status) with its time written this way."""
        return {**event, "despatched_at": self.timestamp(str(event["despatched_at"]))}


def write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[Iterable[str]]) -> Path:
    """Written whole under a hidden name, then renamed: a reader never sees half a file."""
    temp = path.with_name(f".{path.name}.part")
    with temp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return path
