"""The finance month-end pack: what finance opens at the close.

Small hand-built reconciliation tables go in; the workbook, CSVs and HTML report that
come out are read back the way a person (or a browser) would read them.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from acs_khaos_dagster.reports import (
    TABLES,
    MonthEndInputs,
    PackFiles,
    ReportInputError,
    render_month_end_pack,
)
from acs_khaos_dagster_tests.chromium import PageFacts, decode_png, dump_dom, screenshot

XSS = "<script>alert(1)</script>"
HEADER_KEYS = ("month", "account", "generated-at", "as-at", "pack")
CUSTOMER = "Jane Doe, 1 High Street, Leeds"
CHART_IDS = (
    "chart-drift",
    "chart-drift-units",
    "chart-order-to-cash",
    "chart-credits",
    "chart-non-sellable",
)


def frames() -> dict[str, pd.DataFrame]:
    """One small month. The comments give the figures the summary must show."""
    stock = pd.DataFrame(
        [
            (101, "TSHIRT-RED-M", 1, "Main", 10, 10, 0, 0.00, 0, 0, 0, 0.00, "in_step"),
            (102, "JEANS-32", 1, "Main", 7, 9, -2, -30.00, 0, 0, -2, -30.00, "unexplained"),
            # The case of issue 17 point 3: ACS 20, Khaos 10, 6 in transit, £20 → 4, £80.
            (103, "DRESS-10", 1, "Main", 20, 10, 10, Decimal("200"), 6, 0, 4, 80.0, "unexplained"),
            (104, "COAT-L", 1, "Main", 3, 4, -1, -40.00, -1, 0, 0, 0.0, "in_flight"),
            (105, f"HAT-{XSS}", 2, "Quarantine", 2, 0, 2, 9.99, 0, 2, 0, 0.0, "push_missing"),
            (106, "SCARF", 1, "Main", 6, 5, 1, 7.50, 0, 0, 1, 7.50, "within_tolerance"),
        ],
        columns=[
            "stock_id",
            "stock_code",
            "site_id",
            "site_name",
            "acs_units",
            "khaos_level",
            "difference",
            "value",
            "explained_in_flight",
            "explained_push_missing",
            "unexplained",
            "unexplained_value",
            "classification",
        ],
    )  # unexplained: 6 units gross, £110 gross, £50 net; within tolerance 1 unit, £7.50
    o2c = pd.DataFrame(
        [
            (
                "S1",
                "SO-1",
                datetime(2025, 1, 30, 10, tzinfo=UTC),
                "despatched_not_posted",
                1,
                120.00,
                "0-2 days",
                CUSTOMER,
            ),
            (
                "S2",
                "SO-2",
                datetime(2025, 1, 20, 9),
                "posted_not_invoiced",
                11,
                Decimal("80.50"),
                "8-14 days",
                CUSTOMER,
            ),
            ("S3", "SO-3", datetime(2025, 1, 5, 14), "invoiced", 26, 0, "15+ days", CUSTOMER),
            (
                "S4",
                "SO-4",
                datetime(2025, 1, 27, 16),
                "despatched_not_posted",
                4,
                45.25,
                "3-7 days",
                CUSTOMER,
            ),
        ],
        columns=[
            "shipment_id",
            "order_number",
            "despatched_at",
            "status",
            "age_days",
            "value_waiting",
            "ageing_bucket",
            "customer_name",  # must never reach the pack
        ],
    )
    o2c["invoice_id"] = [None, "9002", "9003", None]
    o2c["issue_date"] = [None, None, date(2025, 1, 6), None]
    o2c["issue_period"] = ["", "", "2025-01", ""]
    o2c["period"] = "2025-01"
    o2c["value"] = [
        120.00,
        80.50,
        99.00,
        45.25,
    ]  # not invoiced: 3 shipments; £165.25 not posted + £80.50 not invoiced = £245.75
    returns = pd.DataFrame(
        [
            ("R1", "1", "A", "raised", 25.00, 0, 0.00, None),
            ("R1", "2", "B", "review", 30.00, 0, 0.00, 5),
            ("R2", "1", "BER", "review", 40.00, 1, 12.00, -2),
            ("R3", "1", "C", "none", 0.00, 0, 0.00, 10),
            ("R4", "1", "BER", "raised", 15.50, 1, 7.25, None),
        ],
        columns=[
            "return_ref",
            "part",
            "grade",
            "credit_status",
            "credit_value",
            "written_off_units",
            "write_off_value",
            "refund_days_left",
        ],
    )  # raised 2 (£40.50), review 2 (£70.00), written off 2 units (£19.25)
    returns["order_number"] = ["SO-9", "SO-9", "SO-8", "SO-7", "SO-6"]
    returns["order_date"] = [date(2025, 1, 2)] * 5
    returns["received_date"] = [date(2025, 1, 12)] * 5
    returns["hire"] = ["sale", "sale", "sale", "hire", "sale"]
    exceptions = pd.DataFrame(
        [
            ("despatch_not_posted", "finance", 3, 30.0, 1),
            ("stock_unexplained", "operations", 2, 5.5, 1),
            ("order_held", "operations", 1, 1.0, 0),
        ],
        columns=["type", "owner", "count", "oldest_age_hours", "over_target"],
    )  # open 6, over target 2, finance 3, operations 3
    days = pd.date_range("2025-01-01", "2025-01-31", freq="D")
    drift = pd.DataFrame(
        {
            "day": [d.date() for d in days],
            "unexplained_units": [d.day % 5 for d in days],
            "unexplained_value": [(d.day % 5) * 7.5 for d in days],
        }
    )
    drift.loc[30, ["unexplained_units", "unexplained_value"]] = [6, 110.0]  # the stock sheet's
    non_sellable = pd.DataFrame(
        [("Quarantine", 12, 180.00), ("Refurbishment", 5, 62.50), (XSS, 1, 9.99)],
        columns=["site_name", "units", "value_at_cost"],
    )  # 18 units, £252.49
    return {
        "stock_reconciliation": stock,
        "order_to_cash": o2c,
        "returns": returns,
        "exceptions": exceptions,
        "drift_by_day": drift,
        "non_sellable_value": non_sellable,
    }


def extra_frames() -> dict[str, pd.DataFrame]:
    """The sheets beside the core ones (refund liability, write-offs, hire)."""
    liability = pd.DataFrame(
        [
            ("FEB", "FEB-P1", "U1", "2025-12-20 10:00", "2026-01-04 00:00", -27.0, "matched",
             "review", 38.50, 40.00, "net of VAT", ""),
            ("GONE", "GONE-P1", "U3", "2025-01-20 10:00", "2025-02-04 00:00", 3.0, "matched",
             "missing", None, 60.00, "net of VAT", "no credit in Khaos"),
            ("NOORDER", None, "U4", "2025-01-28 10:00", "2025-02-12 00:00", 11.0, "unmatched",
             "missing", None, None, "net of VAT", "unmatched"),
        ],
        columns=[
            "return_ref", "associated_ref", "unique_skus", "received_at_uk", "deadline_uk",
            "days_left", "matched", "credit_status", "khaos_credit_value", "asked_value",
            "vat_basis", "note",
        ],
    )  # fmt: skip  # 3 owed, Khaos £38.50, 2 missing, posted £100.00, 1 overdue
    write_offs = pd.DataFrame(
        [
            ("UH1", "R2", 201, "khaos_adjustment", "WO-UH1", 1, 12.00),
            ("U9", "R4", 104, "ber_sale_return", "R4-P1", 1, 7.25),
        ],
        columns=["unique_sku", "return_ref", "stock_id", "route", "reference", "units", "value"],
    )  # adjustments 1 unit £12.00; BER sale returns 1 unit £7.25
    fleet = pd.DataFrame(
        [
            (201, "HIRE-DRESS", "Hire stock", "no", 10, 1.5, 500.00, 425.00, "cost less 10%"),
            (201, "HIRE-DRESS", "On hire", "yes", 4, 1.5, 200.00, 170.00, "cost less 10%"),
        ],
        columns=[
            "stock_id", "stock_code", "site_name", "on_hire", "units", "rentals_per_unit",
            "value_at_cost", "book_value", "basis",
        ],
    )  # fmt: skip  # 14 units, book £595.00, cost £700.00; on hire 4 units, £170.00
    by_kind = pd.DataFrame(
        [
            ("S1", "SO-1", "sale", "despatched_not_posted", 120.00),
            ("S2", "SO-2", "hire", "posted_not_invoiced", 80.50),
            ("S3", "SO-3", "sale", "invoiced", 0.00),
            ("S4", "SO-4", "sale", "despatched_not_posted", 45.25),
        ],
        columns=["shipment_id", "order_number", "kind", "status", "value_waiting"],
    )  # sales waiting £165.25, hire fees waiting £80.50 (1 shipment)
    return {
        "refund_liability": liability,
        "write_offs": write_offs,
        "hire_fleet": fleet,
        "order_to_cash_by_kind": by_kind,
    }


def sheets() -> dict[str, pd.DataFrame]:
    """The close sheets of the same month."""
    accruals = pd.DataFrame(
        [
            (
                "S2",
                "SO-2",
                "9002",
                "posted_not_invoiced",
                date(2025, 1, 20),
                date(2025, 2, 1),
                "2025-02",
                1,
                80.50,
                "net of VAT; tax point open",
                30.00,
                "post",
            ),
            (
                "S1",
                "SO-1",
                None,
                "despatched_not_posted",
                date(2025, 1, 30),
                None,
                None,
                2,
                120.00,
                "net of VAT; tax point open",
                41.00,
                "post",
            ),
        ],
        columns=[
            "shipment_id",
            "order_number",
            "invoice_id",
            "status",
            "despatch_date",
            "issue_date",
            "issue_period",
            "units",
            "net_value",
            "vat_basis",
            "cost_value",
            "action",
        ],
    )  # 2 shipments, £200.50 net, £71 cost
    within = pd.DataFrame(
        [(106, "SCARF", "Main", 1, 7.50)],
        columns=["stock_id", "stock_code", "site_name", "unexplained", "unexplained_value"],
    )
    at = datetime(2025, 1, 15, 9, tzinfo=UTC)
    adjustments = pd.DataFrame(
        [
            (at, "SNAP-1-S1-B001", "VARIANCE", "variance", "within_tolerance", 106, "Main", 1, 7.5),
            (at, "SNAP-1-S1-A106-B1", "VARIANCE", "variance", "approved", 102, "Main", -5, -75.0),
            (at, "WO-U9", "WRITEOFF", "write_off", "", 103, "Hire", -1, -20.0),
            (at, "EXH-1-S7", "EXHIRE", "ex_hire", "", 103, "Hire", -1, -20.0),
            (at, "EXH-1-S1", "EXHIRE", "ex_hire", "", 107, "Main", 1, 20.0),
            (at, "SNAP-1-M1-S4", "TRANSFER", "status_move", "", 101, "Inspection", 2, 10.0),
        ],
        columns=[
            "applied_at",
            "ref",
            "reason_code",
            "kind",
            "origin",
            "stock_id",
            "site_name",
            "units",
            "value",
        ],
    )  # VARIANCE -4 units -£67.50 (within £7.50, approved -£75); WRITEOFF -1 -£20; EXHIRE 0 £0
    by_site = pd.DataFrame(
        [(1, "Main", "yes", 30, 600.0), (2, "Quarantine", "no", 12, 180.0)],
        columns=["site_id", "site_name", "selling", "units", "value_at_cost"],
    )  # 42 units, £780, selling £600
    return {
        "cutoff_accruals": accruals,
        "within_tolerance": within,
        "adjustments": adjustments,
        "stock_by_site": by_site,
        **extra_frames(),
    }


def inputs(**overrides: Any) -> MonthEndInputs:
    values: dict[str, Any] = {
        "month": "2025-01",
        "generated_at": datetime(2025, 2, 3, 7, 30, tzinfo=UTC),
        "account_name": "Example Fashion Ltd",
        **frames(),
        "sheets": sheets(),
    }
    values.update(overrides)
    return MonthEndInputs(**values)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> PackFiles:
    return render_month_end_pack(inputs(), tmp_path_factory.mktemp("pack"))


def summary_from_workbook(path: Path) -> dict[str, Any]:
    sheet = load_workbook(path)["Summary"]
    rows = list(sheet.iter_rows(values_only=True))
    header = rows.index(("Figure", "Value", "How it is computed", "Key"))
    return {row[3]: row[1] for row in rows[header + 1 :] if row[3]}


def sheet_rows(path: Path, title: str) -> list[dict[str, Any]]:
    """A table sheet's rows by header label (row 1 is the pack's banner, row 2 the header)."""
    rows = list(load_workbook(path)[title].iter_rows(values_only=True))
    return [dict(zip(rows[1], row, strict=True)) for row in rows[2:]]


def recompute_from_sheets(path: Path) -> dict[str, float]:
    """Each summary figure, summed again from the columns of the other sheets, read from
    the written workbook (never from the code that built it)."""
    stock = sheet_rows(path, "Stock reconciliation")
    o2c = sheet_rows(path, "Order to cash")
    returns = sheet_rows(path, "Returns")
    exceptions = sheet_rows(path, "Exceptions")
    sites = sheet_rows(path, "Non-sellable stock")
    accruals = sheet_rows(path, "Cut-off accruals")
    adjustments = sheet_rows(path, "Stock adjustments")
    by_site = sheet_rows(path, "Stock by site")
    owed = sheet_rows(path, "Refund liability")
    write_offs = sheet_rows(path, "Write-offs")
    fleet = sheet_rows(path, "Hire fleet")
    by_kind = sheet_rows(path, "Order to cash by kind")

    def total(rows: list[dict[str, Any]], column: str, keep: Callable[[dict], bool]) -> float:
        return sum(row[column] or 0 for row in rows if keep(row))

    def cls(name: str) -> Callable[[dict], bool]:
        return lambda r: r["Classification"] == name

    drift = [r for r in stock if r["Classification"] == "unexplained"]
    small = [r for r in stock if r["Classification"] == "within_tolerance"]
    figures = {
        "unexplained-drift-units": sum(abs(r["Unexplained (units)"]) for r in drift),
        "unexplained-drift-value": sum(abs(r["Unexplained value (£ at cost)"]) for r in drift),
        "unexplained-drift-net-value": sum(r["Unexplained value (£ at cost)"] for r in drift),
        "stock-rows-in-step": sum(1 for r in stock if cls("in_step")(r)),
        "stock-rows-within-tolerance": len(small),
        "within-tolerance-units": sum(abs(r["Unexplained (units)"]) for r in small),
        "within-tolerance-value": sum(abs(r["Unexplained value (£ at cost)"]) for r in small),
        "in-transit-units": total(stock, "In transit / timing (units)", lambda r: True),
        "shipments-not-invoiced": sum(1 for r in o2c if r["Status"] != "invoiced"),
        "value-despatched-not-posted": total(
            o2c, "Value waiting (£)", lambda r: r["Status"] == "despatched_not_posted"
        ),
        "value-posted-not-invoiced": total(
            o2c, "Value waiting (£)", lambda r: r["Status"] == "posted_not_invoiced"
        ),
        "value-despatched-not-invoiced": total(
            o2c, "Value waiting (£)", lambda r: r["Status"] != "invoiced"
        ),
        "credits-raised-count": sum(1 for r in returns if r["Credit"] == "raised"),
        "credits-raised-value": total(
            returns, "Credit value (£)", lambda r: r["Credit"] == "raised"
        ),
        "credits-review-count": sum(1 for r in returns if r["Credit"] == "review"),
        "credits-review-value": total(
            returns, "Credit value (£)", lambda r: r["Credit"] == "review"
        ),
        "written-off-adjustment-units": total(
            write_offs, "Units", lambda r: r["Route"] == "khaos_adjustment"
        ),
        "written-off-adjustment-value": total(
            write_offs, "Value (£)", lambda r: r["Route"] == "khaos_adjustment"
        ),
        "written-off-ber-returns-units": total(
            write_offs, "Units", lambda r: r["Route"] == "ber_sale_return"
        ),
        "written-off-ber-returns-value": total(
            write_offs, "Value (£)", lambda r: r["Route"] == "ber_sale_return"
        ),
        "refund-liability-count": len(owed),
        "refund-liability-khaos-value": total(
            owed, "Khaos credit value (£, net)", lambda r: r["Khaos credit value (£, net)"]
        ),
        "refund-liability-missing-count": sum(1 for r in owed if r["Khaos credit"] == "missing"),
        "refund-liability-posted-value": total(
            owed, "Posted value (£, net)", lambda r: r["Posted value (£, net)"]
        ),
        "refund-liability-overdue-count": sum(1 for r in owed if r["Days left"] < 0),
        "hire-fleet-units": total(fleet, "Units", lambda r: True),
        "hire-fleet-book-value": total(fleet, "Book value (£)", lambda r: True),
        "hire-fleet-cost-value": total(fleet, "Value at cost (£)", lambda r: True),
        "hire-on-hire-units": total(fleet, "Units", lambda r: r["On hire"] == "yes"),
        "hire-on-hire-book-value": total(fleet, "Book value (£)", lambda r: r["On hire"] == "yes"),
        "value-waiting-sales": total(
            by_kind,
            "Value waiting (£)",
            lambda r: r["Sale or hire"] == "sale" and r["Status"] != "invoiced",
        ),
        "value-waiting-hire-fees": total(
            by_kind,
            "Value waiting (£)",
            lambda r: r["Sale or hire"] == "hire" and r["Status"] != "invoiced",
        ),
        "hire-shipments-not-invoiced": sum(
            1 for r in by_kind if r["Sale or hire"] == "hire" and r["Status"] != "invoiced"
        ),
        "non-sellable-units": total(sites, "Units", lambda r: True),
        "non-sellable-value": total(sites, "Value (£ at cost)", lambda r: True),
        "open-exceptions": total(exceptions, "Open", lambda r: True),
        "open-exceptions-over-target": total(exceptions, "Over target", lambda r: True),
        "accrual-shipments": len(accruals),
        "accrual-net-value": total(accruals, "Net value (£)", lambda r: True),
        "accrual-cost-value": total(accruals, "Cost (£ at cost)", lambda r: True),
        "stock-units": total(by_site, "Units (Level)", lambda r: True),
        "stock-value": total(by_site, "Value (£ at cost)", lambda r: True),
        "stock-value-selling": total(
            by_site, "Value (£ at cost)", lambda r: r["Selling site"] == "yes"
        ),
    }
    for kind in ("variance", "write_off", "ex_hire"):
        key = kind.replace("_", "-")
        figures[f"adjustments-{key}-units"] = total(
            adjustments, "Units", lambda r, k=kind: r["Kind"] == k
        )
        figures[f"adjustments-{key}-value"] = total(
            adjustments, "Value (£ at cost)", lambda r, k=kind: r["Kind"] == k
        )
    for origin in ("within_tolerance", "approved"):
        figures[f"variance-{origin.replace('_', '-')}-value"] = total(
            adjustments,
            "Value (£ at cost)",
            lambda r, o=origin: r["Kind"] == "variance" and r["Variance origin"] == o,
        )
    for owner in {r["Owner team"] for r in exceptions}:
        figures[f"open-exceptions-{owner}"] = total(
            exceptions, "Open", lambda r, o=owner: r["Owner team"] == o
        )
    return figures


# --- the workbook ---------------------------------------------------------------------------


def test_workbook_has_a_summary_and_one_sheet_per_table(pack: PackFiles) -> None:
    book = load_workbook(pack.workbook)
    assert book.sheetnames == ["Summary", "Read me", *(spec.title for spec in TABLES)]


def test_summary_totals_equal_the_sums_of_the_sheets(pack: PackFiles) -> None:
    summary = summary_from_workbook(pack.workbook)
    recomputed = recompute_from_sheets(pack.workbook)

    figures = {k: v for k, v in summary.items() if k not in HEADER_KEYS}
    assert set(figures) == set(recomputed)
    for key, value in recomputed.items():
        assert figures[key] == pytest.approx(value, abs=0.005), key


def test_summary_shows_the_months_figures(pack: PackFiles) -> None:
    summary = summary_from_workbook(pack.workbook)

    assert summary["month"] == "2025-01"
    assert summary["account"] == "Example Fashion Ltd"
    assert summary["generated-at"] == "2025-02-03 07:30"
    assert summary["unexplained-drift-units"] == 6  # 2 + 4 (not the dress's whole 10)
    assert summary["unexplained-drift-value"] == pytest.approx(110.00)
    assert summary["unexplained-drift-net-value"] == pytest.approx(50.00)
    assert summary["stock-rows-in-step"] == 1
    assert summary["stock-rows-within-tolerance"] == 1
    assert summary["within-tolerance-value"] == pytest.approx(7.50)
    assert summary["accrual-net-value"] == pytest.approx(200.50)
    assert summary["adjustments-variance-value"] == pytest.approx(-67.50)
    assert summary["variance-within-tolerance-value"] == pytest.approx(7.50)
    assert summary["adjustments-write-off-value"] == pytest.approx(-20.00)
    assert summary["adjustments-ex-hire-units"] == 0
    assert summary["stock-value-selling"] == pytest.approx(600.00)
    assert summary["value-despatched-not-invoiced"] == pytest.approx(245.75)
    assert summary["credits-raised-value"] == pytest.approx(40.50)
    assert summary["credits-review-value"] == pytest.approx(70.00)
    assert summary["written-off-adjustment-value"] == pytest.approx(12.00)
    assert summary["written-off-ber-returns-value"] == pytest.approx(7.25)
    assert summary["refund-liability-missing-count"] == 2
    assert summary["value-waiting-hire-fees"] == pytest.approx(80.50)
    assert summary["non-sellable-value"] == pytest.approx(252.49)
    assert summary["open-exceptions-finance"] == 3
    assert summary["open-exceptions-operations"] == 3


def test_sheets_have_a_styled_frozen_header_and_typed_cells(pack: PackFiles) -> None:
    sheet = load_workbook(pack.workbook)["Order to cash"]

    assert sheet.freeze_panes == "A3"  # the banner and the header stay in view
    assert sheet["A2"].font.bold
    assert sheet.column_dimensions["A"].width >= len("Shipment")
    value_cell = sheet["F3"]  # Value waiting (£)
    assert value_cell.number_format == '"£"#,##0.00;[Red]-"£"#,##0.00'
    assert sheet["C3"].number_format == "yyyy-mm-dd hh:mm"
    # 10:00 UTC on 30 January is 10:00 UK time (GMT); Excel gets wall time, no zone.
    assert sheet["C3"].value == datetime(2025, 1, 30, 10, 0)
    assert load_workbook(pack.workbook)["Drift by day"]["A3"].number_format == "yyyy-mm-dd"


# --- the CSVs -------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_each_table_is_written_as_a_utf8_csv_matching_its_frame(pack: PackFiles) -> None:
    source = {**frames(), **sheets()}
    for spec in TABLES:
        rows = read_csv(pack.csvs[spec.key])
        frame = source[spec.key]
        assert list(rows[0]) == spec.names, spec.key
        assert len(rows) == len(frame), spec.key
        for column in spec.columns:
            for written, original in zip(
                (row[column.name] for row in rows), frame[column.name], strict=True
            ):
                if column.kind == "money" and (original is None or pd.isna(original)):
                    assert written == "", (spec.key, column.name)
                elif column.kind == "money":
                    assert Decimal(written) == Decimal(str(original)).quantize(Decimal("0.01"))
                elif column.kind in ("int", "number"):
                    assert (written == "" and pd.isna(original)) or float(written) == float(
                        original
                    ), (spec.key, column.name)
                elif column.kind == "text":
                    assert written == ("" if original is None else str(original))
    assert read_csv(pack.csvs["order_to_cash"])[0]["despatched_at"] == "2025-01-30 10:00:00"
    assert read_csv(pack.csvs["drift_by_day"])[0]["day"] == "2025-01-01"


def test_summary_csv_matches_the_workbook(pack: PackFiles) -> None:
    workbook = summary_from_workbook(pack.workbook)
    rows = read_csv(pack.csvs["summary"])

    assert [row["key"] for row in rows] == list(workbook)
    for row in rows:
        if row["kind"] in ("int", "money"):
            assert float(row["value"]) == pytest.approx(workbook[row["key"]], abs=0.005)


def test_customer_data_never_reaches_the_pack(pack: PackFiles) -> None:
    files = [pack.html, *pack.csvs.values()]
    for path in files:
        assert "Jane Doe" not in path.read_text(encoding="utf-8"), path.name
    book = load_workbook(pack.workbook)
    cells = [str(c) for s in book.worksheets for row in s.iter_rows(values_only=True) for c in row]
    assert not any("Jane Doe" in cell for cell in cells)
    assert "customer_name" not in read_csv(pack.csvs["order_to_cash"])[0]


# --- the HTML report ------------------------------------------------------------------------


def test_html_refers_to_nothing_outside_the_file(pack: PackFiles) -> None:
    html = pack.html.read_text(encoding="utf-8").lower()

    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    assert "<link" not in html
    assert "src=" not in html


def test_html_has_each_chart_drawn_from_the_data(pack: PackFiles) -> None:
    facts = PageFacts(pack.html.read_text(encoding="utf-8"))

    assert set(CHART_IDS) <= set(facts.svgs)
    assert facts.marks["chart-drift"] == 31  # a point per day
    assert facts.marks["chart-drift-units"] == 31 - 6  # a bar per day with drift (day % 5)
    # Three buckets waiting, each holding one status only; empty stacks are not drawn.
    assert facts.marks["chart-order-to-cash"] == 3
    assert facts.marks["chart-credits"] == 4  # raised, review, adjustments, BER sale returns
    assert facts.marks["chart-non-sellable"] == 3


def test_html_shows_the_same_totals_as_the_workbook(pack: PackFiles) -> None:
    facts = PageFacts(pack.html.read_text(encoding="utf-8"))
    assert_totals_match_workbook(facts, pack.workbook)


def test_html_escapes_text_from_the_data(pack: PackFiles) -> None:
    html = pack.html.read_text(encoding="utf-8")

    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_empty_month_still_renders_with_zero_totals(tmp_path: Path) -> None:
    empty = {key: frame.iloc[0:0] for key, frame in frames().items()}
    no_sheets = {key: frame.iloc[0:0] for key, frame in sheets().items()}
    files = render_month_end_pack(inputs(**empty, sheets=no_sheets), tmp_path)

    totals = files.totals()
    assert totals["open-exceptions"] == 0
    assert totals["value-despatched-not-invoiced"] == Decimal("0.00")
    html = files.html.read_text(encoding="utf-8")
    # Charts without categories say so; the credits chart keeps its axis, with no bars.
    assert html.count("Nothing to show for this period") == len(CHART_IDS) - 1
    assert PageFacts(html).marks["chart-credits"] == 0
    assert summary_from_workbook(files.workbook)["non-sellable-value"] == 0


def test_rendering_again_replaces_the_files(tmp_path: Path) -> None:
    render_month_end_pack(inputs(), tmp_path)
    smaller = frames()["non_sellable_value"].iloc[:1]
    files = render_month_end_pack(inputs(non_sellable_value=smaller), tmp_path)

    assert summary_from_workbook(files.workbook)["non-sellable-value"] == pytest.approx(180.00)
    assert len(read_csv(files.csvs["non_sellable_value"])) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- input validation -----------------------------------------------------------------------


def test_a_missing_column_is_named_in_the_error() -> None:
    stock = frames()["stock_reconciliation"].drop(columns=["khaos_level"])

    with pytest.raises(ReportInputError, match=r"stock_reconciliation: missing column\(s\) khaos"):
        inputs(stock_reconciliation=stock)


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        ("order_to_cash", "status", "shipped", "order_to_cash.status: 'shipped'"),
        ("returns", "credit_status", "maybe", "returns.credit_status: 'maybe'"),
        ("stock_reconciliation", "classification", "odd", "classification: 'odd'"),
        ("returns", "credit_value", "lots", "returns.credit_value: 'lots' in row 0"),
        ("stock_reconciliation", "difference", 5, "difference: row 0 is not acs_units"),
        ("exceptions", "over_target", 9, "over_target: row 0 is not between 0 and count"),
        ("drift_by_day", "day", date(2025, 2, 1), "drift_by_day.day: 2025-02-01"),
        ("order_to_cash", "shipment_id", None, "order_to_cash.shipment_id: empty value"),
    ],
)
def test_a_bad_value_is_named_in_the_error(
    table: str, column: str, value: object, message: str
) -> None:
    frame = frames()[table].copy()
    frame[column] = frame[column].astype(object)
    frame.at[0, column] = value

    with pytest.raises(ReportInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        inputs(**{table: frame})


def test_the_month_must_be_year_and_month() -> None:
    with pytest.raises(ReportInputError, match="month: '2025-1' is not YYYY-MM"):
        inputs(month="2025-1")


# --- in a real browser ----------------------------------------------------------------------


def assert_totals_match_workbook(facts: PageFacts, workbook: Path) -> None:
    summary = summary_from_workbook(workbook)
    for key, value in summary.items():
        if key in HEADER_KEYS:
            continue
        shown = facts.by_id[f"total-{key}"]
        assert float(shown["data-value"]) == pytest.approx(value, abs=0.005), key
    assert set(summary) - set(HEADER_KEYS) == {
        k.removeprefix("total-") for k in facts.by_id if k.startswith("total-")
    }


def test_the_report_renders_in_headless_chromium_with_the_workbooks_totals(
    pack: PackFiles, tmp_path: Path
) -> None:
    dom = dump_dom(pack.html, tmp_path / "profile")
    facts = PageFacts(dom)

    assert "Month-end pack: January 2025" in dom
    assert set(CHART_IDS) <= set(facts.svgs)
    assert all(facts.marks[chart] > 0 for chart in CHART_IDS)
    assert_totals_match_workbook(facts, pack.workbook)
    assert facts.text_by_id["total-value-despatched-not-invoiced"].strip() == "£245.75"


def test_the_report_paints_its_charts_in_headless_chromium(pack: PackFiles, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    screenshot(pack.html, png, tmp_path / "profile")
    pixels = decode_png(png)[:, :, :3]

    assert pixels.shape[:2] == (2000, 1280)
    packed = pixels.astype(np.int32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.int32)
    assert len(np.unique(packed)) > 50, "the page looks blank"
    chart_blue = np.array([0x00, 0x72, 0xB2])  # the first series colour of every chart
    assert (pixels == chart_blue).all(axis=2).sum() > 500, "no chart bars were painted"


def test_the_report_templates_ship_with_the_package() -> None:
    """deploy/ installs with ``pip install .`` (not editable): the templates must be
    package data, i.e. pyproject.toml's [tool.setuptools.package-data] needs
    ``"reports/templates/*"`` for ``acs_khaos_dagster``."""
    root = Path(__file__).resolve().parents[1]
    package = root / "acs_khaos_dagster"
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["acs_khaos_dagster"]
    shipped = {path for pattern in patterns for path in package.glob(pattern)}

    templates = sorted((package / "reports" / "templates").iterdir())
    assert templates
    assert [t.name for t in templates if t not in shipped] == []


# --- issue 17: ties, column descriptions, preview -------------------------------------------


def test_the_summarys_drift_is_the_drift_sheets_as_at_day(pack: PackFiles) -> None:
    """Point 3: the summary's unexplained drift, the stock sheet's unexplained column and
    the Drift by day sheet's last day are one figure (read back from the workbook)."""
    summary = summary_from_workbook(pack.workbook)
    [last] = [r for r in sheet_rows(pack.workbook, "Drift by day") if r["Day"].day == 31]

    assert last["Unexplained units"] == summary["unexplained-drift-units"] == 6
    assert last["Unexplained value (£ at cost)"] == pytest.approx(
        summary["unexplained-drift-value"]
    )


