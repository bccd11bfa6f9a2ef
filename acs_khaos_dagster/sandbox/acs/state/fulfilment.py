"""Fulfilment of an accepted order over simulated time: allocate units (closing short
what is not found), pick, pack, and despatch shipment by shipment onto the feed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acs_khaos_dagster.sandbox.acs.state.records import (
    _IN_PICK_KEYS,
    _READY_KEY,
    ALLOCATED,
    BETWEEN_SHIPMENTS,
    FIRST_DESPATCH_AFTER,
    HIRE_DEFAULT_PERIOD,
    KG_PER_UNIT,
    PACKED,
    PICKING,
    READY,
    UNITS_PER_PARCEL,
    WITH_CUSTOMER,
    Order,
    PlanLine,
    _status_key,
    hold_for_weekend,
    iso,
    parse_dt,
)
from acs_khaos_dagster.sandbox.acs.state.warehouse import Warehouse


class Fulfilment(Warehouse):
    def _release_units(self, order: Order, now: datetime) -> None:
        for unique_sku in order.units:
            unit = self.units.get(unique_sku)
            if unit is not None and unit.status in (ALLOCATED, PICKING, PACKED):
                self._set_unit(unit, READY, now, order_number="")
        order.units = []
        order.shipments_plan = []
        order.closed_short = []

    def _plan(self, order: Order) -> tuple[list[list[PlanLine]], list[dict[str, Any]]]:
        """Shipments and closures for the order's current body, from the scenario's plan."""
        items = {str(i["LineItemId"]): i for i in order.body.get("OrderItems", [])}
        remaining = {line_id: int(i["ItemQuantity"]) for line_id, i in items.items()}
        plan = self.plans.get(order.number)
        short: list[dict[str, Any]] = []
        shipments: list[list[PlanLine]] = []
        reason = plan.short_reason if plan else "STOCK_NOT_FOUND"
        if plan is not None:
            for planned in plan.closed_short:
                line_id = str(planned.order_item_id)
                quantity = min(planned.quantity, remaining.get(line_id, 0))
                if quantity > 0:
                    short.append({"line_item_id": line_id, "quantity": quantity, "reason": reason})
                    remaining[line_id] -= quantity
            for planned_shipment in plan.shipments:
                lines: list[PlanLine] = []
                for planned in planned_shipment:
                    line_id = str(planned.order_item_id)
                    quantity = min(planned.quantity, remaining.get(line_id, 0))
                    if quantity > 0:
                        item = items[line_id]
                        lines.append(
                            PlanLine(
                                line_id, item["GarmentSku"], quantity, bool(item.get("IsHire"))
                            )
                        )
                        remaining[line_id] -= quantity
                if lines:
                    shipments.append(lines)
        leftovers = [
            PlanLine(
                line_id, items[line_id]["GarmentSku"], quantity, bool(items[line_id].get("IsHire"))
            )
            for line_id, quantity in remaining.items()
            if quantity > 0
        ]
        if leftovers:
            if shipments:
                shipments[-1].extend(leftovers)
            else:
                shipments.append(leftovers)
        return shipments, short

    def _do_allocate(self, order: Order, when: datetime) -> None:
        shipments, short = self._plan(order)
        kept: list[list[PlanLine]] = []
        used: set[str] = set()
        for lines in shipments:
            kept_lines: list[PlanLine] = []
            for line in lines:
                candidates = self.units_by_sku.get(line.sku, [])
                # Units the scenario already shows as allocated to this order come first.
                ready = [
                    u
                    for u in candidates
                    if u.order_number == order.number and _status_key(u.status) in _IN_PICK_KEYS
                ] + [
                    u
                    for u in candidates
                    if _status_key(u.status) == _READY_KEY and not u.order_number
                ]
                taken = [u for u in ready if u.unique_sku not in used][: line.quantity]
                used.update(u.unique_sku for u in taken)
                for unit in taken:
                    self._set_unit(unit, ALLOCATED, when, order_number=order.number)
                    line.unique_skus.append(unit.unique_sku)
                    order.units.append(unit.unique_sku)
                missing = line.quantity - len(taken)
                if missing:
                    # Stock not found at pick: ACS closes the rest of the line short.
                    short.append(
                        {
                            "line_item_id": line.line_item_id,
                            "quantity": missing,
                            "reason": "STOCK_NOT_FOUND",
                        }
                    )
                    line.quantity = len(taken)
                if line.quantity > 0:
                    kept_lines.append(line)
            if kept_lines:
                kept.append(kept_lines)
        order.shipments_plan = kept
        order.closed_short = _merge_short(short)
        self._move(order, "AWAITING_PICK", when)

    def _do_pick(self, order: Order, when: datetime) -> None:
        for unique_sku in order.units:
            self._set_unit(self.units[unique_sku], PICKING, when)
        self._move(order, "PICKING", when)

    def _do_pack(self, order: Order, when: datetime) -> None:
        for unique_sku in order.units:
            self._set_unit(self.units[unique_sku], PACKED, when)
        self._move(order, "PACKED", when)
        count = max(1, len(order.shipments_plan))
        times: list[datetime] = []
        at = order.received_at + FIRST_DESPATCH_AFTER
        for index in range(count):
            at = hold_for_weekend(max(at, when))
            times.append(at)
            self._schedule(at, order, f"ship:{index}")
            at = at + BETWEEN_SHIPMENTS
        order.shipment_times = times

    def _ship(self, order: Order, index: int, when: datetime) -> None:
        last = index >= len(order.shipments_plan) - 1
        lines = order.shipments_plan[index] if index < len(order.shipments_plan) else []
        body = order.body
        carrier = str(body.get("DeliveryAgent") or "")
        unit_count = sum(line.quantity for line in lines)
        parcels = []
        for parcel_no in range(1, (unit_count + UNITS_PER_PARCEL - 1) // UNITS_PER_PARCEL + 1):
            in_parcel = min(UNITS_PER_PARCEL, unit_count - (parcel_no - 1) * UNITS_PER_PARCEL)
            tracking = f"{carrier or 'TRK'}{self._random.randrange(10**11, 10**12)}"
            parcels.append(
                {
                    "parcel_no": parcel_no,
                    "tracking_number": tracking,
                    "tracking_url": f"https://track.example.test/{carrier.lower()}/{tracking}",
                    "weight_kg": float(KG_PER_UNIT * in_parcel),
                }
            )
        expected_return = ""
        if order.is_hire:
            due = parse_dt(body.get("WarehouseReturnDate")) or (when + HIRE_DEFAULT_PERIOD)
            expected_return = iso(due)
        for line in lines:
            for unique_sku in line.unique_skus:
                unit = self.units[unique_sku]
                if line.is_hire:
                    self._set_unit(
                        unit, WITH_CUSTOMER, when, location="", expected_return=expected_return
                    )
                else:
                    # A sold unit leaves ACS's stock: it is no longer in the snapshot.
                    del self.units[unique_sku]
                    self.units_by_sku[unit.sku].remove(unit)
                    self.despatched_units[unique_sku] = order.number
        event: dict[str, Any] = {
            "event_id": f"DSP{next(self._event_seq):08d}",
            "order_number": order.number,
            "shipment_id": f"{order.number}-{index + 1}",
            "despatched_at": iso(when),
            "carrier": carrier,
            "service": str(body.get("DeliveryService") or ""),
            "parcels": parcels,
            "lines": [
                {
                    "line_item_id": line.line_item_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unique_skus": list(line.unique_skus),
                }
                for line in lines
            ],
        }
        if last and order.closed_short:
            event["closed_short"] = [dict(c) for c in order.closed_short]
        order.shipments.append(event)
        self.feed.append(event)
        if not last:
            self._move(order, "PARTIALLY_DESPATCHED", when)
        elif order.is_hire:
            self._move(order, "ON_HIRE", when)
            due = parse_dt(body.get("WarehouseReturnDate")) or (when + HIRE_DEFAULT_PERIOD)
            order.return_due_at = max(due, when)
            self._schedule(order.return_due_at, order, "return_due")
        else:
            self._move(order, "DESPATCHED", when)


def _merge_short(short: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], int] = {}
    for entry in short:
        key = (entry["line_item_id"], entry["reason"])
        merged[key] = merged.get(key, 0) + int(entry["quantity"])
    return [{"line_item_id": k[0], "quantity": q, "reason": k[1]} for k, q in merged.items()]
