"""The snapshot push: target Levels, timing corrections, paired moves, variance, batching.

Ground truth is Khaos's Level per StockID × site (Available = Level − allocated is
Khaos's own sum). Sites: selling 1, hire stock 2, on hire 3, inspection 4,
refurbishment 5, quarantine 6.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_push import (
    CorrectionKind,
    PushPlan,
    VarianceTolerance,
    acs_site_units,
    approved_variance_groups,
    group_ref,
    plan_push,
    should_push,
    timing_corrections,
)

SITES = KhaosSites()
DRESS, HIRE_GOWN = 101, 201
COST = {DRESS: Decimal("20.00"), HIRE_GOWN: Decimal("150.00")}
SKU_MAP = pd.DataFrame(
    {"sku": ["DRESS-S", "GOWN-H"], "stock_id": [DRESS, HIRE_GOWN], "is_hire": [False, True]}
)
READY = "in warehouse - ready for customer"
SNAP = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
PUSH = SNAP + timedelta(minutes=30)


def counts(*rows: tuple[str, str, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sku", "status", "units"])


def levels(*rows: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "site_id", "level"])


def despatch(at: datetime, issued: datetime | None, units: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stock_id": [DRESS],
            "site_id": [SITES.selling],
            "units": [units],
            "despatched_at": [at],
            "issued_at": [issued],
        }
    )


def plan(
    snapshot: pd.DataFrame,
    khaos: pd.DataFrame,
    corrections: pd.DataFrame | None = None,
    **kwargs: object,
) -> PushPlan:
    units = acs_site_units(snapshot, SKU_MAP, sites=SITES)
    return plan_push(
        units, khaos, corrections, snapshot_id="S1", sites=SITES, cost_prices=COST, **kwargs
    )


def target(p: PushPlan, stock_id: int, site_id: int) -> int:
    row = p.targets.loc[(p.targets["stock_id"] == stock_id) & (p.targets["site_id"] == site_id)]
    return int(row["target"].iloc[0]) if len(row) else 0


def pushed(p: PushPlan) -> dict[tuple[int, int], tuple[int, str]]:
    """(site, StockID) -> (the Level the line takes it to, reason), moves' legs included."""
    legs = [leg for move in p.moves for leg in move.legs]
    return {
        (g.site_id, line.stock_id): (line.planned_level + line.adjust_by, line.reason_code)
        for g in (*p.groups, *legs)
        for line in g.lines
    }


# --- ACS units per site -------------------------------------------------------------------


def test_selling_site_counts_ready_plus_allocated_picking_and_packed() -> None:
    units = acs_site_units(
        counts(
            ("DRESS-S", READY, 7),
            ("DRESS-S", "allocated", 1),
            ("DRESS-S", "picking", 1),
            ("DRESS-S", "packed", 2),
        ),
        SKU_MAP,
    ).units
    assert units.to_dict("records") == [{"stock_id": DRESS, "site_id": 1, "units": 11}]


def test_hire_units_sit_on_the_hire_stock_and_on_hire_sites() -> None:
    units = acs_site_units(
        counts(
            ("GOWN-H", READY, 4),
            ("GOWN-H", "allocated", 1),
            ("GOWN-H", "with customer", 2),
            ("GOWN-H", "post - rental inspection", 1),
        ),
        SKU_MAP,
    ).units
    assert {(r.site_id, r.units) for r in units.itertuples()} == {
        (SITES.hire_stock, 5),
        (SITES.on_hire, 2),
        (SITES.inspection, 1),
    }


def test_non_sellable_units_go_to_their_status_site() -> None:
    units = acs_site_units(
        counts(
            ("DRESS-S", "in repair", 1),
            ("DRESS-S", "quarantine", 2),
            ("DRESS-S", "awaiting inspection", 3),
        ),
        SKU_MAP,
    ).units
    assert {(r.site_id, r.units) for r in units.itertuples()} == {
        (SITES.refurbishment, 1),
        (SITES.quarantine, 2),
        (SITES.inspection, 3),
    }


