"""The summary figures and cross-checks of the pack's refund and hire sheets
(``reports/refund_liability_sheet.py``, ``reports/hire_sheets.py``, ``pack_registry.py``):
each figure is the plain sum or count of one sheet column, computed here by hand from the
rows given; the by-kind sheet must tie to the Order to cash sheet."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from acs_khaos_dagster.reports._tables import ReportInputError, prepare
from acs_khaos_dagster.reports.hire_sheets import (
    HIRE_FLEET,
    HIRE_SHEETS,
    ORDER_TO_CASH_BY_KIND,
    check_kinds_tie,
)
from acs_khaos_dagster.reports.pack_registry import (
    count_figure,
    int_figure,
    money_figure,
    where,
)
from acs_khaos_dagster.reports.refund_liability_sheet import (
    REFUND_LIABILITY,
    REFUND_SHEETS,
    liability_frame,
)


def figures(sheet: object, tables: dict[str, pd.DataFrame]) -> dict[str, object]:
    return {f.key: f.value for f in sheet.figures(tables)}  # type: ignore[attr-defined]


# --- the registry's figures ----------------------------------------------------------------------


def test_a_count_figure_counts_rows_and_says_where_from() -> None:
    rows = pd.DataFrame({"a": [1, 2, 3]})
    figure = count_figure("k", "Things", rows, "'Sheet': rows")
    assert (figure.key, figure.label, figure.kind, figure.value, figure.source) == (
        "k",
        "Things",
        "int",
        3,
        "'Sheet': rows",
    )


def test_an_int_figure_sums_a_column_leaving_out_empty_cells() -> None:
    assert int_figure("k", "U", pd.Series([2, None, 5], dtype="Int64"), "s").value == 7


def test_a_money_figure_is_an_exact_sum_in_pence() -> None:
    figure = money_figure("k", "V", pd.Series([0.1, 0.2, np.nan, 1234.56]), "s")
    assert (figure.kind, figure.value) == ("money", Decimal("1234.86"))


def test_where_keeps_the_rows_with_that_value() -> None:
    frame = pd.DataFrame({"kind": ["sale", "hire", "sale"], "n": [1, 2, 3]})
    assert where(frame, "kind", "sale")["n"].tolist() == [1, 3]


# --- refund liability ----------------------------------------------------------------------------


def owed(*rows: dict) -> pd.DataFrame:
    base = {
        "return_ref": "R1",
        "associated_ref": "R1-P1",
        "unique_skus": "U1",
        "received_at_uk": "2026-03-20 10:00",
        "deadline_uk": "2026-04-03 23:59",
        "days_left": 3.0,
        "matched": True,
        "credit_status": "review",
        "khaos_credit_value": Decimal("38.50"),
        "asked_value": Decimal("40.00"),
        "vat_basis": "net of VAT",
        "note": "",
    }
    return liability_frame(pd.DataFrame([{**base, **r} for r in rows]))


def test_the_liability_sheet_says_matched_or_unmatched_and_blanks_an_empty_part() -> None:
    frame = owed({}, {"associated_ref": "", "matched": False})
    assert frame["matched"].tolist() == ["matched", "unmatched"]
    assert frame["associated_ref"].tolist() == ["R1-P1", None]


def test_refund_liability_figures_are_counted_and_summed_from_its_rows() -> None:
    table = prepare(
        owed(
            {},
            {
                "return_ref": "R2",
                "associated_ref": "R2-P1",
                "days_left": -1.5,
                "credit_status": "missing",
                "khaos_credit_value": None,
                "asked_value": Decimal("25.10"),
            },
            {
                "return_ref": "R3",
                "associated_ref": "",
                "matched": False,
                "days_left": -0.25,
                "credit_status": "missing",
                "khaos_credit_value": None,
                "asked_value": None,
            },
        ),
        REFUND_LIABILITY,
    )
    [sheet] = REFUND_SHEETS
    assert figures(sheet, {"refund_liability": table}) == {
        "refund-liability-count": 3,
        "refund-liability-posted-value": Decimal("65.10"),
        "refund-liability-khaos-value": Decimal("38.50"),
        "refund-liability-missing-count": 2,
        "refund-liability-overdue-count": 2,
    }


def test_the_liability_sheet_shows_the_soonest_deadline_first() -> None:
    [sheet] = REFUND_SHEETS
    assert sheet.html is not None
    _, order = sheet.html
    table = owed(
        {"return_ref": "LATER", "days_left": 9.0}, {"return_ref": "SOON", "days_left": -2.0}
    )
    assert order(table)["return_ref"].tolist() == ["SOON", "LATER"]


def test_a_liability_row_that_is_neither_matched_nor_unmatched_is_refused() -> None:
    table = owed({})
    table["matched"] = ["perhaps"]
    with pytest.raises(ReportInputError, match=r"refund_liability\.matched"):
        prepare(table, REFUND_LIABILITY)


# --- hire fleet and order to cash by kind --------------------------------------------------------


def fleet(*rows: tuple[str, int, float, float]) -> pd.DataFrame:
    """(on_hire, units, value_at_cost, book_value) rows."""
    return prepare(
        pd.DataFrame(
            [
                {
                    "stock_id": n,
                    "stock_code": f"H{n}",
                    "site_name": "S",
                    "on_hire": on,
                    "units": u,
                    "rentals_per_unit": 1.0,
                    "value_at_cost": c,
                    "book_value": b,
                    "basis": "cost",
                }
                for n, (on, u, c, b) in enumerate(rows, start=1)
            ]
        ),
        HIRE_FLEET,
    )


def by_kind(*rows: tuple[str, str, float]) -> pd.DataFrame:
    """(kind, status, value_waiting) rows."""
    return prepare(
        pd.DataFrame(
            [
                {
                    "shipment_id": f"SH{n}",
                    "order_number": f"SO{n}",
                    "kind": k,
                    "status": s,
                    "value_waiting": v,
                }
                for n, (k, s, v) in enumerate(rows, start=1)
            ]
        ),
        ORDER_TO_CASH_BY_KIND,
    )


def test_hire_fleet_figures_total_the_fleet_and_the_units_with_customers() -> None:
    fleet_sheet, _ = HIRE_SHEETS
    table = fleet(("yes", 2, 200.0, 150.0), ("no", 3, 300.0, 210.55), ("yes", 1, 100.0, 99.99))
    assert figures(fleet_sheet, {"hire_fleet": table}) == {
        "hire-fleet-units": 6,
        "hire-fleet-book-value": Decimal("460.54"),
        "hire-fleet-cost-value": Decimal("600.00"),
        "hire-on-hire-units": 3,
        "hire-on-hire-book-value": Decimal("249.99"),
    }


def test_value_waiting_is_split_into_sales_and_hire_fees_not_invoiced() -> None:
    _, kind_sheet = HIRE_SHEETS
    table = by_kind(
        ("sale", "posted_not_invoiced", 100.0),
        ("hire", "despatched_not_posted", 35.5),
        ("hire", "invoiced", 0.0),
        ("sale", "despatched_not_posted", 20.25),
        ("hire", "posted_not_invoiced", 10.0),
    )
    assert figures(kind_sheet, {"order_to_cash_by_kind": table}) == {
        "value-waiting-sales": Decimal("120.25"),
        "value-waiting-hire-fees": Decimal("45.50"),
        "hire-shipments-not-invoiced": 2,
    }


def test_a_shipment_kind_other_than_sale_or_hire_is_refused() -> None:
    with pytest.raises(ReportInputError, match=r"order_to_cash_by_kind\.kind"):
        by_kind(("rental", "invoiced", 0.0))


def o2c(*rows: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"status": s, "value_waiting": v} for s, v in rows])


def test_sales_and_hire_fees_waiting_tie_to_the_order_to_cash_sheet() -> None:
    kinds = by_kind(("sale", "posted_not_invoiced", 100.0), ("hire", "invoiced", 0.0))
    check_kinds_tie({"order_to_cash_by_kind": kinds, "order_to_cash": o2c(("x", 100.0))})


def test_a_by_kind_sheet_that_does_not_tie_is_refused_with_both_totals() -> None:
    kinds = by_kind(("sale", "posted_not_invoiced", 100.0))
    with pytest.raises(
        ReportInputError, match=r"£100\.00 is not the Order to cash sheet's £99\.99"
    ):
        check_kinds_tie({"order_to_cash_by_kind": kinds, "order_to_cash": o2c(("posted", 99.99))})


def test_invoiced_rows_are_left_out_of_the_tie_on_both_sides() -> None:
    kinds = by_kind(("sale", "posted_not_invoiced", 10.0), ("sale", "invoiced", 500.0))
    tables = {"order_to_cash_by_kind": kinds, "order_to_cash": o2c(("p", 10.0), ("invoiced", 7.0))}
    check_kinds_tie(tables)


def test_without_a_by_kind_sheet_there_is_nothing_to_tie() -> None:
    check_kinds_tie({"order_to_cash": o2c(("p", 10.0))})
    empty = by_kind(("sale", "invoiced", 0.0)).iloc[0:0]
    check_kinds_tie({"order_to_cash_by_kind": empty, "order_to_cash": o2c(("p", 10.0))})
