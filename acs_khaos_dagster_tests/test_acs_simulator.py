"""Conformance of the ACS simulator to the modelled contract (docs: contracts/acs.md).

Spoken to over real HTTP on loopback with raw JSON, so these tests pin the wire
contract independently of the client.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from acs_khaos_dagster_tests import contract_fields
from acs_khaos_dagster_tests.acs_fixtures import (  # noqa: F401 (fixtures)
    ACCOUNT,
    LAG,
    MULTI_ORDER,
    PRE_ALLOCATED_ORDER,
    AcsHarness,
    acs_fixture,
    acs_server_fixture,
)


def order_body(
    number: str, items: list[tuple[str, str, int]] | None = None, **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AccountCode": ACCOUNT,
        "OrderNumber": number,
        "OrderDate": "2024-01-08T09:00:00Z",
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": "ada@example.test",
        "MobilePhone": "07700900000",
        "Delivery_Address1": "1 High Street",
        "Delivery_Address2": "",
        "Delivery_Address3": "",
        "Delivery_Address4": "",
        "Delivery_City": "Glasgow",
        "Delivery_County": "",
        "Delivery_Postcode": "G1 1AA",
        "DeliveryService": "48",
        "DeliveryAgent": "DPD",
        "DeliveryCharge": 4.95,
        "Comments": "",
        "OrderCancelled": False,
        "OrderItems": [
            {
                "LineItemId": line_id,
                "GarmentSku": sku,
                "IsHire": False,
                "ItemPrice": 19.99,
                "ItemQuantity": qty,
            }
            for line_id, sku, qty in (items or [("1", "TEE-BLK-M", 1)])
        ],
    }
    body.update(overrides)
    return body


def put_order(acs: AcsHarness, body: dict[str, Any]) -> httpx.Response:
    return acs.api("PUT", f"/orders/{body['OrderNumber']}.json", json=body)


def product_body(sku: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "AccountCode": ACCOUNT,
        "sku": sku,
        "barcode": "5012345678900",
        "style": "TEE",
        "colour": "BLK",
        "size": "S",
        "description": "Tee",
        "is_hire": False,
    }
    body.update(overrides)
    return body


def codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def read_feed(acs: AcsHarness, limit: int = 100) -> list[dict[str, Any]]:
    return acs.api("GET", "/despatches", params={"limit": limit}).json()["events"]


# --- auth and account ----------------------------------------------------------------------------


def test_wrong_subscription_key_is_refused_with_401(acs: AcsHarness) -> None:
    response = acs.api("GET", "/products", key="wrong")
    assert response.status_code == 401
    assert codes(response) == ["UNAUTHORIZED"]


def test_missing_subscription_key_is_refused_with_401(acs: AcsHarness) -> None:
    assert acs.http.get("/api/partner/v1/despatches").status_code == 401


def test_body_for_another_account_is_refused_with_422(acs: AcsHarness) -> None:
    response = put_order(acs, order_body("SO-1", AccountCode="OTHER"))
    assert response.status_code == 422
    assert "INVALID_ACCOUNT" in codes(response)


# --- products ------------------------------------------------------------------------------------


def test_new_product_is_pending_until_the_activation_lag_has_passed(acs: AcsHarness) -> None:
    assert acs.api("PUT", "/products/NEW-1.json", json=product_body("NEW-1")).status_code == 201
    assert acs.api("GET", "/products/NEW-1.json").json()["status"] == "pending"
    acs.advance(LAG - timedelta(minutes=15))
    assert acs.api("GET", "/products/NEW-1.json").json()["status"] == "pending"
    acs.advance(timedelta(minutes=15))
    assert acs.api("GET", "/products/NEW-1.json").json()["status"] == "active"


def test_product_body_naming_another_sku_than_the_path_is_refused(acs: AcsHarness) -> None:
    response = acs.api("PUT", "/products/TEE-BLK-M.json", json=product_body("TEE-BLK-XL"))
    assert response.status_code == 422
    assert codes(response) == ["SKU_MISMATCH"]


def test_updating_a_product_keeps_its_status(acs: AcsHarness) -> None:
    response = acs.api(
        "PUT",
        "/products/TEE-BLK-M.json",
        json=product_body("TEE-BLK-M", description="Black tee, medium"),
    )
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    truth = next(p for p in acs.truth()["products"] if p["sku"] == "TEE-BLK-M")
    assert truth["attributes"]["description"] == "Black tee, medium"


def test_products_are_listed_page_by_page_until_the_cursor_is_null(acs: AcsHarness) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = acs.api("GET", "/products", params=params).json()
        pages += 1
        seen.extend(p["sku"] for p in page["products"])
        assert all(p["status"] in ("active", "inactive", "pending") for p in page["products"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert sorted(seen) == ["DRESS-RED-10", "SKIRT-PNK-8", "TEE-BLK-L", "TEE-BLK-M"]


def test_a_garbled_cursor_is_refused(acs: AcsHarness) -> None:
    response = acs.api("GET", "/products", params={"cursor": "not-ours"})
    assert response.status_code == 422
    assert codes(response) == ["INVALID_CURSOR"]


# --- orders: validation --------------------------------------------------------------------------


def test_order_for_an_unknown_sku_is_refused_with_unknown_sku(acs: AcsHarness) -> None:
    response = put_order(acs, order_body("SO-1", [("1", "NOPE-1", 1)]))
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "OrderItems[0].GarmentSku",
        "code": "UNKNOWN_SKU",
        "message": "SKU NOPE-1 is not set up at ACS",
    }


def test_order_for_an_inactive_sku_is_refused_with_inactive_sku(acs: AcsHarness) -> None:
    response = put_order(acs, order_body("SO-1", [("1", "SKIRT-PNK-8", 1)]))
    assert response.status_code == 422
    assert codes(response) == ["INACTIVE_SKU"]


def test_order_for_a_pending_sku_is_refused_with_inactive_sku(acs: AcsHarness) -> None:
    acs.api("PUT", "/products/NEW-1.json", json=product_body("NEW-1"))
    response = put_order(acs, order_body("SO-1", [("1", "NEW-1", 1)]))
    assert response.status_code == 422
    assert codes(response) == ["INACTIVE_SKU"]
    assert "pending" in response.json()["errors"][0]["message"]


def test_address_line_over_35_characters_is_refused(acs: AcsHarness) -> None:
    response = put_order(acs, order_body("SO-1", Delivery_Address1="x" * 36))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Delivery_Address1"
    assert codes(response) == ["FIELD_TOO_LONG"]


def test_postcode_over_10_characters_is_refused(acs: AcsHarness) -> None:
    response = put_order(acs, order_body("SO-1", Delivery_Postcode="G1 1AA 12345"))
    assert codes(response) == ["FIELD_TOO_LONG"]


def test_every_missing_field_is_listed(acs: AcsHarness) -> None:
    body = order_body("SO-1")
    del body["OrderDate"], body["Delivery_Postcode"]
    response = put_order(acs, body)
    assert response.status_code == 422
    assert {(e["field"], e["code"]) for e in response.json()["errors"]} == {
        ("OrderDate", "MISSING_FIELD"),
        ("Delivery_Postcode", "MISSING_FIELD"),
    }


def test_a_refused_order_is_not_stored(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1", [("1", "NOPE-1", 1)]))
    assert acs.api("GET", "/orders/SO-1.json").status_code == 404


# --- orders: create, replace, cancel -------------------------------------------------------------


def test_same_order_body_twice_changes_nothing(acs: AcsHarness) -> None:
    assert put_order(acs, order_body("SO-1")).status_code == 201
    assert put_order(acs, order_body("SO-1")).status_code == 200
    truth = acs.order_truth("SO-1")
    assert (truth["revisions"], truth["puts"]) == (1, 2)


def test_changed_order_before_picking_replaces_it(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1"))
    put_order(acs, order_body("SO-1", [("1", "TEE-BLK-M", 2)]))
    truth = acs.order_truth("SO-1")
    assert truth["revisions"] == 2
    assert truth["body"]["OrderItems"][0]["ItemQuantity"] == 2


def test_order_status_reads_back_with_status_and_shipments(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1"))
    data = acs.api("GET", "/orders/SO-1.json").json()
    assert data["Status"] == "RECEIVED"
    assert data["Shipments"] == []
    assert data["OrderItems"][0]["GarmentSku"] == "TEE-BLK-M"


def test_unknown_order_is_404(acs: AcsHarness) -> None:
    assert acs.api("GET", "/orders/NOPE.json").status_code == 404


def test_cancel_before_picking_cancels_and_frees_the_units(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1"))
    acs.advance(timedelta(minutes=30))  # allocated, not yet picking
    assert acs.order_truth("SO-1")["status"] == "AWAITING_PICK"
    response = put_order(acs, order_body("SO-1", OrderCancelled=True))
    assert response.status_code == 200
    assert response.json()["Status"] == "CANCELLED"
    acs.advance(timedelta(hours=6))
    truth = acs.truth()
    assert acs.order_truth("SO-1")["status"] == "CANCELLED"
    assert truth["despatch_events"] == []
    assert "Allocated" not in truth["units"]["by_status"]


def test_cancel_after_picking_started_is_refused_with_order_locked(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1"))
    acs.advance(timedelta(hours=1))
    assert acs.order_truth("SO-1")["status"] == "PICKING"
    response = put_order(acs, order_body("SO-1", OrderCancelled=True))
    assert response.status_code == 409
    assert codes(response) == ["ORDER_LOCKED"]
    assert acs.order_truth("SO-1")["locked"] is True


def test_change_after_picking_started_is_refused_but_the_same_body_is_fine(
    acs: AcsHarness,
) -> None:
    put_order(acs, order_body("SO-1"))
    acs.advance(timedelta(hours=1))
    assert put_order(acs, order_body("SO-1", Comments="leave with neighbour")).status_code == 409
    assert put_order(acs, order_body("SO-1")).status_code == 200


# --- fulfilment ----------------------------------------------------------------------------------


def test_order_moves_through_the_warehouse_and_ships_whole(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1", [("1", "TEE-BLK-M", 2)]))
    seen = []
    for _ in range(4):
        acs.advance(timedelta(minutes=30))
        seen.append(acs.api("GET", "/orders/SO-1.json").json()["Status"])
    acs.advance(timedelta(hours=1))
    seen.append(acs.api("GET", "/orders/SO-1.json").json()["Status"])
    assert seen == ["AWAITING_PICK", "PICKING", "PICKING", "PACKED", "DESPATCHED"]
    (event,) = read_feed(acs)
    assert event["order_number"] == "SO-1"
    assert event["lines"][0]["quantity"] == 2
    assert len(event["lines"][0]["unique_skus"]) == 2
    assert event["parcels"][0]["tracking_number"]
    assert "closed_short" not in event


def test_order_fulfilled_in_several_shipments_closes_a_line_short(acs: AcsHarness) -> None:
    put_order(acs, order_body(MULTI_ORDER, [("101", "TEE-BLK-M", 2), ("102", "TEE-BLK-L", 2)]))
    acs.advance(timedelta(hours=3))
    assert acs.api("GET", f"/orders/{MULTI_ORDER}.json").json()["Status"] == (
        "PARTIALLY_DESPATCHED"
    )
    acs.advance(timedelta(hours=4))
    order = acs.api("GET", f"/orders/{MULTI_ORDER}.json").json()
    assert order["Status"] == "DESPATCHED"
    first, second = order["Shipments"]
    assert [(ln["line_item_id"], ln["quantity"]) for ln in first["lines"]] == [("101", 2)]
    assert "closed_short" not in first
    assert [(ln["line_item_id"], ln["quantity"]) for ln in second["lines"]] == [("102", 1)]
    assert second["closed_short"] == [
        {"line_item_id": "102", "quantity": 1, "reason": "DAMAGED_AT_PICK"}
    ]
    assert first["shipment_id"] != second["shipment_id"]
    assert read_feed(acs) == [first, second]


def test_line_without_enough_ready_units_is_closed_short(acs: AcsHarness) -> None:
    # TEE-BLK-L has three ready units and one in refurbishment.
    put_order(acs, order_body("SO-1", [("1", "TEE-BLK-L", 5)]))
    acs.advance(timedelta(hours=4))
    (event,) = read_feed(acs)
    assert event["lines"][0]["quantity"] == 3
    assert event["closed_short"] == [
        {"line_item_id": "1", "quantity": 2, "reason": "STOCK_NOT_FOUND"}
    ]


def test_units_already_allocated_to_an_order_are_the_ones_shipped(acs: AcsHarness) -> None:
    put_order(acs, order_body(PRE_ALLOCATED_ORDER, [("1", "TEE-BLK-M", 1)]))
    acs.advance(timedelta(hours=3))
    (event,) = read_feed(acs)
    assert event["lines"][0]["unique_skus"] == ["TEE-BLK-M-PRE"]


def test_despatch_falling_at_a_weekend_waits_for_monday(acs: AcsHarness) -> None:
    friday_late = datetime(2024, 1, 12, 22, 0, tzinfo=UTC)
    acs.set_time(friday_late)
    put_order(acs, order_body("SO-1"))
    acs.advance(timedelta(days=2, hours=10))  # to Monday 08:00
    assert acs.order_truth("SO-1")["status"] == "PACKED"
    assert read_feed(acs) == []
    acs.advance(timedelta(hours=1))
    (event,) = read_feed(acs)
    assert event["despatched_at"] == "2024-01-15T09:00:00Z"


def test_hire_order_goes_on_hire_and_its_units_come_back(acs: AcsHarness) -> None:
    body = order_body(
        "HIRE-1", [("1", "DRESS-RED-10", 1)], WarehouseReturnDate="2024-01-11T12:00:00Z"
    )
    body["OrderItems"][0]["IsHire"] = True
    put_order(acs, body)
    acs.advance(timedelta(hours=3))
    assert acs.order_truth("HIRE-1")["status"] == "ON_HIRE"
    unit = acs.order_truth("HIRE-1")["units"][0]

    def unit_status() -> str:
        files = acs.sim.write_daily_files()
        with files[0].open(encoding="utf-8") as handle:
            return next(r["status"] for r in csv.DictReader(handle) if r["unique_sku"] == unit)

    assert unit_status() == "With Customer"
    acs.set_time(datetime(2024, 1, 11, 12, 0, tzinfo=UTC))
    assert acs.order_truth("HIRE-1")["status"] == "RETURN_DUE"
    acs.advance(timedelta(days=1))
    assert acs.order_truth("HIRE-1")["status"] == "RETURNED"
    assert unit_status() == "Post-Rental Inspection"
    acs.advance(timedelta(days=1))
    assert unit_status() == "Cleaning"
    acs.advance(timedelta(days=1))
    assert unit_status() == "In Warehouse - Ready For Customer"


# --- despatch feed -------------------------------------------------------------------------------


def ship_orders(acs: AcsHarness, count: int) -> None:
    for n in range(count):
        put_order(acs, order_body(f"SO-{n}"))
    acs.advance(timedelta(hours=4))


def test_despatch_feed_pages_in_arrival_order_with_cursors(acs: AcsHarness) -> None:
    ship_orders(acs, 5)
    first = acs.api("GET", "/despatches", params={"limit": 2}).json()
    second = acs.api(
        "GET", "/despatches", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    third = acs.api(
        "GET", "/despatches", params={"limit": 2, "cursor": second["next_cursor"]}
    ).json()
    ids = [e["event_id"] for page in (first, second, third) for e in page["events"]]
    assert ids == [e["event_id"] for e in acs.truth()["despatch_events"]]
    assert third["next_cursor"] is None


def test_the_last_page_read_again_with_its_cursor_shows_events_that_arrived_since(
    acs: AcsHarness,
) -> None:
    ship_orders(acs, 2)
    first = acs.api("GET", "/despatches", params={"limit": 1}).json()
    last = acs.api("GET", "/despatches", params={"limit": 5, "cursor": first["next_cursor"]})
    assert last.json()["next_cursor"] is None and set(last.json()) == {"events", "next_cursor"}
    put_order(acs, order_body("SO-LATER"))
    acs.advance(timedelta(hours=4))
    again = acs.api("GET", "/despatches", params={"limit": 5, "cursor": first["next_cursor"]})
    assert [e["order_number"] for e in again.json()["events"]] == ["SO-1", "SO-LATER"]


def test_duplicate_fault_serves_an_event_twice(acs: AcsHarness) -> None:
    ship_orders(acs, 2)
    acs.fault(operation="list_despatches", kind="duplicate", count=1)
    ids = [e["event_id"] for e in read_feed(acs)]
    assert len(ids) == 3
    assert len(set(ids)) == 2


def test_reorder_fault_serves_a_later_shipment_first(acs: AcsHarness) -> None:
    put_order(acs, order_body(MULTI_ORDER, [("101", "TEE-BLK-M", 2), ("102", "TEE-BLK-L", 2)]))
    acs.advance(timedelta(hours=8))
    acs.fault(operation="list_despatches", kind="reorder", count=1)
    assert [e["shipment_id"] for e in read_feed(acs)] == [f"{MULTI_ORDER}-2", f"{MULTI_ORDER}-1"]


def test_suppress_fault_drops_an_event_for_good(acs: AcsHarness) -> None:
    ship_orders(acs, 2)
    acs.fault(operation="list_despatches", kind="suppress", count=1)
    assert len(read_feed(acs)) == 1
    assert len(read_feed(acs)) == 1
    assert len(acs.truth()["feed"]["suppressed"]) == 1


# --- HTTP faults ---------------------------------------------------------------------------------


def test_error_5xx_fault_answers_503_and_applies_nothing(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="error_5xx", count=1)
    assert put_order(acs, order_body("SO-1")).status_code == 503
    assert acs.truth()["orders"] == []
    assert put_order(acs, order_body("SO-1")).status_code == 201


def test_rate_limit_fault_answers_429_with_retry_after(acs: AcsHarness) -> None:
    acs.fault(operation="list_products", kind="rate_limit", count=1, retry_after=7)
    response = acs.api("GET", "/products")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_latency_fault_delays_but_serves(acs: AcsHarness) -> None:
    acs.fault(operation="get_order", kind="latency", count=1, latency_s=0.3)
    put_order(acs, order_body("SO-1"))
    started = time.monotonic()
    assert acs.api("GET", "/orders/SO-1.json").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_timeout_before_never_applies_and_timeout_after_does(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="timeout_before", count=1, latency_s=0.5)
    with pytest.raises(httpx.ReadTimeout):
        acs.api("PUT", "/orders/SO-1.json", json=order_body("SO-1"), timeout=0.2)
    acs.fault(operation="put_order", kind="timeout_after", count=1, latency_s=0.5)
    with pytest.raises(httpx.ReadTimeout):
        acs.api("PUT", "/orders/SO-2.json", json=order_body("SO-2"), timeout=0.2)
    time.sleep(0.5)
    assert [o["order_number"] for o in acs.truth()["orders"]] == ["SO-2"]


def test_reset_before_cuts_the_connection_without_applying(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="reset_before", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        put_order(acs, order_body("SO-1"))
    assert acs.truth()["orders"] == []


def test_reset_after_cuts_the_connection_after_applying(acs: AcsHarness) -> None:
    acs.fault(operation="put_order", kind="reset_after", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        put_order(acs, order_body("SO-1"))
    assert acs.order_truth("SO-1")["status"] == "RECEIVED"


def test_fault_rules_can_be_cleared_and_are_counted(acs: AcsHarness) -> None:
    acs.fault(operation="*", kind="error_5xx", rate=1.0)
    assert acs.api("GET", "/products").status_code == 503
    assert acs.http.delete("/_sandbox/faults").status_code == 200
    assert acs.api("GET", "/products").status_code == 200
    stats = acs.stats()
    assert stats["calls"]["list_products"] == 2
    assert stats["injected"] == {"list_products:error_5xx": 1}


# --- daily files ---------------------------------------------------------------------------------


def test_daily_stock_file_has_the_contract_layout(acs: AcsHarness) -> None:
    acs.advance(timedelta(hours=15))
    (path,) = acs.sim.write_daily_files()
    assert path.name == f"stock_units_{ACCOUNT}_20240109000000.csv"
    assert not list(acs.drop_folder.glob(".*"))  # no temporary file left behind
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == contract_fields.STOCK_UNITS_COLUMNS
    assert len(rows) == 1 + 6 + 4 + 2 + 1 + 1
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["account_code"] == ACCOUNT
    assert first["snapshot_at"] == "2024-01-09T00:00:00Z"


def test_sold_units_leave_the_snapshot_once_despatched(acs: AcsHarness) -> None:
    put_order(acs, order_body("SO-1", [("1", "TEE-BLK-M", 2)]))
    acs.advance(timedelta(hours=2))
    (path,) = acs.sim.write_daily_files()
    with path.open(encoding="utf-8") as handle:
        statuses = [r["status"] for r in csv.DictReader(handle) if r["order_number"] == "SO-1"]
    assert statuses == ["Packed", "Packed"]
    acs.advance(timedelta(hours=1))
    (path,) = acs.sim.write_daily_files()
    with path.open(encoding="utf-8") as handle:
        assert [r for r in csv.DictReader(handle) if r["order_number"] == "SO-1"] == []
    assert acs.truth()["units"]["despatched"] == 2


def _snapshot_statuses(acs: AcsHarness, sku: str) -> Counter[str]:
    (path,) = [p for p in acs.sim.write_daily_files() if p.name.startswith("stock_units")]
    with path.open(encoding="utf-8") as handle:
        return Counter(r["status"] for r in csv.DictReader(handle) if r["sku"] == sku)


def test_goods_received_are_in_the_next_snapshot_ready_for_customers_once(
    acs: AcsHarness,
) -> None:
    before = _snapshot_statuses(acs, "TEE-BLK-M")
    added = acs.sim.state.receive_goods("TEE-BLK-M", 3, acs.clock.now(), "GRN1")
    assert acs.sim.state.receive_goods("TEE-BLK-M", 3, acs.clock.now(), "GRN1") == []
    after = _snapshot_statuses(acs, "TEE-BLK-M")
    assert added == ["GRN1-1", "GRN1-2", "GRN1-3"]
    assert after - before == Counter({"In Warehouse - Ready For Customer": 3})


def test_a_unit_found_damaged_moves_to_quarantine_and_is_never_allocated(
    acs: AcsHarness,
) -> None:
    free = acs.sim.state.free_units("TEE-BLK-M")
    for unit in free[1:]:
        acs.sim.state.count_out(unit)  # a cycle count finds all but one
    acs.sim.state.set_aside(free[0], "Quarantine", acs.clock.now())
    assert acs.sim.state.free_units("TEE-BLK-M") == []
    assert _snapshot_statuses(acs, "TEE-BLK-M")["Quarantine"] >= 1
    put_order(acs, order_body("SO-9", [("1", "TEE-BLK-M", 1)]))
    acs.advance(timedelta(hours=1))
    [short] = acs.truth()["orders"][-1]["closed_short"]
    assert short["reason"] == "STOCK_NOT_FOUND"


def test_hire_return_is_written_to_a_returns_file(acs: AcsHarness) -> None:
    body = order_body("HIRE-1", [("1", "DRESS-RED-10", 1)])
    body["OrderItems"][0]["IsHire"] = True
    put_order(acs, body)
    acs.advance(timedelta(days=6))
    paths = acs.sim.write_daily_files()
    assert [p.name.split("_")[0] for p in paths] == ["stock", "returns"]
    with paths[1].open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["order_number"], row["line_item_id"], row["grade"]) == ("HIRE-1", "1", "A")
    assert len(acs.sim.write_daily_files()) == 1  # each return is written once


# --- exactly the contract's fields, per operation --------------------------------------------


def within(shape: contract_fields.Shape, contract: contract_fields.Shape) -> list[str]:
    """Fields in ``shape`` the contract does not name (paths), empty when it conforms."""
    extra = []
    for key, below in shape.items():
        if key not in contract:
            extra.append(key)
        else:
            extra += [f"{key}.{k}" for k in within(below, contract[key])]
    return extra


def test_the_product_registry_carries_only_the_contracts_fields(acs: AcsHarness) -> None:
    reply = acs.api("GET", "/products", params={"limit": 2}).json()
    assert contract_fields.json_shape(reply) == contract_fields.ACS["list_products"]
    one = acs.api("GET", f"/products/{reply['products'][0]['sku']}.json").json()
    assert contract_fields.json_shape(one) == contract_fields.ACS["get_product"]


def test_an_order_reads_back_with_only_the_contracts_fields(acs: AcsHarness) -> None:
    put_order(acs, order_body(MULTI_ORDER, [("101", "TEE-BLK-M", 2), ("102", "TEE-BLK-L", 2)]))
    acs.advance(timedelta(hours=8))
    reply = acs.api("GET", f"/orders/{MULTI_ORDER}.json").json()
    assert within(contract_fields.json_shape(reply), contract_fields.ACS["get_order"]) == []
    assert {"Status", "Shipments", "OrderItems"} <= set(reply)


def test_the_despatch_feed_carries_only_the_contracts_fields(acs: AcsHarness) -> None:
    put_order(acs, order_body(MULTI_ORDER, [("101", "TEE-BLK-M", 2), ("102", "TEE-BLK-L", 2)]))
    ship_orders(acs, 2)
    reply = acs.api("GET", "/despatches").json()
    assert set(reply) == {"events", "next_cursor"}
    shape = contract_fields.json_shape(reply)
    assert within(shape, contract_fields.ACS["list_despatches"]) == []
    core = set(contract_fields.ACS_EVENT) - {"closed_short"}
    assert all(core <= set(event) for event in reply["events"])


def test_errors_carry_only_field_code_and_message(acs: AcsHarness) -> None:
    reply = put_order(acs, order_body("SO-X", [("1", "NO-SUCH-SKU", 1)]))
    assert contract_fields.json_shape(reply.json()) == contract_fields.ACS["errors"]


def test_the_returns_file_has_the_contract_layout(acs: AcsHarness) -> None:
    body = order_body("HIRE-2", [("1", "DRESS-RED-10", 1)])
    body["OrderItems"][0]["IsHire"] = True
    put_order(acs, body)
    acs.advance(timedelta(days=6))
    returns = next(p for p in acs.sim.write_daily_files() if p.name.startswith("returns_"))
    with returns.open(encoding="utf-8", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == contract_fields.RETURNS_COLUMNS
