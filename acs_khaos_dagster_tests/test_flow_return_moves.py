"""Moves of returned units (``flows.return_moves.post_write_offs``) without Dagster,
beyond the hire write-off of ``test_flow_returns``: a hire unit sent to resale, a sale
unit written off, and the repair costs ACS charges.

The simulators over real HTTP and a SQLite store. Line 700011 of SO0050006 is a hire
line of TOP-0001-BRG-M (stock 10010, hire stock site 2); line 700007 of SO0050004 is a
sale line of JKT-0002-BRG-S. Each is despatched, then returned.
"""

from __future__ import annotations

from typing import Any

from acs_khaos_dagster.flows.return_moves import (
    ReturnMovesResult,
    post_write_offs,
    repair_cost_total,
)
from acs_khaos_dagster.flows.return_postings import post_customer_returns
from acs_khaos_dagster_tests.flow_ports import Ports, ports
from acs_khaos_dagster_tests.test_flow_returns import FILE, _deliver, _ship, _take_in, _unit

__all__ = ["ports"]

HIRE_STOCK = 2


def _return_hire_unit(p: Ports, action: str, grade: str = "C", cost: str = "") -> None:
    _ship(p, 50006, [(700011, 1)])
    unit = _unit("RX1", "SO0050006", 700011, "TOP-0001-BRG-M", "UX1", grade, action)
    unit["repair_cost"] = cost
    _deliver(p, FILE, [unit])
    _take_in(p)
    post_customer_returns(p.store, p.khaos, p.settings)


def _return_sale_unit(p: Ports, grade: str, action: str, cost: str = "") -> None:
    _ship(p, 50004, [(700007, 1)])
    unit = _unit("RS1", "SO0050004", 700007, "JKT-0002-BRG-S", "US1", grade, action)
    unit["repair_cost"] = cost
    _deliver(p, FILE, [unit])
    _take_in(p)
    post_customer_returns(p.store, p.khaos, p.settings)


def _moves(p: Ports, settings: Any = None) -> ReturnMovesResult:
    return post_write_offs(p.store, p.khaos, settings or p.settings)


def _groups(p: Ports, unit: str) -> list[dict[str, Any]]:
    return [g for g in p.khaos_truth()["adjustment_groups"] if unit in g["group_ref"]]


def _with_resale(p: Ports, hire_id: int, resale_id: int) -> Any:
    returns = p.settings.returns.model_copy(update={"resale_stock_ids": {hire_id: resale_id}})
    return p.settings.model_copy(update={"returns": returns})


def test_a_hire_unit_for_resale_with_no_resale_stock_id_is_a_mapping_gap(ports: Ports) -> None:
    _return_hire_unit(ports, "RESALE")

    result = _moves(ports)

    assert result.moves_queued == 0 and result.open_counts["resale_unmapped"] == 1
    [gap] = ports.open_exceptions("resale_unmapped")
    assert "UX1" in gap.row.message and "StockID 10010" in gap.row.message
    assert _groups(ports, "UX1") == []


def test_a_hire_unit_for_resale_is_moved_out_of_hire_stock_into_its_resale_item(
    ports: Ports,
) -> None:
    _return_hire_unit(ports, "RESALE")
    settings = _with_resale(ports, 10010, 10005)

    result = _moves(ports, settings)

    assert result.moves_queued == 1 and len(result.ex_hire_out) == 1
    lines = [ln for g in _groups(ports, "UX1") for ln in g["lines"]]
    assert sorted((ln["stock_id"], ln["adjust_by"]) for ln in lines) == [(10005, 1), (10010, -1)]


def test_a_sale_unit_written_off_is_never_adjusted_in_khaos(ports: Ports) -> None:
    _return_sale_unit(ports, "BER", "DISPOSE")

    result = _moves(ports)

    assert result.moves_queued == 0 and _groups(ports, "US1") == []
    assert result.sale_written_off == 1


def test_the_repair_cost_acs_charges_is_reported_by_month(ports: Ports) -> None:
    _return_sale_unit(ports, "C", "REPAIR", cost="12.50")

    result = _moves(ports)

    assert repair_cost_total(result.repair_costs) == 12.5
    [month] = result.repair_costs.to_dict("records")
    assert (month["month"], month["units"], month["repaired_units"]) == ("2026-03", 1, 1)
    assert result.moves_queued == 0
