"""Reports for people: the finance month-end pack and the workflow audit report.

Pure "tables in, files out": no store, no Dagster, no clock, no network. The Dagster
assets build the input frames and call these functions.
"""

from acs_khaos_dagster.reports._tables import ReportInputError
from acs_khaos_dagster.reports.audit_report import AuditReportFiles, render_audit_report
from acs_khaos_dagster.reports.month_end import (
    SHEETS,
    TABLES,
    MonthEndInputs,
    PackFiles,
    SummaryFigure,
    pack_names,
    render_month_end_pack,
)

__all__ = [
    "SHEETS",
    "TABLES",
    "AuditReportFiles",
    "MonthEndInputs",
    "PackFiles",
    "ReportInputError",
    "SummaryFigure",
    "pack_names",
    "render_audit_report",
    "render_month_end_pack",
]
