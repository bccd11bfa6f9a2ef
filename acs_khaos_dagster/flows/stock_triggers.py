"""What starts the stock group's runs, without Dagster: a run per new ACS stock file (the
sensor's) and the push's cron (the schedule's). ``defs/stock.py`` makes the Dagster objects.
"""

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from acs_khaos_dagster.config import StockSettings, setting_at_load
from acs_khaos_dagster.connectors.acs.drop import AcsDrop
from acs_khaos_dagster.flows.stock_snapshot import scan_stock_files
from acs_khaos_dagster.store import Store

# Realtime mode: a snapshot taken in this long ago and still unpushed was left by its run.
REALTIME_PUSH_GRACE = timedelta(minutes=10)


def batch_cron() -> str:
    """``settings.stock.batch_cron``; its default when the settings cannot be loaded."""
    return setting_at_load(lambda s: s.stock.batch_cron, StockSettings().batch_cron)


@dataclass(frozen=True)
class FileRuns:
    """The runs to start (``RunRequest`` arguments), the sensor's next cursor and why files
    were left: ``(level, message)`` with level ``warning`` or ``info``."""

    runs: list[dict[str, Any]]
    cursor: str
    notes: list[tuple[str, str]]


def file_runs(drop: AcsDrop, db: Store, cursor: str | None) -> FileRuns:
    """One run per new file since ``cursor``, for its snapshot day; the key holds the
    content's hash, so the same name with new content is a new run."""
    scan = scan_stock_files(drop, db, json.loads(cursor) if cursor else {})
    runs = [
        {
            "run_key": f"{new.name}:{new.sha256[:16]}",
            "partition_key": new.day,
            "run_config": {"ops": {"acs_stock_snapshot": {"config": {"file": new.name}}}},
            "tags": {"acs_file": new.name},
        }
        for new in scan.new
    ]
    return FileRuns(runs, json.dumps(scan.seen, sort_keys=True), scan.notes)
