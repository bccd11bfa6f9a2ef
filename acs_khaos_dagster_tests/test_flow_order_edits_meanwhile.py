"""What else can happen to an order in Khaos between the release's read and its
acknowledgement, besides an address correction (``test_flow_order_edits``): it is
cancelled, moved on to another stage, edited into a SKU ACS does not have yet, or changed
in a field ACS is never sent.

The simulators over real HTTP and a SQLite store; each change lands inside ACS's
acceptance of the order (``put_order``), so it falls between the read and the
acknowledgement. The tiny brand has ten orders waiting at stage 9 (the release stage);
acknowledging moves an invoice to stage 12.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acs_khaos_dagster.flows.order_release import ReleaseResult
from acs_khaos_dagster_tests.flow_ports import Ports, ports
from acs_khaos_dagster_tests.test_flow_orders import _release

__all__ = ["ports"]

FIRST = "SO0050001"  # lines JKT-0001-PNK-L (stock 10005) and TOP-0001-BRG-M (10010)


def _while_acs_takes(p: Ports, code: str, change: Callable[[Any, Any], None]) -> None:
    """Run ``change(books, order)`` on ``code`` in Khaos once, as ACS accepts it."""
    state, books = p.sandbox.acs.state, p.sandbox.khaos.books
    put = state.put_order
    done: list[bool] = []

    def put_then_change(number: str, body: dict[str, Any], now: Any) -> Any:
        answer = put(number, body, now)
        if number == code and not done:
            done.append(True)
            order = next(o for o in books.orders.values() if o.header.order_code == code)
            change(books, order)
        return answer

    state.put_order = put_then_change


def _stage_of(p: Ports, code: str) -> set[int]:
    truth = p.khaos_truth()
    order = next(o for o in truth["orders"] if o["order_code"] == code)
    return {i["stage"] for i in truth["invoices"] if i["invoice_id"] in order["invoice_ids"]}


def _row(result: ReleaseResult, code: str) -> Any:
    return result.frame.set_index("order_code").loc[code]


def _cancel(books: Any, order: Any) -> None:
    books.cancel_order(order.header.order_id)


def _move_on(stage: int) -> Callable[[Any, Any], None]:
    def move(books: Any, order: Any) -> None:
        for invoice_id in order.invoice_ids:
            books._set_stage(books.invoices[invoice_id], stage)

    return move


def _swap_first_line_to(stock_id: int, stock_code: str) -> Callable[[Any, Any], None]:
    def swap(books: Any, order: Any) -> None:
        first, *rest = order.header.lines
        line = first.model_copy(update={"stock_id": stock_id, "stock_code": stock_code})
        order.header = order.header.model_copy(update={"lines": [line, *rest]})

    return swap


def _unordered_item(p: Ports) -> dict[str, Any]:
    """A Khaos stock item on no order of the brand."""
    ordered = {ln["stock_id"] for o in p.khaos_truth()["orders"] for ln in o["lines"]}
    return next(i for i in p.khaos_truth()["stock_items"] if i["stock_id"] not in ordered)


# --- cancelled or moved on meanwhile: acknowledged as before ----------------------------------


def test_an_order_cancelled_in_khaos_while_sent_is_not_reported_as_edited(ports: Ports) -> None:
    _while_acs_takes(ports, FIRST, _cancel)

    result = _release(ports)

    assert _row(result, FIRST)["action"] == "sent"
    assert FIRST in {o["order_number"] for o in ports.acs_truth()["orders"]}


def test_an_order_cancelled_while_sent_is_cancelled_at_acs_by_the_next_run(ports: Ports) -> None:
    _while_acs_takes(ports, FIRST, _cancel)
    _release(ports)

    again = _release(ports)

    assert _row(again, FIRST)["action"] == "cancelled"
    at_acs = next(o for o in ports.acs_truth()["orders"] if o["order_number"] == FIRST)
    assert at_acs["status"] == "CANCELLED"


def test_an_order_moved_on_in_khaos_while_sent_is_acknowledged_as_before(ports: Ports) -> None:
    _while_acs_takes(ports, FIRST, _move_on(12))

    result = _release(ports)

    row = _row(result, FIRST)
    assert row["action"] == "sent" and row["acknowledged"]
    assert _stage_of(ports, FIRST) == {12}


def test_an_order_moved_on_while_sent_is_not_sent_again(ports: Ports) -> None:
    _while_acs_takes(ports, FIRST, _move_on(12))
    _release(ports)

    again = _release(ports)

    assert FIRST not in set(again.frame["order_code"])
    at_acs = next(o for o in ports.acs_truth()["orders"] if o["order_number"] == FIRST)
    assert at_acs["puts"] == 1


# --- edited into a SKU ACS does not have: left at the release stage, then held ----------------


def test_an_order_edited_into_a_sku_with_no_acs_sku_is_left_at_the_release_stage(
    ports: Ports,
) -> None:
    item = _unordered_item(ports)
    _while_acs_takes(ports, FIRST, _swap_first_line_to(item["stock_id"], item["stock_code"]))

    result = _release(ports, not_ready={item["stock_code"]})

    row = _row(result, FIRST)
    assert row["action"] == "edited_while_sent" and not row["acknowledged"]
    assert _stage_of(ports, FIRST) == {9}


def test_the_other_orders_of_the_run_are_acknowledged_when_one_is_edited(ports: Ports) -> None:
    item = _unordered_item(ports)
    _while_acs_takes(ports, FIRST, _swap_first_line_to(item["stock_id"], item["stock_code"]))

    result = _release(ports, not_ready={item["stock_code"]})

    others = result.frame[result.frame["order_code"] != FIRST]
    assert len(others) == 9 and set(others["action"]) == {"sent"}
    assert result.acknowledged == 9
    stages = {i["stage"] for i in ports.khaos_truth()["invoices"]}
    assert stages == {9, 12}


def test_an_order_edited_into_a_sku_not_ready_is_held_by_the_next_run(ports: Ports) -> None:
    item = _unordered_item(ports)
    _while_acs_takes(ports, FIRST, _swap_first_line_to(item["stock_id"], item["stock_code"]))
    _release(ports, not_ready={item["stock_code"]})

    again = _release(ports, not_ready={item["stock_code"]})

    assert _row(again, FIRST)["action"] == "held"
    held = ports.open_exceptions("order_held")
    assert any(FIRST in h.row.message and item["stock_code"] in h.row.message for h in held)
    assert _stage_of(ports, FIRST) == {9}


# --- a change ACS is never sent: acknowledged as before ---------------------------------------


def test_an_order_changed_only_in_what_acs_is_not_sent_is_acknowledged(ports: Ports) -> None:
    def rename_reference(books: Any, order: Any) -> None:
        order.header = order.header.model_copy(update={"associated_ref": "WEB-EDITED"})

    _while_acs_takes(ports, FIRST, rename_reference)

    result = _release(ports)

    row = _row(result, FIRST)
    assert row["action"] == "sent" and row["acknowledged"]
    assert _stage_of(ports, FIRST) == {12}
