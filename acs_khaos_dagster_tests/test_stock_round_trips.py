"""A unit shipped on an order Khaos will never invoice, then returned: Khaos's Level follows
ACS's physical units, whatever the unit's grade.

Customer services cancel an order in Khaos while ACS is picking it; ACS ships it all the
same (too late to stop). Khaos never issues an invoice for it, so the shipped units never
leave its Level, and the push counts them "despatched, not invoiced". When ACS has a unit
back, that stops: restocked, ACS counts it again; written off (BER, disposed), it is gone
and Level must lose it. Counting it in flight kept Khaos one unit over forever (found by
the soak, StockID 10493). Oracle: ACS's units in the simulator, never what we sent.

Through Dagster against the sandbox (tiny scenario, seed 7; ACS allocates 30 min after an
order arrives, picks at +1 h, packs at +2 h, despatches at +3 h).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_stock_lifecycle import (
    DESPATCH,
    PRODUCTS,
    RELEASE,
    RETURNS,
    SALE_ORDER,
    SALE_STOCK_ID,
    SALE_UNITS,
    _khaos_order,
    _selling_units,
    _snapshot_and_push,
    _stock,
    _write_returns,
)


def _ship_a_cancelled_order(integration: IntegrationHarness) -> tuple[dict, int]:
    """Release the sale order, cancel it in Khaos while ACS picks it, let ACS ship it."""
    box = integration.sandbox
    integration.run(*PRODUCTS)
    start = _stock(integration, SALE_STOCK_ID)["level"]
    integration.run(*RELEASE)
    box.advance(timedelta(hours=1, minutes=15))
    order = _khaos_order(integration, SALE_ORDER)
    box.khaos.cancel_order(order["order_id"])
    box.advance(timedelta(hours=2))
    integration.run(*DESPATCH)
    event = next(e for e in box.acs.truth()["despatch_events"] if e["order_number"] == SALE_ORDER)
    [shipped] = [ln for ln in event["lines"] if ln["quantity"] == SALE_UNITS]
    assert all(i["stage"] == 1 for i in _khaos_order(integration, SALE_ORDER)["invoices"])
    return shipped, start


@pytest.mark.parametrize(
    ("grade", "action", "back_in_stock"),
    [("BER", "DISPOSE", 0), ("A", "RESTOCK", 1)],
    ids=["written-off", "restocked"],
)
def test_a_unit_of_a_never_invoiced_shipment_is_no_longer_in_flight_once_acs_has_it_back(
    integration: IntegrationHarness,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    grade: str,
    action: str,
    back_in_stock: int,
) -> None:
    # The written-off unit leaves Level as VARIANCE; a dress is worth more than the default
    # £50 tolerance, and finance's hold of a variance is tested elsewhere.
    monkeypatch.setenv("ACS_KHAOS_STOCK__VARIANCE_TOLERANCE_VALUE", "1000")
    box = integration.sandbox
    shipped, start = _ship_a_cancelled_order(integration)
    sku = shipped["sku"]
    _snapshot_and_push(integration)
    # Both units out with the customer, never invoiced: still in Khaos's Level.
    assert _selling_units(integration, sku) == start - SALE_UNITS
    assert _stock(integration, SALE_STOCK_ID)["level"] == start

    now = box.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    row = {
        "return_ref": "RMA-TRIP-1",
        "order_number": SALE_ORDER,
        "line_item_id": str(shipped["line_item_id"]),
        "sku": sku,
        "unique_sku": shipped["unique_skus"][0],
        "received_at": now,
        "grade": grade,
        "action_taken": action,
        "action_reason": "",
        "defect_codes": "",
        "repair_cost": "0.00",
    }
    assert box.acs.receive_customer_returns(_write_returns(tmp_path / "returns_in", [row])) == 1
    box.advance(timedelta(minutes=10))
    integration.run(*RETURNS)  # cannot be matched to an invoice: operations own it
    _snapshot_and_push(integration)

    # ACS holds what it held plus the unit if restocked; one unit is still with the customer.
    held = _selling_units(integration, sku)
    assert held == start - SALE_UNITS + back_in_stock
    assert _stock(integration, SALE_STOCK_ID)["level"] == held + 1
