"""Pure table rules: snapshot aggregation, the SKU master frame, released order lines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from acs_khaos_dagster.domain.catalogue import sku_master_frame
from acs_khaos_dagster.domain.models import (
    Barcode,
    Invoice,
    InvoiceLine,
    OrderLine,
    SalesOrder,
    StockItem,
)
from acs_khaos_dagster.domain.orders import released_order_lines_frame
from acs_khaos_dagster.domain.snapshot import status_counts, units_per_status
from acs_khaos_dagster.domain.stock_status import normalise_status

READY = normalise_status("In Warehouse - Ready For Customer")


def _units(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"sku": [r[0] for r in rows], "status": [normalise_status(r[1]) for r in rows]})


def test_snapshot_counts_units_per_sku_and_status_with_their_bucket() -> None:
    counts = status_counts(
        _units(
            [("A", "In Warehouse - Ready For Customer")] * 3 + [("A", "Cleaning"), ("B", "Packed")]
        )
    )
    rows = {(r.sku, r.status): (r.bucket, r.units) for r in counts.itertuples()}
    assert rows[("A", READY)] == ("sellable", 3)
    assert rows[("A", "cleaning")] == ("non_sellable", 1)
    assert rows[("B", "packed")] == ("allocated", 1)


def test_a_status_nobody_has_seen_before_is_counted_unknown_never_sellable() -> None:
    counts = status_counts(_units([("A", "Lost In Transit"), ("A", "Lost In Transit")]))
    assert counts.to_dict("records") == [
        {"sku": "A", "status": "lost in transit", "bucket": "unknown", "units": 2}
    ]


def test_a_sku_listed_twice_in_its_dictionary_is_counted_as_one_sku() -> None:
    sku = pa.DictionaryArray.from_arrays(pa.array([0, 1, 1], pa.int32()), pa.array(["A", "A"]))
    status = pa.array([READY] * 3).dictionary_encode()
    counts = status_counts(pa.table({"sku": sku, "status": status}))
    assert counts.to_dict("records") == [
        {"sku": "A", "status": READY, "bucket": "sellable", "units": 3}
    ]


def test_units_per_status_totals_across_skus_largest_first() -> None:
    counts = status_counts(
        _units([("A", "Cleaning"), ("B", "cleaning"), ("B", "In Warehouse - Ready For Customer")])
    )
    totals = units_per_status(counts)
    assert totals.iloc[0].to_dict() == {"status": "cleaning", "bucket": "non_sellable", "units": 2}


def _item(stock_id: int, code: str, **kw: object) -> StockItem:
    return StockItem(stock_id=stock_id, stock_code=code, **kw)  # type: ignore[arg-type]


def test_sku_master_is_keyed_by_stock_id_with_parents_and_first_barcode() -> None:
    frame = sku_master_frame(
        [
            _item(
                2,
                "DRS-1-NVY-10",
                scs_parent_id=1,
                cost_price=Decimal("12.40"),
                barcodes=(Barcode(value="5012345678900"),),
            ),
            _item(1, "DRS-1", stock_controlled=False),
        ]
    )
    assert list(frame["stock_id"]) == [1, 2]
    child = frame.set_index("stock_id").loc[2]
    assert child["scs_parent_id"] == 1 and child["barcode"] == "5012345678900"
    assert child["cost_price"] == 12.40
    assert not frame.set_index("stock_id").loc[1]["stock_controlled"]


def _order(invoices: tuple[Invoice, ...]) -> SalesOrder:
    return SalesOrder(
        order_id=7,
        order_code="SO7",
        order_date=datetime(2026, 3, 1, tzinfo=UTC),
        site_id=1,
        lines=(
            OrderLine(
                order_item_id=70, stock_id=2, stock_code="A", quantity=2, unit_net=Decimal("10")
            ),
            OrderLine(
                order_item_id=71, stock_id=3, stock_code="B", quantity=1, unit_net=Decimal("5")
            ),
        ),
        invoices=invoices,
    )


def test_released_lines_come_only_from_the_invoice_at_the_release_stage() -> None:
    back_order = Invoice(
        invoice_id=2,
        invoice_code="INV2",
        stage_id=9,
        lines=(InvoiceLine(order_item_id=70, stock_id=2, quantity=1),),
    )
    shipped = Invoice(
        invoice_id=1,
        invoice_code="INV1",
        stage_id=16,
        lines=(
            InvoiceLine(order_item_id=70, stock_id=2, quantity=1),
            InvoiceLine(order_item_id=71, stock_id=3, quantity=1),
        ),
    )
    frame = released_order_lines_frame([_order((shipped, back_order))], released_stage=9)
    assert frame[["order_item_id", "quantity", "invoice_id"]].to_dict("records") == [
        {"order_item_id": 70, "quantity": 1, "invoice_id": 2}
    ]


def test_an_order_with_no_invoice_at_the_release_stage_is_not_released() -> None:
    picking = Invoice(invoice_id=1, invoice_code="INV1", stage_id=12)
    assert released_order_lines_frame([_order((picking,))], released_stage=9).empty
