"""Issue 23, target 1: the snapshot path's rewritten steps give exactly what the old ones
gave (``snapshot_reference``: the code before the rewrite), on a generated scenario's stock
file read the fast way, the same rows shuffled (de-duplication by hash), and a copy with
rows the careful read quarantines, trims, de-duplicates and reports."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from acs_khaos_dagster.connectors.acs.files import read_stock_units
from acs_khaos_dagster.connectors.acs.files import stock_units as reader
from acs_khaos_dagster.connectors.acs.files.values import _single_value
from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.reconciliation.common import _cost_scaled
from acs_khaos_dagster.domain.snapshot import status_counts
from acs_khaos_dagster.domain.stock_push import (
    acs_site_units,
    cost_prices_from,
    plan_push,
    price_floats,
)
from acs_khaos_dagster.domain.stock_push.plan import _cost_table
from acs_khaos_dagster.domain.stock_status import DEFAULT_STATUS_POLICY
from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest
from acs_khaos_dagster_tests import snapshot_reference as before

SITE_FRAMES = ("units", "detail", "unknown", "unmatched", "off_site", "unmatched_selling")
# Rows the careful read must deal with: spaces around a value (the file takes the careful
# path), a bad timestamp (quarantined), a unit listed again later and one listed twice at
# the same moment with different statuses (conflict), an event after the snapshot, a
# status nobody knows and a SKU Khaos does not know.
CAREFUL_ROWS = (
    "BRAND01,2026-03-02T07:00:00Z, {sku} ,UX00001,,In Warehouse - Ready For Customer,,A,"
    "2026-02-01T10:00:00Z,,",
    "BRAND01,2026-03-02T07:00:00Z,{sku},UX00002,,Allocated,,A,not-a-time,,",
    "BRAND01,2026-03-02T07:00:00Z,{sku},{first},,Cleaning,,A,2026-03-01T11:00:00Z,,",
    "BRAND01,2026-03-02T07:00:00Z,{sku},UX00003,,Allocated,,A,2026-03-01T09:00:00Z,,",
    "BRAND01,2026-03-02T07:00:00Z,{sku},UX00003,,Cleaning,,A,2026-03-01T09:00:00Z,,",
    "BRAND01,2026-03-02T07:00:00Z,{sku},UX00004,,Allocated,,A,2026-03-05T09:00:00Z,,",
    "BRAND01,2026-03-02T07:00:00Z,{sku},UX00005,,Lost In Space,,A,2026-03-01T09:00:00Z,,",
    "BRAND01,2026-03-02T07:00:00Z,NO-SUCH-SKU,UX00006,,Allocated,,A,2026-03-01T09:00:00Z,,",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScenarioManifest]:
    folder = tmp_path_factory.mktemp("small_scenario")
    generate_scenario("small", 11, folder)
    return folder, ScenarioManifest.load(folder)


@pytest.fixture(scope="module")
def files(scenario: tuple[Path, ScenarioManifest]) -> dict[str, Path]:
    folder, manifest = scenario
    path = folder / manifest.files.stock_units
    header, *rows = path.read_bytes().splitlines(keepends=True)
    order = np.random.default_rng(5).permutation(len(rows))
    shuffled = folder / "shuffled" / path.name
    shuffled.parent.mkdir()
    shuffled.write_bytes(header + b"".join(rows[i] for i in order))
    sku = rows[0].split(b",")[2].decode()
    first = rows[0].split(b",")[3].decode()
    extra = "".join(r.format(sku=sku, first=first) + "\n" for r in CAREFUL_ROWS)
    careful = folder / "careful" / path.name
    careful.parent.mkdir()
    careful.write_bytes(header + b"".join(rows) + extra.encode())
    return {"clean": path, "shuffled": shuffled, "careful": careful}


def sku_map(manifest: ScenarioManifest) -> pd.DataFrame:
    items = manifest.stock_items
    return pd.DataFrame(
        {
            "sku": [i.stock_code for i in items],
            "stock_id": [i.stock_id for i in items],
            "is_hire": [i.is_hire for i in items],
            "cost_price": [i.cost_price for i in items],
        }
    )


def read_before(path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as patch:
        patch.setattr(reader, "_future_lines", before.old_future_lines)
        patch.setattr(reader, "_single_value", before._single_value)
        patch.setattr(reader, "_resolve_duplicates", before._resolve_duplicates)
        return read_stock_units(path, DEFAULT_STATUS_POLICY)


@pytest.mark.parametrize("kind", ["clean", "shuffled", "careful"])
def test_the_reader_reads_what_it_read_before(
    files: dict[str, Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = read_stock_units(files[kind], DEFAULT_STATUS_POLICY)
    old = read_before(files[kind], monkeypatch)
    assert new.units.equals(old.units)
    assert {k: v for k, v in asdict(new).items() if k != "units"} == {
        k: v for k, v in asdict(old).items() if k != "units"
    }
    if kind == "careful":  # each careful case did happen
        assert new.quarantined and new.conflicts and new.duplicates_removed >= 2
        assert any("later than snapshot_at" in p for p in new.problems)
    if kind == "shuffled":
        assert not reader._strictly_increasing(new.units["unique_sku"])


@pytest.mark.parametrize("kind", ["clean", "shuffled", "careful"])
def test_counts_and_site_units_are_what_they_were(
    files: dict[str, Path], scenario: tuple[Path, ScenarioManifest], kind: str
) -> None:
    units = read_stock_units(files[kind], DEFAULT_STATUS_POLICY).units
    shuffled_units = units.take(pa.array(np.random.default_rng(3).permutation(units.num_rows)))
    for table in (units, shuffled_units, units.slice(0, 0), units.slice(7, 1)):
        assert_frame_equal(status_counts(table), before.status_counts(table), check_exact=True)
    counts = status_counts(units)
    counts_zero = counts.assign(units=counts["units"].where(counts.index % 11 > 0, 0))
    full = sku_map(scenario[1])
    hire_unknown = full.assign(is_hire=full["is_hire"].astype(object).where(full.index % 7 > 0))
    maps = {
        "full": full,
        "a third": full.iloc[::3],
        "none": full.iloc[:0],
        "hire flag missing": hire_unknown,
        "stock_id missing": full.assign(
            stock_id=full["stock_id"].astype("float64").where(full.index % 5 > 0)
        ),
    }
    sites = KhaosSites()
    for (name, frame), these in [(m, c) for m in maps.items() for c in (counts, counts_zero)]:
        new = acs_site_units(these, frame, DEFAULT_STATUS_POLICY, sites)
        old = before.acs_site_units(these, frame, DEFAULT_STATUS_POLICY, sites)
        for part in SITE_FRAMES:
            assert_frame_equal(getattr(new, part), getattr(old, part), obj=f"{name} {part}")
    assert len(new.detail) > 0 and new.unknown_units >= (kind == "careful")


def test_cost_prices_convert_as_they_did(scenario: tuple[Path, ScenarioManifest]) -> None:
    frame = sku_map(scenario[1])
    odd = [None, "1.5", " 2.5 ", b"3.5", True, 3, np.nan, Decimal("NaN"), "1_000", "x", pd.NA]
    for values in (
        frame["cost_price"],
        frame["cost_price"].astype(str),
        frame["cost_price"].astype(float),
        pd.Series(odd, dtype=object, index=range(10, 10 + len(odd))),
        pd.Series(odd[:7], dtype=object),
        pd.Series([], dtype=object),
    ):
        assert_series_equal(price_floats(values), before.price_floats(values), check_exact=True)
    for prices in (frame, frame.assign(cost_price=frame["cost_price"].astype(str))):
        new, old = cost_prices_from(prices), before.cost_prices_from(prices)
        assert new == old
        assert [v.as_tuple() for v in new.values()] == [v.as_tuple() for v in old.values()]
    costs = cost_prices_from(frame)
    ids = pd.Series([*frame["stock_id"].tolist(), 999_999_999])
    for mapping in (costs, {}, {1.0: Decimal("2")}, {np.int64(4): Decimal("1.25")}):
        assert_frame_equal(_cost_table(mapping), before._cost_table(mapping), check_exact=True)
    floats = before.price_floats(pd.Series(dict(costs)).astype(object))
    floats.index = floats.index.astype("int64")
    assert_series_equal(_cost_scaled(ids, costs), (ids.map(floats) * 10_000).round())


def test_the_plan_is_what_it_was(
    files: dict[str, Path], scenario: tuple[Path, ScenarioManifest]
) -> None:
    manifest = scenario[1]
    frame = sku_map(manifest)
    units = read_stock_units(files["careful"], DEFAULT_STATUS_POLICY).units
    levels = pd.DataFrame(
        [(lv.stock_id, lv.site_id, lv.level + (lv.stock_id % 3)) for lv in manifest.khaos_levels],
        columns=["stock_id", "site_id", "level"],
    )
    plans = []
    for counts_of, site_units_of, costs_of in (
        (status_counts, acs_site_units, cost_prices_from),
        (before.status_counts, before.acs_site_units, before.cost_prices_from),
    ):
        site = site_units_of(counts_of(units), frame)
        plans.append(plan_push(site, levels, None, snapshot_id="S", cost_prices=costs_of(frame)))
    assert_frame_equal(plans[0].targets, plans[1].targets, check_exact=True)
    assert plans[0].groups == plans[1].groups and plans[0].held == plans[1].held
    assert plans[0].moves == plans[1].moves and plans[0].lines > 0


def test_one_snapshot_time_is_found_as_counting_found_it() -> None:
    at = pa.array([1_772_434_800_000_000] * 4, pa.timestamp("us", tz="UTC"))
    for column in (
        pa.chunked_array([at]),
        pa.chunked_array([at.slice(0, 2), at.slice(2)]),
        pa.chunked_array([pa.concat_arrays([at.slice(0, 3), pa.array([0], at.type)])]),
        pa.chunked_array([pa.array(["", ""])]),
    ):
        new_problems: list[str] = []
        old_problems: list[str] = []
        assert _single_value(column, "x", new_problems, "max") == before._single_value(
            column, "x", old_problems, "max"
        )
        assert new_problems == old_problems
