"""The hire cycle after despatch: return due, back at ACS (a returns-file row per unit,
post-rental inspection), cleaning, back on the hire rack.
"""

from __future__ import annotations

from datetime import datetime

from acs_khaos_dagster.sandbox.acs.state.records import (
    CLEANING,
    HIRE_CLEANING,
    HIRE_INSPECTION,
    HIRE_RETURN_TRANSIT,
    POST_RENTAL,
    READY,
    Order,
    Unit,
    iso,
)
from acs_khaos_dagster.sandbox.acs.state.warehouse import Warehouse


class HireCycle(Warehouse):
    def _hire_units(self, order: Order) -> list[Unit]:
        hire_lines = {
            str(i["LineItemId"]) for i in order.body.get("OrderItems", []) if i.get("IsHire")
        }
        units = []
        for lines in order.shipments_plan:
            for line in lines:
                if line.line_item_id in hire_lines:
                    units.extend(self.units[u] for u in line.unique_skus if u in self.units)
        return units

    def _do_return_due(self, order: Order, when: datetime) -> None:
        self._move(order, "RETURN_DUE", when)
        self._schedule(when + HIRE_RETURN_TRANSIT, order, "returned")

    def _do_returned(self, order: Order, when: datetime) -> None:
        self._move(order, "RETURNED", when)
        line_of = {
            u: line.line_item_id
            for lines in order.shipments_plan
            for line in lines
            for u in line.unique_skus
        }
        for unit in self._hire_units(order):
            self._set_unit(unit, POST_RENTAL, when, location="INSP", expected_return="")
            self.pending_returns.append(
                {
                    "return_ref": f"RET-{order.number}-{unit.unique_sku}",
                    "order_number": order.number,
                    "line_item_id": line_of.get(unit.unique_sku, ""),
                    "sku": unit.sku,
                    "unique_sku": unit.unique_sku,
                    "received_at": iso(when),
                    "grade": "A",
                    "action_taken": "CLEAN",
                    "action_reason": "POST_RENTAL",
                    "defect_codes": "",
                    "repair_cost": "0.00",
                }
            )
        self._schedule(when + HIRE_INSPECTION, order, "cleaning")

    def _do_cleaning(self, order: Order, when: datetime) -> None:
        for unit in self._hire_units(order):
            self._set_unit(unit, CLEANING, when, location="CLEAN")
        self._schedule(when + HIRE_CLEANING, order, "restocked")

    def _do_restocked(self, order: Order, when: datetime) -> None:
        for unit in self._hire_units(order):
            self._set_unit(unit, READY, when, order_number="", location="HIRE-RACK")
