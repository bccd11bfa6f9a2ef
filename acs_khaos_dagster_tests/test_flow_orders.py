"""The order flows without Dagster: release, cancellation, despatch postings and the SLA
clock, called as plain functions over the simulators (real HTTP) and a SQLite store.

Oracles are what the simulators hold: the orders ACS has, Khaos's invoices and stages,
the despatches Khaos took. The tiny brand has ten orders waiting at stage 9; ACS ships
SO0050003 in three shipments and every other order in one (twelve shipments), the first
three hours after an order arrives; picking starts (locking the order) after one hour.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from acs_khaos_dagster.domain.order_release import ReadySku, SkuReadiness
from acs_khaos_dagster.flows.despatch_postings import (
    FeedNews,
    post_shipments,
    read_despatch_feed,
    unrecorded_despatches,
)
from acs_khaos_dagster.flows.order_release import (
    ReleaseResult,
    release_cron,
    release_orders,
    released_orders,
)
from acs_khaos_dagster.flows.order_sla import check_order_sla
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.tables.orders import OrderRelease, ShipmentPosting
from acs_khaos_dagster_tests.flow_ports import Ports, ports
from acs_khaos_dagster_tests.store.test_open_orders import loaded

__all__ = ["ports"]


def _ready(p: Ports, not_ready: set[str] = frozenset()) -> dict[int, ReadySku]:
    """Every Khaos stock item ready under its own code, but those named (the products
    flow's answer, taken from the simulators)."""
    return {
        i["stock_id"]: ReadySku(
            stock_id=i["stock_id"],
            sku=i["stock_code"],
            state=SkuReadiness.NOT_READY if i["stock_code"] in not_ready else SkuReadiness.READY,
            detail="pending at ACS" if i["stock_code"] in not_ready else "",
        )
        for i in p.khaos_truth()["stock_items"]
    }


def _release(p: Ports, not_ready: set[str] = frozenset()) -> ReleaseResult:
    released = released_orders(p.settings, p.khaos)
    return release_orders(
        p.store, p.acs, p.khaos, p.settings, p.now(), released, _ready(p, not_ready)
    )


def _khaos_order(p: Ports, code: str) -> dict:
    return next(o for o in p.khaos_truth()["orders"] if o["order_code"] == code)


def _acs_orders(p: Ports) -> dict[str, dict]:
    return {o["order_number"]: o for o in p.acs_truth()["orders"]}


def _despatch_calls(p: Ports) -> Counter:
    return Counter(c["external_ref"] for c in p.khaos_truth()["despatch_calls"])


def _post(p: Ports):
    read_despatch_feed(p.store, p.acs, p.settings)
    return post_shipments(p.store, p.khaos, p.settings)


# --- release --------------------------------------------------------------------------------


def test_released_orders_lists_each_line_of_the_orders_waiting_at_the_release_stage(
    ports: Ports,
) -> None:
    frame = released_orders(ports.settings, ports.khaos)

    waiting = [
        o
        for o in ports.khaos_truth()["orders"]
        if any(
            i["stage"] == 9
            for i in ports.khaos_truth()["invoices"]
            if i["order_id"] == o["order_id"]
        )
    ]
    assert frame["order_id"].nunique() == len(waiting) == 10
    assert len(frame) == sum(len(o["lines"]) for o in waiting)


def test_ready_orders_are_put_at_acs_once_and_acknowledged_in_khaos(ports: Ports) -> None:
    result = _release(ports)

    assert set(result.frame["action"]) == {"sent"} and result.acknowledged == 10
    assert len(_acs_orders(ports)) == 10
    assert {i["stage"] for i in ports.khaos_truth()["invoices"]} == {12}
    again = _release(ports)
    assert again.frame.empty
    assert {o["puts"] for o in _acs_orders(ports).values()} == {1}


def test_an_order_with_a_sku_not_ready_is_held_not_sent(ports: Ports) -> None:
    code = _khaos_order(ports, "SO0050001")["lines"][0]["stock_code"]

    result = _release(ports, not_ready={code})

    rows = result.frame.set_index("order_code")
    assert rows.loc["SO0050001", "action"] == "held" and result.open_holds >= 1
    assert "SO0050001" not in _acs_orders(ports)
    held = ports.open_exceptions("order_held")
    assert any("SO0050001" in h.row.message and code in h.row.message for h in held)


def test_a_held_order_is_sent_and_its_hold_closed_once_its_sku_is_ready(ports: Ports) -> None:
    code = _khaos_order(ports, "SO0050001")["lines"][0]["stock_code"]
    _release(ports, not_ready={code})

    result = _release(ports)

    assert result.frame.set_index("order_code").loc["SO0050001", "action"] == "sent"
    assert ports.open_exceptions("order_held") == []
    assert _acs_orders(ports)["SO0050001"]["puts"] == 1


def test_an_order_cancelled_in_khaos_before_picking_is_cancelled_at_acs(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.khaos.cancel_order(_khaos_order(ports, "SO0050004")["order_id"])

    result = _release(ports)

    assert result.frame.set_index("order_code").loc["SO0050004", "action"] == "cancelled"
    assert _acs_orders(ports)["SO0050004"]["status"] == "CANCELLED"


def test_an_order_cancelled_after_picking_started_raises_order_locked(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=1, minutes=30))
    ports.sandbox.khaos.cancel_order(_khaos_order(ports, "SO0050004")["order_id"])

    result = _release(ports)

    assert result.frame.set_index("order_code").loc["SO0050004", "action"] == "cancel_locked"
    assert result.order_locked == 1
    [locked] = ports.open_exceptions("order_locked")
    assert "SO0050004" in locked.row.message
    assert _acs_orders(ports)["SO0050004"]["status"] != "CANCELLED"


# --- despatch postings ----------------------------------------------------------------------


def test_the_feed_has_nothing_unrecorded_before_acs_ships(ports: Ports) -> None:
    _release(ports)

    assert not unrecorded_despatches(ports.store, ports.acs, 500).anything


def test_shipped_events_are_unrecorded_until_read_then_stranded_until_posted(
    ports: Ports,
) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=4))

    before = unrecorded_despatches(ports.store, ports.acs, 500)
    read_despatch_feed(ports.store, ports.acs, ports.settings)
    recorded = unrecorded_despatches(ports.store, ports.acs, 500)
    post_shipments(ports.store, ports.khaos, ports.settings)
    posted = unrecorded_despatches(ports.store, ports.acs, 500)

    assert before.unseen and not before.stranded
    assert not recorded.unseen and sorted(recorded.stranded) == sorted(before.unseen)
    assert not posted.anything


