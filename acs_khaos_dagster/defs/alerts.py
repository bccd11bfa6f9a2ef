"""Dagster side of alerting: failed runs and blocking checks, and exception open/close alerts.

- ``integration_run_failure_alerts`` (a run-failure sensor) tells the integration team
  about every failed run: job, run id, failing steps and their error class, and the
  blocking asset checks that failed (a failed blocking check fails its step, and so the
  run, in Dagster 1.13). Error messages are left out: they can carry customer data.
- ``exception_alerts`` (every ~60 s) sends one alert per exception opening and one per
  closing, from the store's exception queue.

Both record what they send in the store, so a re-evaluated tick does not repeat an alert.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from acs_khaos_dagster.alerts.exception_alerts import deliver_exception_alerts
from acs_khaos_dagster.alerts.notifier import Alert, AlertSettings, Notifier, load_alert_settings
from acs_khaos_dagster.alerts.run_failures import (
    error_class,
    failed_blocking_checks,
    run_failure_alert,
    send_run_failure_alert,
)
from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource


class NotifierResource(dg.ConfigurableResource):
    """Alert channels per owner team, from ``ACS_KHAOS_ALERTS__...`` (and the YAML file).

    Webhook URLs and the SMTP password come from the environment only, never from run
    config, so they never appear in Dagster's UI or event log. No config field either: a
    launchpad user must not be able to point alerts at a settings file of their choosing.
    """

    def load(self) -> AlertSettings:
        return load_alert_settings()

    @contextmanager
    def notifier(self) -> Iterator[Notifier]:
        with Notifier(self.load()) as notifier:
            yield notifier


# -- failed runs and blocking checks -----------------------------------------------------


def describe_failed_run(context: dg.RunFailureSensorContext, ui_url: str | None) -> Alert:
    run = context.dagster_run
    failed_steps = [
        (event.step_key or "?", error_class(getattr(event.event_specific_data, "error", None)))
        for event in context.get_step_failure_events()
    ]
    records = context.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=1000
    ).records
    events = [record.event_log_entry.dagster_event for record in records]
    evaluations = [event.event_specific_data for event in events if event is not None]
    run_error = getattr(context.failure_event.event_specific_data, "error", None)
    return run_failure_alert(
        job_name=run.job_name,
        run_id=run.run_id,
        failed_steps=failed_steps,
        failed_checks=failed_blocking_checks(evaluations),
        run_error_class=error_class(run_error),
        dagster_ui_url=ui_url,
    )


@dg.run_failure_sensor(
    name="integration_run_failure_alerts",
    description="Tells the integration team about every failed run and failed blocking check.",
    default_status=SENSOR_STATUS,
)
def integration_run_failure_alerts(
    context: dg.RunFailureSensorContext,
    notifier: NotifierResource,
    store: StoreResource,
    settings: SettingsResource,
) -> None:
    run_id = context.dagster_run.run_id
    with notifier.notifier() as sender:
        alert = describe_failed_run(context, sender.settings.dagster_ui_url)
        summary = send_run_failure_alert(
            sender, alert, run_id, store.connect, lambda: integration_now(settings.load())
        )
    context.log.info(f"run-failure alert for {run_id}: {summary}")


# -- exception open / close --------------------------------------------------------------


@dg.sensor(
    name="exception_alerts",
    description="One alert per exception opening and one per closing, to the owner team.",
    minimum_interval_seconds=60,
    default_status=SENSOR_STATUS,
)
def exception_alerts(
    context: dg.SensorEvaluationContext,
    notifier: NotifierResource,
    store: StoreResource,
    settings: SettingsResource,
) -> dg.SkipReason:
    with notifier.notifier() as sender, store.connect() as opened:
        summary = deliver_exception_alerts(opened, sender, integration_now(settings.load()))
    context.log.info(f"exception alerts: {summary}")
    # This sensor launches no runs; the reason is what the UI shows for the tick.
    return dg.SkipReason(f"exception alerts: {summary}")


defs = dg.Definitions(
    sensors=[integration_run_failure_alerts, exception_alerts],
    resources={"notifier": NotifierResource()},
)
