"""Readers for ACS's CSV drops: the daily stock-units snapshot and the returns file.

Both read with pyarrow (single pass, no per-row Python over good rows) and never
drop a row silently:

* a line that is not valid UTF-8 (Latin-1 bytes in a UTF-8 file), or that ends inside
  a quoted field, is screened out as pyarrow streams the file and quarantined with its
  line number and its bytes (undecodable ones shown as ``\\xNN``); the rest of the
  file is read as usual;

* a row that breaks the layout (wrong number of fields, unparseable timestamp,
  empty ``sku``/``unique_sku``...) becomes a ``QuarantinedRow`` with its physical
  line number, its raw text and the reason, and the good rows are kept;
* an empty file, a header-only file and a file cut short (no line end after the
  last line) are reported through flags and ``problems``, never raised;
* a header missing required columns raises ``FileLayoutError`` naming the file
  and the columns (the file as a whole cannot be used).

Timestamps follow ``times.AcsTimeRules`` (the ``acs.time_without_offset`` and
``acs.dates_day_first`` settings): with an offset or ``Z`` as written, without one in
UK wall-clock time by default; a ``dd/mm/yyyy`` value is quarantined with a reason
naming the setting unless day-first dates are switched on.

Headers are matched case- and spacing-insensitively (``" Unique_Sku "`` is
``unique_sku``); a UTF-8 byte-order mark, CRLF or LF line ends and quoted fields
are accepted. A quoted field holding a line break is not supported (ACS's
layout has none): its pieces are quarantined, so an unclosed quote cannot swallow
the good rows after it. Bare-CR line ends are refused with a ``FileLayoutError``.
A ``last_event_at`` later than the row's ``snapshot_at`` (a clock problem at ACS) is
kept and reported in ``problems`` with its line numbers; a ``received_at`` later than
the returns file's name stamp likewise.

Stock units: the ``status`` column is normalised once per *distinct* value via
``domain.stock_status``. A unit listed twice counts once: its latest row by
``last_event_at`` wins; when the latest rows tie with different statuses the
unit gets ``CONFLICT_STATUS`` (bucket ``unknown``, never sellable) and is
reported in ``conflicts``.
"""

from __future__ import annotations

import csv
import io
import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from acs_khaos_dagster.connectors.acs.file_layouts import (
    RETURN_ACTIONS,
    RETURN_GRADES,
    RETURNS_LAYOUT,
    STOCK_UNITS_LAYOUT,
    FileLayout,
    canonical_header,
)
from acs_khaos_dagster.connectors.acs.times import (
    DAY_FIRST_ADVICE,
    DAY_FIRST_SHAPE,
    DEFAULT_TIME_RULES,
    AcsTimeRules,
)
from acs_khaos_dagster.domain.stock_status import (
    CONFLICT_STATUS,
    StatusPolicy,
    StockBucket,
    classify_statuses,
)

