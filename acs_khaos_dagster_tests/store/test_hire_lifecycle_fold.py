"""The hire lifecycle kept in the store (SQLite and PostgreSQL): a run folds only the
snapshot files it has not folded before, and what it folded outlives the files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.flows import hire as hire_flow
from acs_khaos_dagster.flows.hire import fold_new_snapshots
from acs_khaos_dagster.store import Store

HIRE = "GOWN-HIRE-12"
T0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def conf(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


def keep_snapshot(conf: Settings, name: str, taken: datetime, *units: tuple[str, str]) -> Path:
    """A unit snapshot as the stock flow keeps it (``stock/units/<id>.parquet``)."""
    path = conf.data_dir / "stock" / "units" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    at = pd.Timestamp(taken)
    pd.DataFrame(
        {
            "unique_sku": [u for u, _ in units],
            "sku": [HIRE] * len(units),
            "status": [s for _, s in units],
            "last_event_at": [at] * len(units),
            "snapshot_at": [at] * len(units),
        }
    ).to_parquet(path)
    return path


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The snapshot files each run opens for their units."""
    seen: list[str] = []
    real = hire_flow.hire_units_of

    def spy(path: Path, skus: set[str]) -> pd.DataFrame:
        seen.append(path.stem)
        return real(path, skus)

    monkeypatch.setattr(hire_flow, "hire_units_of", spy)
    return seen


def stages(result: hire_flow.HireLifecycle, unit: str) -> list[str]:
    history = result.lifecycle.set_index("unique_sku").loc[unit, "history"]
    return [entry.split()[0] for entry in history.split(" > ")]


def test_a_second_run_reads_only_the_snapshot_taken_since_the_first(
    store: Store, conf: Settings, opened: list[str]
) -> None:
    keep_snapshot(conf, "s1", T0, ("H1", "With Customer"), ("H2", "Cleaning"))
    fold_new_snapshots(store, conf, {HIRE})
    keep_snapshot(conf, "s2", T0 + DAY, ("H1", "Cleaning"), ("H2", "Cleaning"))
    opened.clear()

    second = fold_new_snapshots(store, conf, {HIRE})

    assert opened == ["s2"] and second.snapshots_read == 1
    assert stages(second, "H1") == ["out", "back", "cleaned"]
    assert stages(second, "H2") == ["cleaned"]


def test_a_run_with_no_new_snapshot_opens_none_and_rewrites_no_unit(
    store: Store, conf: Settings, opened: list[str]
) -> None:
    keep_snapshot(conf, "s1", T0, ("H1", "With Customer"))
    first = fold_new_snapshots(store, conf, {HIRE})
    opened.clear()

    again = fold_new_snapshots(store, conf, {HIRE})

    assert opened == [] and again.snapshots_read == 0 and again.units_rewritten == 0
    pd.testing.assert_frame_equal(again.lifecycle, first.lifecycle)


def test_the_folded_history_outlives_the_snapshot_files_it_came_from(
    store: Store, conf: Settings
) -> None:
    first = keep_snapshot(conf, "s1", T0, ("H1", "With Customer"))
    fold_new_snapshots(store, conf, {HIRE})
    first.unlink()  # the snapshot retention removed it
    keep_snapshot(conf, "s2", T0 + DAY, ("H1", "Awaiting Inspection"))

    result = fold_new_snapshots(store, conf, {HIRE})

    assert stages(result, "H1") == ["out", "back", "inspected"]
    assert result.lifecycle.set_index("unique_sku").loc["H1", "times_out"] == 1


def test_a_snapshot_older_than_the_newest_folded_is_left_out_and_counted_late(
    store: Store, conf: Settings
) -> None:
    keep_snapshot(conf, "s2", T0 + DAY, ("H1", "Cleaning"))
    fold_new_snapshots(store, conf, {HIRE})
    keep_snapshot(conf, "s1", T0, ("H1", "With Customer"))

    result = fold_new_snapshots(store, conf, {HIRE})

    assert result.snapshots_late == 1 and result.snapshots_read == 0
    assert stages(result, "H1") == ["cleaned"]


