"""The month-end pack's extra sheets as read from the store (``flows/month_end_extras.py``),
on SQLite and PostgreSQL: the month's confirmed write-offs beside its BER sale returns,
rentals per hire StockID, the hire StockIDs of the SKU master, stock for sale without the
fleet, and Khaos's credits read back per return part."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.records import KhaosCustomerReturn
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    DespatchEvent,
    ShipmentLine,
    StockAdjustmentGroup,
)
from acs_khaos_dagster.domain.returns.write_offs import StockMove, StockMoveKind
from acs_khaos_dagster.flows.month_end_extras import (
    hire_stock_ids,
    khaos_credits,
    rentals_by_stock_id,
    without_hire,
    write_off_rows,
)
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.returns import ReturnsRepository
from acs_khaos_dagster.store.tables.orders import DespatchEventRow

from .conftest import FakeClock
from .remote import ScriptedHandler

# --- write-offs ----------------------------------------------------------------------------------


def write_off(store: Store, unit: str, value: str, *, confirm: bool = True) -> None:
    ref = f"WO-{unit}"
    move = StockMove(
        kind=StockMoveKind.WRITE_OFF,
        unique_sku=unit,
        return_ref="R1",
        stock_id=3,
        value=Decimal(value),
        groups=(
            StockAdjustmentGroup(
                site_id=2,
                group_ref=ref,
                lines=(
                    AdjustmentLine(
                        stock_id=3, adjust_by=-1, reason_code="WRITEOFF", value=Decimal(value)
                    ),
                ),
            ),
        ),
    )
    with store.transaction() as s:
        ReturnsRepository(store.db).record_moves([move], s)
    store.outbox.enqueue("wo", "khaos", unit, ref, {"ref": ref})
    if confirm:
        store.dispatcher({"wo": ScriptedHandler()}, OutboxSettings(backoff_initial_s=0)).drain()


def no_returns() -> pd.DataFrame:
    return pd.DataFrame()


def test_a_write_off_khaos_confirmed_in_the_month_is_a_row_at_the_value_it_carried(
    store: Store,
) -> None:
    write_off(store, "H1", "48.00")
    [row] = write_off_rows(store, "2026-03", no_returns(), {}).to_dict("records")
    assert row == {
        "unique_sku": "H1",
        "return_ref": "R1",
        "stock_id": 3,
        "route": "khaos_adjustment",
        "reference": "WO-H1",
        "units": 1,
        "value": 48.0,
    }


def test_a_write_off_not_yet_confirmed_is_not_in_the_month(store: Store) -> None:
    write_off(store, "H1", "48.00", confirm=False)
    assert write_off_rows(store, "2026-03", no_returns(), {}).empty


def test_a_write_off_confirmed_in_another_month_is_left_out(store: Store, clock: FakeClock) -> None:
    write_off(store, "H1", "48.00")  # confirmed on 2 March
    assert write_off_rows(store, "2026-02", no_returns(), {}).empty
    assert write_off_rows(store, "2026-04", no_returns(), {}).empty


def test_a_ber_sale_return_of_the_month_is_a_memo_row_at_cost_price(store: Store) -> None:
    month_returns = pd.DataFrame(
        [
            {
                "unique_sku": "U1",
                "return_ref": "R5",
                "stock_id": 40,
                "is_hire": False,
                "write_off_status": "written_off",
                "associated_ref": "R5-P1",
            },
            {
                "unique_sku": "U2",
                "return_ref": "R5",
                "stock_id": None,
                "is_hire": None,
                "write_off_status": "written_off",
                "associated_ref": "",
            },
            {
                "unique_sku": "H9",
                "return_ref": "R6",
                "stock_id": 3,
                "is_hire": True,
                "write_off_status": "written_off",
                "associated_ref": "R6-P1",
            },
            {
                "unique_sku": "U3",
                "return_ref": "R7",
                "stock_id": 40,
                "is_hire": False,
                "write_off_status": "not_needed",
                "associated_ref": "R7-P1",
            },
        ]
    )
    rows = write_off_rows(store, "2026-03", month_returns, {40: "12.50"}).to_dict("records")
    assert [
        (r["unique_sku"], r["route"], r["reference"], r["units"], r["value"]) for r in rows
    ] == [
        ("U1", "ber_sale_return", "R5-P1", 1, 12.5),
        ("U2", "ber_sale_return", None, 1, 0.0),  # StockID unknown: no cost to carry
    ]
    assert rows[0]["stock_id"] == 40
    assert pd.isna(rows[1]["stock_id"])


def test_no_write_offs_give_an_empty_sheet_with_its_columns(store: Store) -> None:
    rows = write_off_rows(store, "2026-03", no_returns(), {})
    assert list(rows.columns) == [
        "unique_sku",
        "return_ref",
        "stock_id",
        "route",
        "reference",
        "units",
        "value",
    ]


# --- hire ----------------------------------------------------------------------------------------


def despatched(store: Store, shipment: str, at: datetime, units: dict[str, list[str]]) -> None:
    event = DespatchEvent(
        event_id=f"E-{shipment}",
        order_number="SO1",
        shipment_id=shipment,
        despatched_at=at,
        lines=tuple(
            ShipmentLine(line_item_id=str(n), sku=sku, quantity=len(u), unique_skus=tuple(u))
            for n, (sku, u) in enumerate(units.items(), start=1)
        ),
    )
    with store.transaction() as s:
        s.add(
            DespatchEventRow(
                event_id=event.event_id,
                order_number="SO1",
                shipment_id=shipment,
                despatched_at=at,
                payload=event.model_dump(mode="json"),
                received_at=at,
            )
        )


def test_rentals_are_counted_per_hire_stock_id_up_to_the_moment(store: Store) -> None:
    with store.transaction() as s:
        SkuIdentities(store.db).record({3: "GOWN-HIRE", 4: "HAT-HIRE"}, {}, {}, session=s)
    t0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
    despatched(store, "SH1", t0, {"GOWN-HIRE": ["G1", "G2"], "HAT-HIRE": ["H1"]})
    despatched(store, "SH2", t0 + timedelta(days=5), {"GOWN-HIRE": ["G1"], "UNKNOWN": ["X1"]})
    assert rentals_by_stock_id(store, t0 + timedelta(days=10)) == {3: 3, 4: 1}
    assert rentals_by_stock_id(store, t0 + timedelta(days=1)) == {3: 2, 4: 1}


def test_the_hire_stock_ids_are_the_sku_masters_hire_items() -> None:
    master = pd.DataFrame({"stock_id": [3, 4, 40], "is_hire": [True, 1, False]})
    assert hire_stock_ids(master) == {3, 4}


def test_before_the_products_flow_has_run_there_are_no_hire_stock_ids() -> None:
    assert hire_stock_ids(None) == set()
    assert hire_stock_ids(pd.DataFrame()) == set()
    assert hire_stock_ids(pd.DataFrame({"stock_id": [3]})) == set()


def test_stock_for_sale_leaves_the_fleet_out() -> None:
    stock = pd.DataFrame({"stock_id": [3, 40, 3, 41], "site_id": [2, 1, 3, 1]})
    assert without_hire(stock, {3}).to_dict("records") == [
        {"stock_id": 40, "site_id": 1},
        {"stock_id": 41, "site_id": 1},
    ]


# --- Khaos's credits -----------------------------------------------------------------------------


class Khaos:
    def __init__(self, held: dict[str, list[KhaosCustomerReturn]], missing: set[str]) -> None:
        self.held, self.missing, self.asked = held, missing, []

    def export_customer_returns(self, associated_ref: str) -> list[KhaosCustomerReturn]:
        self.asked.append(associated_ref)
        if associated_ref in self.missing:
            raise NotFoundError("no such return", system="khaos", operation="Export")
        return self.held.get(associated_ref, [])


def held(return_id: int, ref: str, status: str, value: str) -> KhaosCustomerReturn:
    return KhaosCustomerReturn(
        return_id=return_id,
        associated_ref=ref,
        items=(),
        credit_value=Decimal(value),
        credit_status=status,
    )


def test_each_parts_credit_is_read_once_with_khaos_own_value() -> None:
    khaos = Khaos({"R1-P1": [held(31, "R1-P1", "review", "38.50")]}, set())
    assert khaos_credits(khaos, ["R1-P1", "R1-P1"]) == {"R1-P1": ("review", Decimal("38.50"))}  # type: ignore[arg-type]
    assert khaos.asked == ["R1-P1"]


def test_a_part_khaos_does_not_hold_is_left_out_so_its_credit_is_missing() -> None:
    khaos = Khaos({}, {"R2-P1"})
    assert khaos_credits(khaos, ["R2-P1", "R3-P1"]) == {}  # type: ignore[arg-type]


def test_a_part_khaos_holds_twice_takes_the_first_return() -> None:
    twice = [held(40, "R1-P1", "raised", "50.00"), held(31, "R1-P1", "review", "38.50")]
    khaos = Khaos({"R1-P1": twice}, set())
    assert khaos_credits(khaos, ["R1-P1"]) == {"R1-P1": ("review", Decimal("38.50"))}  # type: ignore[arg-type]
