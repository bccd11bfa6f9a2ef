"""The ``returns_*.csv`` file: ``read_returns`` and what it returns.

Grades and actions are upper-cased and flagged when unknown (kept, not quarantined);
``repair_cost`` is read as money (pennies at most, an optional pound sign, thousands
separators in their places); ``defect_codes`` becomes a list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from acs_khaos_dagster.connectors.acs.file_layouts import (
    RETURN_ACTIONS,
    RETURN_GRADES,
    RETURNS_LAYOUT,
)
from acs_khaos_dagster.connectors.acs.files.raw import QuarantinedRow, _read_raw
from acs_khaos_dagster.connectors.acs.files.values import (
    _FUTURE_TOLERANCE,
    UTC_TS,
    _blank_to_null,
    _file_stamp,
    _finish_quarantine,
    _lines_text,
    _parse_utc,
    _Reasons,
    _time_reasons,
    _trimmed,
)
from acs_khaos_dagster.connectors.acs.times import (
    DEFAULT_TIME_RULES,
    AcsTimeRules,
)

MONEY = pa.decimal128(12, 2)
# Money as ACS writes it: digits with at most two decimals, an optional pound sign and
# thousands separators only in their places ("1,250.00"); "12,50" is not an amount.
_MONEY_SHAPE = re.compile(r"^£?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


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
