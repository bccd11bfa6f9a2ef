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

from acs_khaos_dagster.domain.returns.grading import (
    GRADED_COLUMNS,
    apply_grade_policy,
)
from acs_khaos_dagster.domain.returns.matching import (
    MATCHED_COLUMNS,
    match_returns,
)
from acs_khaos_dagster.domain.returns.policy import (
    ACTIONS,
    DEFAULT_GRADE_POLICY,
    GRADES,
    RETURN_TO_STOCK_REASONS,
    UK_TIME_ZONE,
    WRITE_OFF_REASONS,
    GradePolicy,
    GradeRule,
    LineKey,
    ReturnProblem,
    ReturnProblemKind,
    UnitKey,
    default_grade_rules,
)
from acs_khaos_dagster.domain.returns.postings import (
    ReturnPosting,
    associated_ref,
    plan_return_postings,
    return_idempotency_key,
)
from acs_khaos_dagster.domain.returns.refunds import (
    CreditStatus,
    RefundWarning,
    refund_deadline,
    refund_due,
)
from acs_khaos_dagster.domain.returns.reports import (
    ReturnsSummary,
    repair_costs,
    returns_summary,
)
from acs_khaos_dagster.domain.returns.write_offs import (
    StockMove,
    StockMoveKind,
    ex_hire_group_refs,
    plan_write_offs,
    write_off_group_ref,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_GRADE_POLICY",
    "GRADED_COLUMNS",
    "GRADES",
    "MATCHED_COLUMNS",
    "RETURN_TO_STOCK_REASONS",
    "UK_TIME_ZONE",
    "WRITE_OFF_REASONS",
    "CreditStatus",
    "GradePolicy",
    "GradeRule",
    "LineKey",
    "RefundWarning",
    "ReturnPosting",
    "ReturnProblem",
    "ReturnProblemKind",
    "ReturnsSummary",
    "StockMove",
    "StockMoveKind",
    "UnitKey",
    "apply_grade_policy",
    "associated_ref",
    "default_grade_rules",
    "ex_hire_group_refs",
    "match_returns",
    "plan_return_postings",
    "plan_write_offs",
    "refund_deadline",
    "refund_due",
    "repair_costs",
    "return_idempotency_key",
    "returns_summary",
    "write_off_group_ref",
]