def test_unknown_status_units_are_on_no_site_and_reported() -> None:
    result = acs_site_units(counts(("DRESS-S", READY, 5), ("DRESS-S", "lost in space", 3)), SKU_MAP)
    assert result.units["units"].sum() == 5
    assert result.unknown.to_dict("records") == [{"status": "lost in space", "units": 3}]


def test_retired_units_are_on_no_site() -> None:
    result = acs_site_units(counts(("GOWN-H", "ex - hired", 2)), SKU_MAP)
    assert result.units.empty
    assert result.off_site["units"].sum() == 2


def test_unmatched_skus_are_reported_not_pushed() -> None:
    result = acs_site_units(counts(("NOT-IN-KHAOS", READY, 9), ("DRESS-S", READY, 1)), SKU_MAP)
    assert result.unmatched.to_dict("records") == [{"sku": "NOT-IN-KHAOS", "units": 9}]
    assert result.units["units"].sum() == 1


# --- an order's whole life, a snapshot at each step ------------------------------------------
# Khaos starts with 10 on the selling site; a released order for 1 allocates it (Available 9).


def test_released_and_allocated_at_acs_leaves_level_unchanged() -> None:
    p = plan(counts(("DRESS-S", READY, 9), ("DRESS-S", "allocated", 1)), levels((DRESS, 1, 10)))
    assert target(p, DRESS, SITES.selling) == 10
    assert p.groups == ()


def test_despatched_before_snapshot_but_not_yet_invoiced_is_added_back() -> None:
    fixes = timing_corrections(
        snapshot_at=SNAP, push_at=PUSH, despatches=despatch(SNAP - timedelta(minutes=5), None)
    )
    p = plan(counts(("DRESS-S", READY, 9)), levels((DRESS, 1, 10)), fixes)
    assert target(p, DRESS, SITES.selling) == 10
    assert p.groups == ()


def test_invoice_issued_between_snapshot_and_push_is_not_subtracted_twice() -> None:
    # ACS still had the unit packed at the snapshot; the invoice took it out of Level since.
    fixes = timing_corrections(
        snapshot_at=SNAP,
        push_at=PUSH,
        despatches=despatch(SNAP + timedelta(minutes=5), SNAP + timedelta(minutes=20)),
    )
    p = plan(counts(("DRESS-S", READY, 9), ("DRESS-S", "packed", 1)), levels((DRESS, 1, 9)), fixes)
    assert target(p, DRESS, SITES.selling) == 9
    assert p.groups == ()


def test_despatched_before_snapshot_and_issued_before_push_needs_no_correction() -> None:
    fixes = timing_corrections(
        snapshot_at=SNAP,
        push_at=PUSH,
        despatches=despatch(SNAP - timedelta(hours=1), SNAP + timedelta(minutes=10)),
    )
    assert fixes.empty
    p = plan(counts(("DRESS-S", READY, 9)), levels((DRESS, 1, 9)), fixes)
    assert target(p, DRESS, SITES.selling) == 9 and p.groups == ()


def test_issued_invoice_lowers_level_once() -> None:
    fixes = timing_corrections(
        snapshot_at=SNAP,
        push_at=PUSH,
        despatches=despatch(SNAP - timedelta(hours=2), SNAP - timedelta(hours=1)),
    )
    p = plan(counts(("DRESS-S", READY, 9)), levels((DRESS, 1, 9)), fixes)
    assert target(p, DRESS, SITES.selling) == 9
    assert p.groups == ()


def test_pushing_only_ready_units_would_undersell_so_allocated_units_count() -> None:
    p = plan(counts(("DRESS-S", READY, 8), ("DRESS-S", "picking", 2)), levels((DRESS, 1, 10)))
    assert target(p, DRESS, SITES.selling) == 10


def test_hire_despatches_need_no_correction() -> None:
    frame = despatch(SNAP - timedelta(minutes=5), None).assign(is_hire=True)
    assert timing_corrections(snapshot_at=SNAP, push_at=PUSH, despatches=frame).empty