UTC_TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(12, 2)
_READ_BLOCK_BYTES = 8 << 20
_HAS_OFFSET = r"(?i)(?:z|[+-]\d\d(?::?\d\d)?)$"
# A timestamp must carry a date and a time, a date a full date: a value cut short never parses.
# An hour alone counts as a time only with its zone ("T07Z", as ISO 8601 and Arrow read it).
_TIMESTAMP_SHAPE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}(?::\d{2}|(?:Z|[+-]\d{2}(?::?\d{2})?)$)"
_DATE_SHAPE = r"^\d{4}-\d{2}-\d{2}"
# ACS's own spelling, parsed by Arrow directly (":60" leap seconds go the general way).
_CANONICAL_TIMESTAMP = (r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:[0-5]\dZ$", "%Y-%m-%dT%H:%M:%SZ")
_CANONICAL_DATE = (r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d")
# Money as ACS writes it: digits with at most two decimals, an optional pound sign and
# thousands separators only in their places ("1,250.00"); "12,50" is not an amount.
_MONEY_SHAPE = re.compile(r"^£?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
# How far a timestamp may run ahead of its reference (snapshot, file stamp) before it is
# reported: UK local time vs UTC in a file name, plus some clock skew.
_FUTURE_TOLERANCE = timedelta(hours=2)
_FILE_STAMP = re.compile(r"_(\d{14})\.csv$", re.IGNORECASE)
_SCREEN_BLOCK_BYTES = 1 << 20
_LINES_NAMED = 10  # line numbers spelled out in a problem message


class FileLayoutError(ValueError):
    """The file's header cannot be read as the expected layout (nothing in it is used)."""

    def __init__(self, path: Path, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(f"{path.name}: {message}")
        self.path = path
        self.missing = missing


@dataclass(frozen=True)
class QuarantinedRow:
    line_number: int  # physical line in the file, the header being line 1
    raw_text: str
    reason: str


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


@dataclass
class ReturnsFileRead:
    path: Path
    returns: pa.Table  # one row per returned unit; see RETURNS_SCHEMA
    quarantined: list[QuarantinedRow]
    rows_read: int
    problems: list[str] = field(default_factory=list)
    empty: bool = False
    header_only: bool = False
    truncated: bool = False
    blank_lines: int = 0
    unknown_grades: int = 0
    unknown_actions: int = 0


_DICT = pa.dictionary(pa.int32(), pa.string())

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

RETURNS_SCHEMA = pa.schema(
    [
        ("line_number", pa.int64()),
        ("return_ref", pa.string()),
        ("order_number", pa.string()),  # null: an unexpected return
        ("line_item_id", pa.string()),
        ("sku", pa.string()),
        ("unique_sku", pa.string()),
        ("received_at", UTC_TS),
        ("grade", pa.string()),  # upper-cased
        ("grade_known", pa.bool_()),  # False: not A/B/C/BER (kept, flagged)
        ("action_taken", pa.string()),  # upper-cased, spaces/dashes as "_"
        ("action_known", pa.bool_()),
        ("action_reason", pa.string()),
        ("defect_codes", pa.list_(pa.string())),
        ("repair_cost", MONEY),
    ]
)


# --- shared reading --------------------------------------------------------------------


@dataclass
class _RawRead:
    table: pa.Table  # every layout column as string, plus line_number
    quarantined: list[QuarantinedRow]
    problems: list[str]
    empty: bool
    header_only: bool
    truncated: bool
    blank_lines: int
    rows_read: int
    last_line_number: int


def _empty_raw(layout: FileLayout, problem: str, *, empty: bool) -> _RawRead:
    columns: dict[str, pa.Array] = {c: pa.array([], pa.string()) for c in layout.columns}
    columns["line_number"] = pa.array([], pa.int64())
    return _RawRead(
        table=pa.table(columns),
        quarantined=[],
        problems=[problem],
        empty=empty,
        header_only=not empty,
        truncated=False,
        blank_lines=0,
        rows_read=0,
        last_line_number=0,
    )


def _read_header(path: Path, layout: FileLayout) -> tuple[list[str] | None, bool, bool]:
    """(column names for pyarrow, has data after the header, file ends with a line end)."""
    with path.open("rb") as handle:
        first = handle.readline()
        rest = handle.read(4096)
        size = path.stat().st_size
        ends_with_newline = True
        if size:
            handle.seek(size - 1)
            ends_with_newline = handle.read(1) in (b"\n", b"\r")
    try:
        header_text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileLayoutError(path, "the header line is not UTF-8") from None
    if not header_text.strip() and not rest.strip():
        return None, False, ends_with_newline
    header_text = header_text.rstrip("\r\n")
    if "\r" in header_text:
        raise FileLayoutError(
            path, "line ends are bare CR characters: the layout needs LF or CRLF line ends"
        )
    try:
        names = next(csv.reader([header_text], strict=True), [])
    except csv.Error as exc:
        raise FileLayoutError(path, f"the header line cannot be read as CSV: {exc}") from None
    canonical = [canonical_header(n) for n in names]
    seen: set[str] = set()
    repeated = sorted({c for c in canonical if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if repeated:
        raise FileLayoutError(path, f"repeated columns in the header: {', '.join(repeated)}")
    missing = tuple(c for c in layout.required if c not in canonical)
    if missing:
        raise FileLayoutError(
            path,
            f"not a {layout.name} file: missing required columns {', '.join(missing)}"
            + _separator_hint(header_text, layout),
            missing,
        )
    return canonical, bool(rest.strip(b"\r\n\t ")), ends_with_newline


def _ends_inside_quotes(text: str) -> bool:
    """Whether a physical line leaves a quoted field open (its record would run on)."""
    try:
        next(csv.reader([text], strict=True), None)
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


class _ScreenedLines(io.RawIOBase):
    """The file as pyarrow should see it: lines it cannot read safely replaced by blanks.

    A line that is not UTF-8, or that ends inside a quoted field, would make pyarrow
    refuse the whole file or swallow the lines after it into one record. Each such line
    (never the header) is handed on as an empty line, so every physical line still
    maps to one row, and is kept in ``screened`` with its raw text and the reason.
    Only blocks that hold a suspect byte are looked at line by line.
    """

    def __init__(self, path: Path) -> None:
        self._handle = path.open("rb")
        self._pending = b""  # screened bytes not yet handed to the reader
        self._offset = 0  # how much of ``_pending`` was handed on already
        self._carry = b""  # the start of a line whose end has not been read yet
        self._line = 0  # physical lines handed on so far
        self._eof = False
        self.screened: dict[int, QuarantinedRow] = {}

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._handle.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._offset >= len(self._pending) and not self._eof:
            self._pending, self._offset = self._next_block(), 0
        # An offset, not a re-slice: re-slicing would copy the rest of the block per call.
        size = min(len(view), len(self._pending) - self._offset)
        view[:size] = self._pending[self._offset : self._offset + size]
        self._offset += size
        return size

    def _next_block(self) -> bytes:
        data = self._handle.read(_SCREEN_BLOCK_BYTES)
        if not data:
            self._eof = True
            block, self._carry = self._carry, b""
        else:
            data = self._carry + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                self._carry = data
                return b""
            block, self._carry = data[:cut], data[cut:]
        return self._screen(block) if block else b""

    def _screen(self, block: bytes) -> bytes:
        first = self._line + 1
        self._line += block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        suspects: set[int] = set()
        try:
            block.decode("utf-8")
            undecodable = False
        except UnicodeDecodeError:
            undecodable = True
        if b'"' in block:
            suspects |= _odd_quote_lines(block)
        if not undecodable and not suspects:
            return block
        lines = block.splitlines(keepends=True)
        for index, line in enumerate(lines):
            number = first + index
            if number == 1:
                continue  # the header was checked before reading
            body = line.rstrip(b"\r\n")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = (
                    f"not UTF-8: byte 0x{body[exc.start]:02X} at byte {exc.start + 1} "
                    "(the line looks Latin-1 or Windows-1252 encoded)"
                )
                self._blank(lines, index, number, body, reason)
                continue
            if index in suspects and _ends_inside_quotes(text):
                reason = "a quoted field is not closed on its line (fields cannot span lines)"
                self._blank(lines, index, number, body, reason)
        return b"".join(lines)

    def _blank(self, lines: list[bytes], index: int, number: int, body: bytes, reason: str) -> None:
        raw = body.decode("utf-8", errors="backslashreplace")
        self.screened[number] = QuarantinedRow(number, raw, reason)
        ending = lines[index][len(body) :]
        lines[index] = ending or b"\n"


def _odd_quote_lines(block: bytes) -> set[int]:
    """Indexes (within ``block``) of the lines holding an odd number of ``"``."""
    data = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(data == ord('"'))
    ends = np.flatnonzero(data == ord("\n"))
    counts = np.bincount(np.searchsorted(ends, quotes), minlength=len(ends) + 1)
    return {int(i) for i in np.flatnonzero(counts % 2)}


def _separator_hint(header_text: str, layout: FileLayout) -> str:
    """Why the columns are missing when the file uses another separator than a comma."""
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        names = {canonical_header(n) for n in header_text.split(separator)}
        if len(names) > 1 and set(layout.required) <= names:
            return f" (the header is separated by {name}; the layout needs commas)"
    return ""


def _read_lines(path: Path, wanted: set[int]) -> dict[int, str]:
    """The raw text of the given physical lines (only used for the few quarantined rows)."""
    found: dict[int, str] = {}
    if not wanted:
        return found
    last = max(wanted)
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted:
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                found[number] = text.lstrip("\ufeff") if number == 1 else text
            if number >= last:
                break
    return found


def _column_names(names: list[str], layout: FileLayout) -> tuple[list[str], list[str]]:
    """(names to give pyarrow, with columns outside the layout renamed away; problems)."""
    pyarrow_names = [n if n in layout.columns else f"_ignored_{i}" for i, n in enumerate(names)]
    ignored = [n for n in names if n not in layout.columns]
    return pyarrow_names, [f"ignored unknown columns: {', '.join(ignored)}"] if ignored else []


def _parse_csv(
    path: Path, pyarrow_names: list[str], *, use_threads: bool
) -> tuple[pa.Table, list[tuple[int | None, str, int, int]], dict[int, QuarantinedRow]]:
    """(every wanted column as strings, rows of the wrong width, screened lines)."""
    bad_width: list[tuple[int | None, str, int, int]] = []

    def on_invalid_row(row: Any) -> str:
        bad_width.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    screened_source = _ScreenedLines(path)
    try:
        table = pacsv.read_csv(
            screened_source,
            read_options=pacsv.ReadOptions(
                column_names=pyarrow_names,
                skip_rows=1,
                use_threads=use_threads,  # row.number is None when threaded
                block_size=_READ_BLOCK_BYTES,
            ),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid_row, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in pyarrow_names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                include_columns=[n for n in pyarrow_names if not n.startswith("_ignored_")],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise FileLayoutError(path, f"cannot be read as CSV: {exc}") from None
    finally:
        screened_source.close()
    return table, bad_width, screened_source.screened


def _read_raw(path: Path, layout: FileLayout) -> _RawRead:
    path = Path(path)
    names, has_data, ends_with_newline = _read_header(path, layout)
    if names is None:
        return _empty_raw(layout, "file is empty", empty=True)
    if not has_data:
        return _empty_raw(layout, "file holds a header and no rows", empty=False)

    pyarrow_names, problems = _column_names(names, layout)
    # Read on all cores first; only a file with rows of the wrong width is read again on
    # one thread, the only way pyarrow gives those rows their line numbers.
    table, bad_width, screened = _parse_csv(path, pyarrow_names, use_threads=True)
    if bad_width:
        table, bad_width, screened = _parse_csv(path, pyarrow_names, use_threads=False)

    for column in layout.columns:  # optional columns absent from the header read as empty
        if column not in table.column_names:
            table = table.append_column(column, pa.array([""] * table.num_rows, pa.string()))
    table = table.select(list(layout.columns))

    # Every physical data line is either a parsed row or an invalid one, in order.
    invalid_numbers = np.array([n for n, *_ in bad_width if n is not None], dtype=np.int64)
    total_lines = table.num_rows + len(bad_width)
    all_numbers = np.arange(2, 2 + total_lines, dtype=np.int64)
    row_numbers = all_numbers[~np.isin(all_numbers, invalid_numbers)]
    table = table.append_column("line_number", pa.array(row_numbers[: table.num_rows]))
    last_line_number = int(all_numbers[-1]) if total_lines else 1

    if screened:  # the blanks standing in for screened lines are not blank lines
        table = table.filter(
            pc.invert(pc.is_in(table["line_number"], value_set=pa.array(list(screened))))
        )

    blank = None
    # A blank line is empty in every column: look at the others only where the first is.
    first_empty = pc.match_substring_regex(table[layout.columns[0]], r"^\s*$")
    if pc.any(first_empty).as_py():
        for column in layout.columns:
            is_empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(table[column])), 0)
            blank = is_empty if blank is None else pc.and_(blank, is_empty)
    blank_lines = int(pc.sum(blank).as_py() or 0) if blank is not None else 0
    if blank_lines:
        table = table.filter(pc.invert(blank))
        problems.append(f"{blank_lines} blank line(s) skipped")

    truncated = not ends_with_newline
    quarantined: list[QuarantinedRow] = []
    for number, text, expected, actual in bad_width:
        line = number if number is not None else -1
        if truncated and line == last_line_number:
            reason = f"file cut short: last line has {actual} of {expected} fields"
        else:
            reason = f"expected {expected} fields, found {actual}"
        quarantined.append(QuarantinedRow(line, text, reason))
    for number, row in screened.items():
        if truncated and number == last_line_number:
            row = QuarantinedRow(number, row.raw_text, f"file cut short: {row.reason}")
        quarantined.append(row)
    if truncated:
        problems.append("file cut short: no line end after the last line")

    return _RawRead(
        table=table,
        quarantined=quarantined,
        problems=problems,
        empty=False,
        header_only=table.num_rows == 0 and not quarantined,
        truncated=truncated,
        blank_lines=blank_lines,
        rows_read=table.num_rows + len(quarantined),
        last_line_number=last_line_number,
    )


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


# --- stock units -------------------------------------------------------------------------


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


def _strictly_increasing(values: pa.Array) -> bool:
    if len(values) < 2:
        return True
    ordered = pc.less(values.slice(0, len(values) - 1), values.slice(1))
    return bool(pc.all(ordered).as_py())


def _resolve_duplicates(table: pa.Table) -> tuple[pa.Table, int, list[StatusConflict]]:
    """Keep each unit's latest row; mark units whose latest rows disagree as conflicting."""
    unique_skus = table["unique_sku"].combine_chunks()
    if _strictly_increasing(unique_skus):
        return table, 0, []  # a file in unit order shows it lists no unit twice in one pass
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


# How the clean read types each column (see ``_read_clean_units``).
_CLEAN_UNIT_TYPES: dict[str, pa.DataType] = {
    "account_code": _DICT,
    "snapshot_at": UTC_TS,
    "sku": _DICT,
    "unique_sku": pa.string(),
    "rfid_epc": pa.string(),
    "status": _DICT,
    "location_code": _DICT,
    "grade": _DICT,
    "last_event_at": UTC_TS,
    "order_number": pa.string(),
    "expected_return_date": pa.date32(),
}
# Columns the careful path quarantines a row for when blank (``account_code`` is kept
# blank there, not null, so a blank one also takes the careful path).
_CLEAN_UNIT_REQUIRED = (
    "account_code",
    "sku",
    "unique_sku",
    "status",
    "snapshot_at",
    "last_event_at",
)


def _reject_row(_row: Any) -> str:
    return "error"  # a row of the wrong width: stop reading at once


def _read_clean_units(path: Path) -> _RawRead | None:
    """The snapshot parsed straight into its types on all cores, or None if it is not clean.

    Nearly every day's file is clean: every row has its fields, every timestamp is an
    ISO-8601 one with a zone, no value has spaces around it and no required value is
    blank. Such a file is read in one multi-threaded pass with Arrow's own converters
    (timestamps and dates parsed and checked, low-cardinality columns dictionary-encoded
    as they are read), keeping no string copy of the timestamps. Anything the careful
    path would quarantine, trim, screen or report makes this return None, and the file is
    read again by ``_read_raw``; both paths give the same result on a clean file.
    """
    names, has_data, ends_with_newline = _read_header(path, STOCK_UNITS_LAYOUT)
    if names is None or not has_data or not ends_with_newline:
        return None
    if not set(STOCK_UNITS_LAYOUT.columns) <= set(names):
        return None
    pyarrow_names, problems = _column_names(names, STOCK_UNITS_LAYOUT)
    if _needs_screening(path, check_utf8=len(names) > len(STOCK_UNITS_LAYOUT.columns)):
        return None
    # Read from the path itself, not through ``_ScreenedLines``: Arrow then reads ahead on
    # its own threads instead of calling back into Python for every block.
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=pyarrow_names, skip_rows=1, block_size=_READ_BLOCK_BYTES
            ),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=_reject_row, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=_CLEAN_UNIT_TYPES,
                include_columns=list(STOCK_UNITS_LAYOUT.columns),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                timestamp_parsers=[pacsv.ISO8601],
            ),
        )
    except pa.ArrowInvalid:
        return None  # a value Arrow cannot convert, a row of the wrong width, bad bytes
    if any(table[c].null_count for c in _CLEAN_UNIT_REQUIRED):
        return None
    table = table.unify_dictionaries()
    text_columns = [c for c, t in _CLEAN_UNIT_TYPES.items() if t in (_DICT, pa.string())]
    if any(_needs_trim(table[c]) for c in text_columns):
        return None
    rows = table.num_rows
    expected = table["expected_return_date"].cast(pa.timestamp("us")).cast(UTC_TS)
    table = table.set_column(
        table.schema.get_field_index("expected_return_date"), "expected_return_date", expected
    ).append_column("line_number", pa.array(np.arange(2, rows + 2, dtype=np.int64)))
    return _RawRead(
        table=table,
        quarantined=[],
        problems=problems,
        empty=False,
        header_only=False,
        truncated=False,
        blank_lines=0,
        rows_read=rows,
        last_line_number=rows + 1,
    )


def _needs_screening(path: Path, *, check_utf8: bool) -> bool:
    """Whether a line leaves a quoted field open or (with ``check_utf8``) is not UTF-8:
    what ``_ScreenedLines`` quarantines.

    Most files hold no quote at all, which one ``find`` over the mapped file shows without
    copying it. Arrow checks the UTF-8 of every column it converts, so only a file with
    columns it skips needs ``check_utf8``.
    """
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        if not check_utf8 and view.find(b'"') < 0:
            return False
        start, size = 0, len(view)
        while start < size:
            end = view.rfind(b"\n", start, start + _READ_BLOCK_BYTES) + 1
            if end <= start:  # a line longer than a block, or the last line
                newline = view.find(b"\n", start + _READ_BLOCK_BYTES)
                end = size if newline < 0 else newline + 1
            block = view[start:end]
            start = end
            if check_utf8 and not block.isascii():
                try:
                    block.decode("utf-8")
                except UnicodeDecodeError:
                    return True
            if b'"' in block and _odd_quote_lines(block):
                return True
    return False


def _needs_trim(column: pa.ChunkedArray) -> bool:
    """Whether any value starts or ends with white space (what ``_trimmed`` would change).

    Looks only at each value's first and last byte (numpy over the Arrow buffers); a value
    starting or ending with a non-ASCII byte is checked the exact (slower) way.
    """
    for chunk in column.chunks:
        values = chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk
        if len(values) == 0:
            continue
        if pa.types.is_large_string(values.type):
            return True
        offsets_buffer, data_buffer = values.buffers()[1:3]
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[
            values.offset : values.offset + len(values) + 1
        ]
        if data_buffer is None or offsets[-1] == offsets[0]:
            continue
        data = np.frombuffer(data_buffer, dtype=np.uint8)
        starts, ends = offsets[:-1], offsets[1:]
        filled = ends > starts
        first, last = data[starts[filled]], data[ends[filled] - 1]
        edge = (first <= 0x20) | (last <= 0x20) | (first >= 0x80) | (last >= 0x80)
        if edge.any() and _trimmed(values) is not values:
            return True
    return False


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
    ahead = pc.greater(
        good["last_event_at"], pc.add(good["snapshot_at"], pa.scalar(_FUTURE_TOLERANCE))
    )
    future_lines = pc.filter(good["line_number"], ahead).to_pylist()
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


# --- returns -------------------------------------------------------------------------


def _parse_money_values(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    parsed: list[Decimal | None] = []
    bad: list[bool] = []
    for text in values.to_pylist():
        stripped = (text or "").strip()
        if not stripped:
            parsed.append(None)
            bad.append(False)
            continue
        amount: Decimal | None = None
        ok = False
        if _MONEY_SHAPE.match(stripped):
            try:
                exact = Decimal(stripped.lstrip("£").strip().replace(",", ""))
                amount = exact.quantize(Decimal("0.01"))
                # More than pennies ("12.505") is not an amount we can post.
                ok = amount == exact and amount < Decimal("1e10")
            except InvalidOperation:
                amount = None
        parsed.append(amount if ok else None)
        bad.append(not ok)
    return pa.array(parsed, MONEY), pa.array(bad, pa.bool_())


def _defect_lists(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    text = pc.replace_substring_regex(_trimmed(column), r"\s*\|\s*", "|")
    text = pc.replace_substring_regex(text, r"\|{2,}", "|")
    text = pc.utf8_trim(text, "|")
    lists = pc.split_pattern(text, "|")
    return pc.if_else(pc.equal(text, ""), pa.scalar([], pa.list_(pa.string())), lists)


def read_returns(path: Path, times: AcsTimeRules = DEFAULT_TIME_RULES) -> ReturnsFileRead:
    """Read a ``returns_*.csv`` file. Raises only ``FileLayoutError`` (unusable header)."""
    path = Path(path)
    raw = _read_raw(path, RETURNS_LAYOUT)
    table = raw.table
    received_at = _parse_utc(table["received_at"], times=times)
    grade = pc.utf8_upper(_trimmed(table["grade"]))
    action = pc.utf8_upper(
        pc.replace_substring_regex(_trimmed(table["action_taken"]), r"[\s\-]+", "_")
    )
    cost_column = table["repair_cost"].combine_chunks()
    encoded_cost = pc.dictionary_encode(cost_column)
    cost_values, cost_bad = _parse_money_values(encoded_cost.dictionary)
    repair_cost = pc.take(cost_values, encoded_cost.indices)
    repair_cost_bad = pc.take(cost_bad, encoded_cost.indices)

    reasons = _Reasons(table.num_rows)
    for column in ("return_ref", "sku", "unique_sku"):
        reasons.add(pc.equal(_trimmed(table[column]), ""), f"empty {column}")
    _time_reasons(
        reasons,
        table["received_at"],
        received_at,
        "received_at is not an ISO-8601 timestamp",
        times,
    )
    reasons.add(
        repair_cost_bad,
        "repair_cost is not an amount of money (expected e.g. 12.50, £12.50 or 1,250.00)",
    )
    typed = pa.table(
        {
            "line_number": table["line_number"],
            "return_ref": _trimmed(table["return_ref"]),
            "order_number": _blank_to_null(_trimmed(table["order_number"])),
            "line_item_id": _blank_to_null(_trimmed(table["line_item_id"])),
            "sku": _trimmed(table["sku"]),
            "unique_sku": _trimmed(table["unique_sku"]),
            "received_at": received_at,
            "grade": grade,
            "grade_known": pc.is_in(grade, value_set=pa.array(RETURN_GRADES)),
            "action_taken": action,
            "action_known": pc.is_in(action, value_set=pa.array(RETURN_ACTIONS)),
            "action_reason": _blank_to_null(_trimmed(table["action_reason"])),
            "defect_codes": _defect_lists(table["defect_codes"]),
            "repair_cost": repair_cost,
        }
    )
    good, quarantined = reasons.split(path, typed, raw)
    good = good.cast(RETURNS_SCHEMA)
    problems = list(raw.problems)
    stamp = _file_stamp(path)
    if stamp is not None and good.num_rows:
        ahead = pc.greater(good["received_at"], pa.scalar(stamp + _FUTURE_TOLERANCE, UTC_TS))
        future_lines = pc.filter(good["line_number"], ahead).to_pylist()
        if future_lines:
            problems.append(
                f"received_at later than the file's time stamp on {len(future_lines)} row(s) "
                f"({_lines_text(future_lines)}): kept as read; check ACS's clock"
            )
    unknown_grades = int(pc.sum(pc.invert(good["grade_known"])).as_py() or 0)
    unknown_actions = int(pc.sum(pc.invert(good["action_known"])).as_py() or 0)
    if unknown_grades:
        problems.append(f"{unknown_grades} row(s) with a grade other than A, B, C, BER")
    if unknown_actions:
        problems.append(f"{unknown_actions} row(s) with an unknown action_taken")
    all_quarantined = _finish_quarantine(raw.quarantined + quarantined)
    if all_quarantined:
        problems.append(f"{len(all_quarantined)} row(s) quarantined")
    return ReturnsFileRead(
        path=path,
        returns=good,
        quarantined=all_quarantined,
        rows_read=raw.rows_read,
        problems=problems,
        empty=raw.empty,
        header_only=raw.header_only,
        truncated=raw.truncated,
        blank_lines=raw.blank_lines,
        unknown_grades=unknown_grades,
        unknown_actions=unknown_actions,
    )
