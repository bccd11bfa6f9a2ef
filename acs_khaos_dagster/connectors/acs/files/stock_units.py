"""The daily ``stock_units_*.csv`` snapshot: ``read_stock_units`` and what it returns.

A clean file is read in one typed pass (``stock_units_clean``); any other is read the
careful way (``raw``), its rows typed and checked here. Statuses are normalised once per
distinct value (``domain.stock_status``); a unit listed twice keeps its latest row, and
latest rows that disagree on the status make the unit ``CONFLICT_STATUS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acs_khaos_dagster.connectors.acs.file_layouts import (
    STOCK_UNITS_LAYOUT,
)
from acs_khaos_dagster.connectors.acs.files.raw import (
    QuarantinedRow,
    _RawRead,
    _read_raw,
)
from acs_khaos_dagster.connectors.acs.files.stock_units_clean import _read_clean_units
from acs_khaos_dagster.connectors.acs.files.values import (
    _DICT,
    _FUTURE_TOLERANCE,
    UTC_TS,
    _blank_to_null,
    _finish_quarantine,
    _lines_text,
    _parse_utc,
    _Reasons,
    _single_value,
    _time_reasons,
    _trimmed,
)
from acs_khaos_dagster.connectors.acs.times import (
    DEFAULT_TIME_RULES,
    AcsTimeRules,
)
from acs_khaos_dagster.domain.stock_status import (
    CONFLICT_STATUS,
    StatusPolicy,
    StockBucket,
    classify_statuses,
)


@dataclass(frozen=True)
class StatusConflict:
    """A unit whose latest rows (same ``last_event_at``) disagree on its status."""

    unique_sku: str
    sku: str
    last_event_at: datetime
    statuses: tuple[str, ...]  # the normalised statuses that disagree
    line_numbers: tuple[int, ...]


@dataclass
class StockFileRead:
    path: Path
    units: pa.Table  # one row per unit; see STOCK_UNITS_SCHEMA
    quarantined: list[QuarantinedRow]
    conflicts: list[StatusConflict]
    duplicates_removed: int
    snapshot_at: datetime | None
    account_code: str | None
    rows_read: int  # data lines read (quarantined included, blank lines not)
    problems: list[str] = field(default_factory=list)
    empty: bool = False
    header_only: bool = False
    truncated: bool = False
    blank_lines: int = 0

    @property
    def usable(self) -> bool:
        """Whether the file holds a snapshot at all (it may still have quarantined rows)."""
        return not (self.empty or self.header_only) and self.units.num_rows > 0


# Columns with few distinct values are dictionary-encoded: a brand's 3M units carry
# ~50k SKUs, a dozen statuses and a few thousand locations.
STOCK_UNITS_SCHEMA = pa.schema(
    [
        ("line_number", pa.int64()),
        ("account_code", _DICT),
        ("snapshot_at", UTC_TS),
        ("sku", _DICT),
        ("unique_sku", pa.string()),
        ("rfid_epc", pa.string()),
        ("status_raw", _DICT),
        ("status", _DICT),  # normalised
        ("bucket", _DICT),  # StockBucket value under the policy used
        ("location_code", _DICT),
        ("grade", _DICT),
        ("last_event_at", UTC_TS),
        ("order_number", pa.string()),
        ("expected_return_date", UTC_TS),
    ]
)


def _classify(
    status_raw: pa.Array, policy: StatusPolicy | None
) -> tuple[pa.DictionaryArray, pa.DictionaryArray]:
    """(normalised status, bucket) as dictionary arrays; each distinct raw value classified once."""
    encoded = (
        status_raw if pa.types.is_dictionary(status_raw.type) else pc.dictionary_encode(status_raw)
    )
    raw_values = encoded.dictionary.to_pylist()
    mapping = classify_statuses(raw_values, policy)
    statuses = sorted({mapping[v][0] for v in raw_values})
    status_index = {s: i for i, s in enumerate(statuses)}
    buckets = [b.value for b in StockBucket]
    bucket_index = {b: i for i, b in enumerate(buckets)}
    to_status = pa.array([status_index[mapping[v][0]] for v in raw_values], pa.int32())
    to_bucket = pa.array([bucket_index[mapping[v][1].value] for v in raw_values], pa.int32())
    status = pa.DictionaryArray.from_arrays(
        pc.take(to_status, encoded.indices), pa.array(statuses, pa.string())
    )
    bucket = pa.DictionaryArray.from_arrays(
        pc.take(to_bucket, encoded.indices), pa.array(buckets, pa.string())
    )
    return status, bucket


def _future_lines(good: pa.Table) -> list[int]:
    """Line numbers of rows whose ``last_event_at`` runs ahead of their ``snapshot_at``.

    Two reductions answer for nearly every file (no event after the earliest snapshot
    time plus the tolerance); only then is each row compared.
    """
    latest = pc.max(good["last_event_at"]).cast(pa.int64()).as_py()
    snapshots = pc.min_max(good["snapshot_at"].cast(pa.int64())).as_py()
    tolerance = _FUTURE_TOLERANCE // timedelta(microseconds=1)
    # (Only while Arrow's own addition below cannot overflow: then both ways agree.)
    if (
        latest is not None
        and snapshots["min"] is not None
        and snapshots["max"] + tolerance < 2**63
        and latest <= snapshots["min"] + tolerance
    ):
        return []
    ahead = pc.greater(
        good["last_event_at"], pc.add(good["snapshot_at"], pa.scalar(_FUTURE_TOLERANCE))
    )
    return pc.filter(good["line_number"], ahead).to_pylist()


def _strictly_increasing(values: pa.Array | pa.ChunkedArray) -> bool:
    if len(values) < 2:
        return True
    ordered = pc.less(values.slice(0, len(values) - 1), values.slice(1))
    return bool(pc.all(ordered).as_py())


def _resolve_duplicates(table: pa.Table) -> tuple[pa.Table, int, list[StatusConflict]]:
    """Keep each unit's latest row; mark units whose latest rows disagree as conflicting."""
    if _strictly_increasing(table["unique_sku"]):  # compared chunk by chunk, never copied
        return table, 0, []  # a file in unit order shows it lists no unit twice in one pass
    unique_skus = table["unique_sku"].combine_chunks()
    # Dictionary codes counted with numpy: cheaper than a hash group-by over every unit.
    encoded = pc.dictionary_encode(unique_skus)
    per_code = np.bincount(encoded.indices.to_numpy(zero_copy_only=False))
    repeated = encoded.dictionary.take(pa.array(np.flatnonzero(per_code > 1)))
    del encoded, per_code
    if len(repeated) == 0:
        return table, 0, []
    in_repeated = pc.is_in(table["unique_sku"], value_set=repeated)
    subset = (
        table.filter(in_repeated)
        .select(["line_number", "unique_sku", "sku", "status", "last_event_at"])
        .to_pandas()
    )
    subset["status"] = subset["status"].astype(str)
    latest = subset.groupby("unique_sku")["last_event_at"].transform("max")
    top = subset[subset["last_event_at"] == latest].sort_values("line_number")
    kept = top.drop_duplicates("unique_sku", keep="last")
    statuses = top.groupby("unique_sku")["status"].agg(lambda s: tuple(sorted(set(s))))
    conflicting = statuses[statuses.map(len) > 1]
    conflicts = []
    for unique_sku, values in conflicting.items():
        rows = top[top["unique_sku"] == unique_sku]
        conflicts.append(
            StatusConflict(
                unique_sku=str(unique_sku),
                sku=str(rows["sku"].iloc[-1]),
                last_event_at=rows["last_event_at"].iloc[-1].to_pydatetime(),
                statuses=values,
                line_numbers=tuple(int(n) for n in rows["line_number"]),
            )
        )
    keep = pc.or_(
        pc.invert(in_repeated),
        pc.is_in(table["line_number"], value_set=pa.array(kept["line_number"], pa.int64())),
    )
    removed = len(subset) - len(kept)
    table = table.filter(keep)
    if conflicts:
        marked = pc.is_in(
            table["unique_sku"], value_set=pa.array([c.unique_sku for c in conflicts])
        )
        status = pc.if_else(marked, CONFLICT_STATUS, pc.cast(table["status"], pa.string()))
        bucket = pc.if_else(
            marked, StockBucket.UNKNOWN.value, pc.cast(table["bucket"], pa.string())
        )
        table = table.set_column(
            table.schema.get_field_index("status"), "status", pc.dictionary_encode(status)
        )
        table = table.set_column(
            table.schema.get_field_index("bucket"), "bucket", pc.dictionary_encode(bucket)
        )
    return table, removed, sorted(conflicts, key=lambda c: c.unique_sku)


