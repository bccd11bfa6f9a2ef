"""The rules that find Khaos records held twice under one reference (``domain/duplicates``),
beyond the worked examples of ``test_khaos_duplicates.py``: which record is kept, what is
at stake, what is never a duplicate, and a property over generated invoice books.

Values at stake are summed by hand in pence from the rows each test builds.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.duplicates import (
    ADJUSTMENT_COLUMNS,
    INVOICE_COLUMNS,
    RETURN_COLUMNS,
    duplicate_adjustments,
    duplicate_invoices,
    duplicate_returns,
)

ISSUED, CANCELLED = 70, 1


def invoices(*rows: tuple[int, str, int, int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(i, f"INV{i}", ref, stage, units, value) for i, ref, stage, units, value in rows],
        columns=list(INVOICE_COLUMNS),
    )


def adjustments(*rows: tuple[int, str, str, int | None, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(gid, ref, 1, reason, by, value) for gid, ref, reason, by, value in rows],
        columns=list(ADJUSTMENT_COLUMNS),
    )


def returns(*rows: tuple[int, str, float | None, int, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(RETURN_COLUMNS))


# --- invoices ------------------------------------------------------------------------------------


def test_the_lowest_invoice_id_is_kept_and_every_later_one_is_at_stake() -> None:
    [dup] = duplicate_invoices(
        invoices(
            (300, "SO1-1", ISSUED, 1, 19.99),
            (100, "SO1-1", ISSUED, 1, 19.99),
            (200, "SO1-1", ISSUED, 2, 39.98),
        )
    )
    assert dup.kept == "invoice 100 (INV100)"
    assert dup.repeats == ("invoice 200 (INV200)", "invoice 300 (INV300)")
    assert (dup.units, dup.value) == (3, Decimal("59.97"))
    assert dup.extra == {"invoice_ids": [100, 200, 300]}
    assert dup.entity_ref == "dup:invoice:SO1-1"
    assert dup.message == (
        "Khaos holds 3 invoices under ExternalRef SO1-1: invoice 100 (INV100) and "
        "invoice 200 (INV200), invoice 300 (INV300); £59.97 (3 units) at stake"
    )


def test_invoices_without_a_despatch_reference_are_never_duplicates() -> None:
    book = invoices((1, "", ISSUED, 1, 5.0), (2, "", ISSUED, 1, 5.0), (3, "  ", ISSUED, 1, 5.0))
    assert duplicate_invoices(book) == []


def test_one_invoice_listed_twice_is_not_a_duplicate() -> None:
    book = invoices((1, "SO1-1", ISSUED, 1, 5.0), (1, "SO1-1", ISSUED, 1, 5.0))
    assert duplicate_invoices(book) == []


def test_an_install_whose_cancelled_stage_differs_is_read_with_its_own_stage() -> None:
    book = invoices((1, "SO1-1", ISSUED, 1, 5.0), (2, "SO1-1", 99, 1, 5.0))
    assert len(duplicate_invoices(book)) == 1
    assert duplicate_invoices(book, cancelled_stage=99) == []


def test_an_invoice_table_missing_a_column_is_refused() -> None:
    with pytest.raises(ValueError, match=r"invoices lacks columns \['value'\]"):
        duplicate_invoices(invoices().drop(columns=["value"]))


book_rows = st.lists(
    st.tuples(
        st.sampled_from(["SO1-1", "SO2-1", "SO3-1", ""]),
        st.sampled_from([ISSUED, CANCELLED]),
        st.integers(min_value=1, max_value=5),
        st.integers(min_value=0, max_value=100_000),  # pence
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(book_rows)
def test_each_reference_with_two_live_invoices_is_one_duplicate_valued_at_its_repeats(rows) -> None:
    book = invoices(
        *[(i, ref, stage, units, pence / 100) for i, (ref, stage, units, pence) in enumerate(rows)]
    )
    live: dict[str, list[tuple[int, int, int]]] = {}
    for i, (ref, stage, units, pence) in enumerate(rows):
        if ref and stage != CANCELLED:
            live.setdefault(ref, []).append((i, units, pence))
    expected = {
        ref: (sum(u for _, u, _ in found[1:]), Decimal(sum(p for *_, p in found[1:])) / 100)
        for ref, found in live.items()
        if len(found) > 1
    }
    found = {d.reference: (d.units, d.value) for d in duplicate_invoices(book)}
    assert found == expected


# --- stock adjustments and write-offs -------------------------------------------------------------


def test_a_group_saved_twice_with_the_write_off_reason_on_every_line_is_a_write_off() -> None:
    [dup] = duplicate_adjustments(
        adjustments(
            (7, "WO-1", "WRITEOFF", -1, -12.5),
            (7, "WO-1", "WRITEOFF", -2, -25.0),
            (9, "WO-1", "WRITEOFF", -1, -12.5),
            (9, "WO-1", "WRITEOFF", -2, -25.0),
        ),
        write_off_code="WRITEOFF",
    )
    assert dup.record == "write-off" and dup.entity_ref == "dup:write_off:WO-1"
    assert (dup.kept, dup.repeats) == ("adjustment group 7", ("adjustment group 9",))
    assert (dup.units, dup.value) == (3, Decimal("37.50"))
    assert dup.extra == {"group_ids": [7, 9], "site_id": 1}


def test_a_group_with_other_reasons_among_its_lines_is_a_stock_adjustment() -> None:
    [dup] = duplicate_adjustments(
        adjustments(
            (1, "SNAP-1", "VARIANCE", 2, 40.0),
            (2, "SNAP-1", "VARIANCE", 2, 40.0),
            (2, "SNAP-1", "WRITEOFF", -1, -20.0),
        ),
        write_off_code="WRITEOFF",
    )
    assert dup.record == "stock adjustment" and dup.entity_ref == "dup:adjustment:SNAP-1"
    assert (dup.units, dup.value) == (3, Decimal("60.00"))


def test_a_repeated_adjust_to_line_is_reported_with_nothing_at_stake() -> None:
    [dup] = duplicate_adjustments(
        adjustments((1, "SNAP-2", "TRANSFER", None, 0.0), (2, "SNAP-2", "TRANSFER", None, 0.0)),
        write_off_code="WRITEOFF",
    )
    assert (dup.units, dup.value) == (0, Decimal("0"))
    assert dup.repeats == ("adjustment group 2",)


def test_one_group_of_many_lines_is_not_a_duplicate() -> None:
    group = adjustments((1, "SNAP-3", "VARIANCE", 1, 5.0), (1, "SNAP-3", "VARIANCE", -1, -5.0))
    assert duplicate_adjustments(group, write_off_code="WRITEOFF") == []


# --- customer returns --------------------------------------------------------------------------


def test_a_return_imported_twice_names_the_credit_note_only_where_there_is_one() -> None:
    [dup] = duplicate_returns(returns((41, "R1-P1", 9001.0, 1, 30.0), (40, "R1-P1", None, 1, 30.0)))
    assert dup.kept == "customer return 40"
    assert dup.repeats == ("customer return 41, credit note 9001",)
    assert (dup.units, dup.value) == (1, Decimal("30.00"))
    assert dup.details == {
        "record": "customer return",
        "reference_field": "AssociatedRef",
        "reference": "R1-P1",
        "kept": "customer return 40",
        "repeats": ["customer return 41, credit note 9001"],
        "units": 1,
        "value": "30.00",
        "return_ids": [40, 41],
    }


def test_a_repeat_return_of_unknown_value_counts_nothing_at_stake() -> None:
    [dup] = duplicate_returns(returns((1, "R2-P1", None, 2, 10.0), (2, "R2-P1", None, 2, None)))
    assert (dup.units, dup.value) == (2, Decimal("0"))


def test_returns_under_different_references_are_not_duplicates() -> None:
    assert duplicate_returns(returns((1, "R1-P1", None, 1, 5.0), (2, "R1-P2", None, 1, 5.0))) == []