# --- returns and write-offs ------------------------------------------------------------------


def _return(restocked: datetime, processed: datetime | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stock_id": [DRESS],
            "site_id": [1],
            "units": [1],
            "restocked_at": [restocked],
            "processed_at": [processed],
            "ref": ["RMA-1"],
        }
    )


def test_return_restocked_at_acs_before_khaos_processes_it_is_not_counted_twice() -> None:
    fixes = timing_corrections(
        snapshot_at=SNAP, push_at=PUSH, returns=_return(SNAP - timedelta(minutes=5), None)
    )
    assert fixes[["units", "kind"]].to_dict("records") == [
        {"units": -1, "kind": CorrectionKind.RESTOCKED_NOT_PROCESSED}
    ]
    # ACS shows 10 ready (the return included); Khaos has 9 until it processes the return.
    p = plan(counts(("DRESS-S", READY, 10)), levels((DRESS, 1, 9)), fixes)
    assert target(p, DRESS, SITES.selling) == 9
    assert p.groups == ()


def test_return_processed_in_khaos_after_the_snapshot_is_kept() -> None:
    fixes = timing_corrections(
        snapshot_at=SNAP,
        push_at=PUSH,
        returns=_return(SNAP + timedelta(minutes=1), SNAP + timedelta(minutes=2)),
    )
    p = plan(counts(("DRESS-S", READY, 9)), levels((DRESS, 1, 10)), fixes)
    assert target(p, DRESS, SITES.selling) == 10 and p.groups == ()


def test_pending_write_off_is_left_for_the_write_off_path() -> None:
    # A hire gown found BER before the snapshot: ACS no longer counts it, Khaos still does
    # until the write-off adjustment (in the outbox) is applied.
    pending = pd.DataFrame(
        {
            "stock_id": [HIRE_GOWN],
            "site_id": [SITES.hire_stock],
            "change": [-1],
            "happened_at": [SNAP - timedelta(hours=1)],
            "applied_at": [None],
        }
    )
    fixes = timing_corrections(snapshot_at=SNAP, push_at=PUSH, adjustments=pending)
    p = plan(counts(("GOWN-H", READY, 3)), levels((HIRE_GOWN, SITES.hire_stock, 4)), fixes)
    assert target(p, HIRE_GOWN, SITES.hire_stock) == 4
    assert p.groups == ()


def test_write_off_applied_after_the_snapshot_is_not_restored() -> None:
    applied = pd.DataFrame(
        {
            "stock_id": [HIRE_GOWN],
            "site_id": [SITES.hire_stock],
            "change": [-1],
            "happened_at": [SNAP + timedelta(minutes=1)],
            "applied_at": [SNAP + timedelta(minutes=9)],
        }
    )
    fixes = timing_corrections(snapshot_at=SNAP, push_at=PUSH, adjustments=applied)
    p = plan(counts(("GOWN-H", READY, 4)), levels((HIRE_GOWN, SITES.hire_stock, 3)), fixes)
    assert target(p, HIRE_GOWN, SITES.hire_stock) == 3 and p.groups == ()


# --- status moves, variance, holds -------------------------------------------------------------


def test_status_move_is_pushed_as_a_pair_with_the_total_unchanged() -> None:
    p = plan(
        counts(("DRESS-S", READY, 9), ("DRESS-S", "in refurbishment", 1)), levels((DRESS, 1, 10))
    )
    assert pushed(p) == {(1, DRESS): (9, "REFURBISH"), (5, DRESS): (1, "REFURBISH")}
    assert p.held == ()


def test_move_into_quarantine_is_a_transfer() -> None:
    p = plan(counts(("DRESS-S", READY, 8), ("DRESS-S", "quarantine", 2)), levels((DRESS, 1, 10)))
    assert {reason for _, reason in pushed(p).values()} == {"TRANSFER"}


