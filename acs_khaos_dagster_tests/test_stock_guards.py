"""Guards between an ACS snapshot and the push."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_guards import (
    SnapshotTotals,
    UnknownStatusReport,
    no_non_sellable_counted_as_sellable,
    plausibility,
)
from acs_khaos_dagster.domain.stock_push import acs_site_units

READY = "in warehouse - ready for customer"
LAST = SnapshotTotals(total=10_000, sellable=8_000, unknown=0)


def test_file_cut_at_sixty_percent_is_refused() -> None:
    result = plausibility(SnapshotTotals(total=6_000, sellable=4_800, unknown=0), LAST)
    assert not result.accepted
    assert any("truncated" in r for r in result.reasons)


def test_five_percent_dip_is_accepted() -> None:
    assert plausibility(SnapshotTotals(total=9_500, sellable=7_600, unknown=0), LAST).accepted


def test_sellable_drop_over_twenty_percent_is_refused() -> None:
    result = plausibility(SnapshotTotals(total=9_900, sellable=6_000, unknown=0), LAST)
    assert not result.accepted and "sellable" in result.reasons[0]


def test_unknown_share_above_two_percent_is_refused() -> None:
    result = plausibility(SnapshotTotals(total=10_000, sellable=7_700, unknown=300), LAST)
    assert not result.accepted and "unknown status" in result.reasons[0]


def test_first_snapshot_is_judged_on_unknown_share_only() -> None:
    assert plausibility(SnapshotTotals(total=50, sellable=1, unknown=1), None).accepted
    assert not plausibility(SnapshotTotals(total=50, sellable=40, unknown=2), None).accepted


def test_empty_snapshot_is_always_refused() -> None:
    assert not plausibility(SnapshotTotals(total=0, sellable=0, unknown=0), None).accepted


def test_totals_count_allocated_units_as_sellable_and_unknown_apart() -> None:
    counts = pd.DataFrame(
        {
            "sku": ["A", "A", "A", "B"],
            "status": [READY, "packed", "mystery", "in repair"],
            "units": [5, 2, 1, 3],
        }
    )
    assert SnapshotTotals.from_counts(counts) == SnapshotTotals(total=11, sellable=7, unknown=1)


def test_non_sellable_row_labelled_sellable_is_a_problem() -> None:
    counts = pd.DataFrame(
        {
            "sku": ["A", "A"],
            "status": [READY, "in refurbishment"],
            "bucket": ["sellable"] * 2,
            "units": [4, 3],
        }
    )
    (problem,) = no_non_sellable_counted_as_sellable(counts)
    assert (problem.key, problem.policy_bucket, problem.units) == ("A", "non_sellable", 3)


def test_unknown_status_labelled_sellable_is_a_problem() -> None:
    counts = pd.DataFrame(
        {"sku": ["A"], "status": ["mystery"], "bucket": ["sellable"], "units": [2]}
    )
    assert no_non_sellable_counted_as_sellable(counts)[0].policy_bucket == "unknown"


def test_site_units_built_by_the_policy_pass_the_check() -> None:
    counts = pd.DataFrame(
        {
            "sku": ["A", "A", "A"],
            "status": [READY, "quarantine", "mystery"],
            "bucket": ["sellable", "non_sellable", "unknown"],
            "units": [4, 3, 2],
        }
    )
    sku_map = pd.DataFrame({"sku": ["A"], "stock_id": [1], "is_hire": [False]})
    detail = acs_site_units(counts, sku_map).detail
    assert no_non_sellable_counted_as_sellable(counts, site_detail=detail, sites=KhaosSites()) == []


def test_unknown_status_report_names_each_raw_value_and_its_units() -> None:
    units = pa.table(
        {
            "sku": ["A", "A", "B", "C"],
            "status_raw": ["Lost In Space", "Lost In Space", "Mystery", READY],
        }
    )
    report = UnknownStatusReport.from_units(units)
    assert report.units_by_value == {"Lost In Space": 2, "Mystery": 1}
    assert report.owner == "operations" and "3 unit(s)" in report.message()


def test_unknown_status_report_from_counts_is_empty_when_all_known() -> None:
    counts = pd.DataFrame({"sku": ["A"], "status": [READY], "units": [4]})
    assert not UnknownStatusReport.from_counts(counts)
