"""Khaos wire documents <-> domain records (the only module that knows Khaos field names).

Limits are enforced here, before anything is sent (``WireValidationError``):
stock codes trimmed, 1–50 characters, no ``#``; at most 100 codes per
``ExportStock``; references at most ``khaos.reference_max_length`` (50) characters;
address lines at most 35. Nulls are never sent: an absent value is an omitted element.

Only fields the modelled contract names are sent or read (``docs/go-live-checklist.md``
lists them, with the setting each maps to). Quantities are whole numbers, read whether
an install writes them ``10`` or ``10.0000``; a fractional one is refused.
"""

from __future__ import annotations

from acs_khaos_dagster.connectors.khaos.wire.limits import (
    MAX_ADDRESS_LINE,
    MAX_EXPORT_STOCK_CODES,
    MAX_REF,
    MAX_STOCK_CODE,
    WireValidationError,
    check_address,
    clean_ref,
    clean_stock_code,
    whole_number,
)
from acs_khaos_dagster.connectors.khaos.wire.reply_documents import (
    parse_adjustment_groups,
    parse_adjustment_result,
    parse_customer_returns,
    parse_despatch_result,
    parse_invoice,
    parse_move_results,
    parse_orders,
    parse_return_result,
    parse_sites,
    parse_stock_codes,
    parse_stock_items,
    parse_stock_status,
)
from acs_khaos_dagster.connectors.khaos.wire.request_documents import (
    adjustment_params,
    despatch_params,
    id_list,
    return_params,
    stock_codes_doc,
)

__all__ = [
    "MAX_ADDRESS_LINE",
    "MAX_EXPORT_STOCK_CODES",
    "MAX_REF",
    "MAX_STOCK_CODE",
    "WireValidationError",
    "adjustment_params",
    "check_address",
    "clean_ref",
    "clean_stock_code",
    "despatch_params",
    "id_list",
    "parse_adjustment_groups",
    "parse_adjustment_result",
    "parse_customer_returns",
    "parse_despatch_result",
    "parse_invoice",
    "parse_move_results",
    "parse_orders",
    "parse_return_result",
    "parse_sites",
    "parse_stock_codes",
    "parse_stock_items",
    "parse_stock_status",
    "return_params",
    "stock_codes_doc",
    "whole_number",
]
