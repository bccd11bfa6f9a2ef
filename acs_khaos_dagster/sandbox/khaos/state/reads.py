"""The read operations (``GetSiteList``, ``GetStockList``, ``ExportStock``,
``ExportStockStatus``, ``ExportOrders``, ``ExportOrderStatus``).
"""

from __future__ import annotations

from datetime import datetime

from acs_khaos_dagster.domain.models import SalesOrder, Site, StockItem, StockLevel
from acs_khaos_dagster.sandbox.khaos.state.books import Books
from acs_khaos_dagster.sandbox.khaos.state.records import MAX_EXPORT_STOCK_CODES, validation
from acs_khaos_dagster.sandbox.khaos.wire import wall_clock


class ReadOperations(Books):
    def get_sites(self) -> list[Site]:
        return sorted(self.sites.values(), key=lambda s: s.site_id)

    def get_stock_list(self, since: datetime) -> list[str]:
        """Codes changed at or after the UK wall-clock time ``since`` (compared as Khaos
        stores them: wall-clock times, so October's repeated hour sorts by its clock)."""
        return sorted(
            self.items[sid].stock_code
            for sid, at in self.changed_at.items()
            if wall_clock(at) >= since
        )

    def export_stock(self, codes: list[str]) -> list[StockItem]:
        if len(codes) > MAX_EXPORT_STOCK_CODES:
            raise validation(f"ExportStock takes at most {MAX_EXPORT_STOCK_CODES} stock codes")
        found = (self.item_by_code(c) for c in codes)
        return [i for i in found if i is not None]

    def export_stock_status(self, codes: list[str], site_id: int | None) -> list[StockLevel]:
        if site_id:
            self._require_site(site_id)
        sites = [site_id] if site_id else sorted(self.sites)
        out: list[StockLevel] = []
        allocations = self.allocations()
        for code in codes:
            item = self.item_by_code(code)
            if item is None:
                continue
            out.extend(self.stock_level(item.stock_id, s, allocations) for s in sites)
        return out

    def export_orders(self, stage_ids: set[int], site_id: int | None) -> list[SalesOrder]:
        out = []
        for order in sorted(self.orders.values(), key=lambda o: o.header.order_id):
            if site_id and order.header.site_id != site_id:
                continue
            if any(self.invoices[i].stage in stage_ids for i in order.invoice_ids):
                out.append(self.order_view(order))
        return out

    def export_order_status(
        self,
        order_ids: list[int],
        include_tracking: bool,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> list[SalesOrder]:
        chosen = (
            [self.orders[i] for i in order_ids if i in self.orders]
            if order_ids
            else sorted(self.orders.values(), key=lambda o: o.header.order_id)
        )
        out = []
        for order in chosen:
            if date_from is not None and wall_clock(order.updated_at) < date_from:
                continue
            if date_to is not None and wall_clock(order.updated_at) > date_to:
                continue
            out.append(self.order_view(order, include_tracking))
        return out