@pytest.mark.parametrize("insert_chunk", [None, 1], ids=["default", "row_by_row"])
def test_the_stored_fold_reads_back_as_written_run_after_run(
    store: Store, insert_chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acs_khaos_dagster.domain.hire_fold import HireFold, fold_hire_lifecycle
    from acs_khaos_dagster.store import hire_lifecycle
    from acs_khaos_dagster.store.hire_lifecycle import HireLifecycleBook

    if insert_chunk is not None:
        # Written in chunks (a first fold writes the whole fleet): every row, in order.
        monkeypatch.setattr(hire_lifecycle, "_INSERT_CHUNK", insert_chunk)

    def snap(at: datetime, *units: tuple[str, str, datetime]) -> tuple[datetime, pd.DataFrame]:
        rows = [
            {"unique_sku": u, "sku": HIRE, "status": s, "last_event_at": m} for u, s, m in units
        ]
        return at, pd.DataFrame(rows)

    hour = timedelta(hours=1)
    back = pd.DataFrame([{"unique_sku": "H1", "stage": "back", "at": T0 + 2 * hour}])
    runs = [
        ([snap(T0, ("H1", "With Customer", T0 - DAY), ("H2", "Cleaning", T0 - DAY))], back),
        # H1's back entry (opened by the event, no status) takes the snapshot's status: its
        # entries are rewritten; H2 is not listed: its last sighting is kept.
        ([snap(T0 + DAY, ("H1", "Receipted - No Location", T0 + 2 * hour))], None),
        # H2 listed again and moved on: entries appended.
        ([snap(T0 + 2 * DAY, ("H2", "With Customer", T0 + 2 * DAY - hour))], None),
    ]
    book = HireLifecycleBook(store.db)
    expected = HireFold.empty()
    for snapshots, events in runs:
        entries, last_seen = book.load(expected.latest)
        pd.testing.assert_frame_equal(entries, expected.entries, check_dtype=False)
        pd.testing.assert_series_equal(
            last_seen.sort_index(),
            expected.last_seen.sort_index(),
            check_names=False,
            check_index_type=False,
        )
        folded = fold_hire_lifecycle(
            HireFold(entries, last_seen, expected.latest), snapshots, events
        )
        with store.transaction() as session:
            book.save(
                (entries, last_seen, expected.latest),
                (folded.entries, folded.last_seen, folded.latest),
                session,
                rebuilt=folded.rebuilt,  # as the flow writes it
            )
        expected = folded

    entries, last_seen = book.load(expected.latest)
    lifecycle = HireFold(entries, last_seen, expected.latest).lifecycle()
    pd.testing.assert_frame_equal(lifecycle, expected.lifecycle())
    assert lifecycle.set_index("unique_sku").loc["H1", "status"] == "receipted - no location"


def test_the_expected_return_dates_are_read_for_the_units_asked_only(conf: Settings) -> None:
    path = keep_snapshot(conf, "S1", T0, ("H1", "With Customer"), ("H2", "With Customer"))
    frame = pd.read_parquet(path).assign(expected_return_date=[T0 + DAY, T0 + 2 * DAY])
    frame.to_parquet(path)
    folders = [conf.data_dir / "stock" / "units"]

    everyone = hire_flow.newest_expected_returns(folders)
    asked = hire_flow.newest_expected_returns(folders, units={"H2", "H9"})
    nobody = hire_flow.newest_expected_returns(folders, units=set())

    assert list(everyone["unique_sku"]) == ["H1", "H2"]
    pd.testing.assert_frame_equal(asked, everyone.iloc[[1]].reset_index(drop=True))
    assert nobody.empty and list(nobody.dtypes) == list(everyone.dtypes)
