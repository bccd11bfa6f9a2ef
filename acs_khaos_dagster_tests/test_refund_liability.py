"""Issue 17 points 4 and 14: the refund liability at the cut-off, and the refund clock
read in UK time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from acs_khaos_dagster.domain.refund_liability import MISSING, refund_liability
from acs_khaos_dagster.domain.returns import RefundWarning

CUTOFF = datetime(2026, 3, 31, 22, 59, 59, tzinfo=UTC)  # 23:59:59 BST on 31 March


def _posting(ref: str, received: str, goods: str, is_hire: bool = False) -> dict:
    return {
        "associated_ref": f"{ref}-P1",
        "return_ref": ref,
        "is_hire": is_hire,
        "received_at": pd.Timestamp(received),
        "goods_value": goods,
    }


def _unit(ref: str, unit: str, received: str, posted: bool, **extra: object) -> dict:
    return {
        "return_ref": ref,
        "unique_sku": unit,
        "received_at": pd.Timestamp(received),
        "order_item_id": 1 if posted else None,
        "associated_ref": f"{ref}-P1" if posted else None,
        "is_hire": extra.get("is_hire"),
        "settled_by_hand_at": extra.get("settled"),
    }


def _liability() -> pd.DataFrame:
    postings = pd.DataFrame(
        [
            _posting("FEB", "2026-02-25T10:00:00Z", "40.00"),  # still open from February
            _posting("PAID", "2026-03-10T10:00:00Z", "50.00"),  # credit raised
            _posting("GONE", "2026-03-20T10:00:00Z", "60.00"),  # Khaos has no credit
            _posting("HIRE", "2026-03-21T10:00:00Z", "0.00", is_hire=True),
            _posting("APRIL", "2026-04-01T09:00:00Z", "70.00"),  # after the cut-off
        ]
    )
    units = pd.DataFrame(
        [
            _unit("FEB", "U1", "2026-02-25T10:00:00Z", True),
            _unit("PAID", "U2", "2026-03-10T10:00:00Z", True),
            _unit("GONE", "U3", "2026-03-20T10:00:00Z", True),
            _unit("NOORDER", "U4", "2026-03-28T10:00:00Z", False),
            _unit("BYHAND", "U5", "2026-03-05T10:00:00Z", False, settled=pd.Timestamp.now()),
        ]
    )
    credits = {
        "FEB-P1": ("review", Decimal("38.50")),  # Khaos's own figure, not 40.00
        "PAID-P1": ("raised", Decimal("50.00")),
    }
    return refund_liability(postings, units, credits, CUTOFF).set_index("return_ref")


def test_an_open_refund_from_an_earlier_month_is_still_owed_at_the_cut_off() -> None:
    assert set(_liability().index) == {"FEB", "GONE", "NOORDER"}


def test_the_credit_value_is_khaos_own_figure_with_its_vat_basis() -> None:
    feb = _liability().loc["FEB"]
    assert feb["khaos_credit_value"] == Decimal("38.50") and feb["asked_value"] == Decimal("40")
    assert "net of VAT" in feb["vat_basis"]


def test_a_credit_khaos_does_not_hold_is_missing_never_none_or_zero() -> None:
    gone = _liability().loc["GONE"]
    assert gone["credit_status"] == MISSING and gone["khaos_credit_value"] is None


def test_an_unmatched_return_is_a_refund_owed_with_its_clock_not_stock_drift() -> None:
    unmatched = _liability().loc["NOORDER"]
    assert not unmatched["matched"] and unmatched["credit_status"] == MISSING
    assert unmatched["deadline_uk"] == "2026-04-12 00:00"  # 14 days after 28 March, UK
    assert unmatched["days_left"] > 0


def test_a_return_settled_by_hand_and_a_hire_return_owe_nothing_here() -> None:
    assert "BYHAND" not in _liability().index and "HIRE" not in _liability().index


def test_the_refund_deadline_is_printed_in_uk_time() -> None:
    warning = RefundWarning(
        associated_ref="R-P1",
        return_ref="R",
        received_at=datetime(2025, 6, 2, 15, 0, tzinfo=UTC),
        deadline=datetime(2025, 6, 16, 23, 0, tzinfo=UTC),
        days_left=1.0,
        credit_status="review",
        credit_value=Decimal("10.00"),
        breached=False,
    )
    assert "2025-06-17 00:00 BST" in warning.message
