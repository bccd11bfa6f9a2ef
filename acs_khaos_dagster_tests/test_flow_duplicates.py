"""The reconciliation's duplicate check as a flow (``flows/duplicates.py``), without Dagster:
what Khaos holds, as read, turned into the rules' tables, and the ``khaos_duplicate``
exceptions for finance opened, kept and closed per source and per day.

Khaos's records are built by hand (the read-back models); the store is SQLite. Values
are the test's own sums of UnitNet × quantity.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from acs_khaos_dagster.connectors.khaos.records import KhaosAdjustmentGroup, KhaosCustomerReturn
from acs_khaos_dagster.domain.duplicates import (
    duplicate_adjustments,
    duplicate_invoices,
    duplicate_returns,
)
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    Invoice,
    InvoiceLine,
    OrderLine,
    ReturnItem,
    SalesOrder,
)
from acs_khaos_dagster.flows.duplicates import (
    adjustment_frame,
    invoice_frame,
    raise_duplicates,
    return_frame,
)
from acs_khaos_dagster.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield opened
    opened.close()


def order(*invoices: Invoice) -> SalesOrder:
    return SalesOrder(
        order_id=1,
        order_code="SO1",
        order_date=datetime(2026, 3, 1, tzinfo=UTC),
        site_id=1,
        lines=(
            OrderLine(
                order_item_id=1, stock_id=11, stock_code="A", quantity=2, unit_net=Decimal("19.99")
            ),
            OrderLine(
                order_item_id=2, stock_id=12, stock_code="B", quantity=1, unit_net=Decimal("45.50")
            ),
        ),
        invoices=invoices,
    )


def invoice(invoice_id: int, ref: str, *lines: tuple[int, int], stage: int = 70) -> Invoice:
    return Invoice(
        invoice_id=invoice_id,
        invoice_code=f"INV{invoice_id}",
        stage_id=stage,
        external_ref=ref,
        lines=tuple(InvoiceLine(order_item_id=i, stock_id=10 + i, quantity=q) for i, q in lines),
    )


def group(group_id: int, ref: str, reason: str = "WRITEOFF") -> KhaosAdjustmentGroup:
    line = AdjustmentLine(stock_id=11, adjust_by=-1, reason_code=reason, value=Decimal("-8.00"))
    return KhaosAdjustmentGroup(group_id=group_id, site_id=5, group_ref=ref, lines=(line,))


def customer_return(return_id: int, ref: str, credit: str = "0", note: int | None = None):
    item = ReturnItem(sku="A", quantity=1, return_reason="RESTOCK")
    return KhaosCustomerReturn(
        return_id=return_id,
        associated_ref=ref,
        items=(item, item),
        credit_note_id=note,
        credit_value=Decimal(credit),
    )


def open_duplicates(store: Store) -> dict[str, int]:
    return {i.row.entity_ref: i.row.count for i in store.exceptions.list(type="khaos_duplicate")}


# --- Khaos's records as the rules' tables ------------------------------------------------------


def test_an_invoice_is_valued_at_its_order_lines_unit_net_times_quantity() -> None:
    frame = invoice_frame([order(invoice(7, "SO1-1", (1, 2), (2, 1)), invoice(8, "", (9, 3)))])
    rows = frame.set_index("invoice_id")
    assert rows.loc[7, "units"] == 3 and rows.loc[7, "value"] == Decimal("85.48")
    # A line the order does not know (never expected) is valued at nothing, not guessed.
    assert rows.loc[8, "units"] == 3 and rows.loc[8, "value"] == Decimal("0")


def test_only_adjustment_groups_the_integration_sent_are_looked_at() -> None:
    frame = adjustment_frame(
        [group(1, "WO-R1-1"), group(2, "WO-R1-1"), group(3, "STOCKTAKE-MARCH")], {"WO-R1-1"}
    )
    assert frame["group_id"].tolist() == [1, 2]
    assert frame["adjust_by"].tolist() == [-1, -1]


def test_a_return_without_a_credit_is_valued_at_the_goods_the_integration_posted() -> None:
    frame = return_frame(
        [customer_return(1, "R1-P1", credit="30.00", note=900), customer_return(2, "R2-P1")],
        {"R1-P1": Decimal("99"), "R2-P1": Decimal("24.50")},
    )
    assert frame["value"].tolist() == [Decimal("30.00"), Decimal("24.50")]
    assert frame["units"].tolist() == [2, 2]


# --- exceptions for finance --------------------------------------------------------------------

TWICE = [order(invoice(7, "SO1-1", (1, 1)), invoice(9, "SO1-1", (1, 1)))]


def test_a_shipment_invoiced_twice_opens_one_high_exception_for_finance(store: Store) -> None:
    found = duplicate_invoices(invoice_frame(TWICE))
    assert raise_duplicates(store, "invoice", found, "2026-03-10") == 1
    [item] = store.exceptions.list(type="khaos_duplicate")
    assert item.row.entity_ref == "dup:invoice:SO1-1"
    assert (item.row.owner, item.row.severity) == ("finance", "high")
    assert item.row.details["value"] == "19.99"


def test_the_same_duplicate_seen_the_next_night_stays_one_exception(store: Store) -> None:
    found = duplicate_invoices(invoice_frame(TWICE))
    raise_duplicates(store, "invoice", found, "2026-03-10")
    raise_duplicates(store, "invoice", found, "2026-03-11")
    assert open_duplicates(store) == {"dup:invoice:SO1-1": 2}


def test_a_duplicate_gone_from_khaos_closes_its_exception(store: Store) -> None:
    raise_duplicates(store, "invoice", duplicate_invoices(invoice_frame(TWICE)), "2026-03-10")
    fixed = [order(invoice(7, "SO1-1", (1, 1)), invoice(9, "SO1-1", (1, 1), stage=1))]
    assert (
        raise_duplicates(store, "invoice", duplicate_invoices(invoice_frame(fixed)), "2026-03-11")
        == 0
    )
    assert open_duplicates(store) == {}


def test_one_sources_check_never_closes_another_sources_duplicates(store: Store) -> None:
    write_offs = duplicate_adjustments(
        adjustment_frame([group(1, "WO-1"), group(2, "WO-1")], {"WO-1"}), write_off_code="WRITEOFF"
    )
    returns = duplicate_returns(
        return_frame([customer_return(1, "R1-P1"), customer_return(2, "R1-P1")], {})
    )
    raise_duplicates(store, "adjustment", write_offs, "2026-03-10")
    raise_duplicates(store, "return", returns, "2026-03-10")
    raise_duplicates(store, "invoice", [], "2026-03-11")
    assert set(open_duplicates(store)) == {"dup:write_off:WO-1", "dup:return:R1-P1"}
    raise_duplicates(store, "adjustment", [], "2026-03-11")
    assert set(open_duplicates(store)) == {"dup:return:R1-P1"}


def test_a_finding_of_another_source_is_not_raised_under_this_one(store: Store) -> None:
    returns = duplicate_returns(
        return_frame([customer_return(1, "R1-P1"), customer_return(2, "R1-P1")], {})
    )
    assert raise_duplicates(store, "invoice", returns, "2026-03-10") == 0
    assert open_duplicates(store) == {}


def test_re_running_an_older_night_changes_no_open_exception(store: Store) -> None:
    raise_duplicates(store, "invoice", duplicate_invoices(invoice_frame(TWICE)), "2026-03-11")
    assert raise_duplicates(store, "invoice", [], "2026-03-10") is None
    assert open_duplicates(store) == {"dup:invoice:SO1-1": 1}
    # The same night again is not older: it is checked as usual.
    assert raise_duplicates(store, "invoice", [], "2026-03-11") == 0
    assert open_duplicates(store) == {}
