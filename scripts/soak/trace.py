"""What moved one StockID, from the simulators' ground truth: printed under a broken Level
row so that a failed soak (in CI, where its work folder is gone) can be traced from its
report alone. Every line is a fact one of the two systems recorded, in time order."""

from __future__ import annotations

from collections import Counter
from typing import Any


def level_trace(
    stock_id: int, acs: dict[str, Any], khaos: dict[str, Any], units: dict[str, Any]
) -> list[str]:
    codes = {i["stock_code"] for i in khaos["stock_items"] if i["stock_id"] == stock_id}
    lines = [f"trace of StockID {stock_id} ({', '.join(sorted(codes))}):"]
    at_acs: Counter[str] = Counter()
    for row in units["units"]:
        if row["sku"] in codes:
            at_acs[row["status"]] += row["count"]
    lines.append(f"  ACS units now by status: {dict(sorted(at_acs.items()))}")
    levels = {r["site_id"]: r["level"] for r in khaos["stock"] if r["stock_id"] == stock_id}
    lines.append(f"  Khaos Level now by site: {dict(sorted(levels.items()))}")
    events: list[tuple[str, str]] = []
    items = {
        ln["order_item_id"]: order["order_code"]
        for order in khaos["orders"]
        for ln in order["lines"]
        if ln["stock_id"] == stock_id
    }
    for order in acs["orders"]:
        for event in order["shipments"]:
            for line in event["lines"]:
                if int(line["line_item_id"]) in items:
                    events.append(
                        (
                            str(event.get("despatched_at") or event.get("at") or ""),
                            f"ACS shipped {line['quantity']} of {order['order_number']} "
                            f"(shipment {event.get('shipment_id', '?')})",
                        )
                    )
    for inv in khaos["invoices"]:
        qty = sum(ln["quantity"] for ln in inv["lines"] if ln["order_item_id"] in items)
        if qty:
            events.append(
                (
                    str(inv["issue_date"] or "~"),
                    f"Khaos invoice {inv['invoice_code']} ({inv['external_ref'] or 'no ref'}) "
                    f"stage {inv['stage']}, {qty} unit(s)"
                    + (" issued" if inv["issue_date"] else " not issued"),
                )
            )
    for group in khaos.get("adjustment_groups", []):
        for ln in group["lines"]:
            if ln["stock_id"] == stock_id:
                change = ln["adjust_by"] if ln["adjust_by"] is not None else f"to {ln['adjust_to']}"
                events.append(
                    (
                        group["created_at"],
                        f"Khaos adjustment {group['group_ref']} site {group['site_id']} "
                        f"{ln['reason_code']} {change}: "
                        f"{ln['level_before']} -> {ln['level_after']}",
                    )
                )
    for ret in khaos.get("customer_returns", []):
        for it in ret["items"]:
            if it["stock_id"] == stock_id:
                events.append(
                    (
                        ret["created_at"],
                        f"Khaos customer return {ret['associated_ref']} site {ret['site_id']} "
                        f"{it['quantity']} {it['processing']}"
                        + ("" if ret["processed"] else " (not processed)"),
                    )
                )
    for row in units.get("graded", []):
        if row.get("sku") in codes:
            events.append(
                (
                    str(row.get("received_at", "")),
                    f"ACS graded {row['return_ref']} {row.get('unique_sku', '?')} "
                    f"{row.get('grade', '?')} {row.get('action_taken', '?')} "
                    f"(order {row.get('order_number', '?')})",
                )
            )
    for ev in units.get("stock_events", []):
        if ev["stock_id"] == stock_id:
            events.append((ev["at"], f"brand stock event {ev['kind']} ({ev['correction']:+d})"))
    lines.extend(f"  {when[:19]}  {what}" for when, what in sorted(events))
    return lines
