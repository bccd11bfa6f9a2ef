"""Customer returns: ACS receives and grades returned units, and writes the rows taken
into the next returns file.
"""

from __future__ import annotations

from datetime import UTC, datetime

from acs_khaos_dagster.sandbox.acs.files import RETURNS_COLUMNS
from acs_khaos_dagster.sandbox.acs.state.records import (
    READY,
    RETURN_ACTION_STATUS,
    Unit,
    _epc_for,
    iso,
    parse_dt,
)
from acs_khaos_dagster.sandbox.acs.state.warehouse import Warehouse


class CustomerReturns(Warehouse):
    def _returnable(self, row: dict[str, str]) -> bool:
        """Whether ACS could receive this unit back: an unexpected return (no order) can
        always arrive; a unit of an order can only come back once it was despatched, and hire
        units come back through the hire cycle, not as customer returns."""
        if not row["order_number"]:
            return True
        order = self.orders.get(row["order_number"])
        if order is None:
            return False
        despatched = 0
        for shipment in order.shipments:
            for line in shipment.get("lines", []):
                if str(line["line_item_id"]) == row["line_item_id"]:
                    despatched += int(line["quantity"])
        hire = any(
            str(item.get("LineItemId")) == row["line_item_id"] and item.get("IsHire")
            for item in order.body.get("OrderItems", [])
        )
        returned = self.returned_per_line.get((row["order_number"], row["line_item_id"]), 0)
        return not hire and returned < despatched

    def receive_customer_returns(self, rows: list[dict[str, str]]) -> int:
        """ACS receives and grades returned units: each comes back into stock per the action.

        ``rows`` are returns-file rows (contract columns). A unit already received is
        skipped, so the same return delivered twice changes nothing. The rows taken go
        into the next returns file; returns how many.
        """
        taken = 0
        with self.lock:
            for row in rows:
                key = (row["return_ref"], row["unique_sku"])
                if key in self.received_returns or not self._returnable(row):
                    continue
                self.received_returns.add(key)
                line_key = (row["order_number"], row["line_item_id"])
                self.returned_per_line[line_key] = self.returned_per_line.get(line_key, 0) + 1
                status = RETURN_ACTION_STATUS.get(row["action_taken"].strip().upper(), READY)
                when = parse_dt(row["received_at"]) or datetime.now(UTC)
                unit = self.units.get(row["unique_sku"])
                if status is None:  # disposed: the unit leaves the building
                    if unit is not None:
                        del self.units[row["unique_sku"]]
                elif unit is None:
                    unit = Unit(
                        sku=row["sku"],
                        unique_sku=row["unique_sku"],
                        rfid_epc=_epc_for(row["unique_sku"]),
                        status=status,
                        location_code="RETURNS",
                        grade=row["grade"],
                        last_event_at=iso(when),
                        order_number="",
                        expected_return_date="",
                    )
                    self.units[unit.unique_sku] = unit
                    self.units_by_sku.setdefault(unit.sku, []).append(unit)
                else:
                    unit.grade = row["grade"]
                    self._set_unit(unit, status, when, order_number="", location="RETURNS")
                self.pending_returns.append({c: row[c] for c in RETURNS_COLUMNS})
                taken += 1
        return taken

    def take_returns(self) -> list[list[str]]:
        with self.lock:
            rows = [[r[c] for c in RETURNS_COLUMNS] for r in self.pending_returns]
            self.returns_written += len(rows)
            self.pending_returns.clear()
            return rows
