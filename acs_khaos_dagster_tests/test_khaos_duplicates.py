"""A record Khaos holds twice is found and owned, whatever caused it (issue 18, point 8).

Khaos applies a write after every read-back found nothing (the ``late_apply`` fault), so
it ends up applied twice; the nightly reconciliation raises a ``khaos_duplicate``
exception (owner finance) naming both Khaos records and the value at stake. The rules
are pure (``domain.duplicates``); the flows below run through Dagster against the sandbox.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from acs_khaos_dagster.domain import duplicates as rules
from acs_khaos_dagster.domain.reconciliation import order_to_cash, returns_reconciliation
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.scenario.manifest import PlannedShipmentLine
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_reconciliation_flow import _reconcile
from acs_khaos_dagster_tests.test_returns_flow import FLOW as RETURNS_FLOW
from acs_khaos_dagster_tests.test_returns_flow import _deliver, _run, _ship, _unit

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")
LATE = timedelta(minutes=10)  # Khaos applies the write this long after taking it
RECEIVED = "2026-03-02T06:30:00Z"  # before the scenario's first simulated minute


# --- the rules ---------------------------------------------------------------------------------


def test_two_live_invoices_under_one_external_ref_are_a_duplicate_with_the_repeat_valued() -> None:
    invoices = pd.DataFrame(
        [
            (200002, "INV200002", "SO1-2", 16, 1, Decimal("59.00")),
            (200001, "INV200001", "SO1-2", 70, 1, Decimal("59.00")),
            (200003, "INV200003", "SO1-1", 70, 2, Decimal("30.00")),
        ],
        columns=list(rules.INVOICE_COLUMNS),
    )

    [found] = rules.duplicate_invoices(invoices)

    assert found.entity_ref == "dup:invoice:SO1-2"
    assert (found.kept, found.repeats) == (
        "invoice 200001 (INV200001)",
        ("invoice 200002 (INV200002)",),
    )
    assert (found.units, found.value) == (1, Decimal("59.00"))
    assert "invoice 200001 (INV200001) and invoice 200002 (INV200002)" in found.message


def test_a_cancelled_repeat_invoice_is_no_longer_a_duplicate() -> None:
    invoices = pd.DataFrame(
        [(1, "I1", "S-1", 70, 1, 10.0), (2, "I2", "S-1", 1, 1, 10.0)],
        columns=list(rules.INVOICE_COLUMNS),
    )
    assert rules.duplicate_invoices(invoices) == []


def test_a_write_off_saved_twice_is_a_write_off_duplicate_valued_at_its_lines() -> None:
    groups = pd.DataFrame(
        [
            (5002, "WO-U1", 2, "WRITEOFF", -1, Decimal("8.96")),
            (5001, "WO-U1", 2, "WRITEOFF", -1, Decimal("8.96")),
            (5003, "SNAP-1-S1-B001", 1, "VARIANCE", None, Decimal("0")),
            (5004, "SNAP-1-S1-B001", 1, "VARIANCE", None, Decimal("0")),
        ],
        columns=list(rules.ADJUSTMENT_COLUMNS),
    )

    found = {
        d.entity_ref: d for d in rules.duplicate_adjustments(groups, write_off_code="WRITEOFF")
    }

    write_off = found["dup:write_off:WO-U1"]
    assert (write_off.kept, write_off.repeats) == (
        "adjustment group 5001",
        ("adjustment group 5002",),
    )
    assert (write_off.units, write_off.value) == (1, Decimal("8.96"))
    # An "adjust to" saved twice set the same Level again: reported, nothing at stake.
    push = found["dup:adjustment:SNAP-1-S1-B001"]
    assert (push.record, push.units, push.value) == ("stock adjustment", 0, Decimal("0"))


def test_a_return_imported_twice_names_both_returns_and_credit_notes() -> None:
    returns = pd.DataFrame(
        [(7001, "R1-P1", 9001, 1, Decimal("66.67")), (7002, "R1-P1", 9002, 1, Decimal("66.67"))],
        columns=list(rules.RETURN_COLUMNS),
    )
    [found] = rules.duplicate_returns(returns)
    assert found.kept == "customer return 7001, credit note 9001"
    assert found.repeats == ("customer return 7002, credit note 9002",)
    assert found.value == Decimal("66.67")


def test_order_to_cash_lists_a_shipments_second_invoice_instead_of_dropping_it() -> None:
    shipments = pd.DataFrame(
        [("S-1", "SO1", pd.Timestamp("2026-03-02T10:00Z"), 1, "10.00")],
        columns=["shipment_id", "order_number", "despatched_at", "units", "unit_net"],
    )
    # Posted twice (invoices 11 and 12); Khaos also holds 13 under the shipment's ref.
    postings = pd.DataFrame([("S-1", 11), ("S-1", 12)], columns=["shipment_id", "invoice_id"])
    invoices = pd.DataFrame(
        [(11, 70, "OTHER"), (12, 16, "S-1"), (13, 16, "S-1")],
        columns=["invoice_id", "stage_id", "external_ref"],
    )

    frame = order_to_cash(shipments, postings, invoices, pd.Timestamp("2026-03-03T00:00Z"))

    assert frame.loc[0, "invoice_id"] == 12 and frame.loc[0, "duplicate_invoice_ids"] == "11,13"


def test_returns_reconciliation_lists_a_second_return_under_one_ref() -> None:
    units = pd.DataFrame(
        [
            {
                "return_ref": "R1",
                "unique_sku": "U1",
                "associated_ref": "R1-P1",
                "is_hire": False,
                "received_at": pd.Timestamp("2026-03-02T10:00Z"),
                "unit_net": "10.00",
                "credit_mode": "auto",
                "written_off": False,
            }
        ]
    )
    khaos = pd.DataFrame(
        [("R1-P1", 7002, "review"), ("R1-P1", 7001, "raised")],
        columns=["associated_ref", "return_id", "credit_status"],
    )
    write_offs = pd.DataFrame({"unique_sku": pd.Series(dtype=str)})

    frame = returns_reconciliation(units, khaos, write_offs, pd.Timestamp("2026-03-03T00:00Z"))

    assert frame.loc[0, "credit_status"] == "raised"  # the first import's
    assert frame.loc[0, "duplicate_return_ids"] == "7002"


# --- through Dagster, against the sandbox ---------------------------------------------------


@pytest.fixture
def resend_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox reads back straight after an ambiguous send and resends within the run:
    the late apply lands after that read-back, as it would after a 30 s one."""
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__READ_BACK_AFTER_S", "0")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S", "0")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_MAX_S", "0")


