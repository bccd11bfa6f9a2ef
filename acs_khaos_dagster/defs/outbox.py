"""The outbox in Dagster: due effects are sent by their own runs, not by the next event.

- ``acs_outbox`` / ``khaos_outbox``: one dispatch pass over the target's due effects, in
  the ``acs_api`` / ``khaos_api`` pool; metadata says how late the oldest due effect was,
  and a warning check flags it past ``outbox.due_alert_after_s``.
- ``outbox_due_sensor``: every ``outbox.due_sensor_interval_s``, starts a dispatch run of
  the targets with due effects (unless one is already on its way), and keeps the
  ``outbox_backlog`` exception open while the oldest due effect waits too long.
"""

from __future__ import annotations

import dagster as dg

from acs_khaos_dagster.config import OutboxSettings, setting_at_load
from acs_khaos_dagster.dagster_kit.brand import brand_key
from acs_khaos_dagster.dagster_kit.results import check_result, metadata
from acs_khaos_dagster.dagster_kit.runs import JobRuns
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.flows.outbox import DispatchPass, dispatch_due, due_targets

OUTBOX_JOB = "outbox_dispatch_job"
CHECK = "oldest_due_effect_within_limit"


def _result(outcome: DispatchPass, limit_s: float) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata=metadata(outcome.figures()),
        check_results=[check_result(outcome.verdict(limit_s), check_name=CHECK)],
    )


def _check_spec(name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            CHECK,
            asset=name,
            description="Due effects are taken within outbox.due_alert_after_s of falling due.",
        )
    ]


@dg.asset(
    group_name="outbox",
    kinds={"acs"},
    pool="acs_api",
    owners=["team:integration"],
    check_specs=_check_spec("acs_outbox"),
    description="Sends every due effect to ACS (order releases, cancellations, SKU pushes).",
)
def acs_outbox(
    settings: SettingsResource, acs: AcsApiResource, store: StoreResource
) -> dg.MaterializeResult:
    conf = settings.load()
    with store.connect() as db, acs.client() as client:
        outcome = dispatch_due(db, conf, "acs", acs=client)
    return _result(outcome, conf.outbox.due_alert_after_s)


@dg.asset(
    group_name="outbox",
    kinds={"khaos"},
    pool="khaos_api",
    owners=["team:integration"],
    check_specs=_check_spec("khaos_outbox"),
    description="Sends every due effect to Khaos Control (despatch postings, stock "
    "adjustments, customer returns, invoice moves).",
)
def khaos_outbox(
    settings: SettingsResource, khaos: KhaosApiResource, store: StoreResource
) -> dg.MaterializeResult:
    conf = settings.load()
    with store.connect() as db, khaos.client() as client:
        outcome = dispatch_due(db, conf, "khaos", khaos=client)
    return _result(outcome, conf.outbox.due_alert_after_s)


outbox_dispatch_job = dg.define_asset_job(
    OUTBOX_JOB,
    selection=dg.AssetSelection.assets(acs_outbox, khaos_outbox),
    description="Send the outbox's due effects (retries, read-backs, approved and requeued "
    "effects) without waiting for the flow that made them to run again.",
)


@dg.sensor(
    job=outbox_dispatch_job,
    minimum_interval_seconds=setting_at_load(
        lambda s: s.outbox.due_sensor_interval_s, OutboxSettings().due_sensor_interval_s
    ),
    default_status=SENSOR_STATUS,
    description="Starts a dispatch run whenever outbox effects are due (a retry, a read-back "
    "after an ambiguous failure, an approval), for the targets that have some.",
)
def outbox_due_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> dg.RunRequest | dg.SkipReason:
    with store.connect() as db:
        due = due_targets(db, settings.load())
    if not due:
        return dg.SkipReason("no effect is due")
    if JobRuns(context.instance, OUTBOX_JOB).one_in_progress():
        return dg.SkipReason("a dispatch run is already on its way")
    return dg.RunRequest(
        asset_selection=[brand_key(f"{target}_outbox") for target in due],
        tags={"outbox/due": ",".join(f"{t}={n}" for t, n in due.items())},
    )


defs = dg.Definitions(
    assets=[acs_outbox, khaos_outbox],
    jobs=[outbox_dispatch_job],
    sensors=[outbox_due_sensor],
)
