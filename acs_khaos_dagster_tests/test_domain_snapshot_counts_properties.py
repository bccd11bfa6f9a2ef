"""The snapshot's unit counts (``domain/snapshot.status_counts``) against a plain count.

``status_counts`` counts on Arrow dictionary codes, densely (``bincount``) when the SKU ×
status grid is small and sparsely (``unique``) when it is not. Whatever path it takes,
every unit must be counted exactly once under its SKU and status: the oracle here is
``collections.Counter`` over the generated (sku, status) pairs.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.snapshot import status_counts, units_per_status

KNOWN = ["in warehouse - ready for customer", "allocated", "packed", "cleaning", "quarantine"]


def table(pairs: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {"sku": [s for s, _ in pairs], "status": [t for _, t in pairs]},
        schema=pa.schema([("sku", pa.string()), ("status", pa.string())]),
    )


def as_counter(frame) -> Counter:
    return Counter(
        {
            (s, t): int(n)
            for s, t, n in zip(frame["sku"], frame["status"], frame["units"], strict=True)
        }
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(KNOWN)), max_size=60))
def test_every_unit_is_counted_once_under_its_sku_and_status(pairs) -> None:
    counts = status_counts(table(pairs))
    assert as_counter(counts) == Counter(pairs)
    assert int(counts["units"].sum()) == len(pairs)
    assert (counts["units"] > 0).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=60, max_value=80), st.integers(min_value=40, max_value=50), st.data())
def test_a_wide_grid_of_many_skus_and_spellings_counts_the_same(n_skus, n_statuses, data) -> None:
    # 60+ SKUs x 40+ statuses with a few hundred units is the sparse path
    # (grid larger than 4 x units + 1024).
    skus = [f"SKU-{i:03d}" for i in range(n_skus)]
    statuses = [f"status {i:02d}" for i in range(n_statuses)]
    pairs = data.draw(
        st.lists(st.tuples(st.sampled_from(skus), st.sampled_from(statuses)), max_size=80)
    )
    pairs += [(s, statuses[0]) for s in skus] + [(skus[0], t) for t in statuses]
    assert n_skus * n_statuses > 4 * len(pairs) + 1024
    counts = status_counts(table(pairs))
    assert as_counter(counts) == Counter(pairs)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["B", "A", "C"]), st.sampled_from(KNOWN)), min_size=1))
def test_counts_come_sorted_by_sku_then_status(pairs) -> None:
    counts = status_counts(table(pairs))
    keys = list(zip(counts["sku"], counts["status"], strict=True))
    assert keys == sorted(set(pairs))


def test_a_dictionary_with_values_no_unit_uses_counts_only_the_units() -> None:
    sku = pa.DictionaryArray.from_arrays(
        pa.array([2, 2, 0], pa.int32()), pa.array(["A", "UNUSED", "C"])
    )
    status = pa.DictionaryArray.from_arrays(
        pa.array([0, 0, 0], pa.int32()), pa.array(["packed", "cleaning"])
    )
    counts = status_counts(pa.table({"sku": sku, "status": status}))
    assert as_counter(counts) == Counter({("C", "packed"): 2, ("A", "packed"): 1})


def test_a_unit_with_no_sku_or_status_cannot_be_counted() -> None:
    with pytest.raises(ValueError, match="no sku or status"):
        status_counts(table([("A", "packed"), (None, "packed")]))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no sku or status"):
        status_counts(table([("A", None)]))  # type: ignore[list-item]


def test_each_status_gets_its_bucket_and_an_unknown_one_is_never_sellable() -> None:
    counts = status_counts(table([("A", "packed"), ("A", "lost in transit"), ("B", "cleaning")]))
    buckets = dict(zip(counts["status"], counts["bucket"], strict=True))
    assert buckets == {
        "packed": "allocated",
        "lost in transit": "unknown",
        "cleaning": "non_sellable",
    }


def test_totals_per_status_add_up_across_skus_largest_first() -> None:
    pairs = [("A", "packed")] * 2 + [("B", "packed")] * 3 + [("A", "cleaning")] * 4
    totals = units_per_status(status_counts(table(pairs)))
    assert totals.values.tolist() == [["packed", "allocated", 5], ["cleaning", "non_sellable", 4]]
