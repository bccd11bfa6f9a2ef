"""The stuck-order clock as a flow (``flows.order_sla.check_order_sla``) without Dagster:
which orders it tracks and which of their waits it reports, from what the release wrote
to the store. The turnaround breach of sent orders and its closing on despatch are in
``test_flow_orders``.

The simulators over real HTTP and a SQLite store. The clock starts on Monday 2 March 2026
at 07:00 UTC (GMT, so local time is UTC); the tiny brand's ten orders wait at stage 9 and
go to ACS with delivery service ``48`` (the ``standard`` level: in by 14:00, out by the
close of the same working day, 18:00). Release-stage waits breach after 4 wall-clock
hours, back orders (Awaiting Stock, stage 18) after 5 wall-clock days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from acs_khaos_dagster.domain.sla import SlaPolicy
from acs_khaos_dagster.flows.order_sla import SlaResult, check_order_sla
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster_tests.flow_ports import Ports, ports
from acs_khaos_dagster_tests.test_flow_orders import _khaos_order, _release

__all__ = ["ports"]

AWAITING_STOCK = 18
MONDAY_CLOSE = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def _check(p: Ports, settings: Any = None) -> SlaResult:
    return check_order_sla(p.store, settings or p.settings, p.now())


def _kinds_by_order(result: SlaResult) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in result.frame.itertuples():
        out.setdefault(row.order_number, set()).add(row.kind)
    return out


def _first_stock_code(p: Ports, code: str) -> str:
    return _khaos_order(p, code)["lines"][0]["stock_code"]


def _edit_while_acs_takes(p: Ports, code: str) -> None:
    """Customer services change ``code``'s postcode in Khaos as ACS accepts it: the
    release leaves it at stage 9, unacknowledged and not held."""
    state, books = p.sandbox.acs.state, p.sandbox.khaos.books
    put = state.put_order
    done: list[bool] = []

    def put_then_edit(number: str, body: dict[str, Any], now: Any) -> Any:
        answer = put(number, body, now)
        if number == code and not done:
            done.append(True)
            sim = next(o for o in books.orders.values() if o.header.order_code == code)
            address = sim.header.delivery_address.model_copy(update={"postcode": "EC1A 1BB"})
            sim.header = sim.header.model_copy(update={"delivery_address": address})
        return answer

    state.put_order = put_then_edit


# --- what the clock tracks --------------------------------------------------------------------


def test_the_clock_tracks_nothing_before_any_release(ports: Ports) -> None:
    result = _check(ports)

    assert result.orders_tracked == 0 and result.frame.empty and result.open_breaches == 0


def test_the_clock_tracks_every_order_sent_and_not_yet_despatched(ports: Ports) -> None:
    _release(ports)

    result = _check(ports)

    assert result.orders_tracked == 10


def test_orders_sent_this_morning_are_not_breached_before_the_close(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=10, minutes=45))  # 17:45, due 18:00

    result = _check(ports)

    assert result.frame.empty and result.open_breaches == 0


def test_a_turnaround_breach_is_due_at_the_close_of_the_day_it_was_sent(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=11, minutes=30))  # 18:30

    result = _check(ports)

    assert set(result.frame["kind"]) == {"turnaround"} and len(result.frame) == 10
    assert set(result.frame["due_at"]) == {MONDAY_CLOSE.isoformat()}
    assert set(result.frame["age_hours"]) == {11.5}


def test_an_order_of_a_next_day_service_is_due_at_the_16_00_collection(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=9, minutes=30))  # 16:30: past 16:00, before 18:00
    next_day = ports.settings.model_copy(
        update={"sla": SlaPolicy(delivery_services={"48": "next_day"})}
    )

    result = _check(ports, next_day)

    assert len(result.frame) == 10
    assert set(result.frame["due_at"]) == {datetime(2026, 3, 2, 16, 0, tzinfo=UTC).isoformat()}


def test_the_same_breach_is_one_exception_however_often_the_clock_runs(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=11, minutes=30))
    first = _check(ports)
    ports.sandbox.advance(timedelta(hours=1))

    again = _check(ports)

    assert set(again.frame["key"]) == set(first.frame["key"])
    assert again.open_breaches == 10 and len(ports.open_exceptions("order_sla_breach")) == 10


# --- cancelled orders -------------------------------------------------------------------------


def test_an_order_cancelled_at_acs_has_no_turnaround_breach(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.khaos.cancel_order(_khaos_order(ports, "SO0050004")["order_id"])
    _release(ports)  # cancels it at ACS
    ports.sandbox.advance(timedelta(hours=11, minutes=30))

    result = _check(ports)

    assert "SO0050004" not in set(result.frame["order_number"])
    assert len(result.frame) == 9


def test_an_order_whose_cancellation_acs_has_not_taken_has_no_turnaround_breach(
    ports: Ports,
) -> None:
    _release(ports)
    ports.sandbox.acs.faults.add(FaultRule(kind=FaultKind.ERROR_5XX, rate=1.0))  # ACS down
    ports.sandbox.khaos.cancel_order(_khaos_order(ports, "SO0050004")["order_id"])
    _release(ports)  # requests the cancellation; ACS does not take it
    ports.sandbox.advance(timedelta(hours=11, minutes=30))

    result = _check(ports)

    assert result.orders_tracked == 10
    assert "SO0050004" not in set(result.frame["order_number"])
    assert len(result.frame) == 9


# --- the release-stage wait -------------------------------------------------------------------


def test_an_order_left_at_the_release_stage_breaches_after_four_hours(ports: Ports) -> None:
    _edit_while_acs_takes(ports, "SO0050001")
    _release(ports)
    ports.sandbox.advance(timedelta(hours=4, minutes=15))

    result = _check(ports)

    assert _kinds_by_order(result) == {"SO0050001": {"release_stage"}}
    [row] = result.frame.itertuples()
    assert row.due_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC).isoformat()


def test_an_order_left_at_the_release_stage_is_not_breached_within_four_hours(
    ports: Ports,
) -> None:
    _edit_while_acs_takes(ports, "SO0050001")
    _release(ports)
    ports.sandbox.advance(timedelta(hours=3, minutes=45))

    result = _check(ports)

    assert result.frame.empty


def test_a_held_order_has_no_release_stage_breach(ports: Ports) -> None:
    _release(ports, not_ready={_first_stock_code(ports, "SO0050001")})
    ports.sandbox.advance(timedelta(hours=5))

    result = _check(ports)

    assert "SO0050001" not in set(result.frame["order_number"])
    assert ports.open_exceptions("order_held") != []


# --- the back-order wait ----------------------------------------------------------------------


def _into_awaiting_stock(p: Ports, code: str) -> None:
    for invoice_id in _khaos_order(p, code)["invoice_ids"]:
        p.sandbox.khaos.set_stage(invoice_id, AWAITING_STOCK)


def test_a_back_order_breaches_after_five_days_in_awaiting_stock(ports: Ports) -> None:
    _release(ports)
    _into_awaiting_stock(ports, "SO0050002")
    _release(ports)  # sees it in Awaiting Stock: its clock starts now, Monday 07:00
    ports.sandbox.advance(timedelta(days=5, hours=1))

    result = _check(ports)

    assert "back_order" in _kinds_by_order(result)["SO0050002"]
    back = result.frame[result.frame["kind"] == "back_order"]
    assert list(back["order_number"]) == ["SO0050002"]
    assert list(back["due_at"]) == [datetime(2026, 3, 7, 7, 0, tzinfo=UTC).isoformat()]


def test_a_back_order_is_not_breached_within_five_days(ports: Ports) -> None:
    _release(ports)
    _into_awaiting_stock(ports, "SO0050002")
    _release(ports)
    ports.sandbox.advance(timedelta(days=4, hours=23))

    result = _check(ports)

    assert "back_order" not in set(result.frame["kind"])
