"""The units file: units shared out over the SKUs, each written with its ACS status
(streamed SKU by SKU), and Khaos's levels counted from them.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from acs_khaos_dagster.domain.models import AcsProductStatus, OrderLine, SalesOrder, StockItem
from acs_khaos_dagster.domain.stock_status import DEFAULT_STATUS_POLICY, site_id_for
from acs_khaos_dagster.sandbox.acs.files import STOCK_UNITS_COLUMNS
from acs_khaos_dagster.sandbox.scenario.generator.draft import Draft
from acs_khaos_dagster.sandbox.scenario.generator.helpers import (
    _apportion,
    _spelling,
    _weighted,
    iso_z,
)
from acs_khaos_dagster.sandbox.scenario.generator.tables import (
    _LOCATIONS,
    ALLOCATION_STATUSES,
    EX_HIRED,
    HIRE_ONLY_PROCESSING,
    HIRE_UNIT_SHARE_PCT,
    PROCESSING_STATUSES,
    READY,
    UNKNOWN_STATUS,
    WITH_CUSTOMER,
)


class UnitsFile(Draft):
    def apportion_units(self) -> None:
        rng = self.rng
        holders = [
            s
            for s in self.children
            if s.item.stock_code not in self.problem_codes
            or s.item.stock_code in self._units_despite_problem()
        ]
        hire = [s for s in holders if s.item.is_hire]
        sale = [s for s in holders if not s.item.is_hire]
        hire_total = self.spec.units * HIRE_UNIT_SHARE_PCT // 100 if hire else 0
        for group, total in ((hire, hire_total), (sale, self.spec.units - hire_total)):
            weights = [rng.randint(20, 180) for _ in group]
            for sku, count in zip(group, _apportion(total, weights), strict=True):
                sku.units = max(count, sku.allocated + 1)

    def _units_despite_problem(self) -> set[str]:
        """Inactive and barcode-mismatched SKUs still have stock at ACS; missing/pending don't."""
        active_or_inactive = {p.sku for p in self.registry if p.status != AcsProductStatus.PENDING}
        return {c for c in self.problem_codes if c in active_or_inactive}

    def write_units(self, path: Path, line_units: dict[int, list[str]]) -> None:
        """Stream the snapshot SKU by SKU; count levels and statuses as rows are written."""
        rng = self.rng
        snapshot = iso_z(self.start_at)
        company = rng.randrange(16**6)
        serial = 0
        written = 0
        total = sum(s.units for s in self.children) + self.spec.unknown_status_units + 3
        status_counts: Counter[str] = Counter()
        lines_by_stock: dict[int, list[tuple[SalesOrder, OrderLine]]] = {}
        for order in self.orders:
            for line in order.lines:
                lines_by_stock.setdefault(line.stock_id, []).append((order, line))
        unknown_at = Counter(
            rng.choice([s.item.stock_id for s in self.children if s.units])
            for _ in range(self.spec.unknown_status_units)
        )
        hist_orders = max(1, self.spec.units // 60)

        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(STOCK_UNITS_COLUMNS)

            def unit_row(
                sku: str,
                status: str,
                moment: datetime,
                order_number: str = "",
                expected: str = "",
                grade: str = "",
            ) -> list[str]:
                nonlocal serial
                serial += 1
                prefix = _LOCATIONS.get(status)
                if prefix is None:
                    location = (
                        f"{rng.choice('ABCDEFGH')}{rng.randint(1, 40):02d}-"
                        f"{rng.randint(1, 12):02d}-{rng.choice('ABCDEF')}"
                    )
                else:
                    location = f"{prefix}-{rng.randint(1, 4):02d}" if prefix else ""
                return [
                    self.account,
                    snapshot,
                    sku,
                    f"U{serial:09d}",
                    f"30{company:06X}{serial:016X}",
                    _spelling(rng, status),
                    location,
                    grade,
                    iso_z(moment),
                    order_number,
                    expected,
                ]

            def count(item: StockItem, status: str) -> None:
                status_counts[status] += 1
                site = site_id_for(DEFAULT_STATUS_POLICY.rule_for(status), item.is_hire, self.sites)
                if site is not None:
                    self.levels[(item.stock_id, site)] += 1

            for sku in self.children:
                item = sku.item
                rows: list[list[str]] = []
                for order, line in lines_by_stock.get(item.stock_id, []):
                    units = line_units.setdefault(line.order_item_id, [])
                    for _ in range(line.quantity):
                        status = _weighted(rng, ALLOCATION_STATUSES)
                        moment = (
                            order.order_date + (self.start_at - order.order_date) * rng.random()
                        )
                        rows.append(
                            unit_row(
                                item.stock_code,
                                status,
                                moment.replace(microsecond=0),
                                order.order_code,
                                grade="A",
                            )
                        )
                        units.append(rows[-1][3])
                        count(item, status)
                for _ in range(sku.units - sku.allocated):
                    status = self._free_status(item.is_hire)
                    moment = self.start_at - timedelta(seconds=rng.randint(600, 60 * 86_400))
                    order_number = expected = grade = ""
                    if status == WITH_CUSTOMER:
                        order_number = f"SO{9_000_000 + rng.randint(1, hist_orders)}"
                        due = self.start_at + timedelta(days=rng.randint(1, 14))
                        expected = due.date().isoformat()
                    elif status == READY:
                        grade = "A" if rng.randrange(100) < 85 else "B"
                    elif status == EX_HIRED:
                        grade = "C"
                    rows.append(
                        unit_row(item.stock_code, status, moment, order_number, expected, grade)
                    )
                    count(item, status)
                for _ in range(unknown_at.get(item.stock_id, 0)):
                    moment = self.start_at - timedelta(seconds=rng.randint(600, 30 * 86_400))
                    rows.append(unit_row(item.stock_code, UNKNOWN_STATUS, moment))
                    count(item, UNKNOWN_STATUS)
                writer.writerows(rows)
                before, written = written, written + len(rows)
                if written // 10_000 != before // 10_000:
                    self.progress("units", written, total)
            for _ in range(3):  # a SKU ACS holds that Khaos does not know: units on no level
                moment = self.start_at - timedelta(seconds=rng.randint(600, 30 * 86_400))
                writer.writerow(unit_row(self.unknown_sku, READY, moment, grade="A"))
                status_counts[READY] += 1
                written += 1
        self.progress("units", written, total)
        self.counts["units"] = written
        self.counts["units_unknown_to_khaos"] = 3
        self.counts["units_unknown_status"] = status_counts[UNKNOWN_STATUS]
        for status, n in status_counts.items():
            self.counts[f"status:{status}"] = n
        self.next_serial = serial

    def _free_status(self, is_hire: bool) -> str:
        roll = self.rng.randrange(600)
        if is_hire:
            if roll < 200:  # 1/3
                return WITH_CUSTOMER
            if roll < 300:  # 1/6
                return EX_HIRED
            if roll < 360:  # 10 %
                return _weighted(self.rng, PROCESSING_STATUSES + HIRE_ONLY_PROCESSING)
            return READY
        if roll < 60:
            return _weighted(self.rng, PROCESSING_STATUSES)
        return READY
