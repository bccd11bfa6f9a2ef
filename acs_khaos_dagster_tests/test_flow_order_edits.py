"""An order corrected in Khaos while its release is on its way to ACS (found by the soak:
customer services fixed an address after the release had read the order and before it
acknowledged it, and ACS shipped to the old address with nobody told).

The simulators over real HTTP and a SQLite store; the edit lands inside ACS's acceptance
of the order, so it falls between the release's read and its acknowledgement.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from acs_khaos_dagster_tests.flow_ports import Ports, ports
from acs_khaos_dagster_tests.test_flow_orders import _release

__all__ = ["ports"]


def _correct_address_while_acs_takes(p: Ports, code: str) -> None:
    """Customer services change ``code``'s postcode in Khaos as ACS accepts the order."""
    state, books = p.sandbox.acs.state, p.sandbox.khaos.books
    put = state.put_order

    def put_then_edit(number: str, body: dict[str, Any], now: Any) -> Any:
        answer = put(number, body, now)
        if number == code and not getattr(put_then_edit, "done", False):
            put_then_edit.done = True  # type: ignore[attr-defined]
            sim = next(o for o in books.orders.values() if o.header.order_code == code)
            address = sim.header.delivery_address.model_copy(update={"postcode": "EC1A 1BB"})
            sim.header = sim.header.model_copy(update={"delivery_address": address})
        return answer

    state.put_order = put_then_edit


def _first_order(p: Ports) -> str:
    return min(o["order_code"] for o in p.khaos_truth()["orders"])


def _stage_of(p: Ports, code: str) -> set[int]:
    truth = p.khaos_truth()
    order = next(o for o in truth["orders"] if o["order_code"] == code)
    return {i["stage"] for i in truth["invoices"] if i["invoice_id"] in order["invoice_ids"]}


def test_an_order_edited_while_it_was_sent_is_not_acknowledged_with_the_old_body(
    ports: Ports,
) -> None:
    code = _first_order(ports)
    _correct_address_while_acs_takes(ports, code)

    result = _release(ports)

    row = result.frame.set_index("order_code").loc[code]
    assert row["action"] == "edited_while_sent" and not row["acknowledged"]
    assert _stage_of(ports, code) == {9}  # still waiting at the release stage


def test_the_next_release_sends_the_edited_body_and_acknowledges_it(ports: Ports) -> None:
    code = _first_order(ports)
    _correct_address_while_acs_takes(ports, code)
    _release(ports)

    _release(ports)

    at_acs = next(o for o in ports.acs_truth()["orders"] if o["order_number"] == code)
    assert at_acs["body"]["Delivery_Postcode"] == "EC1A 1BB"
    assert _stage_of(ports, code) == {12}


def test_an_edit_acs_refuses_as_picking_started_is_an_order_locked_exception_for_operations(
    ports: Ports,
) -> None:
    code = _first_order(ports)
    _correct_address_while_acs_takes(ports, code)
    _release(ports)
    ports.sandbox.advance(timedelta(hours=2))  # ACS has started picking it

    result = _release(ports)

    row = result.frame.set_index("order_code").loc[code]
    assert row["action"] == "edit_locked"
    [locked] = ports.open_exceptions("order_locked")
    assert locked.row.entity_ref == f"order:{code}" and locked.row.owner == "operations"
    assert "edited in Khaos after ACS started picking" in locked.row.message
    assert _stage_of(ports, code) == {12}  # acknowledged: it no longer waits for a send
    at_acs = next(o for o in ports.acs_truth()["orders"] if o["order_number"] == code)
    assert at_acs["body"]["Delivery_Postcode"] != "EC1A 1BB"
