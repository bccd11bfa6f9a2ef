"""Reading an ACS CSV drop into string columns, one row per physical line.

The header is checked against the layout (``FileLayoutError`` when it cannot be used);
lines that are not UTF-8 or that leave a quoted field open are screened out as pyarrow
streams the file (``_ScreenedLines``); rows of the wrong width, blank lines, an empty,
header-only or cut-short file are all reported in a ``_RawRead``, never dropped silently.
Typing the columns is left to the stock and returns readers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from acs_khaos_dagster.connectors.acs.file_layouts import (
    FileLayout,
    canonical_header,
)

_READ_BLOCK_BYTES = 8 << 20
_SCREEN_BLOCK_BYTES = 1 << 20


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
