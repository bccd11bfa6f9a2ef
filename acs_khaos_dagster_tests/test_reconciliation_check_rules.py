"""The reconciliation checks' rules without Dagster (``flows.reconciliation.checks``) and
the figures of the exception queue: each rule judges one day's stored table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.flows.figures import Markdown
from acs_khaos_dagster.flows.reconciliation import checks, table_path
from acs_khaos_dagster.flows.reconciliation.returns import queue_figures

DAY = "2026-03-02"


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


def _stock(classification: str, unexplained: int) -> dict:
    return {
        "stock_code": "JKT-0002",
        "site_name": "Selling",
        "acs_units": 10,
        "khaos_level": 10 - unexplained,
        "classification": classification,
        "unexplained": unexplained,
        "unexplained_value": unexplained * 8.5,
    }


def test_unexplained_stock_drift_fails_as_a_warning_with_its_gross_units_and_value(
    conf: Settings,
) -> None:
    frame = pd.DataFrame([_stock("unexplained", -5), _stock("in_step", 0)])

    verdict = checks.unexplained_stock_drift(conf, frame)

    assert (verdict.passed, verdict.warn) == (False, True)
    assert verdict.figures["unexplained_rows"] == 1
    assert verdict.figures["unexplained_units_gross"] == 5
    assert verdict.figures["unexplained_value_gross"] == 42.5
    assert isinstance(verdict.figures["tolerance"], str)  # a setting: text, never plotted


def test_stock_in_step_passes_the_drift_check(conf: Settings) -> None:
    assert checks.unexplained_stock_drift(conf, pd.DataFrame([_stock("in_step", 0)])).passed


def _shipment(status: str, age_hours: float) -> dict:
    return {
        "shipment_id": "SH1",
        "order_number": "SO0050004",
        "status": status,
        "age_hours": age_hours,
        "value_waiting": 20.0,
    }


def test_a_shipment_not_invoiced_beyond_the_limit_fails_the_check() -> None:
    late = checks.NOT_INVOICED_AFTER_HOURS + 1
    frame = pd.DataFrame([_shipment("posted_not_invoiced", late)])

    verdict = checks.shipments_not_invoiced_too_long(frame)

    assert (verdict.passed, verdict.warn) == (False, False)
    assert (verdict.figures["late_shipments"], verdict.figures["late_value"]) == (1, 20.0)


def test_a_shipment_invoiced_or_within_the_limit_passes() -> None:
    young = checks.NOT_INVOICED_AFTER_HOURS - 1
    frame = pd.DataFrame([_shipment("invoiced", 500.0), _shipment("posted_not_invoiced", young)])

    assert checks.shipments_not_invoiced_too_long(frame).passed


def test_a_ber_unit_whose_write_off_is_missing_fails_the_check() -> None:
    frame = pd.DataFrame(
        {
            "return_ref": ["R1", "R2", "R3"],
            "unique_sku": ["U1", "U2", "U3"],
            "grade": ["BER", "BER", "A"],
            "write_off_status": ["missing", "written_off", "not_needed"],
        }
    )

    verdict = checks.ber_units_without_write_off(frame)

    assert not verdict.passed and not verdict.warn
    assert verdict.figures["units_without_write_off"] == 1


def test_exceptions_over_their_owner_target_fail_as_a_warning() -> None:
    frame = pd.DataFrame(
        {
            "owner": ["finance", "operations"],
            "type": ["drift", "hire_overdue"],
            "over_target": [2, 0],
        }
    )

    verdict = checks.exceptions_over_owner_target(frame)

    assert (verdict.passed, verdict.warn, verdict.figures["over_target"]) == (False, True, 2)


def test_a_day_without_its_table_fails_naming_what_is_missing(conf: Settings) -> None:
    verdict = checks.late_shipments_on(conf, DAY)

    assert not verdict.passed and not verdict.warn
    assert verdict.figures == {"missing": f"no order_to_cash table for {DAY}"}
    assert checks.stock_drift_on(conf, DAY).warn  # the stock check only warns


def test_a_check_on_a_day_judges_that_days_stored_table(conf: Settings) -> None:
    frame = pd.DataFrame({"owner": ["finance"], "type": ["drift"], "over_target": [1]})
    write_parquet_atomically(frame, table_path(conf, "exceptions", DAY))

    assert not checks.exception_ages_on(conf, DAY).passed
    assert checks.exception_ages_on(conf, "2026-03-01").figures.keys() == {"missing"}


def test_the_queue_figures_count_open_exceptions_per_owner() -> None:
    queue = pd.DataFrame(
        {
            "owner": ["finance", "finance", "operations"],
            "count": [2, 1, 4],
            "over_target": [1, 0, 0],
        }
    )

    figures = queue_figures(queue)

    assert figures["open_exceptions"] == 7 and figures["over_target"] == 1
    assert (figures["open_finance"], figures["open_operations"]) == (3, 4)
    assert isinstance(figures["queue"], Markdown)


def test_an_empty_queue_counts_nothing_open() -> None:
    figures = queue_figures(pd.DataFrame(columns=["owner", "count", "over_target"]))

    assert (figures["open_exceptions"], figures["over_target"]) == (0, 0)
