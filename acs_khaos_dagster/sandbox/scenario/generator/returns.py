"""The returns file: units of shipped lines returned after the start, plus unexpected
returns, graded by exact quota with the action each grade leads to.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from acs_khaos_dagster.sandbox.acs.files import RETURNS, RETURNS_COLUMNS
from acs_khaos_dagster.sandbox.scenario.generator.draft import Draft
from acs_khaos_dagster.sandbox.scenario.generator.helpers import (
    _quota,
    _weighted,
    file_stamp,
    iso_z,
)
from acs_khaos_dagster.sandbox.scenario.generator.tables import (
    _DEFECTS_B,
    _DEFECTS_BER,
    _DEFECTS_C,
    GRADE_SHARES,
)


class ReturnsFile(Draft):
    def write_returns(self, folder: Path, line_units: dict[int, list[str]]) -> str:
        rng = self.rng
        lines = {ln.order_item_id: (order, ln) for order in self.orders for ln in order.lines}
        shipped = sorted(
            (line.order_item_id, unit)
            for plan in self.plans
            for shipment in plan.shipments
            for line in shipment
            for unit in line_units.get(line.order_item_id, [])[: line.quantity]
        )
        unexpected = max(1, self.spec.returns * 3 // 100)
        expected_count = min(len(shipped), self.spec.returns - unexpected)
        chosen = rng.sample(shipped, expected_count)
        grades = _quota(expected_count + unexpected, GRADE_SHARES)
        rng.shuffle(grades)
        sale_skus = [
            s.item
            for s in self.children
            if not s.item.is_hire and s.item.stock_code not in self.problem_codes
        ]
        rows: list[list[str]] = []
        grade_counts: Counter[str] = Counter()
        for i, grade in enumerate(grades):
            received = self.start_at + timedelta(
                days=rng.randint(3, 10), seconds=rng.randint(8 * 3600, 17 * 3600)
            )
            if i < len(chosen):
                order_item_id, unit = chosen[i]
                order, line = lines[order_item_id]
                order_number, line_item_id, sku, is_hire = (
                    order.order_code,
                    str(order_item_id),
                    line.stock_code,
                    line.is_hire,
                )
            else:
                self.next_serial += 1
                unit = f"U{self.next_serial:09d}"
                order_number, line_item_id, sku, is_hire = (
                    "",
                    "",
                    rng.choice(sale_skus).stock_code,
                    False,
                )
            action, reason, defects, cost = self._grade_outcome(grade, is_hire)
            grade_counts[grade] += 1
            self.counts[f"return_action:{action}"] += 1
            rows.append(
                [
                    f"ACSR{100_001 + i}",
                    order_number,
                    line_item_id,
                    sku,
                    unit,
                    iso_z(received),
                    grade,
                    action,
                    reason,
                    "|".join(defects),
                    cost,
                ]
            )
        rows.sort(key=lambda r: (r[5], r[0]))
        latest = max((datetime.fromisoformat(r[5]) for r in rows), default=self.start_at)
        name = f"{RETURNS}_{self.account}_{file_stamp(latest + timedelta(hours=1))}.csv"
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(RETURNS_COLUMNS)
            writer.writerows(rows)
        self.counts["returns"] = len(rows)
        self.counts["unexpected_returns"] = len(rows) - len(chosen)
        for grade, n in grade_counts.items():
            self.counts[f"grade:{grade}"] = n
        self.progress("returns", len(rows), len(rows))
        return name

    def _grade_outcome(self, grade: str, is_hire: bool) -> tuple[str, str, list[str], str]:
        rng = self.rng
        if grade == "A":
            return "RESTOCK", "Passed inspection", [], ""
        if grade == "B":
            defects = [rng.choice(_DEFECTS_B)]
            if rng.randrange(100) < 60:
                return "CLEAN", "Needs cleaning", defects, "4.50"
            cost = f"{rng.randint(5, 15)}.{rng.randrange(100):02d}"
            return "REPAIR", "Minor repair", defects, cost
        if grade == "C":
            defects = sorted(rng.sample(_DEFECTS_C, rng.randint(1, 3)))
            action = _weighted(rng, (("REPAIR", 50), ("QUARANTINE", 25), ("RESALE", 25)))
            cost = f"{rng.randint(15, 45)}.{rng.randrange(100):02d}" if action == "REPAIR" else ""
            return action, "Significant wear", defects, cost
        defects = sorted(rng.sample(_DEFECTS_BER, rng.randint(2, 3)))
        return ("EX_HIRE" if is_hire else "DISPOSE"), "Beyond economic repair", defects, ""
