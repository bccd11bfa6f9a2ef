"""The outbox in Dagster: due effects are sent by their own runs, not by the next event.

- ``acs_outbox`` / ``khaos_outbox``: one dispatch pass over the target's due effects, in
  the ``acs_api`` / ``khaos_api`` pool; metadata says how late the oldest due effect was,
  and a warning check flags it past ``outbox.due_alert_after_s``.
- ``outbox_due_sensor``: every ``outbox.due_sensor_interval_s``, starts a dispatch run of
  the targets with due effects (unless one is already on its way), and keeps the
  ``outbox_backlog`` exception open while the oldest due effect waits too long.
"""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetSelection,
    DagsterRunStatus,
    Definitions,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.brand import brand_key, brand_tags
from acs_khaos_dagster.defs.common import dispatch_metadata
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.flows.outbox import (
    TARGETS,
    DispatchPass,
    dispatch_due,
    due_effects,
    record_backlog,
)

OUTBOX_JOB = "outbox_dispatch_job"
CHECK = "oldest_due_effect_within_limit"
_ON_ITS_WAY = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def _result(outcome: DispatchPass, limit_s: float) -> MaterializeResult:
    late = outcome.oldest_due_age_s
    return MaterializeResult(
        metadata={
            "due_before": outcome.due_before,
            "oldest_due_age_s": MetadataValue.float(round(late, 1)),
            "still_due": outcome.still_due,
            **dispatch_metadata(outcome.report),
        },
        check_results=[
            AssetCheckResult(
                check_name=CHECK,
                passed=not outcome.backlog_over_limit,
                severity=AssetCheckSeverity.WARN,
                metadata={"oldest_due_age_s": MetadataValue.float(round(late, 1))},
                description=f"the oldest due effect waited {late:.0f} s (limit {limit_s:.0f} s)",
            )
        ],
    )


def _check_spec(name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            CHECK,
            asset=name,
            description="Due effects are taken within outbox.due_alert_after_s of falling due.",
        )
    ]


@asset(
    group_name="outbox",
    kinds={"acs"},
    pool="acs_api",
    owners=["team:integration"],
    check_specs=_check_spec("acs_outbox"),
    description="Sends every due effect to ACS (order releases, cancellations, SKU pushes).",
)
def acs_outbox(
    settings: SettingsResource, acs: AcsApiResource, store: StoreResource
) -> MaterializeResult:
    conf = settings.load()
    with store.connect() as db, acs.client() as client:
        outcome = dispatch_due(db, conf, "acs", acs=client)
    return _result(outcome, conf.outbox.due_alert_after_s)


@asset(
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
) -> MaterializeResult:
    conf = settings.load()
    with store.connect() as db, khaos.client() as client:
        outcome = dispatch_due(db, conf, "khaos", khaos=client)
    return _result(outcome, conf.outbox.due_alert_after_s)


outbox_dispatch_job = define_asset_job(
    OUTBOX_JOB,
    selection=AssetSelection.assets(acs_outbox, khaos_outbox),
    description="Send the outbox's due effects (retries, read-backs, approved and requeued "
    "effects) without waiting for the flow that made them to run again.",
)


@sensor(
    job=outbox_dispatch_job,
    minimum_interval_seconds=load_settings().outbox.due_sensor_interval_s,
    default_status=SENSOR_STATUS,
    description="Starts a dispatch run whenever outbox effects are due (a retry, a read-back "
    "after an ambiguous failure, an approval), for the targets that have some.",
)
def outbox_due_sensor(
    context: SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> RunRequest | SkipReason:
    conf = settings.load()
    due = {}
    with store.connect() as db:
        for target in TARGETS:
            due[target] = due_effects(db, conf, target)
            record_backlog(db, conf, target, due[target])
    targets = [target for target in TARGETS if due[target].total]
    if not targets:
        return SkipReason("no effect is due")
    if context.instance.get_runs(
        filters=RunsFilter(job_name=OUTBOX_JOB, statuses=_ON_ITS_WAY, tags=brand_tags()), limit=1
    ):
        return SkipReason("a dispatch run is already on its way")
    return RunRequest(
        asset_selection=[brand_key(f"{target}_outbox") for target in targets],
        tags={"outbox/due": ",".join(f"{t}={due[t].total}" for t in targets)},
    )


defs = Definitions(
    assets=[acs_outbox, khaos_outbox],
    jobs=[outbox_dispatch_job],
    sensors=[outbox_due_sensor],
)
