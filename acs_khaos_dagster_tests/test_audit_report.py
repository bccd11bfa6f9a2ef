"""The workflow audit report: how long each step takes and where the delay comes from."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.reports import AuditReportFiles, ReportInputError, render_audit_report
from acs_khaos_dagster_tests.chromium import PageFacts, dump_dom

XSS = "<script>alert(1)</script>"
START = datetime(2025, 1, 6, 9, 0)
CHART_IDS = (
    "chart-latency",
    "chart-exceptions-by-owner",
    "chart-drift-trend",
    "chart-delay-sources",
)


def latencies() -> pd.DataFrame:
    """Ten orders: despatch 1..10 hours after release, posting 2 h later, invoice 1 h later;
    one order not yet posted and one whose invoice is dated before its posting."""
    rows = []
    for n in range(1, 11):
        released = START + timedelta(days=n)
        despatched = released + timedelta(hours=n)
        posted = despatched + timedelta(hours=2)
        rows.append((f"SO-{n}", released, despatched, posted, posted + timedelta(hours=1)))
    rows.append(("SO-11", START, START + timedelta(hours=3), None, None))
    rows.append(("SO-12", START, START + timedelta(hours=3), START + timedelta(hours=5), START))
    return pd.DataFrame(
        rows, columns=["ref", "released_at", "despatched_at", "posted_at", "invoiced_at"]
    ).assign(customer_email="jane@example.com")


def exception_rates() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("despatch_not_posted", "finance", 4, 3, 400),
            ("order_held", "operations", 10, 10, 500),
            ("sku_unmatched", "ecommerce", 1, 0, 0),
        ],
        columns=["type", "owner", "opened", "closed", "base_count"],
    )


def drift_trend() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": [date(2025, 1, d) for d in range(1, 15)],
            "unexplained_units": list(range(14)),
            "unexplained_value": [d * 2.5 for d in range(14)],
        }
    )


def delay_sources() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("Courier X late collection", "release_to_despatch", 12, 30.5),
            ("Khaos posting queue", "despatch_to_posting", 40, 96.0),
            (XSS, "posting_to_invoice", 2, 4.0),
        ],
        columns=["source", "stage", "items", "delay_hours"],
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> AuditReportFiles:
    return render_audit_report(
        latencies(),
        exception_rates(),
        drift_trend(),
        delay_sources(),
        tmp_path_factory.mktemp("audit"),
        period="January 2025",
        account_name="Example Fashion Ltd",
        generated_at=datetime(2025, 2, 3, 7, 30, tzinfo=UTC),
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_latency_per_step_is_given_as_p50_and_p95_hours(report: AuditReportFiles) -> None:
    legs = report.latency_summary.set_index("step")

    despatch = legs.loc["release_to_despatch"]
    assert despatch["completed"] == 12
    hours = pd.Series([*range(1, 11), 3, 3])  # SO-1..10, then SO-11 and SO-12
    assert despatch["p50_hours"] == pytest.approx(4.5)
    assert despatch["p95_hours"] == pytest.approx(hours.quantile(0.95))
    assert legs.loc["despatch_to_posting", "p50_hours"] == pytest.approx(2.0)
    assert legs.loc["despatch_to_posting", "pending"] == 1
    assert (
        legs.loc["release_to_invoice", "p95_hours"] > legs.loc["release_to_despatch", "p95_hours"]
    )


def test_an_invoice_dated_before_its_posting_is_counted_not_averaged(
    report: AuditReportFiles,
) -> None:
    posting = report.latency_summary.set_index("step").loc["posting_to_invoice"]

    assert posting["out_of_order"] == 1
    assert posting["completed"] == 10
    assert posting["p50_hours"] == pytest.approx(1.0)


def test_the_largest_sources_of_delay_are_named_largest_first(report: AuditReportFiles) -> None:
    assert report.largest_delays[0].startswith("Khaos posting queue (despatch_to_posting)")
    assert report.largest_delays[1].startswith("Courier X late collection")
    html = report.html.read_text(encoding="utf-8")
    assert html.index("Khaos posting queue") < html.index("Courier X late collection")
    assert "Slowest step at p95" in html


def test_exception_rates_are_per_thousand_items_checked(report: AuditReportFiles) -> None:
    rows = {row["type"]: row for row in read_csv(report.csvs["exception_rates"])}

    assert float(rows["order_held"]["rate_per_1000"]) == pytest.approx(20.0)
    assert float(rows["despatch_not_posted"]["rate_per_1000"]) == pytest.approx(10.0)
    assert rows["sku_unmatched"]["rate_per_1000"] == ""  # nothing checked: no rate


def test_every_table_is_written_as_csv(report: AuditReportFiles) -> None:
    assert set(report.csvs) == {
        "latency_summary",
        "exception_rates",
        "drift_trend",
        "delay_sources",
    }
    assert len(read_csv(report.csvs["drift_trend"])) == 14
    assert read_csv(report.csvs["delay_sources"])[0]["source"] == "Khaos posting queue"
    assert len(read_csv(report.csvs["latency_summary"])) == 4


def test_the_page_is_self_contained_escaped_and_free_of_customer_data(
    report: AuditReportFiles,
) -> None:
    html = report.html.read_text(encoding="utf-8")

    assert "http://" not in html.lower() and "https://" not in html.lower()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "jane@example.com" not in html
    for path in report.csvs.values():
        assert "jane@example.com" not in path.read_text(encoding="utf-8")


def test_the_page_has_its_charts(report: AuditReportFiles) -> None:
    facts = PageFacts(report.html.read_text(encoding="utf-8"))

    assert set(CHART_IDS) <= set(facts.svgs)
    assert facts.marks["chart-drift-trend"] == 14
    assert facts.marks["chart-delay-sources"] == 3
    assert facts.marks["chart-latency"] == 4 * 2


def test_a_missing_column_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match=r"delay_sources: missing column\(s\) delay_hours"):
        render_audit_report(
            latencies(),
            exception_rates(),
            drift_trend(),
            delay_sources().drop(columns=["delay_hours"]),
            tmp_path,
        )


def test_an_empty_period_still_renders(tmp_path: Path) -> None:
    files = render_audit_report(
        latencies().iloc[0:0],
        exception_rates().iloc[0:0],
        drift_trend().iloc[0:0],
        delay_sources().iloc[0:0],
        tmp_path,
    )

    html = files.html.read_text(encoding="utf-8")
    assert "No delay sources recorded" in html
    assert files.largest_delays == ()


def test_the_report_renders_in_headless_chromium(report: AuditReportFiles, tmp_path: Path) -> None:
    facts = PageFacts(dump_dom(report.html, tmp_path / "profile"))

    assert set(CHART_IDS) <= set(facts.svgs)
    assert all(facts.marks[chart] > 0 for chart in CHART_IDS)
    assert facts.text_by_id["p50-despatch_to_posting"] == "2.0"
