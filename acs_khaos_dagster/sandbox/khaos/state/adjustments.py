"""Stock adjustments (``ImportStockAdjustments``, ``ExportStockAdjustments``): Level set or
moved per StockID at a site, with the install's reason codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from acs_khaos_dagster.sandbox.khaos.state.books import Books
from acs_khaos_dagster.sandbox.khaos.state.records import (
    AdjustmentGroupRecord,
    AdjustmentRecord,
    not_found,
    validation,
)
from acs_khaos_dagster.sandbox.khaos.wire import wall_clock


class StockAdjustments(Books):
    def import_stock_adjustments(
        self, site_id: int, group_ref: str, lines: list[dict[str, Any]]
    ) -> AdjustmentGroupRecord:
        self._require_site(site_id)
        if not group_ref.strip():
            raise validation("GroupRef is required")
        if not lines:
            raise validation("an adjustment group needs at least one line")
        for n, line in enumerate(lines, 1):
            item = self.items.get(line["stock_id"])
            if item is None:
                raise not_found(f"line {n}: StockID {line['stock_id']} does not exist")
            if not item.stock_controlled:
                raise validation(f"line {n}: StockID {item.stock_id} is not stock controlled")
            if (line["adjust_to"] is None) == (line["adjust_by"] is None):
                raise validation(f"line {n}: give exactly one of AdjustTo and AdjustBy")
            if line["adjust_to"] is not None and line["adjust_to"] < 0:
                raise validation(f"line {n}: AdjustTo cannot be negative")
            if line["reason_code"] not in self.install.adjustment_reasons:
                raise validation(f"line {n}: unknown reason code {line['reason_code']!r}")
        records = []
        for line in lines:
            key = (line["stock_id"], site_id)
            before = self.levels.get(key, 0)
            after = (
                line["adjust_to"] if line["adjust_to"] is not None else before + line["adjust_by"]
            )
            self.levels[key] = after
            records.append(
                AdjustmentRecord(
                    stock_id=line["stock_id"],
                    reason_code=line["reason_code"],
                    value=line["value"],
                    adjust_to=line["adjust_to"],
                    adjust_by=line["adjust_by"],
                    level_before=before,
                    level_after=after,
                )
            )
        group = AdjustmentGroupRecord(
            group_id=self._next_group_id,
            group_ref=group_ref,
            site_id=site_id,
            created_at=self.clock.now(),
            lines=records,
        )
        self._next_group_id += 1
        self.adjustment_groups.append(group)
        return group

    def export_stock_adjustments(
        self, group_ref: str | None, date_from: datetime | None
    ) -> list[AdjustmentGroupRecord]:
        if not group_ref and date_from is None:
            raise validation("give GroupRef or DateFrom")
        return [
            g
            for g in self.adjustment_groups
            if (not group_ref or g.group_ref == group_ref)
            and (date_from is None or wall_clock(g.created_at) >= date_from)
        ]
