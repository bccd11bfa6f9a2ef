"""Orders put by the client: validated as ACS validates them, accepted, revised while
not yet picked, cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acs_khaos_dagster.sandbox.acs.state.fulfilment import Fulfilment
from acs_khaos_dagster.sandbox.acs.state.records import (
    ALLOCATE_AFTER,
    MAX_ADDRESS_LINE,
    MAX_POSTCODE,
    PACK_AFTER,
    PICK_AFTER,
    REQUIRED_ORDER_FIELDS,
    ApiError,
    Order,
    _err,
    iso,
    parse_dt,
)


class OrderDesk(Fulfilment):
    def _validate_order(self, number: str, body: dict[str, Any]) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        for name in REQUIRED_ORDER_FIELDS:
            value = body.get(name)
            if value is None or value == "" or value == []:
                errors.append(_err(name, "MISSING_FIELD", f"{name} is required"))
        if "AccountCode" in body:
            self._check_account(body, errors)
        if body.get("OrderNumber") not in (None, "", number):
            errors.append(
                _err(
                    "OrderNumber",
                    "ORDER_NUMBER_MISMATCH",
                    "the body's OrderNumber differs from the path",
                )
            )
        for name in (
            "OrderDate",
            "DispatchDate",
            "DeliveryDate",
            "EventDate",
            "WarehouseReturnDate",
        ):
            value = body.get(name)
            if value not in (None, "") and parse_dt(value) is None:
                errors.append(_err(name, "INVALID_VALUE", f"{name} must be an ISO-8601 datetime"))
        for name in (
            "Delivery_Address1",
            "Delivery_Address2",
            "Delivery_Address3",
            "Delivery_Address4",
        ):
            value = body.get(name)
            if isinstance(value, str) and len(value) > MAX_ADDRESS_LINE:
                errors.append(
                    _err(
                        name,
                        "FIELD_TOO_LONG",
                        f"{name} is longer than {MAX_ADDRESS_LINE} characters",
                    )
                )
        postcode = body.get("Delivery_Postcode")
        if isinstance(postcode, str) and len(postcode) > MAX_POSTCODE:
            errors.append(
                _err(
                    "Delivery_Postcode",
                    "FIELD_TOO_LONG",
                    f"Delivery_Postcode is longer than {MAX_POSTCODE} characters",
                )
            )
        if "OrderCancelled" in body and not isinstance(body["OrderCancelled"], bool):
            errors.append(_err("OrderCancelled", "INVALID_VALUE", "OrderCancelled is a boolean"))
        items = body.get("OrderItems")
        if items is not None and not isinstance(items, list):
            errors.append(_err("OrderItems", "INVALID_VALUE", "OrderItems must be a list"))
            items = []
        seen: set[str] = set()
        cancelling = body.get("OrderCancelled") is True
        for index, item in enumerate(items or []):
            where = f"OrderItems[{index}]"
            if not isinstance(item, dict):
                errors.append(_err(where, "INVALID_VALUE", "an order item is an object"))
                continue
            line_id = item.get("LineItemId")
            if not isinstance(line_id, str) or not line_id:
                errors.append(
                    _err(f"{where}.LineItemId", "MISSING_FIELD", "LineItemId is required")
                )
            elif line_id in seen:
                errors.append(
                    _err(
                        f"{where}.LineItemId",
                        "DUPLICATE_LINE",
                        f"LineItemId {line_id} appears twice",
                    )
                )
            else:
                seen.add(line_id)
            quantity = item.get("ItemQuantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
                errors.append(
                    _err(
                        f"{where}.ItemQuantity",
                        "INVALID_VALUE",
                        "ItemQuantity must be a positive integer",
                    )
                )
            price = item.get("ItemPrice")
            if not isinstance(price, int | float | str) or isinstance(price, bool):
                errors.append(
                    _err(f"{where}.ItemPrice", "INVALID_VALUE", "ItemPrice must be a number")
                )
            sku = item.get("GarmentSku")
            if not isinstance(sku, str) or not sku:
                errors.append(
                    _err(f"{where}.GarmentSku", "MISSING_FIELD", "GarmentSku is required")
                )
            elif not cancelling:
                product = self.products.get(sku)
                if product is None:
                    errors.append(
                        _err(
                            f"{where}.GarmentSku", "UNKNOWN_SKU", f"SKU {sku} is not set up at ACS"
                        )
                    )
                elif product.status != "active":
                    errors.append(
                        _err(
                            f"{where}.GarmentSku",
                            "INACTIVE_SKU",
                            f"SKU {sku} is {product.status}, not active",
                        )
                    )
        return errors

    def put_order(self, number: str, body: dict[str, Any], now: datetime) -> tuple[bool, dict]:
        with self.lock:
            self.advance(now)
            errors = self._validate_order(number, body)
            if errors:
                raise ApiError(422, errors[0]["code"], errors[0]["message"], errors=errors)
            body = {**body, "OrderNumber": number}
            order = self.orders.get(number)
            cancelling = body.get("OrderCancelled") is True
            if order is None:
                order = Order(number=number, body=body, status="RECEIVED", received_at=now)
                order.history.append((iso(now), "RECEIVED"))
                self.orders[number] = order
                if cancelling:
                    self._move(order, "CANCELLED", now)
                else:
                    self._schedule(now + ALLOCATE_AFTER, order, "allocate")
                    self._schedule(now + PICK_AFTER, order, "pick")
                    self._schedule(now + PACK_AFTER, order, "pack")
                return True, self._order_json(order)
            order.puts += 1
            if order.body == body:
                return False, self._order_json(order)
            if order.locked:
                raise ApiError(
                    409,
                    "ORDER_LOCKED",
                    f"order {number} is {order.status}: picking has started",
                    "",
                )
            if order.cancelled:
                raise ApiError(409, "ORDER_CANCELLED", f"order {number} is cancelled", "")
            self._release_units(order, now)
            order.body = body
            order.revisions += 1
            if cancelling:
                self._move(order, "CANCELLED", now)
            elif order.status == "AWAITING_PICK":
                self._do_allocate(order, now)
            return False, self._order_json(order)

    def get_order(self, number: str, now: datetime) -> dict:
        with self.lock:
            self.advance(now)
            order = self.orders.get(number)
            if order is None:
                raise ApiError(404, "NOT_FOUND", f"unknown order {number}", "OrderNumber")
            return self._order_json(order)

    @staticmethod
    def _order_json(order: Order) -> dict:
        return {
            **order.body,
            "Status": order.status,
            "Shipments": [dict(event) for event in order.shipments],
        }
