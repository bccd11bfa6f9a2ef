"""Small pieces every Dagster module of the integration uses.

``sync_exceptions``, ``effect_states`` and ``dispatch`` live in ``flows/queues.py`` (flows
use them without Dagster); they are re-exported here.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.flows.common import (
    dispatch,
    effect_states,
    sync_exceptions,
    write_parquet_atomically,
)
from acs_khaos_dagster.flows.figures import (
    FileLink,
    Markdown,
    Verdict,
    dispatch_figures,
    file_link,
    table,
)

__all__ = [
    "RUN_IN_PROGRESS",
    "check_result",
    "dispatch",
    "dispatch_metadata",
    "effect_states",
    "markdown_table",
    "metadata",
    "report_link",
    "sync_exceptions",
    "write_parquet_atomically",
]

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
        return (
            dg.MetadataValue.url(value.url) if value.url else dg.MetadataValue.path(str(value.path))
        )
    return value


def check_result(verdict: Verdict) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity.WARN if verdict.warn else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=severity,
        metadata=metadata(verdict.figures),
        description=verdict.description,
    )


def markdown_table(frame: pd.DataFrame, limit: int = 20) -> dg.MetadataValue:
    return _value(table(frame, limit))


dispatch_metadata = dispatch_figures


def report_link(conf: Settings, path: Path) -> dg.MetadataValue:
    """A link the UI opens (the webserver's ``/files/``), or the path as text if unserved."""
    return _value(file_link(conf, path))
