"""The fast read of a clean stock-units snapshot (nearly every day's file).

``_read_clean_units`` parses the file straight into its types on all cores, or returns
None as soon as anything (a quote left open, a non-UTF-8 line, a value with spaces
around it, a blank required value, a row of the wrong width) needs the careful read.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from acs_khaos_dagster.connectors.acs.file_layouts import (
    STOCK_UNITS_LAYOUT,
)
from acs_khaos_dagster.connectors.acs.files.raw import (
    _READ_BLOCK_BYTES,
    _column_names,
    _odd_quote_lines,
    _RawRead,
    _read_header,
)
from acs_khaos_dagster.connectors.acs.files.values import _DICT, UTC_TS, _trimmed

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
