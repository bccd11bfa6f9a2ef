"""Which ACS stock file is a day's snapshot, what it is called, and which SKUs it counts
(``flows/stock_snapshot.py``: ``partition_day``, ``newest_for_day``, ``snapshot_id_for``,
``sku_map_frame``), without a drop folder or Dagster.

File names carry ACS's UTC stamp; the snapshot day is the UK day of that stamp. The SKU map
counts every SKU ACS holds under a Khaos StockID, whatever its sales state: physical units
are physical. Expected days and rows are written by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from acs_khaos_dagster.connectors.acs.drop import DropEntry
from acs_khaos_dagster.flows.stock_snapshot import (
    SnapshotError,
    newest_for_day,
    partition_day,
    sku_map_frame,
    snapshot_id_for,
)

MTIME = datetime(2026, 3, 2, 12, tzinfo=UTC)


def entry(name: str, mtime: datetime = MTIME) -> DropEntry:
    return DropEntry(name=name, size=100, mtime=mtime)


# --- the snapshot day ---------------------------------------------------------------------------


def test_a_winter_stamp_is_its_own_day() -> None:
    assert partition_day("stock_units_20260115235959.csv", MTIME) == "2026-01-15"


def test_a_late_summer_stamp_belongs_to_the_next_uk_day() -> None:
    assert partition_day("stock_units_20260710230000.csv", MTIME) == "2026-07-11"
    assert partition_day("stock_units_20260710225959.csv", MTIME) == "2026-07-10"


def test_the_stamp_wins_over_the_files_modification_time() -> None:
    copied_later = datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert partition_day("stock_units_20260302080000.csv", copied_later) == "2026-03-02"


def test_a_file_without_a_stamp_is_dated_by_its_modification_time_in_uk_time() -> None:
    assert partition_day("stock_units.csv", datetime(2026, 7, 10, 23, 30, tzinfo=UTC)) == (
        "2026-07-11"
    )
    assert partition_day("stock_units_2026.csv", MTIME) == "2026-03-02"


# --- the newest file of a day -------------------------------------------------------------------


def test_the_days_snapshot_is_its_newest_file() -> None:
    entries = [
        entry("stock_units_20260302060000.csv"),
        entry("stock_units_20260302180000.csv"),
        entry("stock_units_20260302120000.csv"),
        entry("stock_units_20260303060000.csv"),
    ]
    assert newest_for_day(entries, "2026-03-02") == "stock_units_20260302180000.csv"
    assert newest_for_day(entries, "2026-03-03") == "stock_units_20260303060000.csv"


def test_a_file_stamped_late_on_a_summer_evening_is_the_next_days_snapshot() -> None:
    entries = [entry("stock_units_20260710120000.csv"), entry("stock_units_20260710233000.csv")]
    assert newest_for_day(entries, "2026-07-10") == "stock_units_20260710120000.csv"
    assert newest_for_day(entries, "2026-07-11") == "stock_units_20260710233000.csv"


def test_a_day_with_no_file_is_an_error_naming_the_day() -> None:
    with pytest.raises(SnapshotError, match=r"no stock_units_\*\.csv for snapshot day 2026-03-04"):
        newest_for_day([entry("stock_units_20260302060000.csv")], "2026-03-04")


# --- snapshot ids -------------------------------------------------------------------------------


def test_a_snapshot_id_is_its_utc_time_and_file_so_two_files_of_one_time_differ() -> None:
    at = datetime(2026, 7, 10, 23, 30, 5, tzinfo=UTC)
    assert snapshot_id_for(at, 12) == "20260710T233005-F12"
    assert snapshot_id_for(at, 13) != snapshot_id_for(at, 12)


def test_a_snapshot_id_is_the_same_whatever_zone_its_time_is_given_in() -> None:
    local = datetime(2026, 7, 11, 0, 30, 5, tzinfo=ZoneInfo("Europe/London"))
    assert snapshot_id_for(local, 12) == "20260710T233005-F12"


# --- the SKU map --------------------------------------------------------------------------------


def master(*rows: tuple[int, str, bool, bool, float | None]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["stock_id", "stock_code", "stock_controlled", "is_hire", "cost_price"]
    )


def mapping(*rows: tuple[float | None, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "acs_sku", "acs_status", "classification"])


def test_every_sku_acs_holds_under_a_stock_id_counts_whatever_its_sales_state() -> None:
    khaos = master(
        (1, "DRESS-1", True, False, 20.0),
        (2, "DRESS-2", True, False, 21.0),
        (3, "GOWN-H", True, True, 150.0),
        (4, "COAT-NEW", True, False, 40.0),
        (5, "SCARF", True, False, None),
    )
    acs = mapping(
        (1, "DRESS-1", "active", "matched"),
        (2, "DRESS-2", "inactive", "inactive_in_acs"),
        (3, "GOWN-H", "pending", "pending_in_acs"),
        (4, "COAT-OLD", "active", "renamed"),
        (5, "SCARF", "active", "attribute_mismatch"),
    )
    out = sku_map_frame(khaos, acs)
    assert list(out.columns) == ["sku", "stock_id", "stock_code", "is_hire", "cost_price"]
    assert out["sku"].tolist() == ["DRESS-1", "DRESS-2", "GOWN-H", "COAT-OLD", "SCARF"]
    renamed = out.set_index("sku").loc["COAT-OLD"]
    assert (renamed["stock_id"], renamed["stock_code"]) == (4, "COAT-NEW")
    assert bool(out.set_index("sku").loc["GOWN-H", "is_hire"])


def test_skus_acs_does_not_have_or_khaos_cannot_use_are_not_in_the_map() -> None:
    khaos = master(
        (1, "A", True, False, 1.0), (2, "B C", True, False, 1.0), (3, "D", True, False, 1.0)
    )
    acs = mapping(
        (1, "A", "missing", "missing_in_acs"),
        (2, "B C", "active", "invalid_code"),
        (None, "ACS-ONLY", "active", "missing_in_khaos"),
        (3, "", "active", "matched"),
    )
    assert sku_map_frame(khaos, acs).empty


def test_a_stock_item_khaos_does_not_stock_control_is_not_counted() -> None:
    khaos = master((1, "GIFT-CARD", False, False, None), (2, "DRESS", True, False, 9.0))
    acs = mapping((1, "GIFT-CARD", "active", "matched"), (2, "DRESS", "active", "matched"))
    assert sku_map_frame(khaos, acs)["sku"].tolist() == ["DRESS"]


def test_one_sku_and_one_stock_id_each_appear_once_in_the_map() -> None:
    khaos = master((1, "A", True, False, 1.0), (2, "B", True, False, 2.0))
    acs = mapping(
        (1, "A", "active", "matched"),
        (1, "A-ALIAS", "active", "renamed"),  # a second SKU for StockID 1: the first wins
        (2, "A", "active", "attribute_mismatch"),  # SKU A again under StockID 2: first wins
    )
    out = sku_map_frame(khaos, acs)
    assert out[["sku", "stock_id"]].values.tolist() == [["A", 1]]
    assert out["sku"].is_unique and out["stock_id"].is_unique
