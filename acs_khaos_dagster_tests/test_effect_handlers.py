"""How each outbox effect reaches Khaos and is read back (``effects.py``), against an
in-memory Khaos that records what it was sent (the simulators' end-to-end runs are in
``test_effects_exactly_once.py`` and ``test_stock_push_timing.py``).

The read-back is what makes a Khaos import happen once: it answers "applied" only when
Khaos holds the very thing sent. A status move lands on all its sites or, reversed, on
none."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.connectors.khaos.records import KhaosAdjustmentGroup, KhaosCustomerReturn
from acs_khaos_dagster.domain.models import (
    AdjustmentLine,
    CustomerReturn,
    Invoice,
    OrderLine,
    ReturnItem,
    SalesOrder,
    StockAdjustmentGroup,
    StockMove,
    WriteResult,
    leg_ref,
    undo_of,
)
from acs_khaos_dagster.effects import (
    TARGET_OF,
    EffectKind,
    KhaosCustomerReturnImport,
    KhaosDespatchPosting,
    KhaosInvoiceMove,
    KhaosStockAdjustment,
    KhaosStockMove,
    effect_handlers,
    versions_of,
)


class FakeKhaos:
    """Khaos as far as the handlers see it: adjustment groups by GroupRef, orders, returns."""

    def __init__(self, refuse_sites: set[int] | None = None) -> None:
        self.groups: dict[str, StockAdjustmentGroup] = {}
        self.sent: list[str] = []
        self.refuse_sites = refuse_sites or set()
        self.orders: list[SalesOrder] = []
        self.returns: list[KhaosCustomerReturn] = []

    def import_stock_adjustments(self, group: StockAdjustmentGroup) -> WriteResult:
        self.sent.append(group.group_ref)
        if group.site_id in self.refuse_sites:
            raise PermanentError(
                "site closed", system="khaos", operation="ImportStockAdjustments", code="SITE"
            )
        self.groups[group.group_ref] = group
        return WriteResult(reference=str(len(self.groups)))

    def export_stock_adjustments(self, group_ref: str) -> list[KhaosAdjustmentGroup]:
        group = self.groups.get(group_ref)
        if group is None:
            return []
        return [
            KhaosAdjustmentGroup(
                group_id=1, site_id=group.site_id, group_ref=group_ref, lines=group.lines
            )
        ]

    def export_order_status(self, order_ids: list[int], **_: Any) -> list[SalesOrder]:
        return [o for o in self.orders if o.order_id in order_ids]

    def export_customer_returns(self, associated_ref: str) -> list[KhaosCustomerReturn]:
        return [r for r in self.returns if r.associated_ref == associated_ref]

    def level_change(self, stock_id: int, site_id: int) -> int:
        return sum(
            int(line.adjust_by or 0)
            for g in self.groups.values()
            if g.site_id == site_id
            for line in g.lines
            if line.stock_id == stock_id
        )


def leg(site: int, by: int, ref: str = "SNAP-1-M001") -> StockAdjustmentGroup:
    return StockAdjustmentGroup(
        site_id=site,
        group_ref=leg_ref(ref, site),
        lines=(AdjustmentLine(stock_id=40, adjust_by=by, reason_code="TRANSFER", planned_level=9),),
    )


MOVE = StockMove(ref="SNAP-1-M001", legs=(leg(1, -2), leg(4, 2)))


def order(invoices: list[tuple[int, int, str]]) -> SalesOrder:
    return SalesOrder(
        order_id=5001,
        order_code="SO5001",
        order_date=datetime(2026, 6, 1, tzinfo=UTC),
        site_id=1,
        lines=(OrderLine(order_item_id=1, stock_id=40, stock_code="A", quantity=1, unit_net=1),),
        invoices=tuple(
            Invoice(invoice_id=i, invoice_code=f"I{i}", stage_id=s, external_ref=ref)
            for i, s, ref in invoices
        ),
    )


# --- kinds ---------------------------------------------------------------------------------------


def test_each_kind_targets_the_system_named_in_it() -> None:
    assert TARGET_OF[EffectKind.ACS_ORDER] == "acs"
    assert TARGET_OF[EffectKind.KHAOS_STOCK_MOVE] == "khaos"
    assert set(TARGET_OF.values()) == {"acs", "khaos"}


def test_only_acs_bodies_are_versions_that_supersede_each_other() -> None:
    assert versions_of(EffectKind.ACS_ORDER, "SO1") == "acs.put_order:SO1"
    assert versions_of(EffectKind.ACS_PRODUCT, "DRS-1") == "acs.put_product:DRS-1"
    assert versions_of(EffectKind.KHAOS_DESPATCH, "SH1") is None


def test_handlers_are_given_only_for_the_systems_at_hand() -> None:
    khaos_only = effect_handlers(khaos=FakeKhaos())  # type: ignore[arg-type]
    assert set(khaos_only) == {k for k in EffectKind if TARGET_OF[k] == "khaos"}
    assert effect_handlers() == {}


# --- a stock move --------------------------------------------------------------------------------


def test_undoing_a_leg_reverses_each_line_under_its_own_reference() -> None:
    undo = undo_of(leg(1, -2))
    assert (undo.site_id, undo.group_ref) == (1, "SNAP-1-M001-S1-U")
    [line] = undo.lines
    assert (line.adjust_by, line.adjust_to, line.planned_level) == (2, None, None)


def test_a_move_has_one_leg_per_site() -> None:
    with pytest.raises(ValueError, match="one leg per site"):
        StockMove(ref="M", legs=(leg(1, -1), leg(1, 1)))


def test_a_move_lands_every_leg() -> None:
    khaos = FakeKhaos()
    result = KhaosStockMove(khaos).send(MOVE.model_dump(mode="json"))  # type: ignore[arg-type]
    assert result == {"move_ref": "SNAP-1-M001", "legs": ["SNAP-1-M001-S1", "SNAP-1-M001-S4"]}
    assert (khaos.level_change(40, 1), khaos.level_change(40, 4)) == (-2, 2)


def test_a_move_resent_after_a_partial_landing_sends_only_the_missing_leg() -> None:
    khaos = FakeKhaos()
    khaos.import_stock_adjustments(MOVE.legs[0])
    KhaosStockMove(khaos).send(MOVE.model_dump(mode="json"))  # type: ignore[arg-type]
    assert khaos.sent == ["SNAP-1-M001-S1", "SNAP-1-M001-S4"]


def test_a_refused_leg_reverses_the_legs_that_landed_and_is_raised() -> None:
    khaos = FakeKhaos(refuse_sites={4})
    with pytest.raises(PermanentError, match="1 leg\\(s\\) that had landed were reversed") as err:
        KhaosStockMove(khaos).send(MOVE.model_dump(mode="json"))  # type: ignore[arg-type]
    assert err.value.code == "SITE"
    assert khaos.sent == ["SNAP-1-M001-S1", "SNAP-1-M001-S4", "SNAP-1-M001-S1-U"]
    assert (khaos.level_change(40, 1), khaos.level_change(40, 4)) == (0, 0)


def test_a_move_whose_reversal_had_begun_finishes_it_and_sends_nothing_new() -> None:
    khaos = FakeKhaos()
    first, second = leg(1, -2), leg(4, 2)
    move = StockMove(ref="SNAP-1-M001", legs=(first, second, leg(6, 0)))
    for group in (first, second, undo_of(first)):
        khaos.import_stock_adjustments(group)
    with pytest.raises(PermanentError, match="refused on an earlier attempt"):
        KhaosStockMove(khaos).send(move.model_dump(mode="json"))  # type: ignore[arg-type]
    assert khaos.sent[3:] == ["SNAP-1-M001-S4-U"]
    assert (khaos.level_change(40, 1), khaos.level_change(40, 4)) == (0, 0)


def test_a_move_reads_back_as_applied_only_when_every_leg_landed() -> None:
    khaos = FakeKhaos()
    handler = KhaosStockMove(khaos)  # type: ignore[arg-type]
    payload = MOVE.model_dump(mode="json")
    khaos.import_stock_adjustments(MOVE.legs[0])
    assert handler.read_back(payload) is None
    khaos.import_stock_adjustments(MOVE.legs[1])
    assert handler.read_back(payload) == {"move_ref": "SNAP-1-M001", "read_back": True}


# --- read-backs of single writes -----------------------------------------------------------------


def test_an_adjustment_group_reads_back_by_its_group_ref() -> None:
    khaos = FakeKhaos()
    handler = KhaosStockAdjustment(khaos)  # type: ignore[arg-type]
    group = leg(1, -1, ref="WO")
    assert handler.read_back(group.model_dump(mode="json")) is None
    assert handler.send(group.model_dump(mode="json")) == {"group_id": "1", "group_ref": "WO-S1"}
    assert handler.read_back(group.model_dump(mode="json")) == {
        "group_ref": "WO-S1",
        "read_back": True,
    }


def test_invoices_read_back_as_moved_only_when_all_are_at_the_stage() -> None:
    khaos = FakeKhaos()
    handler = KhaosInvoiceMove(khaos)  # type: ignore[arg-type]
    payload = {"order_ids": [5001], "invoice_ids": [9002, 9001], "stage_id": 22}
    khaos.orders = [order([(9001, 22, ""), (9002, 12, "")])]
    assert handler.read_back(payload) is None
    khaos.orders = [order([(9001, 22, ""), (9002, 22, ""), (9003, 9, "")])]
    assert handler.read_back(payload) == {
        "moved": {"9001": True, "9002": True},
        "read_back": True,
    }


def test_a_despatch_reads_back_by_the_invoice_carrying_its_shipment_reference() -> None:
    khaos = FakeKhaos()
    handler = KhaosDespatchPosting(khaos)  # type: ignore[arg-type]
    payload = {"order_id": 5001, "external_ref": "SH-2", "lines": [[1, 1]]}
    khaos.orders = [order([(9001, 22, "SH-1")])]
    assert handler.read_back(payload) is None
    khaos.orders = [order([(9001, 22, "SH-1"), (9002, 22, "SH-2")])]
    assert handler.read_back(payload) == {
        "invoice_id": 9002,
        "invoice_code": "I9002",
        "read_back": True,
    }


def test_a_customer_return_reads_back_by_its_associated_ref_with_its_credit() -> None:
    khaos = FakeKhaos()
    handler = KhaosCustomerReturnImport(khaos)  # type: ignore[arg-type]
    payload = CustomerReturn(
        associated_ref="R1-P1",
        customer_urn="C1",
        items=(ReturnItem(sku="DRS-1", quantity=1, return_reason="RTS"),),
    ).model_dump(mode="json")
    assert handler.read_back(payload) is None
    khaos.returns = [
        KhaosCustomerReturn(
            return_id=31,
            associated_ref="R1-P1",
            items=(),
            credit_note_id=None,
            credit_value=Decimal("0"),
            credit_status="review",
        )
    ]
    assert handler.read_back(payload) == {
        "return_id": "31",
        "credit_note_id": "",
        "credit_status": "review",
        "read_back": True,
    }
