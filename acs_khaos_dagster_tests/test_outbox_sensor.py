"""outbox_due_sensor: a retry never waits for an unrelated event.

The despatch posting times out after Khaos applied it (an ambiguous failure) and nothing
more ever arrives on ACS's feed: without the sensor the posting would wait for the next
despatch (over a weekend). With production timings on the sandbox's simulated clock —
read-back after 30 s, a sensor tick every 30 s — it is confirmed within a minute.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from dagster import RunRequest, SkipReason, build_sensor_context

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.outbox import outbox_due_sensor
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")


def _tick(integration: IntegrationHarness):
    with build_sensor_context(
        instance=integration.instance, resources=default_resources()
    ) as context:
        return outbox_due_sensor(context)


def _run(integration: IntegrationHarness, request: RunRequest):
    from acs_khaos_dagster.definitions import defs

    job = defs.resolve_job_def("outbox_dispatch_job")
    return job.execute_in_process(
        instance=integration.instance, asset_selection=request.asset_selection
    )


def test_an_ambiguous_despatch_posting_is_confirmed_by_the_sensor_without_another_event(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration.run(*PRODUCTS)
    integration.run(*RELEASE)
    integration.sandbox.advance(timedelta(hours=12))
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "1")  # a timeout costs 1 s, not 30
    settings = load_settings()
    interval = timedelta(seconds=settings.outbox.due_sensor_interval_s)
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportDespatch", kind=FaultKind.TIMEOUT_AFTER, count=1, latency_s=2)
    )
    integration.run(*DESPATCH)
    with integration.store() as store:
        [stuck] = store.outbox.find(state="pending", kind=EffectKind.KHAOS_DESPATCH)
        failed_at = store.outbox.attempts(stuck.id)[0].at
    assert stuck.needs_read_back
    assert isinstance(_tick(integration), SkipReason)  # not due before the read-back delay

    runs = 0
    while True:
        integration.sandbox.advance(interval)
        tick = _tick(integration)
        if isinstance(tick, RunRequest):
            result = _run(integration, tick)
            runs += 1
            assert result.success
        with integration.store() as store:
            effect = store.outbox.get(stuck.id)
        if effect.state == "done" or runs > 3:
            break

    assert effect.state == "done"
    assert (
        effect.updated_at - failed_at
        <= timedelta(seconds=settings.outbox.read_back_after_s) + interval
    )
    with integration.store() as store:
        outcomes = [a.outcome for a in store.outbox.attempts(stuck.id)]
    assert outcomes == ["ambiguous_error", "confirmed_by_read_back"]
    calls = Counter(c["external_ref"] for c in integration.sandbox.khaos.truth()["despatch_calls"])
    assert calls[stuck.business_key] == 1
    assert isinstance(_tick(integration), SkipReason)  # nothing left due


def test_the_dispatch_run_reports_how_late_the_oldest_due_effect_was(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration.run(*PRODUCTS)
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="MoveInvoices", kind=FaultKind.ERROR_5XX, count=1)
    )
    integration.run(*RELEASE)  # the acknowledgement meets a busy Khaos once
    integration.sandbox.advance(timedelta(hours=1))

    [request] = [_tick(integration)]
    result = _run(integration, request)

    [materialization] = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.step_materialization_data.materialization.asset_key.to_user_string() == "khaos_outbox"
    ]
    assert materialization.metadata["oldest_due_age_s"].value >= 3000  # due an hour ago
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "oldest_due_effect_within_limit"
    assert check.passed is False  # over the 30-minute limit: the owner hears of it
    with integration.store() as store:
        [backlog] = store.exceptions.list(type="outbox_backlog")
    assert backlog.row.owner == "integration"
