"""The ACS partner API's JSON as records and back (``connectors/acs/wire.py``): products
both ways, an order's body (address lines, postcode, money, UK times sent as UTC),
despatch events and order statuses read, and a reply of an unknown shape refused without
a retry. Oracles are the JSON bodies written out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.connectors.acs.wire import (
    despatch_from_wire,
    format_datetime,
    order_status_from_wire,
    order_to_wire,
    parse_datetime,
    product_from_wire,
    product_to_wire,
    unexpected_response,
)
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsOrderLine,
    AcsOrderState,
    AcsProduct,
    AcsProductStatus,
    Address,
    Contact,
)

# --- times ---------------------------------------------------------------------------------------


def test_a_time_is_sent_as_utc_with_a_z() -> None:
    bst = timezone(timedelta(hours=1))
    assert format_datetime(datetime(2026, 6, 10, 9, 30, 15, 999, tzinfo=bst)) == (
        "2026-06-10T08:30:15Z"
    )
    assert format_datetime(None) is None


def test_a_naive_time_is_never_sent() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_datetime(datetime(2026, 6, 10, 9, 30))


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-06-10T08:30:00Z", datetime(2026, 6, 10, 8, 30, tzinfo=UTC)),
        ("2026-06-10T09:30:00+01:00", datetime(2026, 6, 10, 8, 30, tzinfo=UTC)),
        ("2026-06-10T09:30:00", datetime(2026, 6, 10, 8, 30, tzinfo=UTC)),  # UK wall clock
        ("2026-01-10T09:30:00", datetime(2026, 1, 10, 9, 30, tzinfo=UTC)),
    ],
)
def test_a_time_is_read_with_its_offset_or_as_uk_wall_clock_time(text: str, utc: datetime) -> None:
    assert parse_datetime(text) == utc


def test_a_time_without_offset_is_read_as_utc_when_acs_is_set_up_so() -> None:
    assert parse_datetime("2026-06-10T09:30:00", AcsTimeRules("utc")) == datetime(
        2026, 6, 10, 9, 30, tzinfo=UTC
    )


# --- products ------------------------------------------------------------------------------------

PRODUCT = AcsProduct(
    sku="DRS-1-NVY-10",
    barcode="5012345678900",
    style="DRS-1",
    colour="Navy",
    size="10",
    description="Dress navy 10",
    is_hire=True,
)


def test_a_product_is_sent_with_the_account_code_and_its_attributes_not_its_status() -> None:
    assert product_to_wire(PRODUCT, "BRAND01") == {
        "AccountCode": "BRAND01",
        "sku": "DRS-1-NVY-10",
        "barcode": "5012345678900",
        "style": "DRS-1",
        "colour": "Navy",
        "size": "10",
        "description": "Dress navy 10",
        "is_hire": True,
    }


@pytest.mark.parametrize(
    ("status", "read"),
    [
        ("active", AcsProductStatus.ACTIVE),
        ("ACTIVE", AcsProductStatus.ACTIVE),
        ("pending", AcsProductStatus.PENDING),
        ("inactive", AcsProductStatus.INACTIVE),
        ("archived", AcsProductStatus.INACTIVE),
        (None, AcsProductStatus.INACTIVE),
    ],
)
def test_a_product_status_acs_does_not_define_never_makes_a_sku_sellable(
    status: str | None, read: AcsProductStatus
) -> None:
    assert product_from_wire({"sku": "X", "status": status}).status == read


def test_a_product_read_back_is_the_product_sent() -> None:
    body = {**product_to_wire(PRODUCT, "BRAND01"), "status": "active"}
    assert product_from_wire(body) == PRODUCT.model_copy(update={"status": AcsProductStatus.ACTIVE})


def test_a_product_with_only_its_sku_reads_blank_and_not_hire() -> None:
    product = product_from_wire({"sku": 12345})
    assert (product.sku, product.barcode, product.description, product.is_hire) == (
        "12345",
        "",
        "",
        False,
    )


# --- orders --------------------------------------------------------------------------------------


def order(**changed: object) -> AcsOrder:
    fields: dict[str, object] = {
        "order_number": "SO1042",
        "order_date": datetime(2026, 6, 10, 9, 30, tzinfo=UTC),
        "contact": Contact(first_name="Jane", last_name="Smith", email="j@x.example", phone="07"),
        "delivery_address": Address(
            line1="12 Acacia Avenue", line3="Headingley", city="Leeds", postcode="ls64ab"
        ),
        "delivery_charge": Decimal("4.95"),
        "lines": (
            AcsOrderLine(line_item_id="700001", sku="DRS-1", quantity=2, price=Decimal("49.00")),
            AcsOrderLine(
                line_item_id="700002",
                sku="GOWN-H",
                quantity=1,
                price=Decimal("35.50"),
                is_hire=True,
            ),
        ),
    }
    fields.update(changed)
    return AcsOrder(**fields)  # type: ignore[arg-type]


def test_an_orders_lines_are_sent_with_prices_as_json_numbers() -> None:
    body = order_to_wire(order(), "BRAND01")
    assert body["OrderItems"] == [
        {
            "LineItemId": "700001",
            "GarmentSku": "DRS-1",
            "IsHire": False,
            "ItemPrice": 49,
            "ItemQuantity": 2,
        },
        {
            "LineItemId": "700002",
            "GarmentSku": "GOWN-H",
            "IsHire": True,
            "ItemPrice": 35.5,
            "ItemQuantity": 1,
        },
    ]
    assert body["DeliveryCharge"] == 4.95
    # A whole price is written as a whole number: "49", never "49.0".
    assert json.dumps([i["ItemPrice"] for i in body["OrderItems"]]) == "[49, 35.5]"


def test_an_orders_address_is_packed_into_lines_and_its_postcode_spelt_for_gb() -> None:
    body = order_to_wire(order(), "BRAND01")
    assert [body[f"Delivery_Address{n}"] for n in (1, 2, 3, 4)] == [
        "12 Acacia Avenue",
        "Headingley",
        "",
        "",
    ]
    assert (body["Delivery_City"], body["Delivery_Postcode"]) == ("Leeds", "LS6 4AB")


def test_an_orders_dates_are_sent_in_utc_and_missing_ones_as_null() -> None:
    body = order_to_wire(
        order(event_date=datetime(2026, 6, 20, tzinfo=timezone(timedelta(hours=1)))), "B"
    )
    assert body["OrderDate"] == "2026-06-10T09:30:00Z"
    assert body["EventDate"] == "2026-06-19T23:00:00Z"
    assert (body["DispatchDate"], body["WarehouseReturnDate"]) == (None, None)


def test_an_order_names_the_account_contact_service_and_cancellation() -> None:
    body = order_to_wire(order(cancelled=True, comments="leave with neighbour"), "BRAND01")
    assert (body["AccountCode"], body["OrderNumber"], body["OrderCancelled"]) == (
        "BRAND01",
        "SO1042",
        True,
    )
    assert (body["FirstName"], body["LastName"], body["Email"], body["MobilePhone"]) == (
        "Jane",
        "Smith",
        "j@x.example",
        "07",
    )
    assert (body["DeliveryService"], body["DeliveryAgent"], body["Comments"]) == (
        "48",
        "DPD",
        "leave with neighbour",
    )


def test_a_postcode_that_cannot_fit_is_refused_before_sending_naming_the_field() -> None:
    address = Address(line1="1 Main St", postcode="ABCDEFGHIJKLM", country="US")
    with pytest.raises(PermanentError) as refused:
        order_to_wire(order(delivery_address=address), "BRAND01")
    assert refused.value.code == "FIELD_TOO_LONG"
    assert refused.value.details[0]["field"] == "Delivery_Postcode"


# --- despatches and statuses ---------------------------------------------------------------------

DESPATCH = {
    "event_id": "EV-1",
    "order_number": "SO1042",
    "shipment_id": "SH-1",
    "despatched_at": "2026-06-11T08:00:00Z",
    "carrier": "DPD",
    "service": "48",
    "parcels": [
        {
            "parcel_no": 1,
            "tracking_number": "TRK1",
            "tracking_url": "https://t/1",
            "weight_kg": 1.2,
        },
        {"parcel_no": "2", "tracking_number": "TRK2", "weight_kg": ""},
    ],
    "lines": [{"line_item_id": 700001, "sku": "DRS-1", "quantity": 2, "unique_skus": ["U1", "U2"]}],
    "closed_short": [{"line_item_id": "700002", "quantity": 1, "reason": "NO_STOCK"}],
}


def test_a_despatch_event_is_read_with_its_parcels_lines_and_short_closures() -> None:
    event = despatch_from_wire(DESPATCH)
    assert (event.event_id, event.order_number, event.shipment_id) == ("EV-1", "SO1042", "SH-1")
    assert event.despatched_at == datetime(2026, 6, 11, 8, tzinfo=UTC)
    assert [
        (p.parcel_no, p.tracking_number, p.tracking_url, p.weight_kg) for p in event.parcels
    ] == [
        (1, "TRK1", "https://t/1", Decimal("1.2")),
        (2, "TRK2", "", None),
    ]
    assert [(ln.line_item_id, ln.quantity, ln.unique_skus) for ln in event.lines] == [
        ("700001", 2, ("U1", "U2"))
    ]
    assert [(c.line_item_id, c.quantity, c.reason) for c in event.closed_short] == [
        ("700002", 1, "NO_STOCK")
    ]


def test_a_despatch_with_nothing_but_its_keys_has_no_parcels_lines_or_closures() -> None:
    event = despatch_from_wire(
        {"event_id": 1, "order_number": "SO1", "shipment_id": 2, "despatched_at": "2026-06-11"}
    )
    assert (event.event_id, event.shipment_id, event.carrier) == ("1", "2", "")
    assert (event.parcels, event.lines, event.closed_short) == ((), (), ())


def test_an_order_status_is_read_with_its_shipments() -> None:
    status = order_status_from_wire(
        {"OrderNumber": "SO1042", "Status": "PARTIALLY_DESPATCHED", "Shipments": [DESPATCH]}
    )
    assert (status.order_number, status.status) == ("SO1042", AcsOrderState.PARTIALLY_DESPATCHED)
    assert [s.shipment_id for s in status.shipments] == ["SH-1"]


def test_an_order_status_acs_does_not_define_is_an_error() -> None:
    with pytest.raises(ValueError):
        order_status_from_wire({"OrderNumber": "SO1", "Status": "TELEPORTED"})


# --- replies of an unknown shape -----------------------------------------------------------------


class _Shape(BaseModel):
    a: int
    b: int


def test_a_reply_missing_a_field_is_a_permanent_error_saying_so() -> None:
    error = unexpected_response("get_despatches", KeyError("event_id"))
    assert isinstance(error, PermanentError)
    assert (str(error), error.code, error.operation) == (
        "acs get_despatches: unexpected response shape (missing field) [UNEXPECTED_RESPONSE]",
        "UNEXPECTED_RESPONSE",
        "get_despatches",
    )


def test_a_reply_with_invalid_fields_says_how_many() -> None:
    with pytest.raises(ValidationError) as invalid:
        _Shape.model_validate({"a": "x", "b": "y"})
    error = unexpected_response("get_order", invalid.value)
    assert "unexpected response shape (2 invalid field(s))" in str(error)


def test_any_other_unreadable_reply_is_named_by_its_error_class() -> None:
    assert "unexpected response shape (TypeError)" in str(
        unexpected_response("get_order", TypeError("x"))
    )