def read_stock_units(
    path: Path, policy: StatusPolicy | None = None, times: AcsTimeRules = DEFAULT_TIME_RULES
) -> StockFileRead:
    """Read a ``stock_units_*.csv`` snapshot. Raises only ``FileLayoutError`` (unusable header)."""
    path = Path(path)
    clean = _read_clean_units(path)
    if clean is not None:
        return _stock_file_read(path, clean, clean.table, [], policy)
    raw = _read_raw(path, STOCK_UNITS_LAYOUT)
    table = raw.table
    trimmed = {
        c: _trimmed(table[c])
        for c in (
            "account_code",
            "sku",
            "unique_sku",
            "rfid_epc",
            "location_code",
            "grade",
            "order_number",
        )
    }
    snapshot_at = _parse_utc(table["snapshot_at"], times=times)
    last_event_at = _parse_utc(table["last_event_at"], times=times)
    expected_return = _parse_utc(table["expected_return_date"], date_only=True, times=times)
    status_raw = table["status"]

    reasons = _Reasons(table.num_rows)
    reasons.add(pc.equal(trimmed["sku"], ""), "empty sku")
    reasons.add(pc.equal(trimmed["unique_sku"], ""), "empty unique_sku")
    reasons.add(pc.equal(_trimmed(status_raw), ""), "empty status")
    _time_reasons(
        reasons,
        table["snapshot_at"],
        snapshot_at,
        "snapshot_at is not an ISO-8601 timestamp",
        times,
    )
    _time_reasons(
        reasons,
        table["last_event_at"],
        last_event_at,
        "last_event_at is not an ISO-8601 timestamp",
        times,
    )
    _time_reasons(
        reasons,
        table["expected_return_date"],
        expected_return,
        "expected_return_date is not an ISO-8601 date",
        times,
        date_only=True,
    )
    typed = pa.table(
        {
            "line_number": table["line_number"],
            "account_code": trimmed["account_code"],
            "snapshot_at": snapshot_at,
            "sku": trimmed["sku"],
            "unique_sku": trimmed["unique_sku"],
            "rfid_epc": _blank_to_null(trimmed["rfid_epc"]),
            "status": status_raw,
            "location_code": _blank_to_null(trimmed["location_code"]),
            "grade": _blank_to_null(trimmed["grade"]),
            "last_event_at": last_event_at,
            "order_number": _blank_to_null(trimmed["order_number"]),
            "expected_return_date": expected_return,
        }
    )
    good, quarantined = reasons.split(path, typed, raw)
    return _stock_file_read(path, raw, good, quarantined, policy)


