"""What the stock group's steps and checks show, without Dagster (``flows/stock_figures.py``,
``SellablePlacement.figures``): the rules of the two checks and
the figures each step hands ``defs/stock.py``. Expected values are written by hand.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pandas as pd

from acs_khaos_dagster.config import StockSettings
from acs_khaos_dagster.flows.figures import Markdown
from acs_khaos_dagster.flows.stock_figures import (
    non_sellable_figures,
    push_figures,
    sellable_verdict,
    snapshot_figures,
    snapshot_quality,
)
from acs_khaos_dagster.flows.stock_placement import SellableCheck, SellablePlacement
from acs_khaos_dagster.flows.stock_push import PushResult
from acs_khaos_dagster.flows.stock_snapshot import SnapshotTakeIn
from acs_khaos_dagster.store import DispatchReport

STOCK = StockSettings(max_quarantine_share=0.01, max_unknown_share=0.05)
WHOLE = {"units": 1000.0, "rows_quarantined": 0.0, "unknown_status_units": 0.0}


# --- no_non_sellable_counted_as_sellable ----------------------------------------------------


def test_the_sellable_check_fails_when_the_days_snapshot_is_missing() -> None:
    verdict = sellable_verdict(None, "2026-03-02")

    assert not verdict.passed
    assert verdict.figures == {"missing": "snapshot of 2026-03-02"}


def test_the_sellable_check_fails_on_a_mismatched_stock_id() -> None:
    verdict = sellable_verdict(SellableCheck("S1", ["101: 3 counted, 2 sellable"], 3), "d")

    assert not verdict.passed
    assert verdict.figures["mismatched_stock_ids"] == 1
    assert verdict.figures["sample"] == Markdown("- 101: 3 counted, 2 sellable")


def test_the_sellable_check_passes_with_no_mismatch_and_shows_none() -> None:
    verdict = sellable_verdict(SellableCheck("S1", [], 7), "d")

    assert verdict.passed
    assert verdict.figures == {
        "snapshot_id": "S1",
        "mismatched_stock_ids": 0,
        "counted_units": 7,
        "sample": Markdown("_none_"),
    }
    assert not verdict.warn  # blocking: an error, not a warning


# --- snapshot_file_is_whole_and_known -------------------------------------------------------


def test_a_whole_snapshot_passes_and_says_so() -> None:
    verdict = snapshot_quality(WHOLE, "stock_units_1.csv", STOCK)

    assert verdict.passed
    assert verdict.description == "whole, nothing unusual"
    assert verdict.figures == {
        "file": "stock_units_1.csv",
        "units": 1000,
        "rows_quarantined": 0,
        "unknown_status_units": 0,
        "file_truncated": False,
    }


def test_a_cut_file_warns() -> None:
    verdict = snapshot_quality({**WHOLE, "file_truncated": 1.0}, "f", STOCK)

    assert not verdict.passed
    assert verdict.warn
    assert verdict.description == "the file was cut short (refused: stock_file_truncated)"


def test_quarantine_above_its_share_warns() -> None:
    figures = {**WHOLE, "units": 980.0, "rows_quarantined": 20.0}

    verdict = snapshot_quality(figures, "f", STOCK)

    assert not verdict.passed
    assert verdict.description == "20.0 of 1000 rows quarantined"


def test_quarantine_at_its_share_passes() -> None:
    figures = {**WHOLE, "units": 990.0, "rows_quarantined": 10.0}

    assert snapshot_quality(figures, "f", STOCK).passed


def test_unknown_statuses_above_their_share_warn() -> None:
    verdict = snapshot_quality({**WHOLE, "unknown_status_units": 51.0}, "f", STOCK)

    assert not verdict.passed
    assert verdict.description == "51 of 1000 units in unknown statuses"


# --- the steps' figures -----------------------------------------------------------------------


def test_a_file_taken_in_before_shows_what_it_was_taken_in_as() -> None:
    took = SnapshotTakeIn("b.csv", pd.DataFrame(), "S1", 12, same_content_as="a.csv")

    assert snapshot_figures(took) == {
        "file": "b.csv",
        "taken_in_before": True,
        "same_content_as": "a.csv",
        "snapshot_id": "S1",
        "units": 12,
    }


def test_non_sellable_units_are_shown_per_bucket_and_site() -> None:
    frame = pd.DataFrame(
        {
            "stock_id": [1, 2, 3],
            "stock_code": ["A", "B", "C"],
            "bucket": ["quarantine", "quarantine", "on_hire"],
            "site_id": [5, 5, 7],
            "units": [2, 3, 4],
        }
    )
    site = SimpleNamespace(off_site=pd.DataFrame({"units": [6]}))

    figures = non_sellable_figures(frame, site)

    assert figures["rows"] == 3
    assert figures["units_quarantine_site_5"] == 5
    assert figures["units_on_hire_site_7"] == 4
    assert figures["off_site_units"] == 6


def test_the_sellable_placement_shows_its_counts_and_a_sample() -> None:
    frame = pd.DataFrame({"stock_id": [1], "sellable_units": [4], "allocated_units": [1]})
    site = SimpleNamespace(
        unknown_units=0, unmatched_units=2, unmatched_selling=pd.DataFrame({"units": [2]})
    )

    figures = SellablePlacement(frame, "S1", site).figures()

    assert figures["sellable_units"] == 4
    assert figures["allocated_units"] == 1
    assert figures["unmatched_sellable_units"] == 2
    assert isinstance(figures["sample"], Markdown)


def test_a_push_without_a_plan_shows_no_plan_table() -> None:
    result = PushResult("nothing", "no snapshot taken in")

    figures = push_figures(result, result.table(), DispatchReport(outcomes=Counter(sent=2)))

    assert "plan" not in figures
    assert figures["outcome"] == "nothing"
    assert figures["effects_sent"] == 2
