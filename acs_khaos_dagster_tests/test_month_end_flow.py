"""The month-end pack and the workflow audit report through Dagster, and their schedule.

The daily reconciliation of March 2026 is written the way the reconciliation assets
store it (``<data_dir>/reconciliation/<table>/<day>.parquet``), from small hand-built
frames passed through the domain's reconciliation functions. March 2026 has one dress
drifting a little more each day, one shipment never posted, one BER unit written off
and one credit pending review.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_schedule_context,
    instance_for_test,
    materialize,
)
from openpyxl import load_workbook

from acs_khaos_dagster.config import OwnerTargets
from acs_khaos_dagster.defs.month_end import (
    PACK_TAG,
    month_end_pack,
    month_end_pack_preview,
    month_end_schedule,
    workflow_audit_report,
)
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.reconciliation import (
    exceptions_table,
    month_end_cutoff,
    order_status_reconciliation,
    order_to_cash,
    returns_reconciliation,
    stock_reconciliation,
)
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.reports.pack_registry import (
    HEADLINE_FIGURES,
    SummaryFigure,
    metadata_figures,
)
from acs_khaos_dagster_tests.report_links import served_file

MONTH = "2026-03"
SITES = {1: "Main", 4: "Inspection", 6: "Quarantine"}
CODES = {101: "TSHIRT-RED-M", 102: "DRESS-10", 103: "COAT-L"}
COSTS = {101: 5.00, 102: 20.00, 103: 45.50}
# SO1's journey, stored per UK day: released, despatched 25 h later (a day past ACS's
# 24-hour target), posted 90 minutes later, invoiced the next morning.
WORKFLOW = {
    1: [("SO1", "", "released", datetime(2026, 3, 1, 9, tzinfo=UTC))],
    2: [
        ("SO1", "SO1-1", "despatched", datetime(2026, 3, 2, 10, tzinfo=UTC)),
        ("SO1", "SO1-1", "posted", datetime(2026, 3, 2, 11, 30, tzinfo=UTC)),
    ],
    3: [("SO1", "SO1-1", "invoiced", datetime(2026, 3, 3, 9, tzinfo=UTC))],
}


def _end_of(day: date) -> datetime:
    return (
        month_end_cutoff(day.year, day.month)
        if day.day == 31
        else datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC)
    )


def _stock(day: date) -> pd.DataFrame:
    acs = pd.DataFrame(
        [(101, 1, 10), (102, 1, 7), (103, 1, 3), (102, 4, 2), (103, 6, 1)],
        columns=["stock_id", "site_id", "units"],
    )
    # The dress's Level drifts one more unit every ten days: 0, 1, 2, 3 beyond tolerance.
    dress_level = 7 + 3 * (day.day // 10)
    levels = pd.DataFrame(
        [(101, 1, 10), (102, 1, dress_level), (103, 1, 3), (102, 4, 2), (103, 6, 1)],
        columns=["stock_id", "site_id", "level"],
    )
    table = stock_reconciliation(acs, levels, cost_prices=COSTS)
    table["stock_code"] = table["stock_id"].map(CODES)
    table["site_name"] = table["site_id"].map(SITES)
    return table


def _order_status() -> pd.DataFrame:
    acs = pd.DataFrame(
        [("SO1", "DESPATCHED", "SO1-1"), ("SO2", "DESPATCHED", "SO2-1")],
        columns=["order_number", "acs_status", "acs_shipment_ids"],
    )
    khaos = pd.DataFrame(
        [("SO1", False, "SO1-1"), ("SO2", False, "SO2-1")],
        columns=["order_number", "khaos_cancelled", "received_shipment_ids"],
    )
    return order_status_reconciliation(acs, khaos)


def _order_to_cash(day: date) -> pd.DataFrame:
    shipments = pd.DataFrame(
        [
            ("SO1-1", "SO1", datetime(2026, 3, 2, 10, tzinfo=UTC), 2, "30.00"),
            ("SO2-1", "SO2", datetime(2026, 3, 27, 15, tzinfo=UTC), 1, "80.50"),
            ("SO3-1", "SO3", datetime(2026, 3, 31, 23, 30, tzinfo=UTC), 1, "99.00"),  # 1 April UK
            # Despatched on the 31st, invoiced on 1 April: the month's accrual.
            ("SO4-1", "SO4", datetime(2026, 3, 31, 15, tzinfo=UTC), 2, "49.50"),
        ],
        columns=["shipment_id", "order_number", "despatched_at", "units", "unit_net"],
    )
    postings = pd.DataFrame(
        [("SO1-1", 9001), ("SO4-1", 9004)], columns=["shipment_id", "invoice_id"]
    )
    invoices = pd.DataFrame(
        [(9001, 70, None), (9004, 70, datetime(2026, 4, 1, 8, tzinfo=UTC))],
        columns=["invoice_id", "stage_id", "issue_date"],
    )
    return order_to_cash(shipments, postings, invoices, _end_of(day))


def _returns(day: date) -> pd.DataFrame:
    units = pd.DataFrame(
        [
            ("R1", "U1", "R1-1", 101, False, "A", datetime(2026, 3, 10, 9, tzinfo=UTC), 12.0),
            ("R1", "U2", "R1-1", 102, False, "BER", datetime(2026, 3, 10, 9, tzinfo=UTC), 40.0),
            ("R2", "U3", "R2-1", 103, False, "B", datetime(2026, 3, 25, 9, tzinfo=UTC), 60.0),
        ],
        columns=[
            "return_ref",
            "unique_sku",
            "associated_ref",
            "stock_id",
            "is_hire",
            "grade",
            "received_at",
            "unit_net",
        ],
    )
    units["credit_mode"] = ["auto", "auto", "review"]
    units["written_off"] = [False, True, False]
    khaos = pd.DataFrame(
        [("R1-1", "raised", 1), ("R2-1", "review", 0)],
        columns=["associated_ref", "credit_status", "write_off_units"],
    )
    write_offs = pd.DataFrame({"unique_sku": pd.Series([], dtype=object)})
    return returns_reconciliation(units, khaos, write_offs, _end_of(day))


def _exceptions(day: date) -> pd.DataFrame:
    rows = pd.DataFrame(
        [
            ("drift", "finance", datetime(2026, 3, 20, tzinfo=UTC)),
            ("order_sla_breach", "operations", datetime(2026, 3, 1, tzinfo=UTC)),
        ],
        columns=["type", "owner", "opened_at"],
    )
    return exceptions_table(rows, _end_of(day), OwnerTargets())


def write_month(data_dir: Path, skip: set[date] = frozenset()) -> None:
    """The reconciliation assets' storage for every day of March but ``skip``."""
    folder = data_dir / "reconciliation"
    drift = []
    for day in me.month_days(MONTH):
        if day in skip:
            continue
        stock = _stock(day)
        tables = {
            "stock": stock,
            "order_status": _order_status(),
            "order_to_cash": _order_to_cash(day),
            "returns": _returns(day),
            "exceptions": _exceptions(day),
        }
        for table, frame in tables.items():
            write_parquet_atomically(frame, folder / table / f"{day.isoformat()}.parquet")
        units, value = me.drift_of_stock(stock)
        drift.append({"day": day, "unexplained_units": units, "unexplained_value": value})
        events = pd.DataFrame(
            WORKFLOW.get(day.day, []),
            columns=list(me.EVENT_COLUMNS),
        )
        write_parquet_atomically(events, folder / "workflow_events" / f"{day.isoformat()}.parquet")
    write_parquet_atomically(pd.DataFrame(drift), folder / "drift_by_day.parquet")
    # The products flow's SKU master: where the pack finds CostPrice.
    master = pd.DataFrame({"stock_id": list(COSTS), "cost_price": list(COSTS.values())})
    write_parquet_atomically(master, data_dir / "products" / "sku_master.parquet")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    clock = tmp_path / "clock.txt"
    clock.write_text("2026-04-01T05:00:00+00:00")
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(folder))
    monkeypatch.setenv("ACS_KHAOS_CLOCK_URL", clock.as_uri())
    return folder


