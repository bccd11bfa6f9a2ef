"""Stock group: ACS unit snapshots."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, Config, Definitions, MetadataValue, asset

from acs_khaos_dagster.connectors.acs.files import read_stock_units
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.defs.schemas import SnapshotStatusCountsType
from acs_khaos_dagster.domain.snapshot import status_counts, units_per_status

STOCK_FILE_GLOB = "stock_units_*.csv"


class SnapshotConfig(Config):
    """Which stock file to read; empty means the newest in the ACS drop folder."""

    file: str = ""


def newest_stock_file(folder: Path) -> Path:
    files = sorted(p for p in folder.glob(STOCK_FILE_GLOB) if p.is_file() and not p.is_symlink())
    if not files:
        raise FileNotFoundError(f"no {STOCK_FILE_GLOB} in the ACS drop folder {folder}")
    # File names carry yyyymmddHHMMSS, so the last by name is the newest snapshot.
    return files[-1]


@asset(
    group_name="stock",
    kinds={"acs", "csv", "pandas"},
    dagster_type=SnapshotStatusCountsType,
    description="Units of the newest ACS stock snapshot per SKU and normalised status, "
    "with each status's stock bucket. Bad rows are quarantined in the store with reasons.",
)
def acs_stock_snapshot(
    context: AssetExecutionContext,
    config: SnapshotConfig,
    settings: SettingsResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    path = Path(config.file) if config.file else newest_stock_file(conf.drop_folder)
    read = read_stock_units(path)
    counts = status_counts(read.units)

    # Unit-level data stays in Parquet beside the store; only this step touches every unit.
    snapshot_dir = conf.data_dir / "snapshots"
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(read.units, snapshot_dir / f"{path.stem}.parquet")

    with store.connect() as db:
        file_row, _ = db.ledger.record_file(path, kind="stock_units")
        db.ledger.add_quarantined_rows(file_row.id, read.quarantined)
        db.ledger.mark_processed(
            file_row.id, rows_accepted=read.units.num_rows, rows_quarantined=len(read.quarantined)
        )

    per_status = units_per_status(counts)
    reasons = pd.Series([row.reason for row in read.quarantined], dtype="object")
    context.add_output_metadata(
        {
            "file": path.name,
            "snapshot_at": str(read.snapshot_at),
            "units": int(read.units.num_rows),
            "rows_quarantined": len(read.quarantined),
            "duplicate_rows_removed": int(read.duplicates_removed),
            "conflicting_units": len(read.conflicts),
            "units_per_status": MetadataValue.md(per_status.to_markdown(index=False)),
            "quarantine_reasons": MetadataValue.md(
                reasons.value_counts()
                .rename_axis("reason")
                .reset_index(name="rows")
                .to_markdown(index=False)
                if len(reasons)
                else "none"
            ),
        }
    )
    return counts


defs = Definitions(assets=[acs_stock_snapshot])
