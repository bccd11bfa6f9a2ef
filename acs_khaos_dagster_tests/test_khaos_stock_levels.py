"""Khaos's physical Level per StockID × site (``connectors/khaos/levels.py``), reported by
the install or rebuilt as Available + what open invoices at that site allocate.

Never Available alone: every push would then adjust by the quantity on open orders."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.connectors.khaos.levels import (
    DEFAULT_ALLOCATING_STAGES,
    LevelNotReported,
    allocated_units,
    stock_levels,
)
from acs_khaos_dagster.connectors.khaos.records import StockFigures
from acs_khaos_dagster.domain.models import Invoice, InvoiceLine, OrderLine, SalesOrder

DAY = datetime(2026, 6, 1, 9, tzinfo=UTC)


def order(
    order_id: int,
    site: int,
    lines: list[tuple[int, int, int, bool]],  # order_item_id, stock_id, quantity, is_hire
    invoices: list[tuple[int, int, list[tuple[int, int, int]]]],  # id, stage, lines
) -> SalesOrder:
    return SalesOrder(
        order_id=order_id,
        order_code=f"SO{order_id}",
        order_date=DAY,
        site_id=site,
        lines=tuple(
            OrderLine(
                order_item_id=item,
                stock_id=stock,
                stock_code=f"S{stock}",
                quantity=qty,
                unit_net=10,
                is_hire=hire,
            )
            for item, stock, qty, hire in lines
        ),
        invoices=tuple(
            Invoice(
                invoice_id=inv_id,
                invoice_code=f"I{inv_id}",
                stage_id=stage,
                lines=tuple(
                    InvoiceLine(order_item_id=i, stock_id=s, quantity=q) for i, s, q in inv_lines
                ),
            )
            for inv_id, stage, inv_lines in invoices
        ),
    )


# --- units open invoices allocate ----------------------------------------------------------------


def test_open_invoices_allocate_their_lines_per_stock_id_and_site() -> None:
    orders = [
        order(1, 1, [(1, 7, 2, False), (2, 8, 1, False)], [(10, 12, [(1, 7, 2), (2, 8, 1)])]),
        order(2, 1, [(3, 7, 3, False)], [(20, 9, [(3, 7, 3)])]),
        order(3, 2, [(4, 7, 4, False)], [(30, 21, [(4, 7, 4)])]),
    ]
    assert allocated_units(orders, DEFAULT_ALLOCATING_STAGES) == Counter(
        {(7, 1): 5, (8, 1): 1, (7, 2): 4}
    )


@pytest.mark.parametrize("stage", [1, 8, 22, 30])
def test_an_invoice_outside_the_allocating_stages_allocates_nothing(stage: int) -> None:
    orders = [order(1, 1, [(1, 7, 2, False)], [(10, stage, [(1, 7, 2)])])]
    assert allocated_units(orders, DEFAULT_ALLOCATING_STAGES) == Counter()


def test_the_allocating_stages_are_nine_to_twenty_one_by_default() -> None:
    assert DEFAULT_ALLOCATING_STAGES == (9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)


def test_the_allocating_stages_are_the_ones_given() -> None:
    orders = [
        order(1, 1, [(1, 7, 2, False)], [(10, 5, [(1, 7, 2)])]),
        order(2, 1, [(2, 7, 3, False)], [(20, 12, [(2, 7, 3)])]),
    ]
    assert allocated_units(orders, [5]) == Counter({(7, 1): 2})


def test_hire_lines_allocate_nothing() -> None:
    orders = [
        order(
            1,
            1,
            [(1, 7, 1, True), (2, 7, 2, False)],
            [(10, 12, [(1, 7, 1), (2, 7, 2)])],
        )
    ]
    assert allocated_units(orders, DEFAULT_ALLOCATING_STAGES) == Counter({(7, 1): 2})


def test_an_invoice_read_twice_is_counted_once() -> None:
    twice = order(1, 1, [(1, 7, 2, False)], [(10, 12, [(1, 7, 2)])])
    assert allocated_units([twice, twice], DEFAULT_ALLOCATING_STAGES) == Counter({(7, 1): 2})


def test_each_open_invoice_of_an_order_split_into_shipments_counts() -> None:
    orders = [
        order(1, 1, [(1, 7, 5, False)], [(10, 12, [(1, 7, 2)]), (11, 14, [(1, 7, 3)])]),
    ]
    assert allocated_units(orders, DEFAULT_ALLOCATING_STAGES) == Counter({(7, 1): 5})


def test_the_order_site_is_where_the_units_are_allocated() -> None:
    orders = [order(1, 3, [(1, 7, 2, False)], [(10, 12, [(1, 7, 2)])])]
    assert allocated_units(orders, DEFAULT_ALLOCATING_STAGES) == Counter({(7, 3): 2})


# --- levels --------------------------------------------------------------------------------------


def test_a_reported_level_is_taken_as_it_is() -> None:
    figures = [StockFigures(stock_id=7, site_id=1, level=10, available=4, on_order=3)]
    [level] = stock_levels(figures, "level", Counter({(7, 1): 99}))
    assert (level.stock_id, level.site_id, level.level, level.available, level.on_order) == (
        7,
        1,
        10,
        4,
        3,
    )
    assert level.stock_code == ""


def test_a_missing_level_when_the_install_should_report_it_is_an_error_naming_the_setting() -> None:
    figures = [StockFigures(stock_id=7, site_id=1, level=None, available=4)]
    with pytest.raises(LevelNotReported, match=r"khaos\.stock_level_source"):
        stock_levels(figures, "level")


def test_without_level_it_is_rebuilt_as_available_plus_what_is_allocated_at_that_site() -> None:
    figures = [
        StockFigures(stock_id=7, site_id=1, level=None, available=4),
        StockFigures(stock_id=7, site_id=2, level=None, available=1),
        StockFigures(stock_id=8, site_id=1, level=None, available=0),
    ]
    allocated = Counter({(7, 1): 5, (8, 1): 2, (9, 1): 100})
    levels = stock_levels(figures, "available_plus_allocated", allocated)
    assert [(lv.stock_id, lv.site_id, lv.level, lv.available) for lv in levels] == [
        (7, 1, 9, 4),
        (7, 2, 1, 1),
        (8, 1, 2, 0),
    ]


def test_rebuilt_without_allocations_the_level_is_the_available_figure() -> None:
    figures = [StockFigures(stock_id=7, site_id=1, level=None, available=4)]
    [level] = stock_levels(figures, "available_plus_allocated")
    assert level.level == 4


def test_rebuilding_ignores_a_level_the_install_happens_to_give() -> None:
    figures = [StockFigures(stock_id=7, site_id=1, level=50, available=4)]
    [level] = stock_levels(figures, "available_plus_allocated", Counter({(7, 1): 1}))
    assert level.level == 5


@given(
    available=st.integers(min_value=0, max_value=1000),
    open_qty=st.lists(st.integers(min_value=1, max_value=20), max_size=5),
    closed_qty=st.lists(st.integers(min_value=1, max_value=20), max_size=5),
)
def test_the_rebuilt_level_is_available_plus_open_sale_quantities_only(
    available: int, open_qty: list[int], closed_qty: list[int]
) -> None:
    orders = [
        order(n, 1, [(n, 7, q, False)], [(100 + n, 12, [(n, 7, q)])])
        for n, q in enumerate(open_qty, start=1)
    ] + [
        order(50 + n, 1, [(50 + n, 7, q, False)], [(200 + n, 22, [(50 + n, 7, q)])])
        for n, q in enumerate(closed_qty, start=1)
    ]
    figures = [StockFigures(stock_id=7, site_id=1, level=None, available=available)]
    allocated = allocated_units(orders, DEFAULT_ALLOCATING_STAGES)
    [level] = stock_levels(figures, "available_plus_allocated", allocated)
    assert level.level == available + sum(open_qty)