def test_each_shipment_is_posted_to_khaos_once_however_often_the_flow_runs(
    ports: Ports,
) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=12))

    first = _post(ports)
    second = _post(ports)

    assert len(first.frame) == 12 and set(first.frame["effect_state"]) == {"done"}
    assert second.frame.empty
    calls = _despatch_calls(ports)
    assert len(calls) == 12 and set(calls.values()) == {1}


def test_a_three_shipment_order_is_shipped_after_its_third_shipment(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=12))

    result = _post(ports)

    assert result.completion["SO0050003"] == "shipped"
    ours = result.frame[result.frame["order_number"] == "SO0050003"]
    assert len(ours) == 3


def test_a_shipment_of_an_unmapped_courier_is_a_problem_and_not_posted(
    ports: Ports,
) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=12))
    conf = ports.settings.model_copy(
        update={"carriers": ports.settings.carriers.model_copy(update={"routes": {"RM/*": "RM"}})}
    )

    read_despatch_feed(ports.store, ports.acs, conf)
    result = post_shipments(ports.store, ports.khaos, conf)

    assert set(result.frame["state"]) == {"problem"}
    assert result.open_counts["courier_unmapped"] == 12
    assert _despatch_calls(ports) == Counter()


def test_a_release_and_sla_cycle_reads_no_order_finished_at_acs(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(hours=12))
    _post(ports)  # every unit of the ten orders posted: all finished
    finished = OrderBook(ports.store.db).releases()
    assert len(finished) == 10 and all(r.finished_at for r in finished.values())

    with loaded(OrderRelease) as releases, loaded(ShipmentPosting) as postings:
        result = _release(ports)
        sla = check_order_sla(ports.store, ports.settings, ports.now())

    assert result.frame.empty and sla.frame.empty
    assert releases == [] and postings == []


# --- the SLA clock --------------------------------------------------------------------------


def test_acknowledged_orders_not_despatched_past_the_turnaround_breach(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(days=2, hours=6))  # Wednesday 13:00: overdue

    result = check_order_sla(ports.store, ports.settings, ports.now())

    assert set(result.frame["kind"]) == {"turnaround"} and len(result.frame) == 10
    assert result.open_breaches == 10


def test_a_breach_closes_once_the_order_is_despatched(ports: Ports) -> None:
    _release(ports)
    ports.sandbox.advance(timedelta(days=2, hours=6))
    check_order_sla(ports.store, ports.settings, ports.now())
    _post(ports)

    result = check_order_sla(ports.store, ports.settings, ports.now())

    assert result.frame.empty and result.open_breaches == 0
    assert ports.open_exceptions("order_sla_breach") == []


def test_orders_release_every_whole_minute_of_the_interval_at_least_every_minute() -> None:
    assert release_cron(300) == "*/5 * * * *"
    assert release_cron(30) == "*/1 * * * *"


def test_an_interval_of_an_hour_or_more_releases_hourly() -> None:
    assert release_cron(3600) == "0 * * * *"
    assert release_cron(7200) == "0 * * * *"


def test_a_feed_with_nothing_beyond_the_store_says_why_no_despatch_run_is_needed() -> None:
    caught_up = FeedNews("c-7", unseen=[], has_more=False, stranded=[])
    assert caught_up.nothing_new() == "no event beyond those recorded (stored cursor c-7)"
    assert FeedNews(None, [], False, []).nothing_new() == (
        "no event beyond those recorded (stored cursor (start))"
    )


def test_stranded_events_alone_are_work_for_a_despatch_run() -> None:
    assert FeedNews("c-7", unseen=[], has_more=False, stranded=["E1"]).nothing_new() is None


def test_a_despatch_run_after_a_failed_one_for_the_same_work_gets_a_key_of_its_own() -> None:
    news = FeedNews("c-7", unseen=["E1"], has_more=False, stranded=[])
    keys = [news.run_key(earlier) for earlier in (0, 1, 2)]
    assert keys == [
        f"despatch:{news.tag}",
        f"despatch:{news.tag}:retry1",
        f"despatch:{news.tag}:retry2",
    ]