def _stock_file_read(
    path: Path,
    raw: _RawRead,
    good: pa.Table,
    quarantined: list[QuarantinedRow],
    policy: StatusPolicy | None,
) -> StockFileRead:
    """The rows that passed every check (``status`` still raw) → the unit table and report."""
    status_raw = good["status"].combine_chunks()
    status, bucket = _classify(status_raw, policy)
    good = good.drop_columns(["status"]).append_column("status_raw", status_raw)
    good = good.append_column("status", status).append_column("bucket", bucket)
    good = good.select(STOCK_UNITS_SCHEMA.names)
    future_lines = _future_lines(good)
    good, removed, conflicts = _resolve_duplicates(good)
    good = good.cast(STOCK_UNITS_SCHEMA)

    problems = list(raw.problems)
    if future_lines:
        # Kept, not quarantined: dropping the unit would misstate the snapshot more
        # than a wrong event time does; the stock flow decides what to do with it.
        problems.append(
            f"last_event_at later than snapshot_at on {len(future_lines)} row(s) "
            f"({_lines_text(future_lines)}): kept as read; check ACS's clock"
        )
    account_code = _single_value(good["account_code"], "account_code", problems, pick="mode")
    snapshot = _single_value(good["snapshot_at"], "snapshot_at", problems, pick="max")
    if removed:
        problems.append(f"{removed} duplicate unit row(s) superseded by a later row")
    if conflicts:
        problems.append(f"{len(conflicts)} unit(s) with conflicting statuses made not sellable")
    all_quarantined = _finish_quarantine(raw.quarantined + quarantined)
    if all_quarantined:
        problems.append(f"{len(all_quarantined)} row(s) quarantined")
    return StockFileRead(
        path=path,
        units=good,
        quarantined=all_quarantined,
        conflicts=conflicts,
        duplicates_removed=removed,
        snapshot_at=snapshot,
        account_code=account_code,
        rows_read=raw.rows_read,
        problems=problems,
        empty=raw.empty,
        header_only=raw.header_only,
        truncated=raw.truncated,
        blank_lines=raw.blank_lines,
    )
