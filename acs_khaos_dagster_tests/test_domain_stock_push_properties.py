"""Properties of the snapshot push plan (``plan_push``) over generated stock positions.

The examples in ``test_stock_push.py`` pin one case each; these check the rules of
"Stock arithmetic" (ARCHITECTURE.md) for every position Hypothesis can build:

* a StockID × site's target is ``max(ACS units + corrections, 0)`` and no Level is ever
  taken below zero or past its target;
* a StockID whose total difference is within tolerance reaches its target on every site;
  above tolerance only its status moves go out (its total in Khaos does not change) and
  exactly the unexplained units are held for finance;
* every changed StockID × site is pushed exactly once, valued at cost to the penny, in
  groups no larger than asked for; held lines approved later finish the job.

Every expected value here is worked out from the generated inputs by the test itself
(dicts and ``Decimal``), never read back from the plan's own tables.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites
from acs_khaos_dagster.domain.models import AdjustmentLine
from acs_khaos_dagster.domain.stock_push import (
    PushPlan,
    VarianceTolerance,
    approved_variance_groups,
    plan_push,
)

SITES = KhaosSites()
SITE_IDS = sorted(SITES.model_dump().values())
STOCK_IDS = [11, 12, 13, 14]
TOLERANCE = VarianceTolerance(units=2, value=Decimal("50.00"))
PENNY = Decimal("0.01")

Key = tuple[int, int]  # (stock_id, site_id)

positions = st.dictionaries(
    st.tuples(st.sampled_from(STOCK_IDS), st.sampled_from(SITE_IDS)),
    st.integers(min_value=0, max_value=40),
    max_size=12,
)
corrections_of = st.dictionaries(
    st.tuples(st.sampled_from(STOCK_IDS), st.sampled_from(SITE_IDS)),
    st.integers(min_value=-6, max_value=6).filter(bool),
    max_size=4,
)
cost_books = st.dictionaries(
    st.sampled_from(STOCK_IDS),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("90"), places=4),
)


def frame(rows: dict[Key, int], column: str) -> pd.DataFrame:
    return pd.DataFrame(
        [(stock, site, value) for (stock, site), value in rows.items()],
        columns=["stock_id", "site_id", column],
    ).astype("int64")


def make_plan(
    acs: dict[Key, int],
    khaos: dict[Key, int],
    corrections: dict[Key, int],
    costs: dict[int, Decimal],
    max_lines: int = 500,
) -> PushPlan:
    corr = frame(corrections, "units") if corrections else None
    return plan_push(
        frame(acs, "units"),
        frame(khaos, "level"),
        corr,
        snapshot_id="P1",
        sites=SITES,
        tolerance=TOLERANCE,
        cost_prices=costs,
        max_lines_per_group=max_lines,
    )


def targets_of(acs: dict[Key, int], corrections: dict[Key, int]) -> dict[Key, int]:
    keys = set(acs) | set(corrections)
    return {k: max(acs.get(k, 0) + corrections.get(k, 0), 0) for k in keys}


def sku_difference(stock: int, target: dict[Key, int], khaos: dict[Key, int]) -> int:
    return sum(v for (s, _), v in target.items() if s == stock) - sum(
        v for (s, _), v in khaos.items() if s == stock
    )


def within_tolerance(difference: int, cost: Decimal | None) -> bool:
    if difference == 0:
        return True
    if cost is None:
        return False
    return abs(difference) <= TOLERANCE.units and abs(difference) * cost <= TOLERANCE.value


def all_lines(plan: PushPlan) -> list[tuple[int, AdjustmentLine]]:
    legs = [leg for move in plan.moves for leg in move.legs]
    return [(group.site_id, line) for group in (*plan.groups, *legs) for line in group.lines]


def after_push(plan: PushPlan, khaos: dict[Key, int]) -> dict[Key, int]:
    """Khaos's Levels once every line of the plan has landed (adjust_by on planned level)."""
    levels = dict(khaos)
    for site, line in all_lines(plan):
        key = (line.stock_id, site)
        assert line.planned_level == levels.get(key, 0)
        levels[key] = levels.get(key, 0) + (line.adjust_by or 0)
    return levels


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_no_khaos_level_is_ever_pushed_below_zero(acs, khaos, corrections, costs) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    assert all(level >= 0 for level in after_push(plan, khaos).values())


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_a_level_moves_towards_its_target_and_never_past_it(acs, khaos, corrections, costs) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    target = targets_of(acs, corrections)
    for key, level in after_push(plan, khaos).items():
        before, goal = khaos.get(key, 0), target.get(key, 0)
        assert min(before, goal) <= level <= max(before, goal), key


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_a_stock_id_within_tolerance_reaches_its_target_on_every_site(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    target = targets_of(acs, corrections)
    levels = after_push(plan, khaos)
    for stock in STOCK_IDS:
        if not within_tolerance(sku_difference(stock, target, khaos), costs.get(stock)):
            continue
        for site in SITE_IDS:
            assert levels.get((stock, site), 0) == target.get((stock, site), 0), (stock, site)


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_above_tolerance_only_status_moves_go_out_so_the_stock_id_total_is_unchanged(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    target = targets_of(acs, corrections)
    for stock in STOCK_IDS:
        if within_tolerance(sku_difference(stock, target, khaos), costs.get(stock)):
            continue
        moved = sum(line.adjust_by or 0 for _, line in all_lines(plan) if line.stock_id == stock)
        assert moved == 0, stock


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_the_held_units_are_exactly_the_unexplained_difference(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    target = targets_of(acs, corrections)
    for stock in STOCK_IDS:
        difference = sku_difference(stock, target, khaos)
        held = sum(h.held_units for h in plan.held if h.stock_id == stock)
        expected = 0 if within_tolerance(difference, costs.get(stock)) else difference
        assert held == expected, stock


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_every_changed_stock_id_and_site_is_pushed_exactly_once(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    keys = [(line.stock_id, site) for site, line in all_lines(plan)]
    assert len(keys) == len(set(keys))
    assert all((line.adjust_by or 0) != 0 for _, line in all_lines(plan))
    assert all(line.adjust_to is None for _, line in all_lines(plan))


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_a_line_is_valued_at_its_units_times_cost_to_the_penny(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    for _, line in all_lines(plan):
        cost = costs.get(line.stock_id, Decimal(0))
        expected = (abs(line.adjust_by or 0) * cost).quantize(PENNY, ROUND_HALF_UP)
        assert line.value == expected, line


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_a_held_variance_is_valued_at_cost_or_left_unvalued_without_one(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    for held in plan.held:
        cost = costs.get(held.stock_id)
        if cost is None:
            assert held.value is None
            assert "no cost price" in held.reason
        else:
            assert held.value == (abs(held.held_units) * cost).quantize(PENNY, ROUND_HALF_UP)


@settings(max_examples=30, deadline=None)
@given(positions, positions, corrections_of, cost_books, st.integers(min_value=1, max_value=3))
def test_groups_hold_one_site_each_and_never_more_lines_than_asked(
    acs, khaos, corrections, costs, max_lines
) -> None:
    plan = make_plan(acs, khaos, corrections, costs, max_lines=max_lines)
    refs = [g.group_ref for g in plan.groups] + [m.ref for m in plan.moves]
    assert len(refs) == len(set(refs))
    for group in plan.groups:
        assert 1 <= len(group.lines) <= max_lines
        assert group.group_ref.startswith(f"SNAP-P1-S{group.site_id}-B")
    for move in plan.moves:
        assert len({line.stock_id for leg in move.legs for line in leg.lines}) <= max_lines


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_a_stock_id_changing_on_several_sites_travels_in_a_move_never_in_loose_groups(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    sites_of: dict[int, set[int]] = {}
    for site, line in all_lines(plan):
        sites_of.setdefault(line.stock_id, set()).add(site)
    in_groups = {line.stock_id for g in plan.groups for line in g.lines}
    in_moves = {line.stock_id for m in plan.moves for leg in m.legs for line in leg.lines}
    assert not in_groups & in_moves
    assert all(len(sites_of[s]) == 1 for s in in_groups)
    assert all(len(sites_of[s]) > 1 for s in in_moves)


@settings(max_examples=40, deadline=None)
@given(positions, positions, corrections_of, cost_books)
def test_approving_every_held_line_brings_each_site_to_its_target(
    acs, khaos, corrections, costs
) -> None:
    plan = make_plan(acs, khaos, corrections, costs)
    levels = after_push(plan, khaos)
    for group in approved_variance_groups(plan.held, approval_ref="FIN1", cost_prices=costs):
        assert "-AFIN1-" in group.group_ref
        for line in group.lines:
            assert line.reason_code == KhaosReasons().variance
            key = (line.stock_id, group.site_id)
            levels[key] = levels.get(key, 0) + (line.adjust_by or 0)
    target = targets_of(acs, corrections)
    for stock in STOCK_IDS:
        for site in SITE_IDS:
            assert levels.get((stock, site), 0) == target.get((stock, site), 0), (stock, site)


# --- worked examples of where the held part is left --------------------------------------


def test_a_surplus_above_tolerance_is_held_on_the_selling_site_first() -> None:
    # Khaos 0 everywhere; ACS 10 selling, 10 refurbishment: +20 unexplained, all held, and
    # the selling site (where a surplus would be sold) is the one kept back first.
    acs = {(11, SITES.selling): 10, (11, SITES.refurbishment): 10}
    plan = make_plan(acs, {}, {}, {11: Decimal("5")})
    held = {h.site_id: h.held_units for h in plan.held}
    assert held == {SITES.selling: 10, SITES.refurbishment: 10}
    assert all_lines(plan) == []


def test_a_surplus_on_several_sites_is_held_in_rank_order() -> None:
    # Khaos: selling 10. ACS: selling 15, refurbishment 5 -> +10 unexplained, held in
    # rank order: all of selling's +5 first, then refurbishment's +5.
    acs = {(11, SITES.selling): 15, (11, SITES.refurbishment): 5}
    plan = make_plan(acs, {(11, SITES.selling): 10}, {}, {11: Decimal("5")})
    assert {h.site_id: h.held_units for h in plan.held} == {
        SITES.selling: 5,
        SITES.refurbishment: 5,
    }


def test_a_shortfall_above_tolerance_is_held_on_the_non_sellable_sites_first() -> None:
    # Khaos: selling 10, quarantine 10. ACS: selling 2 -> -18 unexplained: quarantine's
    # -10 is held first, then selling's -8; nothing is pushed.
    khaos = {(11, SITES.selling): 10, (11, SITES.quarantine): 10}
    plan = make_plan({(11, SITES.selling): 2}, khaos, {}, {11: Decimal("5")})
    assert {h.site_id: h.held_units for h in plan.held} == {
        SITES.selling: -8,
        SITES.quarantine: -10,
    }
    # A move explains part of a shortfall: ACS selling 4, inspection 6 against Khaos
    # selling 10, inspection 0, quarantine 10 -> -10, quarantine's -10 held first, and
    # the move selling -6 / inspection +6 still goes out.
    khaos = {(11, SITES.selling): 10, (11, SITES.quarantine): 10}
    acs = {(11, SITES.selling): 4, (11, SITES.inspection): 6}
    plan = make_plan(acs, khaos, {}, {11: Decimal("5")})
    assert {h.site_id: h.held_units for h in plan.held} == {SITES.quarantine: -10}
    assert sorted((site, line.adjust_by) for site, line in all_lines(plan)) == [
        (SITES.selling, -6),
        (SITES.inspection, 6),
    ]


def test_a_stock_id_without_a_cost_price_is_never_within_tolerance() -> None:
    plan = make_plan({(11, SITES.selling): 1}, {}, {}, {})
    assert [h.held_units for h in plan.held] == [1]
    assert plan.held[0].value is None
    assert all_lines(plan) == []


def test_the_value_tolerance_is_inclusive_at_exactly_fifty_pounds() -> None:
    at_limit = make_plan({(11, SITES.selling): 2}, {}, {}, {11: Decimal("25.00")})
    assert [line.value for _, line in all_lines(at_limit)] == [Decimal("50.00")]
    assert at_limit.held == ()
    over = make_plan({(11, SITES.selling): 2}, {}, {}, {11: Decimal("25.0001")})
    assert all_lines(over) == []
    assert [h.held_units for h in over.held] == [2]
