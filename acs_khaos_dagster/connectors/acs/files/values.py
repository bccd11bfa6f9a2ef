"""Typing the string columns of an ACS drop, shared by the stock and returns readers.

Trimming and blank-to-null, timestamps to UTC under ``times.AcsTimeRules`` (ACS's
canonical spelling parsed by Arrow in one pass, anything else once per distinct value),
the vectorised quarantine reasons (``_Reasons``) and the wording of the problems a read
reports (line numbers, a file name's time stamp, one value expected per file).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from acs_khaos_dagster.connectors.acs.files.raw import QuarantinedRow, _RawRead, _read_lines
from acs_khaos_dagster.connectors.acs.times import (
    DAY_FIRST_ADVICE,
    DAY_FIRST_SHAPE,
    DEFAULT_TIME_RULES,
    AcsTimeRules,
)

UTC_TS = pa.timestamp("us", tz="UTC")
_HAS_OFFSET = r"(?i)(?:z|[+-]\d\d(?::?\d\d)?)$"
# A timestamp must carry a date and a time, a date a full date: a value cut short never parses.
# An hour alone counts as a time only with its zone ("T07Z", as ISO 8601 and Arrow read it).
_TIMESTAMP_SHAPE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}(?::\d{2}|(?:Z|[+-]\d{2}(?::?\d{2})?)$)"
_DATE_SHAPE = r"^\d{4}-\d{2}-\d{2}"
# ACS's own spelling, parsed by Arrow directly (":60" leap seconds go the general way).
_CANONICAL_TIMESTAMP = (r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:[0-5]\dZ$", "%Y-%m-%dT%H:%M:%SZ")
_CANONICAL_DATE = (r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d")
# How far a timestamp may run ahead of its reference (snapshot, file stamp) before it is
# reported: UK local time vs UTC in a file name, plus some clock skew.
_FUTURE_TOLERANCE = timedelta(hours=2)
_FILE_STAMP = re.compile(r"_(\d{14})\.csv$", re.IGNORECASE)
_LINES_NAMED = 10  # line numbers spelled out in a problem message

_DICT = pa.dictionary(pa.int32(), pa.string())


def _trimmed(column: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
    trimmed = pc.utf8_trim_whitespace(column)
    # Hand back the column itself when nothing was trimmed: one copy fewer of every value.
    if pc.sum(pc.binary_length(trimmed)).as_py() == pc.sum(pc.binary_length(column)).as_py():
        return column
    return trimmed


def _blank_to_null(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def _by_distinct(
    column: pa.ChunkedArray | pa.Array,
    convert: Callable[[pa.Array], pa.Array],
) -> pa.Array:
    """Apply ``convert`` to each distinct value once and spread the result back over the rows."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    return pc.take(convert(encoded.dictionary), encoded.indices)


def _parse_utc_values(
    values: pa.Array, shape: str = _TIMESTAMP_SHAPE, times: AcsTimeRules = DEFAULT_TIME_RULES
) -> pa.Array:
    """Timestamp strings → UTC timestamps (null when blank or unparseable). ISO-8601 with an
    offset as written; without one, and ``dd/mm/yyyy`` ones if allowed, by ``times``."""
    if shape == _DATE_SHAPE:  # a date names a day, not a moment: midnight UTC as ever
        times = AcsTimeRules("utc", times.dates_day_first)
    raw = values.to_pandas().str.strip()
    day_first = (
        raw.str.match(DAY_FIRST_SHAPE, na=False)
        if times.dates_day_first
        else pd.Series(False, index=raw.index)
    )
    series = raw.where(raw.str.match(shape, na=False) & ~day_first, "")
    has_offset = series.str.contains(_HAS_OFFSET, regex=True, na=False)
    parsed = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    # Parse offset and naive values apart: pandas applies one value's offset to its neighbours.
    offset_part = series[has_offset & (series != "")]
    if len(offset_part):
        parsed[offset_part.index] = pd.to_datetime(
            offset_part, utc=True, errors="coerce", format="ISO8601"
        )
    naive_part = series[~has_offset & (series != "")]
    if len(naive_part):
        naive = pd.to_datetime(naive_part, errors="coerce", format="ISO8601")
        parsed[naive_part.index] = times.localise(naive)
    if day_first.any():
        parsed[raw.index[day_first]] = times.localise(times.day_first(raw[day_first]))
    # Nanoseconds beyond the microsecond are dropped rather than refused.
    return pa.array(parsed.dt.floor("us"), type=UTC_TS, from_pandas=True)


