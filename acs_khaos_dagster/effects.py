"""Outbox effect handlers: how each kind of write reaches ACS or Khaos, and how it is read back.

Every external write is an outbox effect. The dispatcher calls ``send`` once per
attempt and, after an ambiguous failure (timeout or reset after sending), calls
``read_back`` before any resend. Khaos does not de-duplicate ``ImportDespatch``,
``ImportStockAdjustments`` or ``ImportCustomerReturns``, so their read-backs are
what make each effect happen exactly once. ACS ``PUT``s are idempotent (the same
body again changes nothing), so their read-back may answer "not applied" and let
the dispatcher resend safely.

Payloads are the domain records as JSON; handlers know no wire field names.

A handler that is not ``idempotent`` names the things each effect acts on at the target
(``entities``: its order, stock items, invoices or return): the dispatcher keeps up to
``outbox.import_concurrency`` of them in flight at once, never two sharing any
(``store/dispatcher/handout.py``). One that names none goes one at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsProduct,
    CustomerReturn,
    DespatchPosting,
    StockAdjustmentGroup,
    StockMove,
    undo_of,
)
from acs_khaos_dagster.store.outbox import EffectHandler


class EffectKind(StrEnum):
    ACS_PRODUCT = "acs.put_product"
    ACS_ORDER = "acs.put_order"
    KHAOS_MOVE_INVOICES = "khaos.move_invoices"
    KHAOS_DESPATCH = "khaos.import_despatch"
    KHAOS_STOCK_ADJUSTMENT = "khaos.import_stock_adjustments"
    KHAOS_STOCK_MOVE = "khaos.import_stock_move"
    KHAOS_CUSTOMER_RETURN = "khaos.import_customer_return"


TARGET_OF = {kind: kind.value.split(".", 1)[0] for kind in EffectKind}

# Kinds whose effects are versions of one thing at the target: an order's body at ACS (a
# new revision, or its cancellation), a SKU's record at ACS. Only the newest version may be
# sent; the outbox supersedes the older ones (``Outbox.enqueue(supersede_key=...)``).
_VERSIONED = (EffectKind.ACS_ORDER, EffectKind.ACS_PRODUCT)


def versions_of(kind: EffectKind, business_key: str) -> str | None:
    """The supersede key of an effect of ``kind`` about ``business_key`` (None: not versioned)."""
    return f"{kind.value}:{business_key}" if kind in _VERSIONED else None


def stock_items(lines: Iterable[dict[str, Any]]) -> frozenset[str]:
    """The stock items adjustment lines act on (any site: a move spans several)."""
    return frozenset(f"stock:{line['stock_id']}" for line in lines)


class AcsProductPush:
    """``PUT products/{sku}``: idempotent, so a resend after an ambiguous failure is safe."""

    idempotent = True  # the outbox may send several at once

    def __init__(self, acs: AcsClient) -> None:
        self._acs = acs

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        product = AcsProduct.model_validate(payload)
        self._acs.put_product(product)
        return {"sku": product.sku}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None


class AcsOrderPush:
    """``PUT orders/{OrderNumber}`` (release or cancellation): idempotent by body."""

    idempotent = True  # the outbox may send several at once

    def __init__(self, acs: AcsClient) -> None:
        self._acs = acs

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        order = AcsOrder.model_validate(payload)
        self._acs.put_order(order)
        return {"order_number": order.order_number, "cancelled": order.cancelled}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None


class KhaosInvoiceMove:
    """``MoveInvoices``; read back by each invoice's stage.

    Payload: ``order_ids`` (for the read-back), ``invoice_ids``, ``stage_id``.
    """

    def __init__(self, khaos: KhaosClient) -> None:
        self._khaos = khaos

    def entities(self, payload: dict[str, Any]) -> frozenset[str]:
        # The orders too: a despatch posting of one of them adds to its invoices.
        return frozenset(
            [f"invoice:{i}" for i in payload["invoice_ids"]]
            + [f"order:{o}" for o in payload["order_ids"]]
        )

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        moved = self._khaos.move_invoices(payload["invoice_ids"], payload["stage_id"])
        return {"moved": {str(k): v for k, v in moved.items()}}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        wanted = set(payload["invoice_ids"])
        orders = self._khaos.export_order_status(payload["order_ids"], include_tracking=False)
        stages = {inv.invoice_id: inv.stage_id for o in orders for inv in o.invoices}
        if all(stages.get(invoice_id) == payload["stage_id"] for invoice_id in wanted):
            return {"moved": {str(i): True for i in sorted(wanted)}, "read_back": True}
        return None


class KhaosDespatchPosting:
    """``ImportDespatch`` of one ACS shipment; read back by the invoice carrying its ExternalRef."""

    def __init__(self, khaos: KhaosClient) -> None:
        self._khaos = khaos

    def entities(self, payload: dict[str, Any]) -> frozenset[str]:
        return frozenset({f"order:{payload['order_id']}"})

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        invoice = self._khaos.import_despatch(DespatchPosting.model_validate(payload))
        return {"invoice_id": invoice.invoice_id, "invoice_code": invoice.invoice_code}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        posting = DespatchPosting.model_validate(payload)
        for order in self._khaos.export_order_status([posting.order_id]):
            for invoice in order.invoices:
                if invoice.external_ref == posting.external_ref:
                    return {
                        "invoice_id": invoice.invoice_id,
                        "invoice_code": invoice.invoice_code,
                        "read_back": True,
                    }
        return None


class KhaosStockAdjustment:
    """``ImportStockAdjustments`` of one group; read back by its GroupRef."""

    def __init__(self, khaos: KhaosClient) -> None:
        self._khaos = khaos

    def entities(self, payload: dict[str, Any]) -> frozenset[str]:
        return stock_items(payload["lines"])

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = self._khaos.import_stock_adjustments(StockAdjustmentGroup.model_validate(payload))
        return {"group_id": result.reference, "group_ref": payload["group_ref"]}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        groups = self._khaos.export_stock_adjustments(group_ref=payload["group_ref"])
        if groups:
            return {"group_ref": payload["group_ref"], "read_back": True}
        return None


class KhaosStockMove:
    """A status move's legs (one ``ImportStockAdjustments`` per site), all or none.

    Each leg is read back by its GroupRef before it is sent, so a retry sends only what is
    missing. If Khaos refuses a leg after others landed, the landed legs are reversed
    (``undo_of``: the same lines with the opposite sign, their own GroupRef) before the
    refusal is raised: the StockID's total never changes by half a move. A failure while
    reversing is raised as it is, and the retry resumes the reversal.
    """

    def __init__(self, khaos: KhaosClient) -> None:
        self._khaos = khaos

    def _landed(self, group: StockAdjustmentGroup) -> bool:
        return bool(self._khaos.export_stock_adjustments(group_ref=group.group_ref))

    def entities(self, payload: dict[str, Any]) -> frozenset[str]:
        return stock_items(line for leg in payload["legs"] for line in leg["lines"])

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        move = StockMove.model_validate(payload)
        landed = [leg for leg in move.legs if self._landed(leg)]
        if any(self._landed(undo_of(leg)) for leg in landed):
            return self._undone(move, landed, None)  # a reversal was under way: finish it
        for leg in move.legs:
            if leg in landed:
                continue
            try:
                self._khaos.import_stock_adjustments(leg)
            except PermanentError as exc:
                return self._undone(move, landed, exc)
            landed.append(leg)
        return {"move_ref": move.ref, "legs": [leg.group_ref for leg in move.legs]}

    def _undone(
        self,
        move: StockMove,
        landed: list[StockAdjustmentGroup],
        refusal: PermanentError | None,
    ) -> dict[str, Any]:
        for leg in landed:
            undo = undo_of(leg)
            if not self._landed(undo):
                self._khaos.import_stock_adjustments(undo)
        why = str(refusal) if refusal is not None else "refused on an earlier attempt"
        raise PermanentError(
            f"status move {move.ref} refused ({why}); the {len(landed)} leg(s) that had "
            "landed were reversed, so no StockID's total changed",
            system="khaos",
            operation="ImportStockAdjustments",
            code=getattr(refusal, "code", None),
        )

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        move = StockMove.model_validate(payload)
        if all(self._landed(leg) for leg in move.legs):
            return {"move_ref": move.ref, "read_back": True}
        return None


class KhaosCustomerReturnImport:
    """``ImportCustomerReturns`` of one return part; read back by its AssociatedRef."""

    def __init__(self, khaos: KhaosClient) -> None:
        self._khaos = khaos

    def entities(self, payload: dict[str, Any]) -> frozenset[str]:
        return frozenset({f"return:{payload['associated_ref']}"})

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = self._khaos.import_customer_return(CustomerReturn.model_validate(payload))
        return {"return_id": result.reference, **result.details}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        found = self._khaos.export_customer_returns(associated_ref=payload["associated_ref"])
        if found:
            ret = found[0]
            return {
                "return_id": str(ret.return_id),
                "credit_note_id": str(ret.credit_note_id or ""),
                "credit_status": ret.credit_status,
                "read_back": True,
            }
        return None


def effect_handlers(
    acs: AcsClient | None = None, khaos: KhaosClient | None = None
) -> dict[str, EffectHandler]:
    """The handlers for the systems given; a dispatcher claims only kinds it can send."""
    handlers: dict[str, EffectHandler] = {}
    if acs is not None:
        handlers[EffectKind.ACS_PRODUCT] = AcsProductPush(acs)
        handlers[EffectKind.ACS_ORDER] = AcsOrderPush(acs)
    if khaos is not None:
        handlers[EffectKind.KHAOS_MOVE_INVOICES] = KhaosInvoiceMove(khaos)
        handlers[EffectKind.KHAOS_DESPATCH] = KhaosDespatchPosting(khaos)
        handlers[EffectKind.KHAOS_STOCK_ADJUSTMENT] = KhaosStockAdjustment(khaos)
        handlers[EffectKind.KHAOS_STOCK_MOVE] = KhaosStockMove(khaos)
        handlers[EffectKind.KHAOS_CUSTOMER_RETURN] = KhaosCustomerReturnImport(khaos)
    return handlers
