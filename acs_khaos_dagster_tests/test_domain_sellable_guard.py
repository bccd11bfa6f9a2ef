"""The guard that re-derives sellable stock by a second path (``sellable_mismatches`` in
``domain/stock_guards.py``) before anything is pushed: a unit in refurbishment or
quarantine placed on the selling site, a unit counted twice or lost, is caught.

The "right" sellable table in each test is written by hand from the snapshot's counts
(ready + allocated + picking + packed per StockID); then one thing is broken on purpose.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.stock_guards import SellableMismatch, sellable_mismatches

READY = "In Warehouse - Ready For Customer"
SELLING_STATUSES = [READY, "Allocated", "Picking", "Packed"]
OTHER_STATUSES = ["Cleaning", "In Repair", "Quarantine", "Awaiting Inspection", "With Customer",
                  "Ex-Hired", "Lost In Space"]  # fmt: skip
SKU_MAP = pd.DataFrame({"sku": ["DRESS", "COAT", "GOWN"], "stock_id": [1, 2, 3]})
SELLING_SITE = 1


def counts(*rows: tuple[str, str, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sku", "status", "units"])


def sellable(*rows: tuple[int, int, int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["stock_id", "sellable_units", "allocated_units"])
    return frame.astype("int64")


def sites(*rows: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "site_id", "units"])


SNAPSHOT = counts(
    ("DRESS", READY, 5),
    ("DRESS", "Packed", 2),
    ("DRESS", "In Refurbishment", 3),
    ("COAT", "Picking", 1),
    ("COAT", "Quarantine", 4),
)


def test_a_sellable_table_that_agrees_with_the_counts_passes() -> None:
    assert sellable_mismatches(SNAPSHOT, SKU_MAP, sellable((1, 5, 2), (2, 0, 1))) == []


def test_a_unit_in_refurbishment_counted_as_sellable_is_caught() -> None:
    wrong = sellable((1, 8, 2), (2, 0, 1))  # the 3 in refurbishment added to ready
    assert sellable_mismatches(SNAPSHOT, SKU_MAP, wrong) == [
        SellableMismatch(stock_id=1, expected=7, counted=10)
    ]


def test_a_sellable_unit_lost_on_the_way_is_caught() -> None:
    assert sellable_mismatches(SNAPSHOT, SKU_MAP, sellable((1, 5, 2))) == [
        SellableMismatch(stock_id=2, expected=1, counted=0)
    ]


def test_a_stock_id_with_no_sellable_units_in_the_snapshot_may_not_have_any() -> None:
    assert sellable_mismatches(SNAPSHOT, SKU_MAP, sellable((1, 5, 2), (2, 0, 1), (3, 1, 0))) == [
        SellableMismatch(stock_id=3, expected=0, counted=1)
    ]


def test_statuses_are_recognised_in_any_acs_spelling() -> None:
    snapshot = counts(("DRESS", "IN WAREHOUSE–READY  FOR CUSTOMER", 4), ("DRESS", " packed ", 1))
    assert sellable_mismatches(snapshot, SKU_MAP, sellable((1, 4, 1))) == []


def test_skus_khaos_does_not_know_are_left_to_the_unmatched_report() -> None:
    snapshot = counts(("DRESS", READY, 2), ("MYSTERY", READY, 9))
    assert sellable_mismatches(snapshot, SKU_MAP, sellable((1, 2, 0))) == []


def test_units_the_push_would_put_on_the_selling_site_must_agree_too() -> None:
    right = sellable((1, 5, 2), (2, 0, 1))
    placed = sites((1, SELLING_SITE, 7), (1, 5, 3), (2, SELLING_SITE, 1), (2, 6, 4))
    assert (
        sellable_mismatches(
            SNAPSHOT, SKU_MAP, right, site_units=placed, selling_sites={SELLING_SITE}
        )
        == []
    )
    leaked = sites((1, SELLING_SITE, 10), (2, SELLING_SITE, 1), (2, 6, 4))
    assert sellable_mismatches(
        SNAPSHOT, SKU_MAP, right, site_units=leaked, selling_sites={SELLING_SITE}
    ) == [SellableMismatch(stock_id=1, expected=7, counted=10)]


def test_a_stock_id_wrong_in_both_tables_is_reported_once() -> None:
    wrong = sellable((1, 9, 2), (2, 0, 1))
    placed = sites((1, SELLING_SITE, 11), (2, SELLING_SITE, 1))
    found = sellable_mismatches(
        SNAPSHOT, SKU_MAP, wrong, site_units=placed, selling_sites={SELLING_SITE}
    )
    assert found == [SellableMismatch(stock_id=1, expected=7, counted=11)]


def test_a_mismatch_reads_as_both_figures() -> None:
    assert str(SellableMismatch(stock_id=4, expected=7, counted=10)) == (
        "StockID 4: sellable_stock counts 10 sellable or allocated unit(s), "
        "the snapshot's per-status counts give 7"
    )


# --- over generated snapshots -------------------------------------------------------------------

snapshot_rows = st.lists(
    st.tuples(
        st.sampled_from(["DRESS", "COAT", "GOWN"]),
        st.sampled_from(SELLING_STATUSES + OTHER_STATUSES),
        st.integers(min_value=1, max_value=20),
    ),
    min_size=1,
    max_size=15,
)


def right_table(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Sellable and allocated units per StockID, worked out from the rows by hand."""
    ids = {"DRESS": 1, "COAT": 2, "GOWN": 3}
    table: dict[int, list[int]] = {}
    for sku, status, units in rows:
        if status in SELLING_STATUSES:
            entry = table.setdefault(ids[sku], [0, 0])
            entry[0 if status == READY else 1] += units
    return sellable(*[(s, a, b) for s, (a, b) in sorted(table.items())])


@settings(max_examples=150, deadline=None)
@given(snapshot_rows)
def test_the_sellable_table_built_by_hand_from_the_counts_always_passes(rows) -> None:
    assert sellable_mismatches(counts(*rows), SKU_MAP, right_table(rows)) == []


@settings(max_examples=150, deadline=None)
@given(snapshot_rows, st.sampled_from([1, 2, 3]), st.integers(min_value=1, max_value=5))
def test_any_unit_added_to_or_taken_from_sellable_stock_is_caught(rows, stock_id, extra) -> None:
    table = right_table(rows)
    if stock_id in set(table["stock_id"]):
        table.loc[table["stock_id"] == stock_id, "sellable_units"] += extra
    else:
        table = pd.concat([table, sellable((stock_id, extra, 0))], ignore_index=True)
    [mismatch] = sellable_mismatches(counts(*rows), SKU_MAP, table)
    assert mismatch.stock_id == stock_id
    assert mismatch.counted - mismatch.expected == extra