def test_a_drift_sheet_that_disagrees_with_the_stock_sheet_is_refused() -> None:
    drift = frames()["drift_by_day"]
    drift.loc[30, "unexplained_units"] = 10  # the whole difference, not the unexplained part

    with pytest.raises(ReportInputError, match="drift_by_day: 2025-01-31 shows 10 unit"):
        inputs(drift_by_day=drift)


def test_a_stock_row_whose_parts_do_not_add_up_is_refused() -> None:
    stock = frames()["stock_reconciliation"]
    stock.loc[2, "unexplained"] = 10

    with pytest.raises(ReportInputError, match=r"stock_reconciliation\.unexplained: row 2"):
        inputs(stock_reconciliation=stock)


def test_the_workbook_describes_every_column_and_the_sign_convention(pack: PackFiles) -> None:
    """Point 12: a Read me sheet and a comment on every header cell."""
    book = load_workbook(pack.workbook)
    readme = [r for r in book["Read me"].iter_rows(min_row=4, values_only=True)]
    described = {(r[0], r[1]) for r in readme}

    assert any("ACS − Khaos" in r[2] for r in readme if r[0] == "Sign convention")
    for spec in TABLES:
        sheet = book[spec.title]
        for index, column in enumerate(spec.columns, start=1):
            assert (spec.title, column.label) in described
            assert sheet.cell(row=2, column=index).comment.text == column.doc


