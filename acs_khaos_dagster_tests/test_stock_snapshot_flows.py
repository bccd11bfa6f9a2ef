"""The stock snapshot and placement flows without Dagster (issue 21): the store on SQLite,
the ACS drop the simulator writes, Khaos's own stock items for the SKU map.

Oracles are the file the simulator delivered (its rows and units) and what the store and
the data folder hold afterwards, never what the flow returned alone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.flows.stock_placement import (
    check_sellable,
    place_non_sellable,
    place_sellable,
)
from acs_khaos_dagster.flows.stock_push import sellable_path, site_units_path
from acs_khaos_dagster.flows.stock_snapshot import (
    SnapshotError,
    partition_day,
    scan_stock_files,
    take_in_snapshot,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.ledger import file_sha256
from acs_khaos_dagster.store.stock import StockSnapshots


@pytest.fixture
def conf(sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


@pytest.fixture
def store(conf: Settings) -> Iterator[Store]:
    with Store.from_settings(conf) as db:
        yield db


def _stock_file(sandbox) -> Path:
    return next(p for p in sandbox.acs.write_daily_files() if "stock_units" in p.name)


def _day(path: Path) -> str:
    return partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))


def _sku_map(sandbox) -> pd.DataFrame:
    """ACS SKU → StockID as Khaos holds its items (the scenario's ACS SKU is the code)."""
    items = [i for i in sandbox.khaos.truth()["stock_items"] if i["stock_controlled"]]
    return pd.DataFrame(
        [
            (i["stock_code"], i["stock_id"], i["stock_code"], i["is_hire"], float(i["cost_price"]))
            for i in items
        ],
        columns=["sku", "stock_id", "stock_code", "is_hire", "cost_price"],
    )


def _take(store: Store, conf: Settings, path: Path, run_id: str = "run-1"):
    with open_drop(conf) as drop:
        return take_in_snapshot(store, drop, conf, _day(path), path.name, run_id)


def _file_units(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


# --- names and days ---------------------------------------------------------------------------


def test_the_snapshot_day_is_the_uk_day_of_the_utc_stamp_in_the_name() -> None:
    # 23:30 UTC on 30 June is 00:30 on 1 July in London (BST).
    mtime = datetime(2026, 1, 1, tzinfo=UTC)
    assert partition_day("stock_units_20260630233000.csv", mtime) == "2026-07-01"


def test_a_file_without_a_stamp_takes_its_day_from_its_mtime() -> None:
    assert partition_day("stock_units.csv", datetime(2026, 3, 2, 12, tzinfo=UTC)) == "2026-03-02"


# --- take in ------------------------------------------------------------------------------------


def test_a_stock_file_is_taken_in_with_every_unit_kept_and_a_snapshot_recorded(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)

    took = _take(store, conf, path)

    assert took.read is not None and took.units == _file_units(path)
    units_path = conf.data_dir / "stock" / "units" / f"{took.snapshot_id}.parquet"
    kept = pd.read_parquet(units_path)
    assert len(kept) == took.units
    # Written with its own encodings: it reads back as the very table the reader gave,
    # and a unique_sku filter (the hire lifecycle's read) finds exactly its units.
    assert pq.read_table(units_path).equals(took.read.units)
    some = sorted(kept["unique_sku"].iloc[::7].head(5))
    filtered = pd.read_parquet(units_path, filters=[("unique_sku", "in", some)])
    assert sorted(filtered["unique_sku"]) == some
    [recorded] = StockSnapshots(store.db).all()
    assert recorded.snapshot_id == took.snapshot_id and recorded.file_name == path.name
    # The ledger's hash (taken while copying out of the drop) is the file's own.
    [ledger_row] = store.ledger.find(kind="stock_units")
    assert ledger_row.sha256 == file_sha256(path)


def test_the_same_file_taken_in_twice_gives_the_first_snapshot_and_records_no_other(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    first = _take(store, conf, path, "run-1")

    again = _take(store, conf, path, "run-2")

    assert again.read is None
    assert (again.snapshot_id, again.same_content_as) == (first.snapshot_id, path.name)
    assert len(StockSnapshots(store.db).all()) == 1


def test_a_file_cut_short_is_refused_and_raised_for_the_integration_owner(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2].rstrip(b"\n")[:-3])  # ends inside a line

    took = _take(store, conf, path)

    [snapshot] = StockSnapshots(store.db).all()
    assert snapshot.snapshot_id == took.snapshot_id and snapshot.state == "refused"
    [raised] = store.exceptions.list(type="stock_file_truncated")
    assert raised.row.entity_ref == f"file:{path.name}"


def test_a_day_without_a_stock_file_is_a_snapshot_error_naming_the_day(
    sandbox, store: Store, conf: Settings
) -> None:
    with open_drop(conf) as drop, pytest.raises(SnapshotError, match="2025-01-01"):
        take_in_snapshot(store, drop, conf, "2025-01-01", "", "run-1")


# --- the scan the sensor asks ---------------------------------------------------------------


def test_the_scan_offers_a_new_file_once_and_never_one_whose_content_was_taken_in(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    with open_drop(conf) as drop:
        first = scan_stock_files(drop, store, {})
    assert [(f.name, f.day) for f in first.new] == [(path.name, _day(path))]

    with open_drop(conf) as drop:
        unchanged = scan_stock_files(drop, store, first.seen)
    _take(store, conf, path)
    with open_drop(conf) as drop:
        forgotten = scan_stock_files(drop, store, {})

    assert unchanged.new == []
    assert forgotten.new == []
    assert forgotten.notes == [("info", f"{path.name}: the same content was taken in before")]


# --- placement --------------------------------------------------------------------------------


def test_sellable_placement_keeps_what_the_push_reads_and_its_check_agrees(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    took = _take(store, conf, path)

    placed = place_sellable(store, conf, took.counts, _sku_map(sandbox), "run-1", _day(path))

    assert placed.snapshot_id == took.snapshot_id
    assert sellable_path(conf, took.snapshot_id).exists()
    assert site_units_path(conf, took.snapshot_id).exists()
    checked = check_sellable(store, conf, "run-1", _day(path))
    assert checked is not None and checked.mismatches == []
    assert checked.counted_units == int(
        placed.frame["sellable_units"].sum() + placed.frame["allocated_units"].sum()
    )


def test_the_check_fails_when_the_sellable_table_counts_a_unit_the_snapshot_does_not(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    took = _take(store, conf, path)
    placed = place_sellable(store, conf, took.counts, _sku_map(sandbox), "run-1", _day(path))
    tampered = placed.frame.copy()
    tampered.loc[0, "sellable_units"] += 1
    tampered.to_parquet(sellable_path(conf, took.snapshot_id), index=False)

    checked = check_sellable(store, conf, "run-1", _day(path))

    assert checked is not None and len(checked.mismatches) == 1


def test_counts_putting_a_quarantined_unit_in_a_sellable_bucket_are_refused_before_placing(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    took = _take(store, conf, path)
    counts = took.counts.copy()
    other = counts["bucket"] != "sellable"
    assert other.any()
    counts.loc[other.idxmax(), "bucket"] = "sellable"

    with pytest.raises(SnapshotError, match="counted as sellable"):
        place_sellable(store, conf, counts, _sku_map(sandbox), "run-1", _day(path))
    assert not sellable_path(conf, took.snapshot_id).exists()


def test_units_not_for_sale_are_placed_by_bucket_and_none_is_sellable(
    sandbox, store: Store, conf: Settings
) -> None:
    path = _stock_file(sandbox)
    took = _take(store, conf, path)

    frame, _ = place_non_sellable(took.counts, _sku_map(sandbox), conf)

    assert len(frame) > 0
    assert set(frame["bucket"]) <= {"non_sellable", "on_hire"}
    assert (frame["units"] >= 1).all()


def test_the_two_placements_of_one_snapshot_place_its_units_once_and_a_change_places_again(
    sandbox, store: Store, conf: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acs_khaos_dagster.flows import stock_placement

    path = _stock_file(sandbox)
    took = _take(store, conf, path)
    calls: list[int] = []
    real = stock_placement.acs_site_units

    def counting(counts, *args, **kwargs):
        calls.append(len(counts))
        return real(counts, *args, **kwargs)

    monkeypatch.setattr(stock_placement, "acs_site_units", counting)
    stock_placement._LAST_PLACEMENT.clear()
    sku_map = _sku_map(sandbox)
    # As Dagster hands them over: each step loads its own copy of the same counts.
    placed = place_sellable(store, conf, took.counts.copy(), sku_map.copy(), "run-1", _day(path))
    others, _ = place_non_sellable(took.counts.copy(), sku_map.copy(), conf, "run-1")
    assert len(calls) == 1
    assert placed.frame["sellable_units"].sum() > 0
    stock_placement._LAST_PLACEMENT.clear()
    fresh, _ = place_non_sellable(took.counts, sku_map, conf, "run-1")  # placed on its own
    pd.testing.assert_frame_equal(others, fresh)

    # Another run, one unit more anywhere, another SKU map or other sites: placed again.
    place_non_sellable(took.counts, sku_map, conf, "run-2")
    changed = took.counts.copy()
    changed.loc[changed.index[0], "units"] += 1
    place_non_sellable(changed, sku_map, conf, "run-2")
    place_non_sellable(took.counts, sku_map.iloc[1:], conf, "run-2")
    other_sites = conf.model_copy(
        update={
            "khaos": conf.khaos.model_copy(
                update={"sites": conf.khaos.sites.model_copy(update={"quarantine": 16})}
            )
        }
    )
    place_non_sellable(took.counts, sku_map, other_sites, "run-2")
    place_non_sellable(took.counts, sku_map, conf)  # no run named: never from the cache
    place_non_sellable(took.counts, sku_map, conf)
    assert len(calls) == 8
