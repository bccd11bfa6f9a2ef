"""Typed client of the Khaos Control SOAP service (``IKosWeb``).

- One pooled ``httpx.Client``; use as a context manager or call ``close()``.
- Reads retry on ``TransientError`` with capped exponential backoff and full
  jitter, honouring ``Retry-After`` (a server asking for longer than the cap ends
  the retries at once: the caller reschedules). **Writes** (``Import…``,
  ``MoveInvoices``) are sent exactly once: Khaos does not de-duplicate, so a
  resend is the outbox's decision after reading back.
- Errors are only those of ``connectors.errors``. A timeout, reset or protocol
  error after the request went out is ``AmbiguousError`` for a write and
  ``TransientError`` for a read.
- The password is a ``SecretStr``; it is written only into the request body and
  never into an exception, a log line or ``repr``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TypeVar

from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.connectors.khaos import wire
from acs_khaos_dagster.connectors.khaos.levels import (
    LevelNotReported,
    allocated_units,
    stock_levels,
)
from acs_khaos_dagster.connectors.khaos.records import KhaosAdjustmentGroup, KhaosCustomerReturn
from acs_khaos_dagster.connectors.khaos.transport import SYSTEM, KhaosTransport
from acs_khaos_dagster.connectors.khaos.uk_time import format_uk_from, format_uk_to
from acs_khaos_dagster.domain.models import (
    CustomerReturn,
    DespatchPosting,
    Invoice,
    SalesOrder,
    Site,
    StockAdjustmentGroup,
    StockItem,
    StockLevel,
    WriteResult,
)

_T = TypeVar("_T")


def _drained(rows: list[_T]) -> Iterator[_T]:
    """``rows`` in order, each dropped from the list as it is given."""
    rows.reverse()
    while rows:
        yield rows.pop()


class KhaosClient(KhaosTransport):
    """The Khaos operations the integration uses, typed (see the module doc)."""

    # --- reads ------------------------------------------------------------------------------

    def get_sites(self) -> list[Site]:
        return self._read("GetSiteList", {}, wire.parse_sites)

    def get_stock_list(self, changed_since: datetime) -> list[str]:
        return self._read(
            "GetStockList", {"DateValue": format_uk_from(changed_since)}, wire.parse_stock_codes
        )

    @staticmethod
    def requestable_codes(codes: Iterable[str]) -> tuple[list[str], dict[str, str]]:
        """Split codes into those Khaos can be asked about and the refused ones with why.

        A code breaking Khaos's own rules cannot be exported; the caller reports it
        rather than letting one bad code stop the good ones.
        """
        good: list[str] = []
        refused: dict[str, str] = {}
        for code in codes:
            try:
                good.append(wire.clean_stock_code(code))
            except wire.WireValidationError as exc:
                refused[code] = str(exc)
        return good, refused

    def _batches(self, operation: str, codes: Iterable[str]) -> list[list[str]]:
        cleaned = self._local_validation(
            operation, lambda: list(dict.fromkeys(wire.clean_stock_code(c) for c in codes))
        )
        size = self.export_batch_size
        return [cleaned[i : i + size] for i in range(0, len(cleaned), size)]

    def export_stock(self, codes: Iterable[str]) -> list[StockItem]:
        items: list[StockItem] = []
        for batch in self._batches("ExportStock", codes):
            doc = self._local_validation("ExportStock", lambda b=batch: wire.stock_codes_doc(b))
            items.extend(self._read("ExportStock", {"StockCodes": doc}, wire.parse_stock_items))
        return items

    def export_stock_status(self, codes: Iterable[str], site_id: int | None) -> list[StockLevel]:
        """Level, Available and OnOrder per StockID × site (``site_id`` None: every site).

        Where the install reports no Level (``stock_level_source``), Level is Available
        plus what open invoices at the site allocate (``levels``)."""
        figures = []
        for batch in self._batches("ExportStockStatus", codes):
            doc = self._local_validation(
                "ExportStockStatus", lambda b=batch: wire.stock_codes_doc(b)
            )
            figures.extend(
                self._read(
                    "ExportStockStatus",
                    {"StockCodes": doc, "SiteID": site_id},
                    wire.parse_stock_status,
                )
            )
        allocated = None
        if self.stock_level_source == "available_plus_allocated" and figures:
            sites = [site_id] if site_id else [s.site_id for s in self.get_sites()]
            orders = [o for site in sites for o in self.export_orders(self.allocating_stages, site)]
            allocated = allocated_units(orders, self.allocating_stages)
        try:
            # Drained as converted: a brand's 300k figures and their levels never both held.
            return stock_levels(_drained(figures), self.stock_level_source, allocated)
        except LevelNotReported as exc:
            raise PermanentError(
                str(exc), system=SYSTEM, operation="ExportStockStatus", code="LEVEL_NOT_REPORTED"
            ) from None

    def export_orders(self, stage_ids: Iterable[int], site_id: int | None) -> list[SalesOrder]:
        return self._read(
            "ExportOrders",
            {"InvoiceStageIDs": wire.id_list(stage_ids), "SiteID": site_id},
            wire.parse_orders,
        )

    def export_order_status(
        self,
        order_ids: Iterable[int],
        include_tracking: bool = True,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> list[SalesOrder]:
        params = {
            "IDs": wire.id_list(order_ids),
            "IncludeTracking": include_tracking,
            "DateFrom": format_uk_from(date_from) if date_from else None,
            "DateTo": format_uk_to(date_to) if date_to else None,
        }
        return self._read("ExportOrderStatusEx", params, wire.parse_orders)

    def export_stock_adjustments(
        self, group_ref: str | None = None, date_from: datetime | None = None
    ) -> list[KhaosAdjustmentGroup]:
        """Saved adjustment groups, by GroupRef or saved from ``date_from`` on."""
        params = {
            "GroupRef": group_ref,
            "DateFrom": format_uk_from(date_from) if date_from else None,
        }
        return self._read("ExportStockAdjustments", params, wire.parse_adjustment_groups)

    def export_customer_returns(
        self, associated_ref: str | None = None, date_from: datetime | None = None
    ) -> list[KhaosCustomerReturn]:
        params = {
            "AssociatedRef": associated_ref,
            "DateFrom": format_uk_from(date_from) if date_from else None,
        }
        return self._read("ExportCustomerReturns", params, wire.parse_customer_returns)

    # --- writes (never retried here) ---------------------------------------------------------

    def move_invoices(self, invoice_ids: Iterable[int], stage_id: int) -> dict[int, bool | str]:
        ids = list(invoice_ids)
        if not ids:
            return {}
        return self._write(
            "MoveInvoices",
            {"InvoiceIDs": wire.id_list(ids), "DestinationStageID": stage_id},
            wire.parse_move_results,
        )

    def import_despatch(self, posting: DespatchPosting) -> Invoice:
        params = self._local_validation(
            "ImportDespatch", lambda: wire.despatch_params(posting, self.reference_max_length)
        )
        return self._write("ImportDespatch", params, wire.parse_despatch_result)

    def import_stock_adjustments(self, group: StockAdjustmentGroup) -> WriteResult:
        params = self._local_validation(
            "ImportStockAdjustments",
            lambda: wire.adjustment_params(group, self.reference_max_length),
        )

        def parse(doc: ET.Element | None) -> WriteResult:
            group_id, details = wire.parse_adjustment_result(doc)
            return WriteResult(reference=str(group_id), details=details)

        return self._write("ImportStockAdjustments", params, parse)

    def import_customer_return(self, ret: CustomerReturn) -> WriteResult:
        params = self._local_validation(
            "ImportCustomerReturns", lambda: wire.return_params(ret, self.reference_max_length)
        )

        def parse(doc: ET.Element | None) -> WriteResult:
            return_id, details = wire.parse_return_result(doc)
            return WriteResult(reference=str(return_id), details=details)

        return self._write("ImportCustomerReturns", params, parse)
