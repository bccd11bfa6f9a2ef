"""Orders and shipments through Dagster against the sandbox (tiny scenario, seed 7).

The tiny brand has ten orders waiting at stage 9 on its selling site; ACS ships
SO0050003 in three shipments and every other order in one. ACS's timetable after an
order arrives: allocated +30 min, picking +1 h (locked from then on), packed +2 h,
first shipment +3 h, further shipments 4 h apart. The scenario starts on Monday
2 March 2026 at 07:00 UTC.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
)

from acs_khaos_dagster.defs.orders import acs_despatch_sensor
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.scenario.manifest import PlannedShipmentLine
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")
THREE_SHIPMENTS = "SO0050003"


def _release(integration: IntegrationHarness):
    return integration.run(*RELEASE).output_for_node("acs_order_release").set_index("order_code")


def _products_and_release(integration: IntegrationHarness):
    integration.run(*PRODUCTS)
    return _release(integration)


def _khaos_orders(integration: IntegrationHarness) -> dict[str, dict]:
    return {o["order_code"]: o for o in integration.sandbox.khaos.truth()["orders"]}


def _invoices_of(integration: IntegrationHarness, order_code: str) -> list[dict]:
    truth = integration.sandbox.khaos.truth()
    order_id = _khaos_orders(integration)[order_code]["order_id"]
    return [i for i in truth["invoices"] if i["order_id"] == order_id]


def _despatch_calls(integration: IntegrationHarness) -> Counter:
    return Counter(c["external_ref"] for c in integration.sandbox.khaos.truth()["despatch_calls"])


def _acs_order(integration: IntegrationHarness, order_code: str) -> dict:
    return next(
        o for o in integration.sandbox.acs.truth()["orders"] if o["order_number"] == order_code
    )


def _open(integration: IntegrationHarness, type_: str) -> list:
    with integration.store() as store:
        return store.exceptions.list(type=type_)


def _order_lines(integration: IntegrationHarness, order_code: str) -> list[dict]:
    return _khaos_orders(integration)[order_code]["lines"]


# --- release --------------------------------------------------------------------------------


def test_ready_orders_are_sent_to_acs_and_acknowledged_in_khaos(
    integration: IntegrationHarness,
) -> None:
    released = _products_and_release(integration)

    assert set(released["action"]) == {"sent"}
    assert released["acknowledged"].all()
    assert len(integration.sandbox.acs.truth()["orders"]) == len(released) == 10
    stages = {i["stage"] for i in integration.sandbox.khaos.truth()["invoices"]}
    assert stages == {12}
    again = _release(integration)
    assert again.empty  # acknowledged: never released twice
    assert all(o["puts"] == 1 for o in integration.sandbox.acs.truth()["orders"])


def test_an_order_with_a_sku_not_ready_is_held_and_released_once_the_sku_is_active(
    integration: IntegrationHarness,
) -> None:
    line = _order_lines(integration, "SO0050001")[0]
    integration.sandbox.acs.set_product_status(
        line["stock_code"], "pending", integration.sandbox.clock.now() + timedelta(hours=2)
    )

    held = _products_and_release(integration)

    assert held.loc["SO0050001", "action"] == "held"
    [problem] = [p for p in _open(integration, "order_held") if "SO0050001" in p.row.message]
    assert problem.row.owner == "ecommerce"
    assert "SO0050001" in problem.row.message and line["stock_code"] in problem.row.message
    assert "SO0050001" not in {o["order_number"] for o in integration.sandbox.acs.truth()["orders"]}

    integration.sandbox.advance(timedelta(hours=3))
    released = _products_and_release(integration)

    assert released.loc["SO0050001", "action"] == "sent"
    assert _open(integration, "order_held") == []
    assert _acs_order(integration, "SO0050001")["puts"] == 1


def test_acs_refusing_a_sku_holds_the_order_instead_of_failing_it(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    line = _order_lines(integration, "SO0050002")[0]
    integration.sandbox.acs.set_product_status(line["stock_code"], "inactive")

    released = _release(integration)

    assert released.loc["SO0050002", "action"] == "held"
    [problem] = [p for p in _open(integration, "order_held") if "SO0050002" in p.row.message]
    assert "inactive" in problem.row.message and problem.row.owner == "ecommerce"
    assert _open(integration, "effect_failed") == []
    integration.sandbox.acs.set_product_status(line["stock_code"], "active")

    again = _release(integration)

    assert again.loc["SO0050002", "action"] == "sent"
    assert _open(integration, "order_held") == []


# --- despatch back --------------------------------------------------------------------------


@pytest.mark.variants
def test_a_three_shipment_order_ends_complete_with_three_invoices_in_khaos(
    integration: IntegrationHarness,
) -> None:
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=12))

    result = integration.run(*DESPATCH)

    postings = result.output_for_node("khaos_shipment_postings").set_index("shipment_id")
    ours = postings[postings["order_number"] == THREE_SHIPMENTS]
    assert len(ours) == 3 and set(ours["effect_state"]) == {"done"}
    assert set(ours["order_completion"]) == {"shipped"}
    shipped = [i for i in _invoices_of(integration, THREE_SHIPMENTS) if i["external_ref"]]
    assert sorted(i["external_ref"] for i in shipped) == [
        f"{THREE_SHIPMENTS}-{n}" for n in (1, 2, 3)
    ]
    assert len({i["invoice_id"] for i in shipped}) == 3
    assert all(i["stage"] != 18 for i in _invoices_of(integration, THREE_SHIPMENTS))
    assert all(n == 1 for n in _despatch_calls(integration).values())
    assert len(_despatch_calls(integration)) == 12


def test_duplicate_and_reordered_despatch_events_post_each_shipment_once(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=12))
    monkeypatch.setenv("ACS_KHAOS_ORDERS__DESPATCH_PAGE_SIZE", "5")  # three pages
    faults = integration.sandbox.acs_faults
    faults.add(FaultRule(operation="list_despatches", kind=FaultKind.DUPLICATE, count=2))
    # The last page holds SO0050003's second and third shipments: the third comes first.
    faults.add(FaultRule(operation="list_despatches", kind=FaultKind.REORDER, count=1))

    first = integration.run(*DESPATCH)
    second = integration.run(*DESPATCH)

    meta = integration.metadata(first, "acs_shipments")
    assert meta["events_repeated"] == 2 and meta["events_new"] == 12
    kinds = [f["kind"] for f in integration.sandbox.acs.truth()["feed"]["faults"]]
    assert kinds == ["duplicate", "duplicate", "reorder"]
    assert second.output_for_node("khaos_shipment_postings").empty
    calls = _despatch_calls(integration)
    assert len(calls) == 12 and set(calls.values()) == {1}


def test_a_line_closed_short_is_an_exception_for_operations_with_the_action(
    integration: IntegrationHarness,
) -> None:
    order = "SO0050005"
    short_item = 700009  # ordered 2: ACS ships one and closes one short
    plans = integration.sandbox.acs.state.plans
    plans[order] = plans[order].model_copy(
        update={
            "closed_short": [PlannedShipmentLine(order_item_id=short_item, quantity=1)],
            "short_reason": "DAMAGED_AT_PICK",
        }
    )
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=12))

    result = integration.run(*DESPATCH)

    postings = result.output_for_node("khaos_shipment_postings").set_index("shipment_id")
    assert postings.loc[f"{order}-1", "closed_short_units"] == 1
    assert postings.loc[f"{order}-1", "order_completion"] == "shipped"
    [problem] = _open(integration, "despatch_closed_short")
    assert problem.row.owner == "operations"
    assert order in problem.row.message and "DAMAGED_AT_PICK" in problem.row.message
    assert "Awaiting Stock" in problem.row.details["action"]
    back = [i for i in _invoices_of(integration, order) if i["stage"] == 18]
    assert back and back[0]["lines"] == [{"order_item_id": short_item, "quantity": 1}]


def test_a_shipment_with_an_unmapped_courier_is_an_exception_not_a_guess(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=12))
    monkeypatch.setenv("ACS_KHAOS_CARRIERS__ROUTES", '{"RM/*": "RM"}')

    result = integration.run(*DESPATCH)

    postings = result.output_for_node("khaos_shipment_postings")
    assert set(postings["state"]) == {"problem"}
    assert _despatch_calls(integration) == Counter()
    problems = _open(integration, "courier_unmapped")
    assert len(problems) == 12 and "DPD" in problems[0].row.message
    monkeypatch.delenv("ACS_KHAOS_CARRIERS__ROUTES")

    integration.run(*DESPATCH)

    assert len(_despatch_calls(integration)) == 12
    assert _open(integration, "courier_unmapped") == []


@pytest.mark.parametrize("fault", [FaultKind.TIMEOUT_BEFORE, FaultKind.TIMEOUT_AFTER])
def test_a_timeout_around_import_despatch_still_posts_exactly_once(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch, fault: FaultKind
) -> None:
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=12))
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "1")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S", "0")
    # Neither timeout lands after the client gave up (one applies before its stall, the
    # other never applies), so the read-back need not wait.
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__READ_BACK_AFTER_S", "0")
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportDespatch", kind=fault, count=1, latency_s=2.5)
    )

    result = integration.run(*DESPATCH)

    postings = result.output_for_node("khaos_shipment_postings")
    assert set(postings["effect_state"]) == {"done"}
    calls = _despatch_calls(integration)
    assert len(calls) == 12 and set(calls.values()) == {1}
    assert integration.sandbox.khaos_faults.stats()["injected"]


# --- cancellations --------------------------------------------------------------------------


def test_an_order_cancelled_in_khaos_before_picking_is_cancelled_at_acs(
    integration: IntegrationHarness,
) -> None:
    _products_and_release(integration)
    order_id = _khaos_orders(integration)["SO0050004"]["order_id"]
    integration.sandbox.khaos.cancel_order(order_id)

    released = _release(integration)

    assert released.loc["SO0050004", "action"] == "cancelled"
    assert _acs_order(integration, "SO0050004")["status"] == "CANCELLED"
    assert _open(integration, "order_locked") == []


def test_an_order_cancelled_after_picking_started_is_an_exception_for_operations(
    integration: IntegrationHarness,
) -> None:
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=1, minutes=30))
    order_id = _khaos_orders(integration)["SO0050004"]["order_id"]
    integration.sandbox.khaos.cancel_order(order_id)

    released = _release(integration)

    assert released.loc["SO0050004", "action"] == "cancel_locked"
    [problem] = _open(integration, "order_locked")
    assert problem.row.owner == "operations" and "SO0050004" in problem.row.message
    assert _open(integration, "effect_failed") == []
    assert _release(integration).empty  # not sent again


# --- the sensor -----------------------------------------------------------------------------


def _despatch_sensor_tick(instance: DagsterInstance):
    with build_sensor_context(instance=instance, resources=default_resources()) as context:
        return acs_despatch_sensor(context)


def test_the_despatch_sensor_starts_a_run_only_when_the_feed_has_new_events(
    integration: IntegrationHarness,
) -> None:
    from acs_khaos_dagster.definitions import defs

    instance: DagsterInstance = integration.instance
    _products_and_release(integration)

    def tick():
        return _despatch_sensor_tick(instance)

    assert isinstance(tick(), SkipReason)  # nothing despatched yet
    integration.sandbox.advance(timedelta(hours=4))
    first = tick()
    [request] = first.run_requests
    assert isinstance(request, RunRequest)
    job = defs.resolve_job_def("despatch_posting_job")
    job.execute_in_process(instance=instance, tags={**request.tags})

    assert isinstance(tick(), SkipReason)  # the store's cursor moved: nothing new
    assert isinstance(tick(), SkipReason)
    integration.sandbox.advance(timedelta(hours=4))
    [later] = tick().run_requests
    assert later.run_key != request.run_key


def test_the_despatch_sensor_is_due_on_every_loop_of_the_sensor_daemon() -> None:
    # The daemon looks at sensors once a loop and passes over one whose interval has not
    # quite elapsed; an interval equal to the loop left the feed unread for two loops (10 s
    # of despatch latency, BENCHMARKS.md §9).
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    assert acs_despatch_sensor.minimum_interval_seconds < MIN_INTERVAL_LOOP_TIME


def test_the_despatch_sensor_waits_while_a_despatch_run_has_not_started(
    integration: IntegrationHarness,
) -> None:
    # The queued run reads the feed to its end when it starts; a second run for events
    # that arrived meanwhile would only cost a run worker's start on the one-run instance.
    from acs_khaos_dagster.definitions import defs

    instance: DagsterInstance = integration.instance
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=4))

    def tick():
        return _despatch_sensor_tick(instance)

    [request] = tick().run_requests
    job = defs.resolve_job_def("despatch_posting_job")
    queued = instance.create_run_for_job(
        job, tags=request.tags, status=DagsterRunStatus.NOT_STARTED
    )
    integration.sandbox.advance(timedelta(hours=4))  # more events arrive meanwhile
    skipped = tick()
    assert isinstance(skipped, SkipReason) and queued.run_id in (skipped.skip_message or "")

    instance.report_run_canceled(queued)  # it never ran: the events need another run
    assert tick().run_requests


def test_events_a_dead_run_recorded_but_never_posted_start_another_run(
    integration: IntegrationHarness,
) -> None:
    # Found by the soak: a posting run killed after recording the feed's events (the cursor
    # moved) and before posting them; nothing on the feed would ever bring them back.
    instance: DagsterInstance = integration.instance
    resources = default_resources()
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(hours=4))
    integration.run("acs_shipments")  # recorded; khaos_shipment_postings never ran

    with build_sensor_context(instance=instance, resources=resources) as context:
        [request] = acs_despatch_sensor(context).run_requests
    assert isinstance(request, RunRequest)

    integration.run(*DESPATCH)
    with build_sensor_context(instance=instance, resources=resources) as context:
        assert isinstance(acs_despatch_sensor(context), SkipReason)
    assert integration.sandbox.khaos.truth()["despatch_calls"]  # posted once caught up


# --- stuck orders ---------------------------------------------------------------------------


def test_orders_acknowledged_and_not_despatched_past_the_turnaround_breach_once(
    integration: IntegrationHarness,
) -> None:
    # Acknowledged Monday 07:00 UTC, before the 14:00 cut-off: standard service, due out by
    # close (18:00) that Monday.
    _products_and_release(integration)
    integration.sandbox.advance(timedelta(days=2, hours=6))  # Wednesday 13:00: overdue

    first = integration.run("order_sla_breaches").output_for_node("order_sla_breaches")
    integration.run("order_sla_breaches")

    assert set(first["kind"]) == {"turnaround"} and len(first) == 10
    problems = _open(integration, "order_sla_breach")
    assert len(problems) == 10 and {p.row.owner for p in problems} == {"operations"}
    assert {p.row.count for p in problems} == {2}  # the same breach, not a new alert

    integration.run(*DESPATCH)  # ACS shipped on Monday; the postings catch up
    after = integration.run("order_sla_breaches").output_for_node("order_sla_breaches")

    assert after.empty
    assert _open(integration, "order_sla_breach") == []
