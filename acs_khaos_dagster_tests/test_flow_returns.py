"""The returns flows without Dagster: files taken in, customer returns posted, hire
write-offs, the refund clock and the hire lifecycle, called as plain functions over the
simulators (real HTTP) and a SQLite store.

Oracles are what Khaos holds (the simulator's own state: customer returns, adjustment
groups, Levels) and what the store's ledger recorded. Each test despatches the lines it
returns (ImportDespatch, then the invoice issued), as in life.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.connectors.acs.file_layouts import RETURNS_LAYOUT
from acs_khaos_dagster.domain.models import DespatchPosting
from acs_khaos_dagster.flows.hire import SNAPSHOT_FOLDERS, hire_lifecycle
from acs_khaos_dagster.flows.refund_clock import run_refund_clock
from acs_khaos_dagster.flows.return_moves import moves_breaking_one_mover, post_write_offs
from acs_khaos_dagster.flows.return_postings import post_customer_returns
from acs_khaos_dagster.flows.returns_intake import IntakeResult, returns_files_news, take_in_returns
from acs_khaos_dagster_tests.flow_ports import Ports, ports

__all__ = ["ports"]
SELLING, HIRE_STOCK = 1, 2
FILE = "returns_BRAND01_20260302100000.csv"


def _ship(p: Ports, order_id: int, lines: list[tuple[int, int]]) -> None:
    posting = DespatchPosting(
        order_id=order_id, external_ref=f"SHIP-{order_id}-{lines[0][0]}", lines=tuple(lines)
    )
    p.sandbox.khaos.issue_invoice(p.khaos.import_despatch(posting).invoice_id)


def _deliver(
    p: Ports, name: str, rows: list[dict[str, Any]], header: list[str] | None = None
) -> Path:
    folder = p.settings.drop_folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    columns = header or list(RETURNS_LAYOUT.columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def _unit(
    ref: str,
    order: str,
    line: int | str,
    sku: str,
    unit: str,
    grade: str = "A",
    action: str = "RESTOCK",
    received: str = "2026-03-02T09:00:00Z",
) -> dict[str, Any]:
    return {
        "return_ref": ref,
        "order_number": order,
        "line_item_id": str(line),
        "sku": sku,
        "unique_sku": unit,
        "received_at": received,
        "grade": grade,
        "action_taken": action,
        "action_reason": "test",
        "defect_codes": "",
        "repair_cost": "",
    }


def _take_in(p: Ports) -> IntakeResult:
    with open_drop(p.settings) as drop:
        return take_in_returns(p.store, drop, p.settings)


def _customer_returns(p: Ports, ref: str) -> list[dict[str, Any]]:
    return [
        r for r in p.khaos_truth()["customer_returns"] if r["associated_ref"].startswith(f"{ref}-P")
    ]


def _level(p: Ports, stock_id: int, site_id: int) -> int:
    for row in p.khaos_truth()["stock"]:
        if row["stock_id"] == stock_id and row["site_id"] == site_id:
            return int(row["level"])
    return 0


# --- files taken in -------------------------------------------------------------------


def test_a_returns_file_is_taken_in_once_with_its_units(ports: Ports) -> None:
    _deliver(ports, FILE, [_unit("RT1", "SO0050004", 700007, "JKT-0002-BRG-S", "UT1")])

    first = _take_in(ports)
    second = _take_in(ports)

    assert (first.files_processed, first.units_new) == (1, 1)
    assert (second.files_processed, second.files_skipped, second.units_new) == (0, 1, 0)
    assert list(first.table["unique_sku"]) == ["UT1"]


def test_a_file_of_the_wrong_layout_is_marked_failed_in_the_ledger_with_its_reason(
    ports: Ports,
) -> None:
    _deliver(ports, FILE, [{"return_ref": "RB1"}], header=["return_ref", "something_else"])

    result = _take_in(ports)

    assert result.files_failed == 1 and result.problems and result.table.empty
    [entry] = ports.store.ledger.find(kind="returns")
    assert entry.state == "failed"


def test_the_files_news_names_a_new_file_until_it_is_taken_in(ports: Ports) -> None:
    _deliver(ports, FILE, [_unit("RT1", "SO0050004", 700007, "JKT-0002-BRG-S", "UT1")])

    with open_drop(ports.settings) as drop:
        before = returns_files_news(ports.store, drop, seen=set())
        take_in_returns(ports.store, drop, ports.settings)
        after = returns_files_news(ports.store, drop, seen=set())

    assert len(before.new) == 1 and before.new[0].startswith(FILE)
    assert after.new == [] and after.stuck == [] and after.fingerprints == before.fingerprints


# --- customer returns -----------------------------------------------------------------


def test_a_matched_sale_return_is_a_customer_return_in_khaos_credited_at_unit_net(
    ports: Ports,
) -> None:
    _ship(ports, 50004, [(700007, 1)])
    before = _level(ports, 10015, SELLING)
    _deliver(ports, FILE, [_unit("RM1", "SO0050004", 700007, "JKT-0002-BRG-S", "UM1")])
    _take_in(ports)

    result = post_customer_returns(ports.store, ports.khaos, ports.settings)

    [credit] = _customer_returns(ports, "RM1")
    assert credit["associated_ref"] == "RM1-P1" and credit["credit_status"] == "raised"
    assert (result.parts_queued, result.units_posted, result.units_matched) == (1, 1, 1)
    assert list(result.table["state"]) == ["done"]
    assert _level(ports, 10015, SELLING) == before + 1


def test_posting_returns_again_credits_nothing_twice(ports: Ports) -> None:
    _ship(ports, 50004, [(700007, 1)])
    _deliver(ports, FILE, [_unit("RM1", "SO0050004", 700007, "JKT-0002-BRG-S", "UM1")])
    _take_in(ports)
    post_customer_returns(ports.store, ports.khaos, ports.settings)

    again = post_customer_returns(ports.store, ports.khaos, ports.settings)

    assert again.parts_queued == 0
    assert len(_customer_returns(ports, "RM1")) == 1


def test_a_return_of_a_line_never_despatched_is_unmatched_not_posted(ports: Ports) -> None:
    _deliver(ports, FILE, [_unit("RN1", "SO0050002", 700003, "JKT-0002-BRG-L", "UN1")])
    _take_in(ports)

    result = post_customer_returns(ports.store, ports.khaos, ports.settings)

    assert result.parts_queued == 0 and result.open_counts["return_unmatched"] == 1
    assert _customer_returns(ports, "RN1") == []
    [problem] = ports.open_exceptions("return_unmatched")
    assert problem.row.owner == "operations"


# --- write-offs -----------------------------------------------------------------------


def test_a_hire_unit_beyond_repair_is_written_off_from_hire_stock_once(ports: Ports) -> None:
    _ship(ports, 50006, [(700011, 1)])
    before = _level(ports, 10010, HIRE_STOCK)
    _deliver(
        ports, FILE, [_unit("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE")]
    )
    _take_in(ports)
    post_customer_returns(ports.store, ports.khaos, ports.settings)

    first = post_write_offs(ports.store, ports.khaos, ports.settings)
    second = post_write_offs(ports.store, ports.khaos, ports.settings)

    groups = [g for g in ports.khaos_truth()["adjustment_groups"] if g["group_ref"] == "WO-UW1"]
    assert len(groups) == 1 and groups[0]["site_id"] == HIRE_STOCK
    assert _level(ports, 10010, HIRE_STOCK) == before - 1
    assert (first.moves_queued, second.moves_queued) == (1, 0)
    assert len(first.write_offs) == 1 and first.write_offs["value"].iloc[0] == 8.96
    assert _customer_returns(ports, "RW1") == []  # a hire return raises no credit


def test_a_move_adjusting_a_returned_sale_unit_breaks_the_one_mover_rule(ports: Ports) -> None:
    _ship(ports, 50004, [(700007, 1)])
    _deliver(ports, FILE, [_unit("RM1", "SO0050004", 700007, "JKT-0002-BRG-S", "UM1")])
    _take_in(ports)
    post_customer_returns(ports.store, ports.khaos, ports.settings)  # matched: a sale unit
    moves = pd.DataFrame(
        [{"group_ref": "WO-UM1", "unique_sku": "UM1", "kind": "write_off", "adjust_by": -1}]
    )

    bad = moves_breaking_one_mover(ports.store, moves)

    assert list(bad["group_ref"]) == ["WO-UM1"]


# --- the refund clock -----------------------------------------------------------------


def test_a_sale_return_near_its_refund_deadline_is_due_for_finance(ports: Ports) -> None:
    _ship(ports, 50004, [(700007, 1)])
    received = ports.sandbox.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    grade_c = _unit("RF1", "SO0050004", 700007, "JKT-0002-BRG-S", "UF1", "C", "REPAIR", received)
    _deliver(ports, FILE, [grade_c])
    _take_in(ports)
    post_customer_returns(ports.store, ports.khaos, ports.settings)
    fresh = run_refund_clock(ports.store, ports.khaos, ports.settings, ports.now())
    ports.sandbox.advance(timedelta(days=12))

    due = run_refund_clock(ports.store, ports.khaos, ports.settings, ports.now())

    assert not fresh["due"].any()
    assert list(due["due"]) == [True] and not due["breached"].any()
    [problem] = ports.open_exceptions("refund_due")
    assert problem.row.entity_ref == "refund:RF1-P1" and problem.row.owner == "finance"


# --- the hire lifecycle ---------------------------------------------------------------


def test_a_hire_unit_back_from_the_customer_and_cleaned_is_at_the_cleaned_stage(
    ports: Ports,
) -> None:
    folder = ports.settings.data_dir / SNAPSHOT_FOLDERS[0]
    folder.mkdir(parents=True, exist_ok=True)
    for name, taken, status in [
        ("units_1", "2026-03-01T07:00:00Z", "with customer"),
        ("units_2", "2026-03-02T08:00:00Z", "cleaning"),
    ]:
        at = pd.Timestamp(taken)
        pd.DataFrame(
            {
                "unique_sku": ["UH1"],
                "sku": ["TOP-0001-BRG-M"],
                "status": [status],
                "last_event_at": [at],
                "snapshot_at": [at],
            }
        ).to_parquet(folder / f"{name}.parquet")
    _ship(ports, 50001, [(700002, 1)])
    back = _unit("RH1", "SO0050001", 700002, "TOP-0001-BRG-M", "UH1", "A", "CLEAN")
    _deliver(ports, FILE, [{**back, "received_at": "2026-03-02T07:30:00Z"}])
    _take_in(ports)

    result = hire_lifecycle(ports.store, ports.acs, ports.settings)

    unit = result.lifecycle.set_index("unique_sku").loc["UH1"]
    assert unit["stage"] == "cleaned" and unit["times_out"] == 1
    assert result.snapshots_read == 2 and result.hire_returns == 1


def test_a_return_of_an_order_this_integration_released_is_posted_without_listing_khaos(
    ports: Ports,
) -> None:
    """The store knows the Khaos id of every order it released, so posting its returns
    never lists a brand's whole order book (at scale that read timed out on every
    returns run of the soak and no return was ever posted)."""
    from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
    from acs_khaos_dagster_tests.test_flow_orders import _release

    _release(ports)
    _ship(ports, 50004, [(700007, 1)])
    _deliver(ports, FILE, [_unit("RM1", "SO0050004", 700007, "JKT-0002-BRG-S", "UM1")])
    _take_in(ports)
    ports.sandbox.khaos_faults.add(
        FaultRule(operation="ExportOrders", kind=FaultKind.ERROR_5XX, count=1000)
    )

    result = post_customer_returns(ports.store, ports.khaos, ports.settings)

    [credit] = _customer_returns(ports, "RM1")
    assert credit["associated_ref"] == "RM1-P1"
    assert (result.units_posted, result.units_matched) == (1, 1)
