"""What every Dagster module of the integration shares: a flow's figures as Dagster metadata,
a check rule's verdict as a check result, and the run states a sensor must wait for.

``dispatch`` (send due outbox effects inside a run) lives in ``flows/queues.py``, where flows
use it without Dagster; it is re-exported here for the assets that dispatch.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from acs_khaos_dagster.flows.common import dispatch
from acs_khaos_dagster.flows.figures import FileLink, Markdown, Verdict

__all__ = ["RUN_IN_PROGRESS", "check_result", "dispatch", "metadata"]

# A run that is still to finish: a sensor starting another for the same work would run it twice.
RUN_IN_PROGRESS = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


def metadata(figures: Mapping[str, Any]) -> dict[str, Any]:
    """A flow's figures (``flows/figures.py``) as Dagster metadata."""
    return {name: _value(value) for name, value in figures.items()}


def _value(value: Any) -> Any:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value.text)
    if isinstance(value, FileLink):
        if value.url:
            return dg.MetadataValue.url(value.url)
        return dg.MetadataValue.path(str(value.path))
    return value


def check_result(verdict: Verdict, check_name: str | None = None) -> dg.AssetCheckResult:
    """``check_name`` names the check when an asset reports its own check's result."""
    severity = dg.AssetCheckSeverity.WARN if verdict.warn else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=verdict.passed,
        severity=severity,
        metadata=metadata(verdict.figures),
        description=verdict.description,
    )