def test_hire_unit_going_out_moves_from_hire_stock_to_on_hire() -> None:
    p = plan(
        counts(("GOWN-H", READY, 3), ("GOWN-H", "with customer", 1)),
        levels((HIRE_GOWN, SITES.hire_stock, 4)),
    )
    assert pushed(p) == {(2, HIRE_GOWN): (3, "TRANSFER"), (3, HIRE_GOWN): (1, "TRANSFER")}


def test_unknown_status_units_never_reach_any_site() -> None:
    p = plan(counts(("DRESS-S", READY, 10), ("DRESS-S", "mystery", 4)), levels((DRESS, 1, 10)))
    assert p.targets["target"].sum() == 10 and p.groups == ()


def test_small_difference_is_a_variance_line_valued_at_cost() -> None:
    p = plan(counts(("DRESS-S", READY, 11)), levels((DRESS, 1, 10)))
    line = p.groups[0].lines[0]
    assert (line.adjust_by, line.planned_level, line.reason_code, line.value) == (
        1,
        10,
        "VARIANCE",
        Decimal("20.00"),
    )


def test_difference_above_tolerance_is_held_for_finance_not_pushed() -> None:
    p = plan(counts(("DRESS-S", READY, 40)), levels((DRESS, 1, 10)))
    assert p.groups == ()
    (held,) = p.held
    assert (held.site_id, held.held_units, held.value) == (1, 30, Decimal("600.00"))
    assert "purchase-order" in held.reason


def test_value_tolerance_holds_an_expensive_unit() -> None:
    p = plan(counts(("GOWN-H", READY, 5)), levels((HIRE_GOWN, SITES.hire_stock, 4)))
    assert p.groups == () and p.held[0].value == Decimal("150.00")


def test_status_move_is_still_pushed_when_the_rest_is_held() -> None:
    # 2 units moved to refurbishment and 8 unexplained units missing.
    p = plan(counts(("DRESS-S", READY, 10), ("DRESS-S", "in repair", 2)), levels((DRESS, 1, 20)))
    assert pushed(p) == {(1, DRESS): (18, "REFURBISH"), (5, DRESS): (2, "REFURBISH")}
    assert [(h.site_id, h.held_units, h.target) for h in p.held] == [(1, -8, 10)]


def test_approved_hold_is_pushed_as_adjust_by_under_its_own_ref() -> None:
    p = plan(counts(("DRESS-S", READY, 40)), levels((DRESS, 1, 10)))
    (group,) = approved_variance_groups(p.held, approval_ref="7", cost_prices=COST)
    assert group.group_ref == "SNAP-S1-S1-A7-B001"
    assert (group.lines[0].adjust_by, group.lines[0].reason_code) == (30, "VARIANCE")


def test_tolerance_is_configurable() -> None:
    p = plan(
        counts(("DRESS-S", READY, 40)),
        levels((DRESS, 1, 10)),
        tolerance=VarianceTolerance(units=50, value=Decimal("1000")),
    )
    assert pushed(p) == {(1, DRESS): (40, "VARIANCE")}


def test_no_safety_buffer_goes_into_level() -> None:
    p = plan(counts(("DRESS-S", READY, 12)), levels((DRESS, 1, 11)))
    assert (p.groups[0].lines[0].adjust_by, p.groups[0].lines[0].planned_level) == (1, 11)


# --- lines, refs, batches, ordering -----------------------------------------------------------


def test_only_differing_lines_are_emitted() -> None:
    p = plan(
        counts(("DRESS-S", READY, 11), ("GOWN-H", READY, 4)),
        levels((DRESS, 1, 10), (HIRE_GOWN, SITES.hire_stock, 4)),
    )
    assert list(pushed(p)) == [(SITES.selling, DRESS)]


def test_site_emptied_at_acs_is_adjusted_to_zero() -> None:
    p = plan(counts(("DRESS-S", READY, 10)), levels((DRESS, 1, 9), (DRESS, 5, 1)))
    assert pushed(p) == {(1, DRESS): (10, "REFURBISH"), (5, DRESS): (0, "REFURBISH")}


