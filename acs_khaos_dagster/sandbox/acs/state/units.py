"""Stock units at ACS: loaded from the scenario's stock file, written to the daily
snapshot, and changed by warehouse events (goods in, damage found, count corrections).
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from acs_khaos_dagster.sandbox.acs.state.records import (
    _READY_KEY,
    READY,
    Unit,
    _epc_for,
    _status_key,
    iso,
)
from acs_khaos_dagster.sandbox.acs.state.warehouse import Warehouse


class StockUnits(Warehouse):
    def _load_units(self, path: Path) -> None:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                clean = {(k or "").strip().casefold(): (v or "").strip() for k, v in row.items()}
                unit = Unit(
                    sku=clean.get("sku", ""),
                    unique_sku=clean.get("unique_sku", ""),
                    rfid_epc=clean.get("rfid_epc", ""),
                    status=clean.get("status", ""),
                    location_code=clean.get("location_code", ""),
                    grade=clean.get("grade", ""),
                    last_event_at=clean.get("last_event_at", ""),
                    order_number=clean.get("order_number", ""),
                    expected_return_date=clean.get("expected_return_date", ""),
                )
                if not unit.unique_sku:
                    continue
                self.units[unit.unique_sku] = unit
                self.units_by_sku.setdefault(unit.sku, []).append(unit)

    def unit_rows(self, snapshot_at: datetime) -> list[list[str]]:
        with self.lock:
            stamp = iso(snapshot_at)
            return [
                [
                    self.account_code,
                    stamp,
                    u.sku,
                    u.unique_sku,
                    u.rfid_epc,
                    u.status,
                    u.location_code,
                    u.grade,
                    u.last_event_at,
                    u.order_number,
                    u.expected_return_date,
                ]
                for u in self.units.values()
            ]

    # --- warehouse events (goods in, damage found, count corrections) ---------------

    def receive_goods(self, sku: str, count: int, when: datetime, ref: str) -> list[str]:
        """A supplier delivery: ``count`` new units of ``sku`` put away ready for customers.
        Their unique SKUs are ``<ref>-<n>``; returns them (a delivery received twice under
        the same ``ref`` adds nothing)."""
        added = []
        with self.lock:
            for n in range(1, count + 1):
                unique_sku = f"{ref}-{n}"
                if unique_sku in self.units:
                    continue
                unit = Unit(
                    sku=sku,
                    unique_sku=unique_sku,
                    rfid_epc=_epc_for(unique_sku),
                    status=READY,
                    location_code="GOODS-IN",
                    grade="A",
                    last_event_at=iso(when),
                    order_number="",
                    expected_return_date="",
                )
                self.units[unique_sku] = unit
                self.units_by_sku.setdefault(sku, []).append(unit)
                added.append(unique_sku)
        return added

    def free_units(self, sku: str) -> list[str]:
        """Units of ``sku`` ready for customers and not allocated to an order."""
        with self.lock:
            return [
                u.unique_sku
                for u in self.units_by_sku.get(sku, [])
                if _status_key(u.status) == _READY_KEY and not u.order_number
            ]

    def set_aside(self, unique_sku: str, status: str, when: datetime) -> None:
        """A unit found damaged (or otherwise unfit) on the shelf moves to ``status``."""
        with self.lock:
            self._set_unit(self.units[unique_sku], status, when, location="QUAR")

    def count_out(self, unique_sku: str) -> None:
        """A cycle count does not find the unit: it leaves ACS's stock."""
        with self.lock:
            unit = self.units.pop(unique_sku)
            self.units_by_sku[unit.sku].remove(unit)