def _late(integration: IntegrationHarness, operation: str) -> None:
    integration.sandbox.khaos_faults.add(
        FaultRule(
            operation=operation, kind=FaultKind.LATE_APPLY, count=1, apply_after_s=LATE.seconds
        )
    )


def _duplicates(integration: IntegrationHarness) -> dict[str, Any]:
    with integration.store() as store:
        return {e.row.entity_ref: e.row for e in store.exceptions.list(type="khaos_duplicate")}


def test_a_partial_shipment_posted_twice_is_found_with_both_invoices(
    integration: IntegrationHarness, resend_at_once: None
) -> None:
    order = "SO0050003"  # item 700004 (2 units) leaves in two shipments
    plans = integration.sandbox.acs.state.plans
    plans[order] = plans[order].model_copy(
        update={
            "shipments": [
                [PlannedShipmentLine(order_item_id=700006, quantity=1)],
                [PlannedShipmentLine(order_item_id=700004, quantity=1)],
                [
                    PlannedShipmentLine(order_item_id=700004, quantity=1),
                    PlannedShipmentLine(order_item_id=700005, quantity=1),
                ],
            ]
        }
    )
    integration.run(*PRODUCTS)
    integration.run(*RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.run(*DESPATCH)  # every first shipment, once
    integration.sandbox.advance(timedelta(hours=4))  # the second shipment of SO0050003
    _late(integration, "ImportDespatch")

    integration.run(*DESPATCH)  # ambiguous, read back (nothing yet), sent again
    integration.sandbox.advance(LATE)  # ... and Khaos applies the first one after all
    result = _reconcile(integration, "order_to_cash_reconciliation")

    shipment = f"{order}-2"
    shipped = [
        i for i in integration.sandbox.khaos.truth()["invoices"] if i["external_ref"] == shipment
    ]
    assert len(shipped) == 2
    row = _duplicates(integration)[f"dup:invoice:{shipment}"]
    assert row.owner == "finance" and row.severity == "high"
    for invoice in shipped:
        assert f"invoice {invoice['invoice_id']} ({invoice['invoice_code']})" in row.message
    assert row.details["units"] == 1 and Decimal(row.details["value"]) > 0
    frame = result.output_for_node("order_to_cash_reconciliation").set_index("shipment_id")
    assert frame.loc[shipment, "duplicate_invoice_ids"] != ""


def test_a_write_off_applied_late_is_found_as_a_duplicate_write_off(
    integration: IntegrationHarness, resend_at_once: None
) -> None:
    integration.run(*PRODUCTS)  # the stock reconciliation reads the SKU master
    _ship(integration, 50006, [(700011, 1)])
    _late(integration, "ImportStockAdjustments")
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE")],
    )

    _run(integration, *RETURNS_FLOW)
    integration.sandbox.advance(LATE)
    _reconcile(integration, "stock_reconciliation")

    groups = [
        g
        for g in integration.sandbox.khaos.truth()["adjustment_groups"]
        if g["group_ref"] == "WO-UW1"
    ]
    row = _duplicates(integration)["dup:write_off:WO-UW1"]
    assert len(groups) == 2
    for group in groups:
        assert f"adjustment group {group['group_id']}" in row.message
    assert row.details["units"] == 1 and row.details["value"] == "8.96"


