"""Small pieces every flow uses: atomic Parquet, and (re-exported from ``flows.queues``)
exception sync, outbox states and dispatch, so flows run without Dagster."""

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from acs_khaos_dagster.flows.queues import dispatch, effect_states, sync_exceptions
from acs_khaos_dagster.private_files import private_partial

__all__ = ["dispatch", "effect_states", "sync_exceptions", "write_parquet_atomically"]


def write_parquet_atomically(frame: pd.DataFrame | pa.Table, path: Path, **options: Any) -> None:
    """Write then rename, so a reader never sees half a file; private (``0600``) throughout.
    ``options`` go to ``pyarrow.parquet.write_table`` (encodings, statistics)."""
    if not isinstance(frame, pa.Table):
        frame = pa.Table.from_pandas(frame, preserve_index=False)
    with private_partial(path) as partial:
        pq.write_table(frame, partial, **options)