def _parse_utc(
    column: pa.ChunkedArray | pa.Array,
    *,
    date_only: bool = False,
    times: AcsTimeRules = DEFAULT_TIME_RULES,
) -> pa.Array:
    shape = _DATE_SHAPE if date_only else _TIMESTAMP_SHAPE
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) > 1 and column.null_count == 0:
        bounds = pc.min_max(column).as_py()
        if bounds["min"] == bounds["max"]:  # snapshot_at: one value in every row
            one = _parse_utc(column.slice(0, 1), date_only=date_only, times=times)
            return pc.take(one, pa.array(np.zeros(len(column), dtype=np.int32)))
    # Nearly every value is in ACS's canonical form: those are parsed by Arrow in one
    # vectorised pass (event times are nearly all distinct, so per-distinct-value work
    # in pandas would cost a Python call per row). Anything else (offsets, fractions,
    # spaces, junk) takes the general path below, once per distinct value.
    canonical_shape, canonical_format = _CANONICAL_DATE if date_only else _CANONICAL_TIMESTAMP
    canonical = pc.fill_null(pc.match_substring_regex(column, canonical_shape), False)
    fast = pc.strptime(column, format=canonical_format, unit="us", error_is_null=True)
    # Arrow's strptime rolls an impossible day over ("02-30" → 2 March): such a value
    # is left to the general path, which refuses it.
    # A rolled-over day is 1-3, so only those rows need their written day compared.
    suspect = pc.fill_null(pc.and_(canonical, pc.less_equal(pc.day(fast), 3)), False)
    rows = pa.array(np.flatnonzero(suspect.to_numpy(zero_copy_only=False)))
    if len(rows):
        day_written = pc.cast(pc.utf8_slice_codeunits(column.take(rows), 8, 10), pa.int64())
        rolled = rows.filter(pc.not_equal(day_written, pc.day(fast.take(rows))))
        if len(rolled):
            mask = np.zeros(len(column), dtype=bool)
            mask[rolled.to_numpy()] = True
            canonical = pc.and_(canonical, pc.invert(pa.array(mask)))
    fast = pc.if_else(canonical, fast, pa.scalar(None, fast.type)).cast(UTC_TS)
    # Blank values are null on either path; only the rest need the general one.
    others = pc.and_(pc.invert(canonical), pc.not_equal(column, ""))
    if not pc.any(others).as_py():
        return fast
    rest = _by_distinct(pc.filter(column, others), lambda v: _parse_utc_values(v, shape, times))
    return pc.replace_with_mask(fast, others, rest.cast(UTC_TS))


class _Reasons:
    """Accumulates, vectorised, why each row is quarantined (null: the row is good)."""

    def __init__(self, rows: int) -> None:
        self.reason: pa.Array = pa.nulls(rows, pa.string())

    def add(self, failed: pa.Array | pa.ChunkedArray, message: str) -> None:
        failed = pc.fill_null(failed, False)
        if not pc.any(failed).as_py():
            return  # the usual case: spare three passes over every row
        joined = pc.binary_join_element_wise(self.reason, pa.scalar(message), "; ")
        self.reason = pc.if_else(
            failed, pc.if_else(pc.is_null(self.reason), pa.scalar(message), joined), self.reason
        )

    def split(
        self, path: Path, table: pa.Table, raw: _RawRead
    ) -> tuple[pa.Table, list[QuarantinedRow]]:
        bad = pc.is_valid(self.reason)
        if not pc.any(bad).as_py():
            return table, []
        numbers = pc.filter(table["line_number"], bad).to_pylist()
        reasons = pc.filter(self.reason, bad).to_pylist()
        texts = _read_lines(path, set(numbers))
        rows = []
        for number, reason in zip(numbers, reasons, strict=True):
            if raw.truncated and number == raw.last_line_number:
                reason = f"file cut short: {reason}"
            rows.append(QuarantinedRow(number, texts.get(number, ""), reason))
        return table.filter(pc.invert(bad)), rows


def _time_reasons(
    reasons: _Reasons,
    raw: pa.ChunkedArray | pa.Array,
    parsed: pa.Array,
    message: str,
    times: AcsTimeRules,
    *,
    date_only: bool = False,
) -> None:
    """Quarantine rows whose time did not parse; a ``dd/mm/yyyy`` one says which setting
    reads it."""
    failed = pc.is_null(parsed)
    if date_only:  # a blank date is allowed (no return expected)
        failed = pc.and_(failed, pc.not_equal(_trimmed(raw), ""))
    if not pc.any(pc.fill_null(failed, False)).as_py():
        return
    day_first = pc.match_substring_regex(_trimmed(raw), DAY_FIRST_SHAPE)
    if times.dates_day_first:
        reasons.add(failed, message)
        return
    reasons.add(pc.and_(failed, day_first), f"{message.split(' ', 1)[0]} is {DAY_FIRST_ADVICE}")
    reasons.add(pc.and_(failed, pc.invert(day_first)), message)


def _finish_quarantine(rows: list[QuarantinedRow]) -> list[QuarantinedRow]:
    return sorted(rows, key=lambda r: r.line_number)


def _lines_text(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_LINES_NAMED])
    more = f" and {len(numbers) - _LINES_NAMED} more" if len(numbers) > _LINES_NAMED else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"


def _file_stamp(path: Path) -> datetime | None:
    """The ``yyyymmddHHMMSS`` stamp of a drop file's name (taken as UTC), if it has one."""
    match = _FILE_STAMP.search(path.name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _single_value(column: pa.ChunkedArray, name: str, problems: list[str], pick: str) -> Any:
    if column.null_count == 0 and len(column) and pa.types.is_timestamp(column.type):
        # One value in every row (a snapshot's time): what counting would find, in one pass.
        bounds = pc.min_max(column).as_py()
        if bounds["min"] == bounds["max"]:
            return bounds["min"]
    counts = pc.value_counts(column.combine_chunks()).to_pylist()
    values = [c["values"] for c in counts if c["values"] not in (None, "")]
    if not values:
        return None
    if len(values) > 1:
        problems.append(f"{len(values)} different {name} values in one file")
    if pick == "max":
        return max(values)
    best = max(counts, key=lambda c: (c["counts"], str(c["values"])))
    return best["values"]
