"""What the month-end assets show, built without Dagster: the pack's and the audit report's
figures (``flows.month_end_pack``, ``flows.audit_report``), why a final pack was refused,
and which month the schedule builds at a tick (``flows.month_end_due``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.month_close import MonthTables
from acs_khaos_dagster.domain.sla import WorkingCalendar
from acs_khaos_dagster.flows.audit_report import AuditReport
from acs_khaos_dagster.flows.figures import FileLink, Markdown
from acs_khaos_dagster.flows.month_end_due import month_due
from acs_khaos_dagster.flows.month_end_pack import PackResult, missing_figures
from acs_khaos_dagster.reports import PackFiles
from acs_khaos_dagster.reports.audit_report import AuditReportFiles

MONTH = "2026-03"
# 23:59:59 UK time (BST) on 31 March 2026.
CUT_OFF = datetime(2026, 3, 31, 22, 59, 59, tzinfo=UTC)
ENGLAND = WorkingCalendar(holiday_subdivision="ENG")


def _pack(data_dir: Path) -> PackResult:
    folder = data_dir / "month_end" / MONTH
    files = PackFiles(folder / "pack.xlsx", folder / "pack.html", csvs={}, summary=())
    empty = pd.DataFrame()
    tables = MonthTables(empty, empty, empty, empty, empty, empty, as_at=CUT_OFF)
    return PackResult(tables=tables, files=files, days_not_reconciled=3)


def test_a_preview_packs_first_figure_says_it_is_not_for_posting(tmp_path: Path) -> None:
    figures = _pack(tmp_path).figures(Settings(data_dir=tmp_path), MONTH, preview=True)
    assert next(iter(figures)) == "pack"
    assert figures["pack"] == "PREVIEW as at 31 Mar 2026 23:59 (UK time) — not for posting"


def test_a_final_pack_names_its_cut_off_in_uk_time(tmp_path: Path) -> None:
    figures = _pack(tmp_path).figures(Settings(data_dir=tmp_path), MONTH, preview=False)
    assert figures["pack"] == "FINAL, as at the cut-off 31 Mar 2026 23:59 (UK time)"


def test_the_packs_folder_is_shown_as_its_path_beside_the_links(tmp_path: Path) -> None:
    figures = _pack(tmp_path).figures(Settings(data_dir=tmp_path), MONTH, preview=False)
    folder = tmp_path / "month_end" / MONTH
    assert figures["folder"] == FileLink(folder, url=None)
    assert figures["days_not_reconciled"] == 3


def test_a_refused_pack_lists_the_days_not_reconciled_in_order() -> None:
    refused = me.MonthIncomplete(
        MONTH, {date(2026, 3, 14): ["stock"], date(2026, 3, 2): ["returns", "stock"]}
    )
    assert missing_figures(refused) == {
        "missing_days": {"2026-03-02": ["returns", "stock"], "2026-03-14": ["stock"]},
        "missing_day_count": 2,
    }


def _audit(tmp_path: Path, latency: pd.DataFrame) -> AuditReport:
    html = tmp_path / "audit" / MONTH / "audit.html"
    files = AuditReportFiles(html, csvs={}, latency_summary=latency, largest_delays=())
    return AuditReport(files=files, orders=4, shipments=5, exceptions_opened=1)


def test_the_audit_plots_each_steps_known_latencies_in_hours_to_two_places(tmp_path: Path):
    latency = pd.DataFrame(
        {"step": ["release", "posting"], "p50_hours": [1.234, None], "p95_hours": [9.876, 2.0]}
    )
    figures = _audit(tmp_path, latency).figures(Settings(data_dir=tmp_path), MONTH)
    assert figures["release_p50_hours"] == 1.23 and figures["release_p95_hours"] == 9.88
    assert "posting_p50_hours" not in figures and figures["posting_p95_hours"] == 2.0


def test_an_audit_with_no_delays_says_none(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=["step", "p50_hours", "p95_hours"])
    figures = _audit(tmp_path, empty).figures(Settings(data_dir=tmp_path), MONTH)
    assert figures["largest_delays"] == Markdown("_none_")


def test_the_month_just_closed_is_due_on_the_first_working_day_after_it() -> None:
    # 1 January 2026 is a bank holiday: Friday the 2nd is the first working day.
    assert month_due(datetime(2026, 1, 2, 6, tzinfo=UTC), ENGLAND) == ("2025-12", "")


def test_no_month_is_due_on_a_later_working_day_and_the_tick_says_why() -> None:
    assert month_due(datetime(2026, 1, 5, 6, tzinfo=UTC), ENGLAND) == (
        None,
        "2026-01-05 is not the first working day of its month",
    )


def test_a_tick_without_a_time_builds_nothing() -> None:
    assert month_due(None, ENGLAND) == (None, "no scheduled execution time")
