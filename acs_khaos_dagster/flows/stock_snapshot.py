"""Stock snapshot flow: one ACS ``stock_units_*.csv`` taken in, its units placed on Khaos
sites (issue 7; ARCHITECTURE "Stock arithmetic").

- ``take_in_snapshot`` reads the file once (the store's file ledger decides whether data
  was taken), keeps the units and the per-status counts in Parquet, quarantines bad rows,
  refuses a file cut short and returns the counts per SKU and status.
- ``place_sellable`` / ``place_non_sellable`` place those units on Khaos sites by the
  status policy; ``place_sellable`` also keeps what the push reads.
- ``check_sellable`` re-derives the sellable table by another path (the blocking check).
- ``scan_stock_files`` says which files in the drop are new (the sensor asks it).

No Dagster here: ``defs/stock.py`` wires these in. Errors are ``SnapshotError`` with the
message the run fails with.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa

from acs_khaos_dagster.config import UK_TIME_ZONE, Settings
from acs_khaos_dagster.connectors.acs.drop import AcsDrop, DropEntry, copied_sha256
from acs_khaos_dagster.connectors.acs.files import FileLayoutError, read_stock_units
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.domain.snapshot import status_counts
from acs_khaos_dagster.domain.stock_guards import (
    SnapshotTotals,
    UnknownStatusReport,
)
from acs_khaos_dagster.domain.stock_status import StockBucket
from acs_khaos_dagster.flows.common import sync_exceptions, write_parquet_atomically
from acs_khaos_dagster.flows.snapshot_retention import (
    SnapshotPruning,
    prune_snapshots,
    sku_map_path,  # noqa: F401 (stock_placement's and tests' import)
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType
from acs_khaos_dagster.store.ledger import FileLedger, file_sha256
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.stock import StockSnapshot

STOCK_FILE_GLOB = "stock_units_*.csv"
FILE_KIND = "stock_units"
# The first snapshot day the UI offers; older days cannot be re-run.
PARTITIONS_START = "2026-01-01"
_STAMP_RE = re.compile(r"_(\d{14})\.csv$")
_SELLING_BUCKETS = (str(StockBucket.SELLABLE), str(StockBucket.ALLOCATED))
_UNKNOWN_TYPE = "unknown_stock_status"


class SnapshotError(Exception):
    """A snapshot that cannot be taken in or placed; ``details`` for the run's page."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


# --- names, days and the SKU map ------------------------------------------------------------


def partition_day(name: str, mtime: datetime, tz: str = UK_TIME_ZONE) -> str:
    """The snapshot day of a file: the ``yyyymmddHHMMSS`` (UTC) stamp in its name, in UK time;
    the file's mtime if the name carries none."""
    found = _STAMP_RE.search(name)
    moment = mtime
    if found:
        moment = datetime.strptime(found.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()


def snapshot_id_for(snapshot_at: datetime, file_id: int) -> str:
    """Unique per file even when two files carry the same snapshot time."""
    return f"{snapshot_at.astimezone(UTC):%Y%m%dT%H%M%S}-F{file_id}"


def newest_for_day(entries: Iterable[DropEntry], day: str) -> str:
    files = [e.name for e in entries if partition_day(e.name, e.mtime) == day]
    if not files:
        raise SnapshotError(f"no {STOCK_FILE_GLOB} for snapshot day {day} in the ACS drop")
    # Names carry yyyymmddHHMMSS, so the last by name is the newest snapshot of the day.
    return sorted(files)[-1]


def sku_map_frame(khaos_sku_master: pd.DataFrame, sku_mapping: pd.DataFrame) -> pd.DataFrame:
    """ACS SKU → StockID with the hire flag, cost price and current Khaos code.

    Every SKU ACS holds under a Khaos StockID counts (matched, pending, inactive,
    mismatched, renamed, discontinued): physical units are physical whatever the SKU's
    sales state. Codes Khaos cannot use and SKUs Khaos does not know have no StockID.
    """
    known = sku_mapping.loc[
        sku_mapping["stock_id"].notna()
        & (sku_mapping["acs_sku"].astype(str) != "")
        & (sku_mapping["acs_status"] != "missing")
        & (sku_mapping["classification"] != "invalid_code"),
        ["stock_id", "acs_sku"],
    ].astype({"stock_id": "int64"})
    master = khaos_sku_master.loc[
        khaos_sku_master["stock_controlled"], ["stock_id", "stock_code", "is_hire", "cost_price"]
    ]
    out = known.merge(master, on="stock_id", how="inner").rename(columns={"acs_sku": "sku"})
    out = out.drop_duplicates("sku", keep="first").drop_duplicates("stock_id", keep="first")
    return out[["sku", "stock_id", "stock_code", "is_hire", "cost_price"]].reset_index(drop=True)


@dataclass(frozen=True)
class _Problem:
    type: str
    entity_ref: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _point_run_at(conf: Settings, run_id: str, snapshot_id: str) -> None:
    """Which snapshot this run took in, for the assets after it in the same run."""
    path = conf.data_dir / "stock" / "runs" / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"snapshot_id": snapshot_id}), encoding="utf-8")


