"""Returns: ACS graded units to Khaos customer returns, credits, write-offs and the refund clock.

Pure: no Dagster, no network, no database. Input is the ACS returns table
(``connectors.acs.files.RETURNS_SCHEMA`` as pandas, plus an optional ``batch_id``
column naming the file the row came in) and Khaos records from ``domain.models``.

Pipeline
--------
1. ``match_returns``      each returned unit, keyed by (``return_ref``, ``unique_sku``),
                          linked to its source order line, or a ``return_unmatched``
                          problem (owner operations) — never a guess.
2. ``apply_grade_policy`` each matched unit's Khaos return reason, credit mode and
                          write-off flag from ``GradePolicy``; an unknown grade (or an
                          unknown, non-blank action) is an ``unknown_grade`` problem and
                          the unit is neither posted nor restocked.
3. ``plan_return_postings`` the Khaos customer returns (``ImportCustomerReturns``) to put
                          in the outbox: one per (return, arrival batch, credit mode),
                          ``AssociatedRef`` = ``{return_ref}-P{n}``.
4. ``plan_write_offs``    stock adjustments for units still in Khaos's Level: a BER or
                          disposed hire unit (``WRITEOFF``), an ex-hired unit moved to
                          resale (paired ``EXHIRE``).
5. ``refund_due``         the 14-day refund clock (owner finance).
6. ``repair_costs``, ``returns_summary`` for finance and the demo.

One mover per event (``shared/ARCHITECTURE.md``)
------------------------------------------------
- A sale return restocked moves Level through the customer return's "return to stock"
  reason; nothing here adjusts it.
- A sale return graded BER or disposed is posted with a write-off reason and gets **no**
  adjustment: the unit left Level when its invoice was issued.
- Hire units never left Level (a hire invoice does not move it) and a hire return raises
  no credit. By default hire returns are **not** posted as customer returns at all: the
  snapshot push moves hire units between the hire sites, and a "return to stock" customer
  return would add a unit that never left. Set ``GradePolicy.post_hire_returns`` to record
  them in Khaos anyway, always with credit mode ``none`` and a write-off reason (so they
  never move Level). A BER/disposed hire unit is written off by adjustment; an ex-hired
  hire unit going to resale is moved by a paired adjustment.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from acs_khaos_dagster.domain.layout import (
    DEFAULT_RETURN_REASONS,
    RETURN_TO_STOCK,
    WRITE_OFF,
    KhaosReasons,
    KhaosSites,
    ReturnProcessing,
)
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    CreditMode,
    CustomerReturn,
    Record,
    ReturnItem,
    SalesOrder,
    StockAdjustmentGroup,
    StockItem,
)
from acs_khaos_dagster.domain.shipments import posted_quantities_from_invoices

GRADES: tuple[str, ...] = ("A", "B", "C", "BER")
ACTIONS: tuple[str, ...] = (
    "RESTOCK",
    "CLEAN",
    "REPAIR",
    "QUARANTINE",
    "RESALE",
    "EX_HIRE",
    "DISPOSE",
)
# The modelled install's return reasons by processing type. A real install names its own
# (``khaos.reasons.return_reasons``); the settings hand them to the grade policy.
RETURN_TO_STOCK_REASONS = KhaosReasons().returned_to_stock
WRITE_OFF_REASONS = KhaosReasons().written_off
UK_TIME_ZONE = "Europe/London"

UnitKey = tuple[str, str]  # (return_ref, unique_sku)
LineKey = tuple[str, int]  # (order_number, order_item_id): line ids may restart in each order


# --- policy ---------------------------------------------------------------------------


class GradeRule(BaseModel):
    """What happens in Khaos to a returned sale unit: its return reason and credit mode.

    Whether the unit is written off follows from the reason's processing type in the
    install (``GradePolicy.writes_off``): a write-off reason leaves Khaos's Level alone
    (and, for a unit still in Level, asks for a write-off adjustment).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    return_reason: str
    credit_mode: CreditMode

    @field_validator("return_reason")
    @classmethod
    def _upper_reason(cls, value: str) -> str:
        return value.strip().upper()


def default_grade_rules() -> dict[str, GradeRule]:
    return {
        "A": GradeRule(return_reason="RESTOCK", credit_mode=CreditMode.AUTO),
        "B": GradeRule(return_reason="RESTOCK", credit_mode=CreditMode.AUTO),
        "C": GradeRule(return_reason="RESTOCK", credit_mode=CreditMode.REVIEW),
        "BER": GradeRule(return_reason="BER", credit_mode=CreditMode.REVIEW),
        "*:DISPOSE": GradeRule(return_reason="WRITEOFF", credit_mode=CreditMode.REVIEW),
    }


def _rule_key(grade: str, action: str = "") -> str:
    grade = grade.strip().upper()
    action = action.strip().upper().replace(" ", "_").replace("-", "_")
    return f"{grade}:{action}" if action else grade