def test_the_final_pack_says_final_as_at_the_cut_off_on_every_sheet(pack: PackFiles) -> None:
    book = load_workbook(pack.workbook)

    for sheet in book.worksheets:
        assert "FINAL as at the cut-off, 31 Jan 2025 23:59:59" in sheet["A1"].value, sheet.title
        assert "FINAL" in sheet.oddHeader.center.text


def test_a_preview_is_marked_on_every_sheet_file_and_page_and_never_replaces_the_final(
    tmp_path: Path,
) -> None:
    """Point 9."""
    final = render_month_end_pack(inputs(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    at = datetime(2025, 1, 20, 23, 59, 59, tzinfo=UTC)
    drift = frames()["drift_by_day"].iloc[:20].copy()
    drift.loc[19, ["unexplained_units", "unexplained_value"]] = [6, 110.0]

    preview = render_month_end_pack(inputs(preview=True, as_at=at, drift_by_day=drift), tmp_path)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before
    written = [preview.workbook, preview.html, *preview.csvs.values()]
    assert all(p.stem.endswith("_preview") for p in written)
    assert not set(written) & {final.workbook, final.html, *final.csvs.values()}
    for sheet in load_workbook(preview.workbook).worksheets:
        assert sheet["A1"].value.count("PREVIEW as at 20 Jan 2025 23:59:59") == 1, sheet.title
        assert "PREVIEW" in sheet.oddHeader.center.text
    html = preview.html.read_text(encoding="utf-8")
    assert "<title>PREVIEW" in html and 'id="pack-status" class="preview"' in html
    assert summary_from_workbook(preview.workbook)["pack"] == "PREVIEW"


def test_a_final_pack_must_be_as_at_the_cut_off() -> None:
    with pytest.raises(ReportInputError, match="is not the cut-off of 2025-01"):
        inputs(as_at=datetime(2025, 1, 20, tzinfo=UTC))