def run_snapshot(conf: Settings, db: Store, run_id: str, day: str) -> StockSnapshot | None:
    """The snapshot this run took in; for a re-run of one asset, the day's newest."""
    snapshots = StockSnapshots(db.db)
    path = conf.data_dir / "stock" / "runs" / f"{run_id}.json"
    if path.exists():
        return snapshots.get(json.loads(path.read_text(encoding="utf-8"))["snapshot_id"])
    return snapshots.newest_of_day(day)


# --- the snapshot -------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotTakeIn:
    """One file taken in (``read`` is None when its content was taken in before)."""

    name: str
    counts: pd.DataFrame
    snapshot_id: str
    units: int
    same_content_as: str = ""
    snapshot_at: datetime | None = None
    totals: SnapshotTotals | None = None
    read: Any = None  # connectors.acs.files' StockUnitsRead
    # What the snapshot retention removed after this snapshot was taken in.
    pruned: SnapshotPruning = field(default_factory=SnapshotPruning)


def take_in_snapshot(
    db: Store, drop: AcsDrop, conf: Settings, day: str, file: str, run_id: str
) -> SnapshotTakeIn:
    """Take in ``file`` (or the newest of ``day``) once; a re-run or the same content under
    another name returns the snapshot taken before. Points ``run_id`` at the snapshot."""
    policy = conf.status_policy
    name = file or newest_for_day(drop.list(STOCK_FILE_GLOB), day)
    path = drop.fetch(name)
    snapshots = StockSnapshots(db.db)
    file_row, fresh = db.ledger.record_file(path, kind=FILE_KIND, sha256=copied_sha256(path))
    original = snapshots.by_file(file_row.duplicate_of or file_row.id)
    if not fresh:
        if original is None:
            raise SnapshotError(f"{name} was taken in before and failed: {file_row.error}")
        # A re-run of the day, or the same content delivered under another name.
        if original.counts_pruned_at is not None:
            raise SnapshotError(
                f"{name} was taken in as snapshot {original.snapshot_id}, whose files the "
                f"snapshot retention removed on {original.counts_pruned_at:%Y-%m-%d} "
                "(retention.snapshot_days; its month's final pack was built)"
            )
        counts = pd.read_parquet(original.counts_path)
        _point_run_at(conf, run_id, original.snapshot_id)
        return SnapshotTakeIn(
            name, counts, original.snapshot_id, original.total_units, original.file_name
        )
    db.ledger.mark_processing(file_row.id)
    try:
        read = read_stock_units(path, policy, AcsTimeRules.from_settings(conf))
    except FileLayoutError as exc:
        db.ledger.mark_failed(file_row.id, str(exc))
        raise SnapshotError(str(exc)) from exc
    counts = status_counts(read.units, policy)
    totals = SnapshotTotals.from_counts(counts, policy)
    snapshot_at = read.snapshot_at or file_row.mtime
    snapshot_id = snapshot_id_for(snapshot_at, file_row.id)
    folder = conf.data_dir / "stock"
    units_path = folder / "units" / f"{snapshot_id}.parquet"
    counts_path = folder / "counts" / f"{snapshot_id}.parquet"
    # Only this step touches every unit; everything after reads the counts.
    write_parquet_atomically(read.units, units_path, **units_parquet_options(read.units.schema))
    write_parquet_atomically(counts, counts_path)
    with db.transaction() as session:
        db.ledger.add_quarantined_rows(file_row.id, read.quarantined, session=session)
        snapshots.record(
            snapshot_id=snapshot_id,
            file_id=file_row.id,
            file_name=name,
            snapshot_at=snapshot_at,
            partition_day=day,
            totals=totals,
            counts_path=str(counts_path),
            units_path=str(units_path),
            session=session,
        )
        db.ledger.mark_processed(
            file_row.id,
            rows_accepted=read.units.num_rows,
            rows_quarantined=len(read.quarantined),
            session=session,
        )
        if read.truncated:
            _refuse_truncated(db, snapshots, snapshot_id, name, read.rows_read, session)
    unknown = UnknownStatusReport.from_units(read.units, policy)
    newest, last = snapshots.newest(), snapshots.last_pushed()
    goes_forward = (
        not read.truncated
        and newest is not None
        and newest.snapshot_id == snapshot_id
        and (last is None or snapshot_at > last.snapshot_at)
    )
    if goes_forward:
        # Only a snapshot that can still be pushed says which statuses are unknown now;
        # an older or cut file must not rewrite what the queue says.
        sync_exceptions(db, _unknown_problems(unknown, snapshot_id), [_UNKNOWN_TYPE])
    _point_run_at(conf, run_id, snapshot_id)
    return SnapshotTakeIn(
        name,
        counts,
        snapshot_id,
        int(read.units.num_rows),
        snapshot_at=snapshot_at,
        totals=totals,
        read=read,
        pruned=prune_snapshots(db, conf),
    )


