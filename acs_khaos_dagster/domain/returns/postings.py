"""3. Postings: the Khaos customer returns to put in the outbox, one per (return,
arrival batch, credit mode).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from acs_khaos_dagster.domain.models import (
    CreditMode,
    CustomerReturn,
    Record,
    ReturnItem,
)
from acs_khaos_dagster.domain.returns.grading import apply_grade_policy
from acs_khaos_dagster.domain.returns.matching import _records, _text, _utc
from acs_khaos_dagster.domain.returns.policy import DEFAULT_GRADE_POLICY, GradePolicy, UnitKey

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