@pytest.fixture
def instance():
    with instance_for_test() as dagster_instance:
        yield dagster_instance


def _materialise(
    assets: list, instance: DagsterInstance, raise_on_error: bool = True, run_config=None
):
    return materialize(
        assets,
        partition_key=MONTH,
        resources=default_resources(),
        instance=instance,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


def _metadata(result, name: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.step_materialization_data.materialization.asset_key.to_user_string() == name
    ]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def _summary_sheet(workbook: Path) -> dict[str, float]:
    sheet = load_workbook(workbook, data_only=True)["Summary"]
    return {
        row[3]: row[1]
        for row in sheet.iter_rows(min_row=4, values_only=True)
        if row[3] and isinstance(row[1], int | float)
    }


# --- the pack ------------------------------------------------------------------------------


def _run_tags(result, instance: DagsterInstance) -> dict[str, str]:
    return instance.get_run_by_id(result.run_id).tags


def test_the_pack_of_a_reconciled_month_is_written_with_its_totals_in_the_metadata(
    data_dir: Path, instance: DagsterInstance
) -> None:
    write_month(data_dir)

    result = _materialise([month_end_pack], instance)

    meta = _metadata(result, "month_end_pack")
    folder = data_dir / "month_end" / MONTH
    # Links the UI renders: finance clicks through to the files the webserver serves.
    assert meta["workbook"] == f"/files/month_end/{MONTH}/month_end_{MONTH}.xlsx"
    assert served_file(data_dir, meta["workbook"]) == folder / f"month_end_{MONTH}.xlsx"
    assert served_file(data_dir, meta["html"]).exists() and (folder / "order_to_cash.csv").exists()
    assert meta["csv_folder"] == f"/files/month_end/{MONTH}" and meta["folder"] == str(folder)
    assert meta["pack"].startswith("FINAL") and "| figure | value |" in meta["summary"]
    assert "£" in meta["summary"]
    sheet = _summary_sheet(served_file(data_dir, meta["workbook"]))
    headline = {k: sheet[k] for k in HEADLINE_FIGURES}
    shown = {
        k: meta.get(k.replace("-", "_"), meta.get(k.replace("-", "_") + "_gbp")) for k in sheet
    }
    assert {k: v for k, v in shown.items() if k in HEADLINE_FIGURES} == pytest.approx(headline)
    # The dress on the 31st: ACS 7, Level 16 → 9 units, £180 unexplained.
    assert meta["unexplained_drift_units"] == 9
    assert meta["unexplained_drift_value_gbp"] == 180.0
    # SO2-1 is posted nowhere (£80.50); SO4-1's invoice was issued on 1 April, after the
    # cut-off (£99); SO3-1 left on 1 April UK time, so it is not in March.
    assert meta["shipments_not_invoiced"] == 2
    assert meta["value_despatched_not_invoiced_gbp"] == 179.50
    assert meta["credits_review_value_gbp"] == 60.0
    # Inspection holds 2 dresses at £20, quarantine 1 coat at £45.50.
    assert meta["non_sellable_value_gbp"] == 85.50
    assert _run_tags(result, instance)[PACK_TAG] == "final"


def test_the_packs_metadata_labels_are_snake_case_with_money_in_pounds_to_the_penny(
    data_dir: Path, instance: DagsterInstance
) -> None:
    """Issue 22: after the £ table, one label style and no raw floats; only the sign-off
    figures are repeated as numbers (the table has them all)."""
    write_month(data_dir)

    meta = _metadata(_materialise([month_end_pack], instance), "month_end_pack")

    assert list(meta)[:2] == ["pack", "summary"]
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) for label in meta), list(meta)
    numbers = {k: v for k, v in meta.items() if isinstance(v, int | float)}
    money = {k: v for k, v in numbers.items() if isinstance(v, float)}
    assert money and all(label.endswith("_gbp") for label in money), money
    assert all(round(v, 2) == v for v in money.values()), money
    assert len(numbers) <= len(HEADLINE_FIGURES) + 4, sorted(numbers)


