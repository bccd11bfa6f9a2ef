"""Small pieces every Dagster module of the integration uses.

``sync_exceptions``, ``effect_states`` and ``dispatch`` live in ``flows/queues.py`` (flows
use them without Dagster); they are re-exported here.
"""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import DagsterRunStatus, MetadataValue

from acs_khaos_dagster.flows.queues import (
    dispatch as dispatch,
)
from acs_khaos_dagster.flows.queues import (
    effect_states as effect_states,
)
from acs_khaos_dagster.flows.queues import (
    sync_exceptions as sync_exceptions,
)
from acs_khaos_dagster.private_files import private_partial
from acs_khaos_dagster.store import DispatchReport

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


def write_parquet_atomically(frame: pd.DataFrame | pa.Table, path: Path) -> None:
    """Write then rename, so a reader never sees half a file; private (``0600``) throughout."""
    if not isinstance(frame, pa.Table):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    with private_partial(path) as partial:
        pq.write_table(frame, partial)


def dispatch_metadata(report: DispatchReport) -> dict[str, int]:
    return {f"effects_{outcome}": count for outcome, count in sorted(report.outcomes.items())}
