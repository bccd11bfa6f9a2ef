"""The reconciliation's findings (``domain/reconciliation/findings.py``): each problem the
night's tables show becomes one ``drift`` exception with a key that names the thing —
never the day or the run — so a problem seen every night is one exception. Tables are
built by hand, one row per behaviour; messages and keys are read off those rows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from acs_khaos_dagster.domain.reconciliation.cash import ORDER_TO_CASH_COLUMNS
from acs_khaos_dagster.domain.reconciliation.findings import (
    Finding,
    drift_findings,
    finding_key,
    findings_frame,
    owns_finding,
)
from acs_khaos_dagster.domain.reconciliation.order_status import ORDER_STATUS_COLUMNS
from acs_khaos_dagster.domain.reconciliation.returns import RETURNS_RECONCILIATION_COLUMNS
from acs_khaos_dagster.domain.reconciliation.stock import STOCK_RECONCILIATION_COLUMNS

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def table(columns: tuple[str, ...], *rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))


def stock(**row: object) -> pd.DataFrame:
    base = {
        "stock_id": 101,
        "site_id": 4,
        "acs_units": 10,
        "khaos_level": 7,
        "difference": 3,
        "value": 37.5,
        "unexplained": 3,
        "unexplained_value": 37.5,
        "classification": "unexplained",
    }
    return table(STOCK_RECONCILIATION_COLUMNS, {**base, **row})


def cash(**row: object) -> pd.DataFrame:
    base = {
        "shipment_id": "SH1",
        "order_number": "SO1",
        "status": "posted_not_invoiced",
        "invoice_stage": 16,
        "age_hours": 60.0,
        "value_waiting": 1234.5,
        "despatched_at": NOW - timedelta(hours=60),
    }
    return table(ORDER_TO_CASH_COLUMNS, {**base, **row})


def returned(**row: object) -> dict:
    base = {
        "return_ref": "R1",
        "unique_sku": "U1",
        "associated_ref": "R1-P1",
        "grade": "A",
        "received_at": NOW - timedelta(hours=30),
        "credit_mode": "auto",
        "credit_status": "raised",
        "credit_pending_value": 0.0,
        "write_off_status": "not_needed",
    }
    return {**base, **row}


# --- keys ----------------------------------------------------------------------------------------


def test_a_findings_key_is_recon_its_source_and_its_parts() -> None:
    assert finding_key("stock", 101, 4) == "recon:stock:101:4"
    assert finding_key("cash", "SH-9") == "recon:cash:SH-9"


def test_the_reconciliation_owns_only_keys_it_made() -> None:
    assert owns_finding("recon:stock:101:4")
    assert not owns_finding("order:SO1")
    assert not owns_finding("refund:recon:R1")


# --- stock ---------------------------------------------------------------------------------------


def test_an_unexplained_stock_difference_is_one_finding_per_stock_id_and_site() -> None:
    [found] = drift_findings(stock=stock())
    assert (found.type, found.entity_ref, found.source) == ("drift", "recon:stock:101:4", "stock")
    assert found.message == (
        "StockID 101 site 4: ACS 10, Khaos Level 7; +3 unit(s) (£37.50) unexplained "
        "by timing or unconfirmed pushes."
    )


@pytest.mark.parametrize("kind", ["in_step", "in_flight", "push_missing", "within_tolerance"])
def test_a_stock_difference_explained_or_tolerated_is_no_finding(kind: str) -> None:
    assert drift_findings(stock=stock(classification=kind)) == []


def test_an_unexplained_difference_without_a_value_says_so() -> None:
    [found] = drift_findings(stock=stock(unexplained=-2, unexplained_value=np.nan))
    assert "-2 unit(s) (unknown value)" in found.message


def test_a_findings_details_are_plain_json() -> None:
    [found] = drift_findings(
        stock=stock(unexplained_value=np.nan, in_flight_items=["SO1"], value=Decimal("1.50"))
    )
    assert found.details["unexplained_value"] is None
    assert found.details["value"] == "1.50"
    assert found.details["stock_id"] == 101
    json.dumps(found.details)  # no NaN, numpy or Decimal left


# --- order status --------------------------------------------------------------------------------


def test_an_order_out_of_step_is_a_finding_keyed_by_order_and_mismatch() -> None:
    rows = table(
        ORDER_STATUS_COLUMNS,
        {"order_number": "SO1", "mismatch": "held_at_acs", "message": "SO1 is held at ACS"},
        {"order_number": "SO2", "mismatch": "in_step", "message": ""},
    )
    [found] = drift_findings(order_status=rows)
    assert (found.entity_ref, found.message, found.source) == (
        "recon:order:SO1:held_at_acs",
        "SO1 is held at ACS",
        "order_status",
    )


# --- order to cash -------------------------------------------------------------------------------


def test_a_shipment_posted_but_not_invoiced_too_long_is_a_finding() -> None:
    [found] = drift_findings(cash=cash())
    assert found.entity_ref == "recon:cash:SH1"
    assert found.message == (
        "Shipment SH1 of order SO1, despatched 60 h ago, is posted but its invoice is not "
        "issued (stage 16): £1,234.50 not invoiced."
    )


def test_a_shipment_never_posted_is_told_as_such_under_the_same_key() -> None:
    [found] = drift_findings(cash=cash(status="despatched_not_posted", invoice_stage=None))
    assert found.entity_ref == "recon:cash:SH1"
    assert "was never posted to Khaos" in found.message


def test_a_shipment_within_the_allowed_hours_or_invoiced_is_no_finding() -> None:
    assert drift_findings(cash=cash(age_hours=48.0)) == []
    assert drift_findings(cash=cash(status="invoiced", age_hours=500.0)) == []
    assert drift_findings(cash=cash(age_hours=60.0), not_invoiced_after_hours=72) == []


# --- returns -------------------------------------------------------------------------------------


def returns(*rows: dict) -> pd.DataFrame:
    return table(RETURNS_RECONCILIATION_COLUMNS, *rows)


def test_a_unit_needing_a_write_off_without_one_is_a_finding_per_unit() -> None:
    found = drift_findings(
        returns=returns(
            returned(unique_sku="U1", grade="BER", write_off_status="missing"),
            returned(unique_sku="U2", grade="C", write_off_status="missing_reason"),
            returned(unique_sku="U3", grade="BER", write_off_status="done"),
        )
    )
    assert [(f.entity_ref, f.message) for f in found] == [
        (
            "recon:writeoff:U1",
            "Unit U1 (return R1) was graded BER: no write-off adjustment in Khaos "
            "(the unit is still in Level).",
        ),
        (
            "recon:writeoff:U2",
            "Unit U2 (return R1) was graded C: its Khaos return has no write-off reason for it.",
        ),
    ]


def test_a_missing_credit_is_one_finding_per_return_part_with_its_units_and_value() -> None:
    rows = returns(
        returned(unique_sku="U2", credit_status="missing", credit_pending_value=20.0),
        returned(unique_sku="U1", credit_status="missing", credit_pending_value=15.5),
    )
    [found] = drift_findings(returns=rows, now=NOW)
    assert found.entity_ref == "recon:credit:R1-P1"
    assert (
        found.message
        == "Return R1-P1: 2 graded unit(s) but no credit in Khaos (missing); £35.50 owed."
    )
    assert found.details == {
        "associated_ref": "R1-P1",
        "units": ["U1", "U2"],
        "credit_pending_value": 35.5,
    }


def test_a_return_not_yet_posted_is_keyed_by_its_return_ref() -> None:
    rows = returns(returned(associated_ref="", credit_status="none", credit_pending_value=5.0))
    [found] = drift_findings(returns=rows, now=NOW)
    assert found.entity_ref == "recon:credit:R1"


def test_a_credit_is_not_chased_before_its_hours_have_passed_or_without_now() -> None:
    fresh = returns(returned(credit_status="missing", received_at=NOW - timedelta(hours=23)))
    assert drift_findings(returns=fresh, now=NOW) == []
    late = returns(returned(credit_status="missing"))
    assert drift_findings(returns=late) == []
    assert drift_findings(returns=late, now=NOW, credit_missing_after_hours=48) == []


def test_a_return_credited_by_nothing_on_purpose_is_not_chased() -> None:
    rows = returns(returned(credit_status="none", credit_mode="none"))
    assert drift_findings(returns=rows, now=NOW) == []


# --- all together --------------------------------------------------------------------------------


def test_findings_are_listed_by_key_whatever_table_they_came_from() -> None:
    found = drift_findings(
        stock=stock(),
        cash=cash(),
        returns=returns(returned(write_off_status="missing", grade="BER")),
    )
    assert [f.entity_ref for f in found] == [
        "recon:cash:SH1",
        "recon:stock:101:4",
        "recon:writeoff:U1",
    ]


def test_no_tables_give_no_findings() -> None:
    assert drift_findings() == []
    assert drift_findings(stock=stock().iloc[0:0], cash=cash().iloc[0:0]) == []


def test_findings_as_a_table_keep_type_key_source_and_message() -> None:
    frame = findings_frame([Finding("drift", "recon:cash:SH1", "late", {"x": 1}, "order_to_cash")])
    assert frame.to_dict("records") == [
        {
            "type": "drift",
            "entity_ref": "recon:cash:SH1",
            "source": "order_to_cash",
            "message": "late",
        }
    ]
    assert list(findings_frame([]).columns) == ["type", "entity_ref", "source", "message"]


def test_dates_in_details_are_iso_text_and_missing_ones_null() -> None:
    rows = cash(despatch_date=date(2026, 3, 7), issue_date=pd.NaT)
    [found] = drift_findings(cash=rows)
    assert found.details["despatch_date"] == "2026-03-07"
    assert found.details["issue_date"] is None
    assert found.details["despatched_at"] == "2026-03-08T00:00:00+00:00"