def test_group_and_move_refs_are_deterministic_across_reruns() -> None:
    args = (
        counts(("DRESS-S", READY, 9), ("DRESS-S", "in repair", 1), ("GOWN-H", READY, 5)),
        levels((DRESS, 1, 10), (HIRE_GOWN, SITES.hire_stock, 4)),
    )
    wide = VarianceTolerance(units=5, value=Decimal("1000"))
    first, second = plan(*args, tolerance=wide), plan(*args, tolerance=wide)
    assert [g.group_ref for g in first.groups] == [f"SNAP-S1-S{SITES.hire_stock}-B001"]
    assert [[leg.group_ref for leg in m.legs] for m in first.moves] == [
        ["SNAP-S1-M001-S1", "SNAP-S1-M001-S5"]
    ]
    assert (first.groups, first.moves) == (second.groups, second.moves)


def test_a_status_move_is_one_effect_whose_legs_cancel_out() -> None:
    p = plan(counts(("DRESS-S", READY, 9), ("DRESS-S", "in repair", 1)), levels((DRESS, 1, 10)))
    assert p.groups == ()
    [move] = p.moves
    changes = {leg.site_id: [line.adjust_by for line in leg.lines] for leg in move.legs}
    assert changes == {SITES.selling: [-1], SITES.refurbishment: [1]}


def test_a_line_is_the_planned_change_so_a_late_send_keeps_what_moved_since() -> None:
    # Planned at Level 15 for a target of 13; an invoice issued before the (retried) send
    # takes Level to 13: the change, not the old target, is what lands -> 11, as it should.
    p = plan(counts(("DRESS-S", READY, 13)), levels((DRESS, 1, 15)))
    [line] = p.groups[0].lines
    assert (line.adjust_to, line.adjust_by, line.planned_level) == (None, -2, 15)


def test_lines_are_batched_per_site() -> None:
    n = 5
    sku_map = pd.DataFrame(
        {"sku": [f"S{i}" for i in range(n)], "stock_id": range(n), "is_hire": False}
    )
    units = acs_site_units(counts(*[(f"S{i}", READY, 1) for i in range(n)]), sku_map)
    p = plan_push(
        units,
        levels(),
        None,
        snapshot_id="B",
        cost_prices=dict.fromkeys(range(n), 1),
        max_lines_per_group=2,
    )
    assert [(g.group_ref, len(g.lines)) for g in p.groups] == [
        (group_ref("B", 1, 1), 2),
        (group_ref("B", 1, 2), 2),
        (group_ref("B", 1, 3), 1),
    ]


@pytest.mark.parametrize(
    ("snapshot", "last", "expected"),
    [
        (SNAP, None, True),
        (SNAP, SNAP - timedelta(hours=1), True),
        (SNAP, SNAP, False),
        (SNAP - timedelta(hours=2), SNAP, False),
    ],
)
def test_a_snapshot_older_than_or_equal_to_the_last_pushed_is_never_pushed(
    snapshot: datetime, last: datetime | None, expected: bool
) -> None:
    assert should_push(snapshot, last) is expected


def test_fifty_thousand_skus_plan_only_the_lines_that_differ() -> None:
    # Its speed is measured in scripts/bench.py (benchmark 1), not asserted here.
    n = 50_000
    rng = np.random.default_rng(7)
    skus = [f"S{i}" for i in range(n)]
    statuses = [READY, "packed", "in repair", "quarantine"]
    frame = pd.DataFrame(
        {"sku": np.repeat(skus, 4), "status": statuses * n, "units": rng.integers(1, 20, 4 * n)}
    )
    sku_map = pd.DataFrame({"sku": skus, "stock_id": np.arange(n), "is_hire": False})
    khaos = acs_site_units(frame, sku_map).units.rename(columns={"units": "level"})
    khaos.loc[rng.choice(len(khaos), 500, replace=False), "level"] += 1
    costs = pd.Series(10.0, index=np.arange(n))
    units = acs_site_units(frame, sku_map)
    p = plan_push(units, khaos, None, snapshot_id="P", cost_prices=costs)
    assert p.lines + len(p.held) == 500