class GradePolicy(BaseModel):
    """Grade (and, where it matters, action taken) → Khaos return reason and credit mode.

    Keys: ``"GRADE"`` (the grade's rule), ``"GRADE:ACTION"`` (that grade with that action)
    or ``"*:ACTION"`` (any grade with that action). The most specific key wins:
    ``GRADE:ACTION``, then ``*:ACTION``, then ``GRADE``. A grade with no plain ``GRADE``
    rule is unknown. Defaults (sale returns):

    | grade / action | Khaos return reason | credit | written off |
    | --- | --- | --- | --- |
    | A (RESTOCK) | RESTOCK (return to stock) | auto | no |
    | B (after CLEAN or REPAIR) | RESTOCK (return to stock) | auto | no |
    | C (REPAIR, QUARANTINE, RESALE) | RESTOCK (return to stock) | review | no |
    | BER | BER (write off) | review | yes |
    | any grade, action DISPOSE | WRITEOFF (write off) | review | yes |
    | unknown grade | — not posted, ``unknown_grade`` problem | — | — |

    Why C in quarantine is returned to stock: the unit is physically at ACS, so it belongs
    in Khaos's Level; the stock status policy puts a quarantined unit on the non-sellable
    quarantine site (the snapshot push moves it there), never on the selling site. Only a
    unit that leaves for good (BER, DISPOSE) is written off.

    Hire returns never raise a credit (``none``) and are not posted unless
    ``post_hire_returns`` (then with ``hire_return_reason``, a write-off reason, so the
    customer return never moves Level). A hire unit with an action in
    ``ex_hire_to_resale_actions`` that is not written off is moved to its resale StockID.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: dict[str, GradeRule] = Field(default_factory=default_grade_rules, validate_default=True)
    post_hire_returns: bool = False
    hire_return_reason: str = "WRITEOFF"
    ex_hire_to_resale_actions: frozenset[str] = frozenset({"EX_HIRE", "RESALE"})
    # The install's return reasons and their processing types; the settings fill this from
    # ``khaos.reasons.return_reasons`` so the policy can only name reasons Khaos knows.
    return_reasons: dict[str, ReturnProcessing] = Field(
        default_factory=lambda: dict(DEFAULT_RETURN_REASONS)
    )

    @field_validator("rules")
    @classmethod
    def _normalise_keys(cls, rules: dict[str, GradeRule]) -> dict[str, GradeRule]:
        out: dict[str, GradeRule] = {}
        for raw, rule in rules.items():
            grade, _, action = raw.partition(":")
            if not grade.strip() or (":" in raw and not action.strip()):
                raise ValueError(
                    f"grade policy key {raw!r} must be GRADE, GRADE:ACTION or *:ACTION"
                )
            if grade.strip() == "*" and not action.strip():
                raise ValueError("a '*' key needs an action ('*:ACTION')")
            out[_rule_key(grade, action)] = rule
        return out

    @field_validator("hire_return_reason")
    @classmethod
    def _upper_hire_reason(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("return_reasons")
    @classmethod
    def _upper_return_reasons(
        cls, value: dict[str, ReturnProcessing]
    ) -> dict[str, ReturnProcessing]:
        return {reason.strip().upper(): kind for reason, kind in value.items()}

    @model_validator(mode="after")
    def _reasons_known_to_the_install(self) -> GradePolicy:
        known = sorted(self.return_reasons)
        for key, rule in self.rules.items():
            if rule.return_reason not in self.return_reasons:
                raise ValueError(
                    f"grade rule {key}: unknown Khaos return reason {rule.return_reason!r}; "
                    f"the install's reasons are {known}"
                )
        if self.return_reasons.get(self.hire_return_reason) != WRITE_OFF:
            raise ValueError(
                "hire_return_reason must be a write-off reason: a hire unit never left "
                "Level, so a 'return to stock' would count it twice"
            )
        return self

    def writes_off(self, rule: GradeRule) -> bool:
        """The rule's reason is processed "write off" in Khaos (Level not raised)."""
        return self.return_reasons.get(rule.return_reason) == WRITE_OFF

    def restocks(self, rule: GradeRule) -> bool:
        """The rule's reason is processed "return to stock" in Khaos (Level raised)."""
        return self.return_reasons.get(rule.return_reason) == RETURN_TO_STOCK

    @field_validator("ex_hire_to_resale_actions")
    @classmethod
    def _upper_actions(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(_rule_key("X", a).partition(":")[2] for a in value if a.strip())

    @model_validator(mode="after")
    def _grades_present(self) -> GradePolicy:
        if not any(":" not in key for key in self.rules):
            raise ValueError("the grade policy needs at least one plain GRADE rule")
        return self

    def knows_grade(self, grade: str) -> bool:
        return _rule_key(grade) in self.rules and ":" not in _rule_key(grade)

    def known_actions(self) -> frozenset[str]:
        named = {key.partition(":")[2] for key in self.rules if ":" in key}
        return frozenset(ACTIONS) | named | self.ex_hire_to_resale_actions

    def rule_for(self, grade: str, action: str | None = None) -> GradeRule | None:
        """The rule for ``grade`` with ``action``; ``None`` when the grade is unknown."""
        if not self.knows_grade(grade):
            return None
        act = _rule_key("X", action or "").partition(":")[2]
        if act:
            for key in (_rule_key(grade, act), _rule_key("*", act)):
                if key in self.rules:
                    return self.rules[key]
        return self.rules[_rule_key(grade)]


DEFAULT_GRADE_POLICY = GradePolicy()


# --- problems -------------------------------------------------------------------------


class ReturnProblemKind(StrEnum):
    RETURN_UNMATCHED = "return_unmatched"  # no order, unknown order/line, SKU not on it, excess
    UNKNOWN_GRADE = "unknown_grade"  # grade (or non-blank action) the policy does not know
    RESALE_UNMAPPED = "resale_unmapped"  # ex-hire to resale with no resale StockID
    STOCK_ITEM_UNKNOWN = "stock_item_unknown"  # a unit to adjust whose StockID is not known


_EXCEPTION_OWNER = {
    "return_unmatched": "operations",
    "unknown_grade": "integration",
    "resale_unmapped": "ecommerce",
    "stock_item_unknown": "ecommerce",
}


class ReturnProblem(Record):
    """Why a returned unit is not posted (or not adjusted) as it stands."""

    kind: ReturnProblemKind
    return_ref: str
    unique_sku: str
    message: str
    order_number: str = ""
    sku: str = ""

    @property
    def exception_type(self) -> str:
        """The ``store.exceptions.ExceptionType`` value, named like the problem kind."""
        return str(self.kind)

    @property
    def owner(self) -> str:
        """The store's default owner of ``exception_type`` (the store's map decides)."""
        return _EXCEPTION_OWNER[self.exception_type]

    @property
    def exception_ref(self) -> str:
        """One exception per unit and kind: the same unit seen again updates the same row."""
        return f"return:{self.kind}:{self.return_ref}:{self.unique_sku}"


# --- 1. matching ----------------------------------------------------------------------

MATCHED_COLUMNS: tuple[str, ...] = (
    "return_ref",
    "unique_sku",
    "batch_id",
    "line_number",
    "order_number",
    "line_item_id",
    "order_item_id",
    "stock_id",
    "stock_code",
    "sku",
    "customer_urn",
    "unit_net",
    "is_hire",
    "received_at",
    "grade",
    "action_taken",
    "action_reason",
    "defect_codes",
    "repair_cost",
)
"""``match_returns`` output: one row per matched unit. ``order_item_id``/``stock_id``/
``stock_code``/``unit_net``/``is_hire``/``customer_urn`` come from the Khaos order line."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value).strip()


def _utc(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return ts.tz_convert("UTC").to_pydatetime()


def _money(value: Any) -> Decimal:
    text = _text(value)
    return Decimal(text) if text else Decimal("0")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records") if not frame.empty else []


def _empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def match_returns(
    returns: pd.DataFrame,
    orders: Mapping[str, SalesOrder],
    acs_sku_for_stock_id: Mapping[int, str],
    despatched: Mapping[LineKey, int] | None = None,
    *,
    matched_before: Mapping[UnitKey, LineKey] | None = None,
    batch_id: str = "",
) -> tuple[pd.DataFrame, list[ReturnProblem]]:
    """Link each returned unit to its source Khaos order line (``MATCHED_COLUMNS``).

    - A unit is keyed by (``return_ref``, ``unique_sku``); the same key twice in
      ``returns`` is one unit (the first row in input order is kept: pass files in
      arrival order). ``batch_id`` comes from a ``batch_id`` column if present (the file
      name or ledger id), else from the ``batch_id`` argument.
    - The order is ``orders[order_number]`` (Khaos ``order_code`` = ACS order number).
      The line is the one whose ``order_item_id`` is ``line_item_id``; a blank
      ``line_item_id`` is accepted only when exactly one line of the order carries the
      SKU. The returned SKU must be the line's: its ACS SKU from ``acs_sku_for_stock_id``
      (the identity map), or its stock code when the map has no entry for the StockID.
    - ``return_unmatched`` (owner operations), never a guess, when: no order number; an
      unknown order; an unknown or non-numeric line; a SKU not on that line (or not on
      the order); more units returned on a line than were despatched on it.
    - ``despatched``: units despatched per line, keyed by (``order_number``,
      ``order_item_id``) (default: read from the orders' invoices that carry a despatch
      reference). ``matched_before``: units matched in earlier runs that are not in
      ``returns`` → their (``order_number``, ``order_item_id``); they count against the
      despatched quantity. Lines are always counted per order: an install may number its
      line ids per order (1, 2, … in each), so a line id alone names no line. Over the
      limit, the earliest received units (then ``return_ref``, ``unique_sku``) are
      accepted and the rest rejected.
    """
    problems: list[ReturnProblem] = []
    rows: list[dict[str, Any]] = []
    seen: set[UnitKey] = set()
    for raw in _records(returns):
        key = (_text(raw.get("return_ref")), _text(raw.get("unique_sku")))
        if key in seen:
            continue
        seen.add(key)
        row = dict(raw)
        row["return_ref"], row["unique_sku"] = key
        row["batch_id"] = _text(raw.get("batch_id")) or batch_id
        row["received_at"] = _utc(raw.get("received_at"))
        linked = _link(row, orders, acs_sku_for_stock_id)
        if isinstance(linked, ReturnProblem):
            problems.append(linked)
        else:
            rows.append(linked)

    accepted, excess = _within_despatched(rows, orders, despatched, matched_before or {})
    problems.extend(excess)
    if not accepted:
        return _empty(MATCHED_COLUMNS), problems
    frame = pd.DataFrame(accepted)
    for column in MATCHED_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(MATCHED_COLUMNS)].reset_index(drop=True), problems


def _unmatched(row: Mapping[str, Any], message: str) -> ReturnProblem:
    return ReturnProblem(
        kind=ReturnProblemKind.RETURN_UNMATCHED,
        return_ref=row["return_ref"],
        unique_sku=row["unique_sku"],
        order_number=_text(row.get("order_number")),
        sku=_text(row.get("sku")),
        message=message,
    )


def _line_sku(stock_id: int, stock_code: str, identity: Mapping[int, str]) -> str:
    return identity.get(stock_id, stock_code)


def _link(
    row: dict[str, Any], orders: Mapping[str, SalesOrder], identity: Mapping[int, str]
) -> dict[str, Any] | ReturnProblem:
    ref, unit, sku = row["return_ref"], row["unique_sku"], _text(row.get("sku"))
    order_number = _text(row.get("order_number"))
    what = f"Return {ref} unit {unit} ({sku})"
    if not order_number:
        return _unmatched(
            row,
            f"{what} names no order (an unexpected return): find the customer's order and "
            "raise the return in Khaos by hand, or ask ACS for the order number.",
        )
    order = orders.get(order_number)
    if order is None:
        return _unmatched(row, f"{what}: order {order_number} is not known to Khaos.")
    line_item_id = _text(row.get("line_item_id"))
    if line_item_id:
        line = next(
            (
                li
                for li in order.lines
                if line_item_id.isdigit() and li.order_item_id == int(line_item_id)
            ),
            None,
        )
        if line is None:
            return _unmatched(row, f"{what}: order {order_number} has no line {line_item_id}.")
        if _line_sku(line.stock_id, line.stock_code, identity) != sku:
            return _unmatched(
                row,
                f"{what}: SKU {sku} is not on line {line_item_id} of order {order_number} "
                f"(that line is {_line_sku(line.stock_id, line.stock_code, identity)}).",
            )
    else:
        candidates = [
            li for li in order.lines if _line_sku(li.stock_id, li.stock_code, identity) == sku
        ]
        if len(candidates) != 1:
            why = "is not on" if not candidates else "is on several lines of"
            return _unmatched(row, f"{what}: SKU {sku} {why} order {order_number}.")
        line = candidates[0]
    row.update(
        order_number=order_number,
        line_item_id=line_item_id or str(line.order_item_id),
        order_item_id=line.order_item_id,
        stock_id=line.stock_id,
        stock_code=line.stock_code,
        sku=sku,
        customer_urn=order.customer_urn,
        unit_net=line.unit_net,
        is_hire=line.is_hire,
    )
    return row


def _within_despatched(
    rows: list[dict[str, Any]],
    orders: Mapping[str, SalesOrder],
    despatched: Mapping[LineKey, int] | None,
    matched_before: Mapping[UnitKey, LineKey],
) -> tuple[list[dict[str, Any]], list[ReturnProblem]]:
    limits: dict[LineKey, int] = dict(despatched) if despatched is not None else {}
    if despatched is None:
        for number in {r["order_number"] for r in rows}:
            posted = posted_quantities_from_invoices(orders[number])
            limits.update({(number, oid): qty for oid, qty in posted.items()})
    current = {(r["return_ref"], r["unique_sku"]) for r in rows}
    used: dict[LineKey, int] = {}
    for key, line in matched_before.items():
        if key not in current:
            used[line] = used.get(line, 0) + 1
    far_future = datetime.max.replace(tzinfo=UTC)
    accepted: list[dict[str, Any]] = []
    problems: list[ReturnProblem] = []
    for row in sorted(
        rows, key=lambda r: (r["received_at"] or far_future, r["return_ref"], r["unique_sku"])
    ):
        oid = (row["order_number"], row["order_item_id"])
        limit = limits.get(oid, 0)
        if used.get(oid, 0) >= limit:
            problems.append(
                _unmatched(
                    row,
                    f"Return {row['return_ref']} unit {row['unique_sku']} ({row['sku']}): line "
                    f"{row['line_item_id']} of order {row['order_number']} has {limit} unit(s) "
                    f"despatched and {used.get(oid, 0)} already returned: this unit was never "
                    "despatched on it.",
                )
            )
            continue
        used[oid] = used.get(oid, 0) + 1
        accepted.append(row)
    order = {(r["return_ref"], r["unique_sku"]): i for i, r in enumerate(rows)}
    accepted.sort(key=lambda r: order[(r["return_ref"], r["unique_sku"])])
    return accepted, problems


# --- 2. grading -----------------------------------------------------------------------

GRADED_COLUMNS: tuple[str, ...] = (
    *MATCHED_COLUMNS,
    "return_reason",
    "credit_mode",
    "written_off",
    "restocked",
    "posted",
)
"""``apply_grade_policy`` output. ``return_reason`` is the reason the unit is posted with
(for hire units ``hire_return_reason``), ``credit_mode`` a ``CreditMode`` value (``none``
for hire), ``written_off`` the grade rule's verdict (hire units too: it drives the
write-off adjustment), ``restocked`` whether the posting returns it to stock, ``posted``
whether it goes to Khaos as a customer return at all."""


def apply_grade_policy(
    matched: pd.DataFrame, policy: GradePolicy = DEFAULT_GRADE_POLICY
) -> tuple[pd.DataFrame, list[ReturnProblem]]:
    """Each matched unit's Khaos outcome (``GRADED_COLUMNS``).

    An unknown grade, or a non-blank action the policy does not know, is an
    ``unknown_grade`` problem and the unit leaves the table: it is never posted, so never
    restocked as sellable (a blank action means "no action given": the grade decides).
    """
    problems: list[ReturnProblem] = []
    rows: list[dict[str, Any]] = []
    known_actions = policy.known_actions()
    for row in _records(matched):
        grade, action = _text(row.get("grade")).upper(), _text(row.get("action_taken")).upper()
        rule = policy.rule_for(grade, action)
        bad_action = bool(action) and action not in known_actions
        if rule is None or bad_action:
            what = f"grade {grade!r}" if rule is None else f"action {action!r}"
            problems.append(
                ReturnProblem(
                    kind=ReturnProblemKind.UNKNOWN_GRADE,
                    return_ref=row["return_ref"],
                    unique_sku=row["unique_sku"],
                    order_number=_text(row.get("order_number")),
                    sku=_text(row.get("sku")),
                    message=(
                        f"Return {row['return_ref']} unit {row['unique_sku']} has {what}, "
                        "which the grade policy does not know: not posted to Khaos and not "
                        "restocked. Add it to the grade policy, then re-run."
                    ),
                )
            )
            continue
        hire = bool(row.get("is_hire"))
        out = dict(row)
        out["grade"], out["action_taken"] = grade, action
        out["written_off"] = policy.writes_off(rule)
        if hire:
            out["return_reason"] = policy.hire_return_reason
            out["credit_mode"] = CreditMode.NONE.value
            out["restocked"] = False
            out["posted"] = policy.post_hire_returns
        else:
            out["return_reason"] = rule.return_reason
            out["credit_mode"] = rule.credit_mode.value
            out["restocked"] = policy.restocks(rule)
            out["posted"] = True
        rows.append(out)
    if not rows:
        return _empty(GRADED_COLUMNS), problems
    frame = pd.DataFrame(rows)
    for column in GRADED_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[list(GRADED_COLUMNS)].reset_index(drop=True), problems


# --- 3. postings ----------------------------------------------------------------------

_CREDIT_ORDER = {CreditMode.AUTO.value: 0, CreditMode.REVIEW.value: 1, CreditMode.NONE.value: 2}


class ReturnPosting(Record):
    """One Khaos customer return (``ImportCustomerReturns``) covering one part of a return.

    ``credit_value`` is what the customer is credited: Σ ``UnitNet`` of each unit's source
    order line (0 when ``credit_mode`` is ``none``); ``goods_value`` the same sum whatever
    the mode. ``received_at`` is the earliest receipt of its units (the refund clock).
    """

    return_ref: str
    part: int
    associated_ref: str
    batch_id: str
    credit_mode: CreditMode
    customer_return: CustomerReturn
    unique_skus: tuple[str, ...]
    credit_value: Decimal
    goods_value: Decimal
    received_at: datetime | None
    is_hire: bool = False
    written_off_units: int = 0
    idempotency_key: str

    @property
    def units(self) -> tuple[UnitKey, ...]:
        return tuple((self.return_ref, u) for u in self.unique_skus)


def associated_ref(return_ref: str, part: int) -> str:
    """Khaos ``AssociatedRef`` of a return part.

    >>> associated_ref("RET123", 2)
    'RET123-P2'
    """
    return f"{return_ref}-P{part}"


def return_idempotency_key(associated: str) -> str:
    """The outbox key of a part: one per ``AssociatedRef``, the key Khaos is read back by."""
    return f"khaos-return:{associated}"


def plan_return_postings(
    matched: pd.DataFrame,
    policy: GradePolicy = DEFAULT_GRADE_POLICY,
    already_posted_units: Collection[UnitKey] = frozenset(),
    part_numbers_used: Mapping[str, int] | None = None,
    *,
    site_id: int | None = None,
    stock_code_for_stock_id: Mapping[int, str] | None = None,
) -> list[ReturnPosting]:
    """The customer returns to put in the outbox, one per part of a return.

    ``matched`` is ``match_returns`` output (graded here) or ``apply_grade_policy`` output.
    Units with an unknown grade, hire units (unless ``policy.post_hire_returns``) and
    units in ``already_posted_units`` are left out; every other unit is in exactly one
    posting. A part is the units of one ``return_ref`` that share ``batch_id`` (arrived
    together), credit mode, hire-ness and customer. Parts are numbered per return from
    ``part_numbers_used[return_ref] + 1`` in the order (``batch_id``, credit mode
    auto → review → none, sale before hire, ``customer_urn``): the same inputs always give
    the same refs. Items are aggregated per (stock code, source order line, reason); the
    stock code is the item's current Khaos code from ``stock_code_for_stock_id`` if given
    (codes change on a rename), else the order line's. ``site_id`` is the Khaos site on
    the return (``None``: Khaos uses the source order's site); where the restocked unit
    ends up is the stock status policy's business (the snapshot push moves it).
    """
    graded = matched if "credit_mode" in matched.columns else apply_grade_policy(matched, policy)[0]
    posted = {(str(r), str(u)) for r, u in already_posted_units}
    used = part_numbers_used or {}
    codes = stock_code_for_stock_id or {}
    groups: dict[tuple[str, str, int, bool, str, str], list[dict[str, Any]]] = {}
    for row in _records(graded):
        if not row.get("posted") or (row["return_ref"], row["unique_sku"]) in posted:
            continue
        hire = bool(row.get("is_hire"))
        mode = row["credit_mode"]
        key = (
            row["return_ref"],
            _text(row.get("batch_id")),
            _CREDIT_ORDER[mode],
            hire,
            _text(row.get("customer_urn")),
            mode,
        )
        groups.setdefault(key, []).append(row)

    postings: list[ReturnPosting] = []
    next_part: dict[str, int] = {}
    for key in sorted(groups):
        ref, batch, _, hire, urn, mode = key
        units = sorted(groups[key], key=lambda r: r["unique_sku"])
        part = next_part.get(ref, int(used.get(ref, 0))) + 1
        next_part[ref] = part
        assoc = associated_ref(ref, part)
        quantities: dict[tuple[str, int, str], int] = {}
        for u in units:
            code = codes.get(int(u["stock_id"]), u["stock_code"])
            item_key = (code, int(u["order_item_id"]), u["return_reason"])
            quantities[item_key] = quantities.get(item_key, 0) + 1
        items = tuple(
            ReturnItem(sku=code, quantity=q, return_reason=reason, source_order_item_id=oid)
            for (code, oid, reason), q in sorted(quantities.items())
        )
        goods = sum((Decimal(str(u["unit_net"])) for u in units), Decimal("0"))
        received = [t for t in (_utc(u.get("received_at")) for u in units) if t is not None]
        credit_mode = CreditMode(mode)
        postings.append(
            ReturnPosting(
                return_ref=ref,
                part=part,
                associated_ref=assoc,
                batch_id=batch,
                credit_mode=credit_mode,
                customer_return=CustomerReturn(
                    associated_ref=assoc,
                    customer_urn=urn,
                    items=items,
                    process_return=True,
                    credit_mode=credit_mode,
                    site_id=site_id,
                ),
                unique_skus=tuple(u["unique_sku"] for u in units),
                credit_value=goods if credit_mode != CreditMode.NONE else Decimal("0"),
                goods_value=goods,
                received_at=min(received) if received else None,
                is_hire=hire,
                written_off_units=sum(1 for u in units if u["written_off"]),
                idempotency_key=return_idempotency_key(assoc),
            )
        )
    return postings


# --- 4. write-offs and ex-hire --------------------------------------------------------


class StockMoveKind(StrEnum):
    WRITE_OFF = "write_off"
    EX_HIRE = "ex_hire"


class StockMove(Record):
    """Adjustments for one unit still in Khaos's Level: one outbox effect per group.

    ``groups`` hold one ``WRITEOFF`` line (adjust_by −1) for a write-off, or two groups for
    an ex-hire (−1 on the hire StockID at the hire stock site, +1 on the resale StockID at
    the selling site; a Khaos group has one site). Each ``group_ref`` is the group's
    idempotency key. ``value`` is CostPrice × 1 (the hire StockID's cost for an ex-hire).
    ``happened_at`` is when ACS handled the unit (for the snapshot push's two-sided
    correction of write-offs still in flight).
    """

    kind: StockMoveKind
    unique_sku: str
    return_ref: str
    stock_id: int
    groups: tuple[StockAdjustmentGroup, ...]
    value: Decimal
    happened_at: datetime | None = None
    resale_stock_id: int | None = None

    @property
    def idempotency_keys(self) -> tuple[str, ...]:
        return tuple(g.group_ref for g in self.groups)


def write_off_group_ref(unique_sku: str) -> str:
    """``GroupRef`` of a unit's write-off: a unit is written off once in its life.

    >>> write_off_group_ref("U000000123")
    'WO-U000000123'
    """
    return f"WO-{unique_sku}"


def ex_hire_group_refs(unique_sku: str) -> tuple[str, str]:
    """``GroupRef`` of the two halves of a unit's ex-hire (out of hire, into resale)."""
    return f"EXH-{unique_sku}-OUT", f"EXH-{unique_sku}-IN"


def plan_write_offs(
    units: pd.DataFrame,
    items: Mapping[int, StockItem],
    identity: Mapping[str, int],
    sites: KhaosSites,
    policy: GradePolicy = DEFAULT_GRADE_POLICY,
    resale_stock_id_for: Mapping[int, int] | None = None,
    *,
    already_planned: Collection[str] = frozenset(),
    reasons: KhaosReasons | None = None,
    ex_hire_value: Callable[[int, Decimal], Decimal] | None = None,
    hire_write_off_value: Callable[[str, Decimal], Decimal] | None = None,
) -> tuple[list[StockMove], list[ReturnProblem]]:
    """Write-off and ex-hire adjustments for units still in Khaos's Level.

    ``ex_hire_value(hire StockID, CostPrice)``: the used-garment value both ex-hire legs
    carry (``domain/ex_hire.py``); CostPrice when not given.
    ``hire_write_off_value(unique SKU, CostPrice)``: a hire unit's write-off value at the
    hire valuation basis (``domain/hire_valuation.py``); CostPrice when not given.

    Reason codes are the install's (``reasons``: ``write_off``, ``ex_hire``; by default
    ``WRITEOFF`` and ``EXHIRE``).

    ``units``: ``apply_grade_policy`` output, or any frame with ``unique_sku``, ``sku``,
    ``grade``, ``action_taken``, ``is_hire`` and optionally ``stock_id`` (else resolved by
    ``identity``: ACS SKU → StockID), ``return_ref``, ``received_at``, ``in_level`` (default:
    the unit is a hire unit — a sale unit left Level when invoiced; pass ``True`` for
    damage found in the warehouse) and ``site_id`` (the site the unit is on in Khaos;
    default hire stock site for hire units, selling site for sale units).

    - Written off by the policy (BER, DISPOSE) and in Level → one ``WRITEOFF`` line,
      adjust_by −1, value at CostPrice. Written off but not in Level (a sale return) →
      nothing: its customer return with a write-off reason is the only mover.
    - A hire unit not written off whose action is in
      ``policy.ex_hire_to_resale_actions`` → paired ``EXHIRE`` lines; its resale StockID
      comes from ``resale_stock_id_for`` (hire StockID → resale StockID). Missing →
      ``resale_unmapped`` problem, no adjustment.
    - Anything else → nothing (the snapshot push moves units between sites).
    - Moves whose group refs are in ``already_planned`` are left out (re-delivered files).
    A unit with an unknown grade is an ``unknown_grade`` problem (never adjusted); one whose
    StockID or StockItem is unknown a ``stock_item_unknown`` problem.
    """
    resale = resale_stock_id_for or {}
    codes = reasons or KhaosReasons()
    done = set(already_planned)
    moves: list[StockMove] = []
    problems: list[ReturnProblem] = []
    seen: set[str] = set()
    for row in _records(units):
        unit = _text(row.get("unique_sku"))
        if unit in seen:
            continue
        seen.add(unit)
        ref, sku = _text(row.get("return_ref")), _text(row.get("sku"))
        grade, action = _text(row.get("grade")).upper(), _text(row.get("action_taken")).upper()
        hire = bool(row.get("is_hire"))
        in_level = row.get("in_level")
        in_level = hire if in_level is None or pd.isna(in_level) else bool(in_level)
        rule = policy.rule_for(grade, action)

        def problem(
            kind: ReturnProblemKind,
            message: str,
            *,
            _ref: str = ref,
            _unit: str = unit,
            _sku: str = sku,
        ) -> ReturnProblem:
            return ReturnProblem(
                kind=kind, return_ref=_ref, unique_sku=_unit, sku=_sku, message=message
            )

        if rule is None:
            problems.append(
                problem(
                    ReturnProblemKind.UNKNOWN_GRADE,
                    f"Unit {unit} ({sku}) has grade {grade!r}, unknown to the grade policy: "
                    "not written off or moved.",
                )
            )
            continue
        write_off = policy.writes_off(rule) and in_level
        ex_hire = (
            hire and not policy.writes_off(rule) and action in policy.ex_hire_to_resale_actions
        )
        if not (write_off or ex_hire):
            continue
        stock_id = _stock_id(row, identity)
        item = items.get(stock_id) if stock_id is not None else None
        if item is None:
            problems.append(
                problem(
                    ReturnProblemKind.STOCK_ITEM_UNKNOWN,
                    f"Unit {unit} ({sku}) is to be {'written off' if write_off else 'ex-hired'}"
                    " but its Khaos StockItem is not known: map the SKU, then re-run.",
                )
            )
            continue
        cost = item.cost_price
        happened = _utc(row.get("received_at"))
        if write_off:
            ref_wo = write_off_group_ref(unit)
            if ref_wo in done:
                continue
            site = _site(row, sites.hire_stock if hire else sites.selling)
            if hire and hire_write_off_value is not None:
                cost = hire_write_off_value(unit, cost)
            moves.append(
                StockMove(
                    kind=StockMoveKind.WRITE_OFF,
                    unique_sku=unit,
                    return_ref=ref,
                    stock_id=item.stock_id,
                    value=cost,
                    happened_at=happened,
                    groups=(
                        StockAdjustmentGroup(
                            site_id=site,
                            group_ref=ref_wo,
                            lines=(
                                AdjustmentLine(
                                    stock_id=item.stock_id,
                                    adjust_by=-1,
                                    reason_code=codes.write_off,
                                    value=cost,
                                ),
                            ),
                        ),
                    ),
                )
            )
            continue
        target = resale.get(item.stock_id)
        if target is None:
            problems.append(
                problem(
                    ReturnProblemKind.RESALE_UNMAPPED,
                    f"Ex-hired unit {unit} ({sku}, StockID {item.stock_id}) goes to resale but "
                    "no resale StockID is mapped for it: add the mapping, then re-run.",
                )
            )
            continue
        out_ref, in_ref = ex_hire_group_refs(unit)
        if out_ref in done and in_ref in done:
            continue
        used = ex_hire_value(item.stock_id, cost) if ex_hire_value else cost
        moves.append(
            StockMove(
                kind=StockMoveKind.EX_HIRE,
                unique_sku=unit,
                return_ref=ref,
                stock_id=item.stock_id,
                resale_stock_id=target,
                value=used,
                happened_at=happened,
                groups=(
                    StockAdjustmentGroup(
                        site_id=_site(row, sites.hire_stock),
                        group_ref=out_ref,
                        lines=(
                            AdjustmentLine(
                                stock_id=item.stock_id,
                                adjust_by=-1,
                                reason_code=codes.ex_hire,
                                value=used,
                            ),
                        ),
                    ),
                    StockAdjustmentGroup(
                        site_id=sites.selling,
                        group_ref=in_ref,
                        lines=(
                            AdjustmentLine(
                                stock_id=target,
                                adjust_by=1,
                                reason_code=codes.ex_hire,
                                value=used,
                            ),
                        ),
                    ),
                ),
            )
        )
    return moves, problems


def _stock_id(row: Mapping[str, Any], identity: Mapping[str, int]) -> int | None:
    value = row.get("stock_id")
    if value is not None and not pd.isna(value):
        return int(value)
    return identity.get(_text(row.get("sku")))


def _site(row: Mapping[str, Any], default: int) -> int:
    value = row.get("site_id")
    return default if value is None or pd.isna(value) else int(value)


# --- 5. refund clock ------------------------------------------------------------------

CreditStatus = Literal["raised", "review", "none"]


class RefundWarning(Record):
    """A sale return part whose credit is not raised with the refund deadline near.

    ``deadline``: the end of the 14th day after the day of receipt, UK time (UK
    distance-selling rules: refund within 14 days after the day the goods are received
    back). ``days_left`` may be negative (``breached``).
    """

    associated_ref: str
    return_ref: str
    received_at: datetime
    deadline: datetime
    days_left: float
    breached: bool
    credit_status: str
    credit_value: Decimal = Decimal("0")

    @property
    def exception_type(self) -> str:
        return "refund_due"

    @property
    def owner(self) -> str:
        return "finance"

    @property
    def exception_ref(self) -> str:
        """Stable per return part: the warning re-raised each run updates one row."""
        return f"refund:{self.associated_ref}"

    @property
    def message(self) -> str:
        # Finance reads UK time: 23:00 UTC in summer is the end of the UK day.
        when = f"{self.deadline.astimezone(ZoneInfo(UK_TIME_ZONE)):%Y-%m-%d %H:%M %Z}"
        state = {"review": "a pre-credit is waiting for review", "none": "no credit exists"}
        why = state.get(self.credit_status, f"credit status is {self.credit_status!r}")
        if self.breached:
            return (
                f"Return {self.associated_ref}: the 14-day refund deadline passed at {when} "
                f"and {why}. Raise the credit of £{self.credit_value} now."
            )
        return (
            f"Return {self.associated_ref}: {self.days_left:.1f} day(s) left to refund "
            f"(deadline {when}) and {why}. Raise the credit of £{self.credit_value}."
        )


def refund_deadline(
    received_at: datetime, days: int = 14, time_zone: str = UK_TIME_ZONE
) -> datetime:
    """Midnight (UK) at the end of the ``days``-th day after the day of receipt, in UTC.

    >>> refund_deadline(datetime(2025, 6, 2, 15, 0, tzinfo=UTC)).isoformat()
    '2025-06-16T23:00:00+00:00'
    """
    tz = ZoneInfo(time_zone)
    day: date = received_at.astimezone(tz).date() + timedelta(days=days + 1)
    return datetime.combine(day, time(0, 0), tzinfo=tz).astimezone(UTC)


def refund_due(
    postings_or_units: Iterable[ReturnPosting] | pd.DataFrame,
    now: datetime,
    credit_status: Mapping[str, str] | None = None,
    days: int = 14,
    warn_days: float = 3,
    *,
    time_zone: str = UK_TIME_ZONE,
) -> list[RefundWarning]:
    """Sale return parts whose credit is not raised and whose deadline is ≤ ``warn_days`` off.

    Input: ``ReturnPosting``s, or a frame with ``associated_ref`` (or ``return_ref``),
    ``received_at`` and optionally ``is_hire``, ``credit_status``, ``credit_value``.
    ``credit_status`` (Khaos read-back by ``AssociatedRef``: ``raised`` / ``review`` /
    ``none``) overrides a frame's column; a part with no status is not raised. Hire parts
    never owe a refund and are skipped; a sale part in mode ``none`` is *not* skipped
    (the customer is owed the refund whatever the grade). Sorted by deadline.
    """
    statuses = credit_status or {}
    now = now.astimezone(UTC)
    parts: list[tuple[str, str, datetime, str, Decimal]] = []
    if isinstance(postings_or_units, pd.DataFrame):
        grouped: dict[str, tuple[str, datetime, str, Decimal]] = {}
        for row in _records(postings_or_units):
            if bool(row.get("is_hire")):
                continue
            ref = _text(row.get("return_ref"))
            assoc = _text(row.get("associated_ref")) or ref
            received = _utc(row.get("received_at"))
            if received is None:
                continue
            status = statuses.get(assoc, _text(row.get("credit_status")) or "none")
            value = _money(row.get("credit_value", row.get("unit_net")))
            if assoc in grouped:
                _, first, _, total = grouped[assoc]
                received, value = min(first, received), total + value
            grouped[assoc] = (ref, received, status, value)
        parts = [(a, r, rec, s, v) for a, (r, rec, s, v) in grouped.items()]
    else:
        for p in postings_or_units:
            if p.is_hire or p.received_at is None:
                continue
            parts.append(
                (
                    p.associated_ref,
                    p.return_ref,
                    p.received_at,
                    statuses.get(p.associated_ref, "none"),
                    p.goods_value,
                )
            )
    warnings: list[RefundWarning] = []
    for assoc, ref, received, status, value in parts:
        if status == "raised":
            continue
        deadline = refund_deadline(received, days, time_zone)
        left = (deadline - now).total_seconds() / 86400
        if left > warn_days:
            continue
        warnings.append(
            RefundWarning(
                associated_ref=assoc,
                return_ref=ref,
                received_at=received,
                deadline=deadline,
                days_left=round(left, 2),
                breached=left <= 0,
                credit_status=status,
                credit_value=value,
            )
        )
    return sorted(warnings, key=lambda w: (w.deadline, w.associated_ref))


# --- 6. finance reports and the demo summary -----------------------------------------


def repair_costs(
    units: pd.DataFrame, by: Literal["return", "month"] = "return", time_zone: str = UK_TIME_ZONE
) -> pd.DataFrame:
    """ACS repair costs (3PL charges for finance; never part of stock value).

    ``by="return"``: columns ``return_ref, units, repaired_units, repair_cost``;
    ``by="month"``: ``month`` (``YYYY-MM`` of ``received_at``, UK time), ``units``,
    ``repaired_units``, ``repair_cost``. ``repair_cost`` is a ``Decimal`` sum.
    """
    key = "return_ref" if by == "return" else "month"
    totals: dict[str, list[Any]] = {}
    tz = ZoneInfo(time_zone)
    for row in _records(units):
        if by == "return":
            group = _text(row.get("return_ref"))
        else:
            received = _utc(row.get("received_at"))
            group = received.astimezone(tz).strftime("%Y-%m") if received else ""
        cost = _money(row.get("repair_cost"))
        entry = totals.setdefault(group, [0, 0, Decimal("0")])
        entry[0] += 1
        entry[1] += 1 if cost > 0 else 0
        entry[2] += cost
    rows = [
        {key: g, "units": n, "repaired_units": r, "repair_cost": c}
        for g, (n, r, c) in sorted(totals.items())
    ]
    if not rows:
        return _empty((key, "units", "repaired_units", "repair_cost"))
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ReturnsSummary:
    """What the demo prints and finance reads."""

    units_by_grade: dict[str, int]
    credits_raised: int
    credits_raised_value: Decimal
    credits_pending_review: int
    credits_pending_review_value: Decimal
    sale_units_written_off: int  # posted with a write-off reason, no adjustment
    units_written_off_by_adjustment: int
    write_off_value: Decimal  # adjustments at CostPrice
    ex_hired_to_resale: int
    repair_cost: Decimal
    problems_by_kind: dict[str, int]

    @property
    def units_written_off(self) -> int:
        return self.sale_units_written_off + self.units_written_off_by_adjustment

    def lines(self) -> list[str]:
        grades = ", ".join(f"{g} {n}" for g, n in self.units_by_grade.items()) or "none"
        return [
            f"returned units by grade: {grades}",
            f"credits raised: {self.credits_raised} (£{self.credits_raised_value})",
            f"credits pending review: {self.credits_pending_review} "
            f"(£{self.credits_pending_review_value})",
            f"units written off: {self.units_written_off}"
            f" ({self.sale_units_written_off} sale returns, "
            f"{self.units_written_off_by_adjustment} by adjustment worth £{self.write_off_value})",
            f"ex-hired to resale: {self.ex_hired_to_resale}",
            f"ACS repair charges: £{self.repair_cost}",
            "problems: "
            + (", ".join(f"{k} {n}" for k, n in self.problems_by_kind.items()) or "none"),
        ]


def returns_summary(
    units: pd.DataFrame,
    postings: Iterable[ReturnPosting] = (),
    moves: Iterable[StockMove] = (),
    problems: Iterable[ReturnProblem] = (),
    credit_status: Mapping[str, str] | None = None,
) -> ReturnsSummary:
    """Counts for the demo. ``units``: the returns table (any stage: raw, matched, graded)
    for grades and repair costs. A posting's credit counts as raised when Khaos says so
    (``credit_status``), else by its mode (``auto`` raised, ``review`` pending)."""
    statuses = credit_status or {}
    grades: dict[str, int] = {}
    records = _records(units)
    for row in records:
        grade = _text(row.get("grade")).upper() or "?"
        grades[grade] = grades.get(grade, 0) + 1
    order = {g: i for i, g in enumerate(GRADES)}
    grades = dict(sorted(grades.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
    raised = review = 0
    raised_value = review_value = Decimal("0")
    sale_written_off = 0
    for p in postings:
        status = statuses.get(p.associated_ref) or {
            CreditMode.AUTO: "raised",
            CreditMode.REVIEW: "review",
        }.get(p.credit_mode, "none")
        if status == "raised":
            raised, raised_value = raised + 1, raised_value + p.credit_value
        elif status == "review":
            review, review_value = review + 1, review_value + p.credit_value
        if not p.is_hire:
            sale_written_off += p.written_off_units
    adjusted = ex_hired = 0
    value = Decimal("0")
    for m in moves:
        if m.kind == StockMoveKind.WRITE_OFF:
            adjusted, value = adjusted + 1, value + m.value
        else:
            ex_hired += 1
    kinds: dict[str, int] = {}
    for pr in problems:
        kinds[str(pr.kind)] = kinds.get(str(pr.kind), 0) + 1
    return ReturnsSummary(
        units_by_grade=grades,
        credits_raised=raised,
        credits_raised_value=raised_value,
        credits_pending_review=review,
        credits_pending_review_value=review_value,
        sale_units_written_off=sale_written_off,
        units_written_off_by_adjustment=adjusted,
        write_off_value=value,
        ex_hired_to_resale=ex_hired,
        repair_cost=sum((_money(r.get("repair_cost")) for r in records), Decimal("0")),
        problems_by_kind=dict(sorted(kinds.items())),
    )
