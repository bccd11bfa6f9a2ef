"""Cut-off accruals and the VAT tax point (``domain/cutoff.py``): goods despatched in a month
but not invoiced by its cut-off are accrued net of VAT, and the VAT falls on the invoice
date when the invoice is issued within 14 days of despatch, else on the despatch date
(HMRC VAT Notice 700 §14). Boundaries and dates are worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.domain.cutoff import (
    ACCRUAL_ACTION,
    CUTOFF_ACCRUAL_COLUMNS,
    cutoff_accruals,
    vat_basis,
)

MARCH_CUTOFF = datetime(2026, 3, 31, 22, 59, 59, tzinfo=UTC)  # 23:59:59 BST

# --- the VAT tax point ---------------------------------------------------------------------------


def test_an_invoice_on_the_fourteenth_day_after_despatch_is_the_tax_point() -> None:
    assert vat_basis(date(2026, 3, 20), date(2026, 4, 3), date(2026, 3, 31)) == (
        "net of VAT; tax point 2026-04-03 (invoice within 14 days of despatch): VAT in 2026-04"
    )


def test_an_invoice_on_the_fifteenth_day_leaves_the_tax_point_at_despatch() -> None:
    assert vat_basis(date(2026, 3, 20), date(2026, 4, 4), date(2026, 3, 31)) == (
        "net of VAT; tax point 2026-03-20 (no invoice within 14 days of despatch): VAT in 2026-03"
    )


def test_with_no_invoice_and_14_days_not_yet_passed_the_tax_point_is_open() -> None:
    # Despatched 17 March: an invoice may still be issued until 31 March, the cut-off day.
    assert vat_basis(date(2026, 3, 17), None, date(2026, 3, 31)) == (
        "net of VAT; tax point open: the invoice date if issued by 2026-03-31, else 2026-03-17"
    )


def test_with_no_invoice_once_14_days_have_passed_the_tax_point_is_the_despatch() -> None:
    assert vat_basis(date(2026, 3, 16), None, date(2026, 3, 31)) == (
        "net of VAT; tax point 2026-03-16 (no invoice within 14 days of despatch): VAT in 2026-03"
    )


def test_a_missing_issue_date_read_from_a_table_counts_as_no_invoice() -> None:
    assert vat_basis(date(2026, 3, 16), pd.NaT, date(2026, 3, 31)) == vat_basis(
        date(2026, 3, 16), None, date(2026, 3, 31)
    )


@given(
    despatched=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    after=st.integers(min_value=0, max_value=60),
)
def test_the_tax_point_is_the_invoice_within_14_days_and_the_despatch_otherwise(
    despatched: date, after: int
) -> None:
    issued = despatched + timedelta(days=after)
    text = vat_basis(despatched, issued, issued)
    point = issued if after <= 14 else despatched
    assert f"tax point {point.isoformat()} " in text
    assert text.endswith(f"VAT in {point:%Y-%m}")


# --- the accrual list ----------------------------------------------------------------------------


def shipment(shipment_id: str, **changed: object) -> dict:
    row = {
        "shipment_id": shipment_id,
        "order_number": f"SO-{shipment_id}",
        "invoice_id": None,
        "status": "not posted",
        "despatch_date": date(2026, 3, 31),
        "period": "2026-03",
        "issue_date": None,
        "issue_period": None,
        "units": 2,
        "value": 50.0,
        "cost_value": 25.0,
    }
    row.update(changed)
    return row


def accruals(*rows: dict) -> pd.DataFrame:
    return cutoff_accruals(pd.DataFrame(list(rows)), "2026-03", MARCH_CUTOFF)


def test_a_shipment_of_the_month_not_invoiced_is_accrued_at_its_net_and_cost_value() -> None:
    [row] = accruals(shipment("SH1")).to_dict("records")
    assert (row["shipment_id"], row["units"], row["net_value"], row["cost_value"]) == (
        "SH1",
        2,
        50.0,
        25.0,
    )
    assert (row["invoice_id"], row["issue_date"], row["issue_period"]) == ("", None, "")
    assert row["action"] == ACCRUAL_ACTION == "post at the cut-off, reverse on the 1st"


def test_an_invoiced_shipment_is_no_accrual() -> None:
    assert accruals(shipment("SH1", status="invoiced", invoice_id=9001)).empty


def test_a_shipment_of_an_earlier_month_is_not_this_months_accrual() -> None:
    rows = accruals(shipment("SH1", period="2026-02", despatch_date=date(2026, 2, 27)))
    assert rows.empty


def test_an_invoice_issued_late_in_the_uk_evening_is_dated_by_its_uk_day() -> None:
    # 23:30 UTC on 31 March is 00:30 BST on 1 April: issued after the cut-off.
    issued = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    [row] = accruals(
        shipment(
            "SH1",
            invoice_id=9001.0,
            status="not issued by the cut-off",
            issue_date=issued,
            issue_period="2026-04",
        )
    ).to_dict("records")
    assert (row["invoice_id"], row["issue_date"], row["issue_period"]) == (
        "9001",
        date(2026, 4, 1),
        "2026-04",
    )
    assert "tax point 2026-04-01" in row["vat_basis"]


def test_accruals_are_listed_by_despatch_day_then_shipment() -> None:
    rows = accruals(
        shipment("SH3", despatch_date=date(2026, 3, 30)),
        shipment("SH2", despatch_date=date(2026, 3, 31)),
        shipment("SH1", despatch_date=date(2026, 3, 31)),
    )
    assert list(rows["shipment_id"]) == ["SH3", "SH1", "SH2"]


def test_the_accrual_list_has_its_columns_in_order() -> None:
    assert list(accruals(shipment("SH1")).columns) == list(CUTOFF_ACCRUAL_COLUMNS)


@pytest.mark.parametrize("cash", [None, pd.DataFrame()])
def test_no_shipments_give_an_empty_accrual_list_with_its_columns(
    cash: pd.DataFrame | None,
) -> None:
    rows = cutoff_accruals(cash, "2026-03", MARCH_CUTOFF)
    assert rows.empty and list(rows.columns) == list(CUTOFF_ACCRUAL_COLUMNS)


def test_a_month_with_everything_invoiced_gives_an_empty_list_with_its_columns() -> None:
    rows = accruals(shipment("SH1", status="invoiced"))
    assert rows.empty and list(rows.columns) == list(CUTOFF_ACCRUAL_COLUMNS)
