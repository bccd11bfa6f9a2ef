"""The incremental hire lifecycle: folding snapshots run by run equals the full recompute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.hire import hire_unit_lifecycle
from acs_khaos_dagster.domain.hire_fold import HireFold, fold_hire_lifecycle

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def snapshot(
    at: datetime, *units: tuple[str, str, datetime | None]
) -> tuple[datetime, pd.DataFrame]:
    return at, pd.DataFrame(
        [
            {"unique_sku": u, "sku": "GOWN-HIRE-12", "status": status, "last_event_at": moved}
            for u, status, moved in units
        ],
        columns=["unique_sku", "sku", "status", "last_event_at"],
    )


def events(*rows: tuple[str, str, datetime]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"unique_sku": u, "stage": stage, "at": at} for u, stage, at in rows],
        columns=["unique_sku", "stage", "at"],
    )


def fold_one_run_at_a_time(runs: list[tuple[list, pd.DataFrame | None]]) -> HireFold:
    state = HireFold.empty()
    for snaps, evs in runs:
        state = fold_hire_lifecycle(state, snaps, evs)
    return state


def test_folding_one_snapshot_per_run_gives_each_units_stages_in_order() -> None:
    runs = [
        ([snapshot(T0, ("H1", "With Customer", T0 - DAY), ("H2", "Cleaning", None))], None),
        ([snapshot(T0 + DAY, ("H1", "With Customer", T0 - DAY), ("H2", "Cleaning", None))], None),
        (
            [snapshot(T0 + 2 * DAY, ("H1", "Awaiting Inspection", T0 + 2 * DAY - 3 * HOUR))],
            events(("H2", "out", T0 + 2 * DAY - HOUR)),
        ),
        ([snapshot(T0 + 3 * DAY, ("H1", "Cleaning", None), ("H2", "Cleaning", None))], None),
        ([snapshot(T0 + 4 * DAY, ("H1", "In Warehouse - Ready For Customer", None))], None),
    ]

    state = fold_one_run_at_a_time(runs)

    units = state.lifecycle().set_index("unique_sku")
    assert units.loc["H1", "history"] == (
        "out 2025-06-01T09:00Z > back 2025-06-04T06:00Z > inspected 2025-06-04T06:00Z"
        " > cleaned 2025-06-05T09:00Z > ready 2025-06-06T09:00Z"
    )
    assert units.loc["H2", "history"] == (
        "cleaned 2025-06-02T09:00Z > out 2025-06-04T08:00Z > back 2025-06-05T09:00Z"
        " > cleaned 2025-06-05T09:00Z"
    )
    assert units.loc["H1", ["stage", "times_out"]].tolist() == ["ready", 1]
    assert units.loc["H2", ["stage", "times_out"]].tolist() == ["cleaned", 1]
    assert bool(units.loc["H1", "in_latest_snapshot"])
    assert not bool(units.loc["H2", "in_latest_snapshot"])
    assert units.loc["H2", "last_seen_at"] == pd.Timestamp(T0 + 3 * DAY)


def test_a_run_with_nothing_new_leaves_the_lifecycle_as_it_was() -> None:
    state = fold_one_run_at_a_time([([snapshot(T0, ("H1", "With Customer", None))], None)])

    again = fold_hire_lifecycle(state, [], None)

    pd.testing.assert_frame_equal(again.lifecycle(), state.lifecycle())


def test_an_event_folded_a_second_time_changes_nothing() -> None:
    back = events(("H1", "back", T0 + 2 * HOUR))
    runs = [
        ([snapshot(T0, ("H1", "With Customer", None))], back),
        ([snapshot(T0 + DAY, ("H1", "Cleaning", None))], back),
    ]

    twice = fold_one_run_at_a_time(runs).lifecycle()

    once = hire_unit_lifecycle([runs[0][0][0], runs[1][0][0]], back)
    pd.testing.assert_frame_equal(twice, once)


STATUSES = [
    "With Customer",
    "Receipted - No Location",
    "Awaiting Inspection",
    "Cleaning",
    "Quarantine",
    "In Warehouse - Ready For Customer",
    "Ex-Hired",
    "Lost In Space",
]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list, pd.DataFrame, list[int]]:
    """Snapshots of up to three units over up to seven days, hire events between them, and
    where the runs split them. As ACS writes them: a unit's ``last_event_at`` never goes
    back and is at or after every move (event) of the unit before the snapshot; or it is
    absent and the snapshot time stands for it."""
    days = draw(st.integers(1, 7))
    units = ["H1", "H2", "H3"][: draw(st.integers(1, 3))]
    evs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(units),
                st.sampled_from(["out", "back", "retired"]),
                st.integers(-24, 24 * days).map(lambda h: T0 + h * HOUR),
            ),
            max_size=4,
        )
    )
    with_moves = draw(st.booleans())
    moved: dict[str, datetime] = {}
    snaps = []
    for day in range(days):
        taken = T0 + day * DAY
        rows = []
        for unit in units:
            if not draw(st.booleans()):
                continue  # not listed in this snapshot
            if with_moves:
                candidates = [moved.get(unit, taken - DAY)]
                candidates += [at for u, _, at in evs if u == unit and at <= taken]
                if unit not in moved or draw(st.booleans()):
                    candidates.append(taken - draw(st.integers(0, 23)) * HOUR)
                moved[unit] = max(candidates)
            rows.append((unit, draw(st.sampled_from(STATUSES)), moved.get(unit)))
        snaps.append(snapshot(taken, *rows))
    cuts = sorted(draw(st.sets(st.integers(1, days - 1), max_size=days - 1)) if days > 1 else [])
    return snaps, events(*evs), cuts


@settings(max_examples=150, deadline=None)
@given(histories())
def test_folding_run_by_run_equals_recomputing_from_every_snapshot(
    history: tuple[list, pd.DataFrame, list[int]],
) -> None:
    snaps, evs, cuts = history
    bounds = [0, *cuts, len(snaps)]
    runs = []
    for n, (start, end) in enumerate(pairwise(bounds)):
        # An event is folded no later than the run of the first snapshot after it.
        after = snaps[end][0] if end < len(snaps) else None
        before = snaps[start][0] if n else None
        mine = evs
        if after is not None:
            mine = mine[mine["at"] < after]
        if before is not None:
            mine = mine[mine["at"] >= before]
        runs.append((snaps[start:end], mine))

    folded = fold_one_run_at_a_time(runs).lifecycle()

    pd.testing.assert_frame_equal(folded, hire_unit_lifecycle(snaps, evs))