def test_a_customer_return_applied_late_is_found_with_both_credit_notes(
    integration: IntegrationHarness, resend_at_once: None
) -> None:
    _ship(integration, 50004, [(700007, 1)])
    _late(integration, "ImportCustomerReturns")
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RT1", "SO0050004", 700007, "JKT-0002-BRG-S", "UT1", received=RECEIVED)],
    )

    _run(integration, *RETURNS_FLOW)
    integration.sandbox.advance(LATE)
    result = _reconcile(integration, "returns_reconciliation")

    imported = [
        r
        for r in integration.sandbox.khaos.truth()["customer_returns"]
        if r["associated_ref"] == "RT1-P1"
    ]
    row = _duplicates(integration)["dup:return:RT1-P1"]
    assert len(imported) == 2
    for ret in imported:
        assert f"customer return {ret['return_id']}" in row.message
    assert Decimal(row.details["value"]) == Decimal(imported[1]["credit_value"])
    frame = result.output_for_node("returns_reconciliation")
    assert frame["duplicate_return_ids"].tolist() == [str(imported[1]["return_id"])]


def test_a_duplicate_seen_again_the_next_night_stays_one_exception(
    integration: IntegrationHarness, resend_at_once: None
) -> None:
    _ship(integration, 50004, [(700007, 1)])
    _late(integration, "ImportCustomerReturns")
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RT1", "SO0050004", 700007, "JKT-0002-BRG-S", "UT1", received=RECEIVED)],
    )
    _run(integration, *RETURNS_FLOW)
    integration.sandbox.advance(LATE)

    _reconcile(integration, "returns_reconciliation")
    _reconcile(integration, "returns_reconciliation")

    [row] = _duplicates(integration).values()
    assert row.count == 2 and row.status == "open"
