"""Small pieces every Dagster module of the integration uses.

``sync_exceptions``, ``effect_states`` and ``dispatch`` live in ``flows/queues.py`` (flows
use them without Dagster); they are re-exported here.
"""

from pathlib import Path

import pandas as pd
from dagster import DagsterRunStatus, MetadataValue

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.flows.common import (
    dispatch,
    effect_states,
    sync_exceptions,
    write_parquet_atomically,
)
from acs_khaos_dagster.report_files import report_url
from acs_khaos_dagster.store import DispatchReport

__all__ = [
    "RUN_IN_PROGRESS",
    "dispatch",
    "dispatch_metadata",
    "effect_states",
    "markdown_table",
    "report_link",
    "sync_exceptions",
    "write_parquet_atomically",
]

# A run that is still to finish: a sensor starting another for the same work would run it twice.
RUN_IN_PROGRESS = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
)


def markdown_table(frame: pd.DataFrame, limit: int = 20) -> MetadataValue:
    if frame.empty:
        return MetadataValue.md("_none_")
    return MetadataValue.md(frame.head(limit).to_markdown(index=False))


def dispatch_metadata(report: DispatchReport) -> dict[str, int]:
    return {f"effects_{outcome}": count for outcome, count in sorted(report.outcomes.items())}


def report_link(conf: Settings, path: Path) -> MetadataValue:
    """A link the UI opens (the webserver's ``/files/``), or the path as text if unserved."""
    url = report_url(conf.data_dir, path, conf.brand)
    return MetadataValue.url(url) if url else MetadataValue.path(str(path))
