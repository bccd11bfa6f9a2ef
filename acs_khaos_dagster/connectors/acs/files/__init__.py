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

The readers live in this package's modules: ``raw`` (the header, screened lines, rows of
the wrong width), ``values`` (typing columns, timestamps, quarantine reasons),
``stock_units`` and ``stock_units_clean`` (the snapshot), ``returns`` (the returns file).
"""

from __future__ import annotations

from acs_khaos_dagster.connectors.acs.files.raw import FileLayoutError, QuarantinedRow
from acs_khaos_dagster.connectors.acs.files.returns import (
    MONEY,
    RETURNS_SCHEMA,
    ReturnsFileRead,
    read_returns,
)
from acs_khaos_dagster.connectors.acs.files.stock_units import (
    STOCK_UNITS_SCHEMA,
    StatusConflict,
    StockFileRead,
    read_stock_units,
)
from acs_khaos_dagster.connectors.acs.files.values import UTC_TS

__all__ = [
    "MONEY",
    "RETURNS_SCHEMA",
    "STOCK_UNITS_SCHEMA",
    "UTC_TS",
    "FileLayoutError",
    "QuarantinedRow",
    "ReturnsFileRead",
    "StatusConflict",
    "StockFileRead",
    "read_returns",
    "read_stock_units",
]
