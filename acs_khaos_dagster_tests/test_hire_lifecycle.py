"""Hire units: lifecycle stage, since when, and history across ACS snapshots and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from acs_khaos_dagster.domain.hire import (
    HireStage,
    hire_unit_history,
    hire_unit_lifecycle,
    stage_for_status,
)

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def snapshot(
    at: datetime, *units: tuple[str, str, datetime | None], sku: str = "GOWN-HIRE-12"
) -> tuple[datetime, pd.DataFrame]:
    return at, pd.DataFrame(
        [
            {"unique_sku": u, "sku": sku, "status": status, "last_event_at": moved}
            for u, status, moved in units
        ],
        columns=["unique_sku", "sku", "status", "last_event_at"],
    )


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        ("With Customer", HireStage.OUT),
        ("RECEIPTED - NO LOCATION", HireStage.BACK),
        ("Post-Rental Inspection", HireStage.INSPECTED),
        ("awaiting inspection", HireStage.INSPECTED),
        ("Cleaning", HireStage.CLEANED),
        ("In Repair", HireStage.CLEANED),
        ("Quarantine", HireStage.QUARANTINED),
        ("In Warehouse – Ready For Customer", HireStage.READY),
        ("Allocated", HireStage.READY),
        ("Ex-Hired", HireStage.RETIRED),
        ("Lost In Space", HireStage.UNKNOWN),
    ],
)
def test_each_acs_status_maps_to_a_lifecycle_stage(status: str, stage: HireStage) -> None:
    assert stage_for_status(status) == stage


def test_round_trip_across_snapshots_reads_out_back_inspected_cleaned_ready() -> None:
    snaps = [
        snapshot(T0, ("H1", "With Customer", T0 - DAY)),
        snapshot(T0 + DAY, ("H1", "Post-Rental Inspection", T0 + timedelta(hours=20))),
        snapshot(T0 + 2 * DAY, ("H1", "Cleaning", None)),
        snapshot(T0 + 3 * DAY, ("H1", "In Warehouse - Ready For Customer", None)),
    ]

    [row] = hire_unit_lifecycle(snaps).to_dict("records")

    assert row["history"] == (
        "out 2025-06-01T09:00Z > back 2025-06-03T05:00Z > inspected 2025-06-03T05:00Z"
        " > cleaned 2025-06-04T09:00Z > ready 2025-06-05T09:00Z"
    )
    assert (row["stage"], row["since"]) == ("ready", pd.Timestamp(T0 + 3 * DAY))
    assert row["times_out"] == 1


def test_since_is_when_acs_last_moved_the_unit_not_when_the_snapshot_was_taken() -> None:
    moved = T0 - timedelta(hours=5)
    [row] = hire_unit_lifecycle([snapshot(T0, ("H1", "Cleaning", moved))]).to_dict("records")

    assert row["since"] == pd.Timestamp(moved)


def test_a_stage_seen_in_several_snapshots_is_one_history_entry_from_its_first_sighting() -> None:
    snaps = [
        snapshot(T0, ("H1", "With Customer", None)),
        snapshot(T0 + DAY, ("H1", "With Customer", None)),
    ]

    history = hire_unit_history(snaps)

    assert history[["stage", "at"]].values.tolist() == [["out", pd.Timestamp(T0)]]


def test_an_ex_hired_unit_is_retired() -> None:
    snaps = [
        snapshot(T0, ("H1", "Quarantine", None)),
        snapshot(T0 + DAY, ("H1", "Ex-Hired", None)),
    ]

    [row] = hire_unit_lifecycle(snaps).to_dict("records")

    assert (row["stage"], row["status"]) == ("retired", "ex - hired")


def test_a_unit_missing_from_the_newest_snapshot_is_flagged() -> None:
    snaps = [
        snapshot(T0, ("H1", "Cleaning", None), ("H2", "Cleaning", None)),
        snapshot(T0 + DAY, ("H2", "Cleaning", None)),
    ]

    lifecycle = hire_unit_lifecycle(snaps).set_index("unique_sku")

    assert lifecycle.loc["H1", "in_latest_snapshot"] == False  # noqa: E712
    assert lifecycle.loc["H2", "in_latest_snapshot"] == True  # noqa: E712


def test_a_despatch_event_after_the_newest_snapshot_puts_the_unit_out() -> None:
    events = pd.DataFrame([{"unique_sku": "H1", "stage": "out", "at": T0 + timedelta(hours=3)}])

    [row] = hire_unit_lifecycle([snapshot(T0, ("H1", "Allocated", None))], events).to_dict(
        "records"
    )

    assert (row["stage"], row["since"]) == ("out", pd.Timestamp(T0 + timedelta(hours=3)))
    assert row["history"].startswith("ready ")


def test_a_return_event_means_no_back_is_inferred() -> None:
    events = pd.DataFrame([{"unique_sku": "H1", "stage": "back", "at": T0 + timedelta(hours=2)}])
    snaps = [
        snapshot(T0, ("H1", "With Customer", None)),
        snapshot(T0 + DAY, ("H1", "Awaiting Inspection", None)),
    ]

    history = hire_unit_history(snaps, events)

    assert history[["stage", "source"]].values.tolist() == [
        ["out", "snapshot"],
        ["back", "event"],
        ["inspected", "snapshot"],
    ]


def test_only_hire_skus_are_followed_when_given() -> None:
    snaps = [
        snapshot(T0, ("H1", "With Customer", None)),
        snapshot(T0, ("S1", "Cleaning", None), sku="DRESS-RED-10"),
    ]

    lifecycle = hire_unit_lifecycle(snaps, hire_skus={"GOWN-HIRE-12"})

    assert lifecycle["unique_sku"].tolist() == ["H1"]
