"""2. Grading: each matched unit's return reason, credit mode and write-off flag from
the ``GradePolicy``; an unknown grade is an ``unknown_grade`` problem.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from acs_khaos_dagster.domain.models import CreditMode
from acs_khaos_dagster.domain.returns.matching import MATCHED_COLUMNS, _empty, _records, _text
from acs_khaos_dagster.domain.returns.policy import (
    DEFAULT_GRADE_POLICY,
    GradePolicy,
    ReturnProblem,
    ReturnProblemKind,
)

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
