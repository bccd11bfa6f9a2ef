"""The month's cut-off (issue 17 point 1): a month is reconciled as at its last moment,
UK time, and what it despatched but Khaos had not invoiced by then is an accrual.

Written from the case: a parcel despatched on 31 March and invoiced on 1 April is
revenue of March, invoiced in April; finance accrues it at the cut-off and reverses it
on the 1st, never backdates the invoice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from acs_khaos_dagster.domain.cutoff import cutoff_accruals, vat_basis
from acs_khaos_dagster.domain.reconciliation import month_end_cutoff, order_to_cash

CUTOFF = month_end_cutoff(2026, 3)  # 31 March 23:59:59 BST
DRESS, COAT = 102, 103
COSTS = {DRESS: 20.0, COAT: 45.5}


def shipments(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=["shipment_id", "order_number", "despatched_at", "units", "unit_net", "stock_id"],
    )


def cash(invoices: list[tuple[int, int, datetime | None]]) -> pd.DataFrame:
    return order_to_cash(
        shipments(
            ("S31", "SO31", datetime(2026, 3, 31, 16, tzinfo=UTC), 2, "49.50", DRESS),
            ("S02", "SO02", datetime(2026, 3, 2, 10, tzinfo=UTC), 1, "120.00", COAT),
        ),
        pd.DataFrame([("S31", 9031), ("S02", 9002)], columns=["shipment_id", "invoice_id"]),
        pd.DataFrame(invoices, columns=["invoice_id", "stage_id", "issue_date"]),
        CUTOFF,
        cost_prices=COSTS,
    )


def test_a_despatch_on_the_31st_invoiced_on_the_1st_is_not_invoiced_at_the_cut_off() -> None:
    table = cash(
        [
            (9031, 70, datetime(2026, 4, 1, 8, tzinfo=UTC)),
            (9002, 70, datetime(2026, 3, 3, 9, tzinfo=UTC)),
        ]
    ).set_index("shipment_id")

    assert table.loc["S31", "status"] == "posted_not_invoiced"
    assert table.loc["S31", "issue_period"] == "2026-04"
    assert table.loc["S31", "value_waiting"] == 99.00
    assert table.loc["S02", "status"] == "invoiced"


def test_a_despatch_on_the_31st_invoiced_on_the_1st_is_the_months_accrual() -> None:
    table = cash(
        [
            (9031, 70, datetime(2026, 4, 1, 8, tzinfo=UTC)),
            (9002, 70, datetime(2026, 3, 3, 9, tzinfo=UTC)),
        ]
    )

    accruals = cutoff_accruals(table, "2026-03", CUTOFF)

    [row] = accruals.to_dict("records")
    assert row["shipment_id"] == "S31" and row["invoice_id"] == "9031"
    assert row["despatch_date"] == date(2026, 3, 31) and row["period"] == "2026-03"
    assert row["issue_date"] == date(2026, 4, 1) and row["issue_period"] == "2026-04"
    assert row["net_value"] == 99.00  # 2 × £49.50 UnitNet, net of VAT
    assert row["cost_value"] == 40.00  # 2 × £20 CostPrice
    assert "tax point 2026-04-01" in row["vat_basis"] and "VAT in 2026-04" in row["vat_basis"]
    assert row["action"] == "post at the cut-off, reverse on the 1st"


def test_an_invoice_issued_by_the_cut_off_is_no_accrual() -> None:
    table = cash(
        [
            (9031, 70, datetime(2026, 3, 31, 21, tzinfo=UTC)),  # 22:00 BST on the 31st
            (9002, 70, datetime(2026, 3, 3, 9, tzinfo=UTC)),
        ]
    )

    assert cutoff_accruals(table, "2026-03", CUTOFF).empty


def test_a_shipment_never_posted_is_accrued_without_an_invoice() -> None:
    table = order_to_cash(
        shipments(("S31", "SO31", datetime(2026, 3, 31, 16, tzinfo=UTC), 1, "49.50", DRESS)),
        pd.DataFrame(columns=["shipment_id", "invoice_id"]),
        pd.DataFrame(columns=["invoice_id", "stage_id"]),
        CUTOFF,
        cost_prices=COSTS,
    )

    [row] = cutoff_accruals(table, "2026-03", CUTOFF).to_dict("records")
    assert row["status"] == "despatched_not_posted" and row["invoice_id"] == ""
    assert row["issue_date"] is None and "tax point open" in row["vat_basis"]


def test_without_an_invoice_within_14_days_the_vat_tax_point_is_the_despatch() -> None:
    assert vat_basis(date(2026, 3, 2), date(2026, 3, 20), date(2026, 3, 31)).endswith(
        "VAT in 2026-03"
    )
    assert "tax point 2026-03-02" in vat_basis(date(2026, 3, 2), None, date(2026, 3, 31))


# --- point 11: the month's adjustments by reason ----------------------------------------------


def test_the_months_adjustments_are_totalled_by_reason_with_variance_origin() -> None:
    from acs_khaos_dagster.domain.layout import KhaosReasons
    from acs_khaos_dagster.domain.month_close import month_adjustments
    from acs_khaos_dagster.domain.month_end import month_bounds

    start, cutoff = month_bounds("2026-03")
    at = datetime(2026, 3, 15, 9, tzinfo=UTC)
    rows = pd.DataFrame(
        [
            (at, "SNAP-20260315-S1-B001", "VARIANCE", DRESS, 1, 1, 20.0),
            (at, "SNAP-20260314-S1-A102-B1", "VARIANCE", DRESS, 1, -5, -100.0),
            (at, "WO-U9", "WRITEOFF", COAT, 7, -1, -45.5),
            (at, "EXH-1", "EXHIRE", COAT, 7, -1, -45.5),
            (at, "SNAP-20260315-M1-S4", "TRANSFER", DRESS, 4, 2, 40.0),
            (datetime(2026, 4, 1, 9, tzinfo=UTC), "WO-U10", "WRITEOFF", COAT, 7, -1, -45.5),
        ],
        columns=["applied_at", "ref", "reason_code", "stock_id", "site_id", "units", "value"],
    )

    table = month_adjustments(rows, start, cutoff, reasons=KhaosReasons(), site_names={1: "Main"})

    by_kind = table.groupby("kind")["units"].sum().to_dict()
    assert by_kind == {"variance": -4, "write_off": -1, "ex_hire": -1, "status_move": 2}
    variance = table.loc[table["kind"] == "variance"].set_index("ref")["origin"]
    assert variance["SNAP-20260315-S1-B001"] == "within_tolerance"
    assert variance["SNAP-20260314-S1-A102-B1"] == "approved"
    assert "WO-U10" not in set(table["ref"])  # applied in April
