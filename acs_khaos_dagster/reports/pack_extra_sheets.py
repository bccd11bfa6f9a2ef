"""Sheets added to the month-end pack beside the core ones (issue 17 points 4, 7, 8).

Each is a ``PackSheet`` (``reports.pack_registry``) in its own module; the pack writes
them after its own sheets. A frame not supplied is written as an empty sheet.
"""

from __future__ import annotations

from acs_khaos_dagster.reports.hire_sheets import HIRE_SHEETS
from acs_khaos_dagster.reports.pack_registry import PackSheet
from acs_khaos_dagster.reports.refund_liability_sheet import REFUND_SHEETS
from acs_khaos_dagster.reports.write_off_sheet import WRITE_OFF_SHEETS

EXTRA_SHEETS: tuple[PackSheet, ...] = (*REFUND_SHEETS, *WRITE_OFF_SHEETS, *HIRE_SHEETS)
