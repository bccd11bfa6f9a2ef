"""What the store keeps of returns once planned (``store/returns.py``), on SQLite and
PostgreSQL: the customer return parts with the units they cover (what is posted is read
from here, never from Khaos), the part numbers used per return, the credit status read
back, and the stock moves planned for returned units with their moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    CreditMode,
    CustomerReturn,
    ReturnItem,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.domain.returns import ReturnPosting
from acs_khaos_dagster.domain.returns.write_offs import StockMove, StockMoveKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.returns import ReturnsRepository

from .conftest import FakeClock

RECEIVED = datetime(2026, 3, 1, 10, tzinfo=UTC)


def units_file(store: Store, tmp_path: Path, ref: str, *uniques: str) -> None:
    path = tmp_path / f"returns_{ref}.csv"
    path.write_text(ref)
    row, _ = store.ledger.record_file(path, "acs_returns")
    frame = pd.DataFrame(
        [
            {
                "line_number": n,
                "return_ref": ref,
                "unique_sku": u,
                "sku": "DRS-1",
                "received_at": RECEIVED,
                "grade": "A",
                "action_taken": "RESTOCK",
                "defect_codes": [],
                "repair_cost": None,
            }
            for n, u in enumerate(uniques, start=2)
        ]
    )
    with store.transaction() as s:
        ReturnsRepository(store.db).store_units(row.id, frame, s)


def part(
    ref: str,
    n: int,
    uniques: tuple[str, ...],
    *,
    hire: bool = False,
    received: datetime | None = RECEIVED,
    value: str = "25.00",
) -> ReturnPosting:
    associated = f"{ref}-P{n}"
    return ReturnPosting(
        return_ref=ref,
        part=n,
        associated_ref=associated,
        batch_id="7",
        credit_mode=CreditMode.NONE if hire else CreditMode.AUTO,
        customer_return=CustomerReturn(
            associated_ref=associated,
            customer_urn="C1",
            items=(ReturnItem(sku="DRS-1", quantity=len(uniques), return_reason="RTS"),),
        ),
        unique_skus=uniques,
        credit_value=Decimal("0") if hire else Decimal(value),
        goods_value=Decimal(value),
        received_at=received,
        is_hire=hire,
        written_off_units=0,
        idempotency_key=f"return:{associated}",
    )


def record(store: Store, *parts: ReturnPosting) -> None:
    with store.transaction() as s:
        ReturnsRepository(store.db).record_postings(parts, s)


# --- postings ------------------------------------------------------------------------------------


def test_a_recorded_part_marks_its_units_posted(store: Store, tmp_path: Path) -> None:
    units_file(store, tmp_path, "R1", "U1", "U2", "U3")
    record(store, part("R1", 1, ("U1", "U3")))
    repo = ReturnsRepository(store.db)
    assert repo.posted_units() == {("R1", "U1"), ("R1", "U3")}
    assert repo.units().set_index("unique_sku")["associated_ref"].to_dict() == {
        "U1": "R1-P1",
        "U2": None,
        "U3": "R1-P1",
    }


def test_a_part_is_kept_with_its_figures_as_planned(store: Store, clock: FakeClock) -> None:
    record(store, part("R1", 1, ("U1", "U2"), value="49.98"))
    [row] = ReturnsRepository(store.db).postings().to_dict("records")
    assert (row["associated_ref"], row["return_ref"], row["part"], row["units"]) == (
        "R1-P1",
        "R1",
        1,
        2,
    )
    assert (row["credit_mode"], row["credit_value"], row["goods_value"]) == (
        "auto",
        "49.98",
        "49.98",
    )
    assert (row["received_at"], row["idempotency_key"], row["credit_status"]) == (
        RECEIVED,
        "return:R1-P1",
        None,
    )


def test_the_highest_part_number_used_is_known_per_return(store: Store) -> None:
    record(store, part("R1", 1, ("U1",)), part("R1", 2, ("U2",)), part("R2", 1, ("V1",)))
    assert ReturnsRepository(store.db).part_numbers_used() == {"R1": 2, "R2": 1}


def test_the_same_part_cannot_be_recorded_twice(store: Store) -> None:
    record(store, part("R1", 1, ("U1",)))
    with pytest.raises(IntegrityError):
        record(store, part("R1", 1, ("U1",)))
    assert len(ReturnsRepository(store.db).postings()) == 1


def test_nothing_posted_has_no_postings_and_no_part_numbers(store: Store) -> None:
    repo = ReturnsRepository(store.db)
    assert repo.posted_units() == set()
    assert repo.part_numbers_used() == {}
    assert repo.postings().empty
    assert "associated_ref" in repo.postings().columns


def test_the_credit_status_read_back_is_kept_per_part(store: Store, clock: FakeClock) -> None:
    record(store, part("R1", 1, ("U1",)), part("R2", 1, ("V1",)))
    clock.advance(hours=2)
    ReturnsRepository(store.db).set_credit_status({"R1-P1": "raised", "R9-P1": "review"}, clock.now)
    statuses = ReturnsRepository(store.db).postings().set_index("associated_ref")["credit_status"]
    assert statuses.to_dict() == {"R1-P1": "raised", "R2-P1": None}


# --- stock moves ---------------------------------------------------------------------------------


def write_off(unique: str, happened: datetime | None) -> StockMove:
    return StockMove(
        kind=StockMoveKind.WRITE_OFF,
        unique_sku=unique,
        return_ref="R1",
        stock_id=3,
        value=Decimal("120.00"),
        happened_at=happened,
        groups=(
            StockAdjustmentGroup(
                site_id=2,
                group_ref=f"WO-{unique}",
                lines=(
                    AdjustmentLine(
                        stock_id=3, adjust_by=-1, reason_code="WRITEOFF", value=Decimal("120.00")
                    ),
                ),
            ),
        ),
    )


def ex_hire(unique: str) -> StockMove:
    def leg(ref: str, site: int, stock: int, change: int) -> StockAdjustmentGroup:
        line = AdjustmentLine(
            stock_id=stock, adjust_by=change, reason_code="EXHIRE", value=Decimal("60.00")
        )
        return StockAdjustmentGroup(site_id=site, group_ref=ref, lines=(line,))

    return StockMove(
        kind=StockMoveKind.EX_HIRE,
        unique_sku=unique,
        return_ref="R2",
        stock_id=3,
        resale_stock_id=4,
        value=Decimal("60.00"),
        groups=(leg(f"EXH-{unique}-OUT", 2, 3, -1), leg(f"EXH-{unique}-IN", 1, 4, 1)),
    )


def test_each_group_of_a_planned_move_is_kept_as_a_row(store: Store) -> None:
    with store.transaction() as s:
        ReturnsRepository(store.db).record_moves([write_off("H1", RECEIVED), ex_hire("H2")], s)
    moves = ReturnsRepository(store.db).moves()
    assert moves[
        ["group_ref", "kind", "stock_id", "site_id", "adjust_by", "value"]
    ].values.tolist() == [
        ["WO-H1", "write_off", 3, 2, -1, "120.00"],
        ["EXH-H2-OUT", "ex_hire", 3, 2, -1, "60.00"],
        ["EXH-H2-IN", "ex_hire", 4, 1, 1, "60.00"],
    ]


def test_planned_group_refs_say_what_not_to_plan_again(store: Store) -> None:
    with store.transaction() as s:
        ReturnsRepository(store.db).record_moves([write_off("H1", None), ex_hire("H2")], s)
    assert ReturnsRepository(store.db).planned_group_refs() == {
        "WO-H1",
        "EXH-H2-OUT",
        "EXH-H2-IN",
    }


def test_restock_moments_give_receipt_per_part_and_handling_per_move_when_known(
    store: Store,
) -> None:
    record(store, part("R1", 1, ("U1",)), part("R2", 1, ("V1",), received=None))
    handled = RECEIVED + timedelta(hours=3)
    with store.transaction() as s:
        ReturnsRepository(store.db).record_moves(
            [write_off("H1", handled), write_off("H2", None)], s
        )
    received, happened = ReturnsRepository(store.db).restock_moments()
    assert received == {"R1-P1": RECEIVED}
    assert happened == {"WO-H1": handled}
