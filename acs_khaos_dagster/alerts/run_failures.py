"""The integration team's alert for a failed run: names and error classes, never messages.

``defs/alerts.py`` (the run-failure sensor) reads the failed steps and check evaluations from
Dagster's event log, calls ``run_failure_alert`` and sends it with ``send_run_failure_alert``;
error messages are left out because they can carry customer data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from acs_khaos_dagster.alerts.exception_alerts import RUN_SUBJECT, AlertSummary, alert_once
from acs_khaos_dagster.alerts.notifier import SCRUBBER, Alert, AlertKind, Notifier
from acs_khaos_dagster.store import Store

log = logging.getLogger(__name__)
log.addFilter(SCRUBBER)

INTEGRATION_OWNER = "integration"

# Dagster wraps the user's exception in these; the class worth naming is inside.
_DAGSTER_WRAPPERS = {
    "DagsterExecutionStepExecutionError",
    "DagsterUserCodeExecutionError",
    "DagsterExecutionInterruptedError",
}


def error_class(error: object | None) -> str | None:
    """The innermost meaningful exception class of a SerializableErrorInfo chain."""
    while error is not None:
        name = getattr(error, "cls_name", None)
        cause = getattr(error, "cause", None)
        if name in _DAGSTER_WRAPPERS and cause is not None:
            error = cause
            continue
        return name
    return None


def failed_blocking_checks(evaluations: Iterable[Any]) -> list[tuple[str, str]]:
    """``(asset, check)`` of each failed *blocking* check among a run's check evaluations
    (Dagster's, read by attribute): those failed the run; a non-blocking one only warns."""
    return [
        (evaluation.asset_key.to_user_string(), evaluation.check_name)
        for evaluation in evaluations
        if evaluation is not None and not evaluation.passed and evaluation.blocking
    ]


def run_failure_alert(
    *,
    job_name: str,
    run_id: str,
    failed_steps: list[tuple[str, str | None]],
    failed_checks: list[tuple[str, str]],
    run_error_class: str | None = None,
    dagster_ui_url: str | None = None,
) -> Alert:
    """The integration team's alert for a failed run. Names and classes only, no messages."""
    steps = ", ".join(f"{step} ({cls or 'unknown error'})" for step, cls in failed_steps)
    lines = [f"Run {run_id} of job {job_name} failed."]
    if failed_checks:
        checks = ", ".join(f"{asset}: {check}" for asset, check in failed_checks)
        lines.append(f"Blocking checks failed (downstream steps did not run): {checks}.")
    if steps:
        lines.append(f"Failed steps: {steps}.")
    elif run_error_class:
        lines.append(f"The run failed outside any step ({run_error_class}).")
    lines.append("See the run's logs in Dagster for the details.")
    facts: list[tuple[str, str]] = [("Job", job_name), ("Run", run_id)]
    if failed_steps:
        facts.append(("Failed steps", str(len(failed_steps))))
    if failed_checks:
        facts.append(("Failed checks", str(len(failed_checks))))
    link = f"{dagster_ui_url.rstrip('/')}/runs/{run_id}" if dagster_ui_url else None
    if failed_checks:
        title = f"blocking check failed in {job_name}: " + ", ".join(c for _, c in failed_checks)
        kind = AlertKind.CHECK_FAILED
    else:
        title = f"{job_name} run failed"
        kind = AlertKind.RUN_FAILED
    return Alert(
        kind=kind, title=title, text=" ".join(lines), severity="high", link=link, facts=tuple(facts)
    )


def send_run_failure_alert(
    notifier: Notifier,
    alert: Alert,
    run_id: str,
    connect: Callable[[], AbstractContextManager[Store]],
    now: Callable[[], datetime],
) -> AlertSummary:
    """Record and send the run's alert to the integration team once per channel, so a
    re-evaluated tick repeats nothing (``connect`` opens the store, ``now`` reads the clock)."""
    try:
        with connect() as store:
            return alert_once(
                store,
                notifier,
                subject=f"{RUN_SUBJECT}{run_id}",
                owner=INTEGRATION_OWNER,
                alert=alert,
                now=now(),
            )
    except Exception as exc:
        # The store (or the clock) may be why the run failed: alert anyway, unrecorded.
        log.warning(
            "store unavailable (%s); sending the run-failure alert without recording it",
            type(exc).__name__,
        )
        results = notifier.notify(INTEGRATION_OWNER, alert)
        return AlertSummary(sent=sum(r.ok for r in results), failed=sum(not r.ok for r in results))