def units_parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How the units Parquet (millions of rows, written once, read by a ``unique_sku``
    filter) is written: half the CPU of pyarrow's defaults, the same table read back.

    Dictionary pages only where values repeat (the dictionary columns, the snapshot's
    time and return dates), not tried and given up on millions of unique strings; row
    numbers and event times delta-encoded; statistics only on ``unique_sku``, the
    column a reader filters on (``flows.stock_facts.ex_hired_held_units``).
    """
    names = set(schema.names)
    repeated = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    repeated += [n for n in ("snapshot_at", "expected_return_date") if n in names]
    delta = {n: "DELTA_BINARY_PACKED" for n in ("line_number", "last_event_at") if n in names}
    return {
        "use_dictionary": repeated,
        "column_encoding": delta,
        "write_statistics": [n for n in ("unique_sku",) if n in names],
    }


def _refuse_truncated(
    db: Store,
    snapshots: StockSnapshots,
    snapshot_id: str,
    name: str,
    rows_read: int,
    session: Any,
) -> None:
    """A file ACS cut short is never pushed: a SKU missing from it is not a SKU sold out."""
    reason = f"{name} ends in the middle of a line: the file was cut short"
    snapshots.mark(snapshot_id, "refused", session=session, reasons=[reason])
    db.exceptions.raise_exception(
        ExceptionType.STOCK_FILE_TRUNCATED,
        f"file:{name}",
        f"{reason} after {rows_read} row(s). Nothing from it is pushed to Khaos; ask ACS to "
        "send the file again (a complete file is taken in as a new snapshot).",
        {"file": name, "rows_read": rows_read, "snapshot_id": snapshot_id},
        session=session,
    )


def _unknown_problems(report: UnknownStatusReport, snapshot_id: str) -> list[_Problem]:
    return [
        _Problem(
            type=_UNKNOWN_TYPE,
            entity_ref=f"status:{raw}",
            message=(
                f"{units} unit(s) carry the ACS status {raw!r}, which the stock policy does "
                "not know: they are on no Khaos site and never sellable"
            ),
            details={"status": raw, "units": units, "snapshot_id": snapshot_id},
        )
        for raw, units in report.units_by_value.items()
    ]


# --- which files are new --------------------------------------------------------------------


@dataclass(frozen=True)
class NewStockFile:
    name: str
    sha256: str
    day: str


@dataclass(frozen=True)
class StockFileScan:
    """The files to take in, what was seen (the sensor's next cursor) and why others were
    left: ``(level, message)`` with level ``warning`` or ``info``."""

    new: list[NewStockFile]
    seen: dict[str, list[Any]]
    notes: list[tuple[str, str]]


def scan_stock_files(drop: AcsDrop, db: Store, seen: dict[str, list[Any]]) -> StockFileScan:
    """Each ``stock_units_*.csv`` changed since ``seen`` (name -> [size, mtime, sha256];
    never the wall clock), on or after the first snapshot day, whose content was not taken
    in before."""
    first_day = date.fromisoformat(PARTITIONS_START)
    new: list[NewStockFile] = []
    notes: list[tuple[str, str]] = []
    current: dict[str, list[Any]] = {}
    for entry in drop.list(STOCK_FILE_GLOB):
        signature = [entry.size, entry.mtime.isoformat()]
        previous = seen.get(entry.name)
        if previous is not None and previous[:2] == signature:
            current[entry.name] = previous
            continue
        local = drop.fetch(entry.name)
        sha = copied_sha256(local) or file_sha256(local)
        current[entry.name] = [*signature, sha]
        if previous is not None and previous[2:] == [sha]:
            continue  # touched, not changed
        day = partition_day(entry.name, entry.mtime)
        if date.fromisoformat(day) < first_day:
            notes.append(("warning", f"{entry.name} is before the first snapshot day; ignored"))
            continue
        if FileLedger(db.db).taken_in(sha, FILE_KIND):
            notes.append(("info", f"{entry.name}: the same content was taken in before"))
            continue
        new.append(NewStockFile(entry.name, sha, day))
    return StockFileScan(new, current, notes)