def test_the_pack_ages_shipments_at_the_month_end_cut_off(
    data_dir: Path, instance: DagsterInstance
) -> None:
    write_month(data_dir)

    _materialise([month_end_pack], instance)

    with (data_dir / "month_end" / MONTH / "order_to_cash.csv").open() as handle:
        rows = {r["shipment_id"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"SO1-1", "SO2-1", "SO4-1"}
    assert rows["SO2-1"]["age_days"] == "4"  # 27 Mar 15:00 UTC to 31 Mar 23:59:59 BST
    assert rows["SO2-1"]["ageing_bucket"] == "3-7 d"


def test_a_month_with_days_not_reconciled_is_refused_naming_the_days(
    data_dir: Path, instance: DagsterInstance
) -> None:
    write_month(data_dir, skip={date(2026, 3, 14), date(2026, 3, 15)})

    result = _materialise([month_end_pack], instance, raise_on_error=False)

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message + str(
        failure.step_failure_data.user_failure_data
    )
    assert "2026-03-14" in message and "2026-03-15" in message
    assert not (data_dir / "month_end" / MONTH).exists()


def test_a_preview_of_an_open_month_is_built_as_at_the_newest_day_and_says_so(
    data_dir: Path, instance: DagsterInstance
) -> None:
    write_month(data_dir, skip={date(2026, 3, d) for d in range(20, 32)})

    result = _materialise([month_end_pack_preview], instance)

    meta = _metadata(result, "month_end_pack_preview")
    assert meta["days_not_reconciled"] == 12 and "preview" not in meta
    assert "PREVIEW" in served_file(data_dir, meta["html"]).read_text(encoding="utf-8")
    assert meta["pack"].startswith("PREVIEW") and next(iter(meta)) == "pack"
    assert meta["workbook"] == f"/files/month_end/{MONTH}/preview/month_end_{MONTH}_preview.xlsx"
    # Issue 17 point 9: as at its own moment (the 19th's end), aged then, in its own files.
    assert meta["as_at"] == "2026-03-19T23:59:59+00:00"
    folder = data_dir / "month_end" / MONTH / "preview"
    with (folder / "order_to_cash_preview.csv").open() as handle:
        rows = {r["shipment_id"]: r for r in csv.DictReader(handle)}
    assert rows["SO1-1"]["age_days"] == "17"  # 2 March 10:00 to 19 March 23:59:59
    assert not (data_dir / "month_end" / MONTH / f"month_end_{MONTH}.xlsx").exists()


def test_a_preview_is_its_own_asset_so_the_month_never_shows_a_final_pack_and_its_run_says_so(
    data_dir: Path, instance: DagsterInstance
) -> None:
    """Issue 22: a preview must not look final: the month of ``month_end_pack`` stays not
    materialised, and the run is tagged ``month_end/pack: preview``."""
    write_month(data_dir, skip={date(2026, 3, d) for d in range(20, 32)})

    result = _materialise([month_end_pack_preview], instance)

    assert _run_tags(result, instance)[PACK_TAG] == "preview"
    assert instance.get_materialized_partitions(AssetKey("month_end_pack")) == set()
    assert instance.get_materialized_partitions(AssetKey("month_end_pack_preview")) == {MONTH}


def test_one_run_builds_one_kind_of_pack_so_its_tag_never_lies(
    data_dir: Path, instance: DagsterInstance
) -> None:
    write_month(data_dir)

    result = _materialise([month_end_pack, month_end_pack_preview], instance, raise_on_error=False)

    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    assert "separate runs" in str(failures[0].step_failure_data.user_failure_data.description)
    tag = _run_tags(result, instance)[PACK_TAG]
    built = {"final": "month_end_pack", "preview": "month_end_pack_preview"}[tag]
    assert instance.get_materialized_partitions(AssetKey(built)) == {MONTH}
    other = ({"month_end_pack", "month_end_pack_preview"} - {built}).pop()
    assert instance.get_materialized_partitions(AssetKey(other)) == set()


def test_a_previews_refund_days_left_are_counted_at_its_own_moment_not_the_months_end(
    data_dir: Path, instance: DagsterInstance
) -> None:
    """Issue 22: R2's credit (received 25 March) awaits review; its refund is due by the end
    of 8 April UK time (14 days after the day of receipt: 8 April 23:00 UTC). A preview as
    at the end of the 27th has 11 whole days left, not the 8 left at the month's end."""
    write_month(data_dir, skip={date(2026, 3, d) for d in range(28, 32)})

    meta = _metadata(_materialise([month_end_pack_preview], instance), "month_end_pack_preview")

    assert meta["as_at"] == "2026-03-27T23:59:59+00:00"
    with (data_dir / "month_end" / MONTH / "preview" / "returns_preview.csv").open() as handle:
        rows = {r["part"]: r for r in csv.DictReader(handle)}
    assert rows["U3"]["credit_status"] == "review"
    assert rows["U3"]["refund_days_left"] == "11"


def test_a_despatch_on_the_31st_invoiced_on_the_1st_is_an_accrual_in_the_months_pack(
    data_dir: Path, instance: DagsterInstance
) -> None:
    """Issue 17 point 1."""
    write_month(data_dir)

    _materialise([month_end_pack], instance)

    with (data_dir / "month_end" / MONTH / "cutoff_accruals.csv").open() as handle:
        rows = {r["shipment_id"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"SO2-1", "SO4-1"}
    so4 = rows["SO4-1"]
    assert (so4["invoice_id"], so4["despatch_date"]) == ("9004", "2026-03-31")
    assert (so4["issue_date"], so4["issue_period"]) == ("2026-04-01", "2026-04")
    assert so4["net_value"] == "99.00" and "VAT in 2026-04" in so4["vat_basis"]
    assert so4["action"] == "post at the cut-off, reverse on the 1st"


def test_rebuilding_a_past_month_after_a_cost_change_gives_the_same_figures(
    data_dir: Path, instance: DagsterInstance
) -> None:
    """Issue 17 point 10: costs as at the period, not today's."""
    write_month(data_dir)
    first = _metadata(_materialise([month_end_pack], instance), "month_end_pack")
    master = pd.DataFrame({"stock_id": list(COSTS), "cost_price": [99.0, 99.0, 99.0]})
    write_parquet_atomically(master, data_dir / "products" / "sku_master.parquet")

    again = _metadata(_materialise([month_end_pack], instance), "month_end_pack")

    figures = [k for k in first if isinstance(first[k], int | float)]
    assert {k: again[k] for k in figures} == {k: first[k] for k in figures}
    assert again["non_sellable_value_gbp"] == 85.50


def test_a_money_figure_is_metadata_in_pounds_to_the_penny_and_a_count_an_integer() -> None:
    figures = [
        SummaryFigure("stock-value", "Stock value", "money", Decimal("12.345"), "sheet"),
        SummaryFigure("stock-units", "Stock units", "int", 7, "sheet"),
        SummaryFigure("in-transit-units", "In transit", "int", 1, "sheet"),
    ]

    assert metadata_figures(figures) == {"stock_value_gbp": 12.35, "stock_units": 7}


def test_a_day_missing_one_table_is_named_with_that_table() -> None:
    days = {table: me.month_days(MONTH) for table in me.DAILY_TABLES}
    days["returns"] = [d for d in days["returns"] if d != date(2026, 3, 9)]

    missing = me.missing_days(MONTH, days)

    assert missing == {date(2026, 3, 9): ["returns"]}
    assert "2026-03-09 (returns)" in me.describe_missing(MONTH, missing)


def test_the_returns_sheet_values_write_offs_at_cost_and_pending_credits() -> None:
    units = me.month_returns({date(2026, 3, 31): _returns(date(2026, 3, 31))}, MONTH)

    sheet = me.pack_returns(units, MONTH, COSTS).set_index("part")

    assert sheet.loc["U2", "written_off_units"] == 1
    assert sheet.loc["U2", "write_off_value"] == pytest.approx(20.0)
    assert sheet.loc["U3", "credit_status"] == "review"
    assert sheet.loc["U1", "refund_days_left"] is None  # credited


# --- the audit report ---------------------------------------------------------------------------


def test_the_audit_report_is_written_for_the_month(
    data_dir: Path, instance: DagsterInstance
) -> None:
    write_month(data_dir)

    result = _materialise([workflow_audit_report], instance)

    meta = _metadata(result, "workflow_audit_report")
    assert meta["html"] == f"/files/audit/{MONTH}/audit_report.html"
    assert served_file(data_dir, meta["html"]) == data_dir / "audit" / MONTH / "audit_report.html"
    assert served_file(data_dir, meta["html"]).exists()
    assert meta["folder"] == str(data_dir / "audit" / MONTH)
    assert (meta["orders"], meta["shipments"]) == (1, 1)
    assert meta["release_to_despatch_p50_hours"] == 25.0
    assert meta["despatch_to_posting_p95_hours"] == 1.5
    assert "ACS warehouse (release_to_despatch)" in meta["largest_delays"]


def test_latencies_name_the_slowest_step_as_a_delay_source() -> None:
    at = datetime(2026, 3, 2, 8, tzinfo=UTC)
    events = pd.DataFrame(
        [
            ("SO1", "", "released", at),
            ("SO1", "SO1-1", "despatched", at + timedelta(hours=3)),
            ("SO1", "SO1-1", "posted", at + timedelta(hours=9)),
            ("SO1", "SO1-1", "invoiced", at + timedelta(hours=10)),
        ],
        columns=list(me.EVENT_COLUMNS),
    )

    lat = me.latencies(events, MONTH)
    delays = me.delay_sources(lat)

    assert list(lat["ref"]) == ["SO1-1"]
    assert delays.to_dict("records") == [
        {
            "source": "Despatch posting to Khaos",
            "stage": "despatch_to_posting",
            "items": 1,
            "delay_hours": 5.0,
        }
    ]


# --- the schedule ---------------------------------------------------------------------------


def _tick(local: datetime) -> RunRequest | SkipReason:
    context = build_schedule_context(scheduled_execution_time=local)
    [answer] = list(month_end_schedule(context))
    return answer


def _london(y: int, m: int, d: int) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(y, m, d, 6, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.mark.parametrize(
    ("day", "month"),
    [
        ((2026, 9, 1), "2026-08"),  # Tuesday
        ((2026, 6, 1), "2026-05"),  # Monday
        ((2026, 8, 3), "2026-07"),  # 1 August 2026 is a Saturday
        ((2027, 1, 4), "2026-12"),  # 1 Jan is a bank holiday (a Friday), then the weekend
        ((2026, 4, 1), "2026-03"),
    ],
)
def test_the_schedule_builds_the_month_just_closed_on_the_first_working_day(
    day: tuple[int, int, int], month: str
) -> None:
    answer = _tick(_london(*day))

    assert isinstance(answer, RunRequest)
    assert answer.partition_key == month


@pytest.mark.parametrize(
    "day",
    [
        (2026, 8, 1),  # Saturday the 1st
        (2026, 9, 2),  # the second working day
        (2027, 1, 1),  # New Year's Day
        (2026, 3, 15),
    ],
)
def test_the_schedule_skips_every_other_day(day: tuple[int, int, int]) -> None:
    assert isinstance(_tick(_london(*day)), SkipReason)


def test_the_month_still_open_is_a_partition_finance_can_preview() -> None:
    from acs_khaos_dagster.defs.month_end import MONTHS

    this_month = datetime.now(ZoneInfo("Europe/London")).strftime("%Y-%m")
    assert MONTHS.has_partition_key(this_month)
