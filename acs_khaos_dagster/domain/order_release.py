"""Order release rules: which Khaos orders go to ACS, in what shape, and which are held.

Pure functions over ``domain.models`` records; no Dagster, no network, no database.
The flow that wires them (lead's assets) is, per order read at the release stage:

1. ``release_plan`` splits the orders into those to send and back orders of orders
   already at ACS (never sent again).
2. ``validate_against_ready_skus`` decides ``release`` or ``hold``; a hold becomes an
   ``order_held`` exception naming the order and its SKUs (``ReleaseDecision.message``).
3. ``to_acs_order`` maps a releasable order; ``release_revision`` hashes the mapped body
   and ``release_outbox_key`` gives the outbox key ``order:{order_number}:{revision}``,
   so an unchanged order is never re-sent and a changed one gets a new key.
4. A 422 ``UNKNOWN_SKU``/``INACTIVE_SKU`` from ACS is turned into the same hold by
   ``hold_from_acs_rejection``.
5. ``orders_to_cancel`` finds orders cancelled in Khaos but still live at ACS;
   ``cancellation_body`` is the ``PUT`` that cancels them (its own revision, so its own
   outbox key).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.domain.models import (
    AcsOrder,
    AcsOrderLine,
    Invoice,
    OrderLine,
    Record,
    SalesOrder,
)

ORDER_HELD_OWNER = "ecommerce"
"""Who fixes a held order: the SKU data is ecommerce's (issue 6).

Note: ``store.exceptions.DEFAULT_OWNERS`` maps ``order_held`` to operations; the issue
asks for ecommerce, so pass this owner (or change the default) when raising it.
"""


# --- Courier mapping (Khaos courier code -> ACS delivery agent and service) -------------


class DeliveryRoute(BaseModel):
    """How ACS should ship an order: ``DeliveryAgent`` (carrier) and ``DeliveryService``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str = Field(min_length=1)
    service: str = Field(min_length=1)


class UnmappedCourierError(ValueError):
    """A Khaos courier code has no route and the map has no default."""


def _courier_key(code: str) -> str:
    return code.strip().upper()


class CourierMap(BaseModel):
    """Khaos ``CourierCode`` -> ACS delivery route (configuration).

    Codes match case-insensitively after trimming. An order whose courier code is not
    mapped (including an empty code) ships by ``default``; with ``default=None`` it is
    refused (``UnmappedCourierError``) so a wrong service is never chosen silently.
    The defaults cover the codes the sandbox uses (``DPD``) and the common UK ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    routes: dict[str, DeliveryRoute] = {
        "DPD": DeliveryRoute(agent="DPD", service="48"),
        "DPD24": DeliveryRoute(agent="DPD", service="24"),
        "DPD48": DeliveryRoute(agent="DPD", service="48"),
        "DPDND": DeliveryRoute(agent="DPD", service="ND"),
        "RM": DeliveryRoute(agent="RM", service="48"),
        "RM24": DeliveryRoute(agent="RM", service="24"),
        "RM48": DeliveryRoute(agent="RM", service="48"),
    }
    default: DeliveryRoute | None = DeliveryRoute(agent="DPD", service="48")

    @field_validator("routes")
    @classmethod
    def _normalise(cls, value: dict[str, DeliveryRoute]) -> dict[str, DeliveryRoute]:
        return {_courier_key(k): v for k, v in value.items()}

    def route_for(self, courier_code: str) -> DeliveryRoute:
        route = self.routes.get(_courier_key(courier_code), self.default)
        if route is None:
            raise UnmappedCourierError(f"Khaos courier code {courier_code!r} has no ACS route")
        return route


class HireDates(BaseModel):
    """Dates ACS needs for a hire order (all timezone-aware); absent for a sale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    despatch_date: datetime | None = None
    event_date: datetime | None = None
    warehouse_return_date: datetime | None = None


# --- Which invoice, which lines ----------------------------------------------------------


def release_invoice(order: SalesOrder, released_stage: int = 9) -> Invoice | None:
    """The order's invoice waiting at the release stage (lowest ``invoice_id`` if several)."""
    waiting = [inv for inv in order.invoices if inv.stage_id == released_stage]
    return min(waiting, key=lambda inv: inv.invoice_id) if waiting else None


def release_lines(
    order: SalesOrder, invoice: Invoice | None = None, *, released_stage: int = 9
) -> list[tuple[OrderLine, int]]:
    """The order lines on the invoice being released, each with the quantity on that invoice.

    Rule (same as ``domain.orders.released_order_lines_frame``): an invoice that lists its
    lines gives the quantities; an invoice without lines (or an order with no invoice at
    all) stands for the whole order. Lines with no quantity on the invoice are left out.
    """
    invoice = invoice if invoice is not None else release_invoice(order, released_stage)
    on_invoice = {line.order_item_id: line.quantity for line in invoice.lines} if invoice else {}
    chosen = []
    for line in order.lines:
        quantity = on_invoice.get(line.order_item_id, 0) if on_invoice else line.quantity
        if quantity > 0:
            chosen.append((line, quantity))
    return chosen


# --- Mapping -------------------------------------------------------------------------------


def to_acs_order(
    order: SalesOrder,
    sku_for_stock_id: Mapping[int, str],
    *,
    couriers: CourierMap | None = None,
    hire_dates: HireDates | None = None,
    invoice: Invoice | None = None,
    released_stage: int = 9,
    comments: str = "",
) -> AcsOrder:
    """The ACS order for ``order``'s invoice at the release stage.

    Rules:
    - ``order_number`` is the Khaos ``order_code``; ``order_date`` the Khaos order date.
    - One ACS line per order line on the released invoice (``release_lines``):
      ``line_item_id = str(order_item_id)`` (the despatch feed maps back through it),
      ``sku`` = the ACS SKU registered for the line's **StockID** (``sku_for_stock_id``, the
      identity map kept by the products flow), never the current Khaos stock code, so a
      renamed stock code still orders the SKU ACS knows; ``price = unit_net``,
      ``quantity`` = the quantity on the invoice, ``is_hire`` as in Khaos.
    - Contact and delivery address are copied as they are (no trimming, no splitting:
      the ACS client enforces its field limits); awkward characters are preserved.
    - ``delivery_agent``/``delivery_service`` come from the Khaos courier code via
      ``couriers`` (``CourierMap``); hire dates, when given, fill the hire fields.

    Raises ``KeyError`` naming the StockID when a line has no ACS SKU (run
    ``validate_against_ready_skus`` first: such an order is held, not mapped),
    ``UnmappedCourierError`` when the courier cannot be routed, and ``ValueError``
    when no line is left to release.
    """
    route = (couriers or CourierMap()).route_for(order.courier_code)
    lines = []
    for line, quantity in release_lines(order, invoice, released_stage=released_stage):
        if line.stock_id not in sku_for_stock_id:
            raise KeyError(f"StockID {line.stock_id} ({line.stock_code}) has no ACS SKU")
        lines.append(
            AcsOrderLine(
                line_item_id=str(line.order_item_id),
                sku=sku_for_stock_id[line.stock_id],
                quantity=quantity,
                price=line.unit_net,
                is_hire=line.is_hire,
            )
        )
    if not lines:
        raise ValueError(f"order {order.order_code} has no line to release")
    dates = hire_dates or HireDates()
    return AcsOrder(
        order_number=order.order_code,
        order_date=order.order_date,
        contact=order.contact,
        delivery_address=order.delivery_address,
        delivery_service=route.service,
        delivery_agent=route.agent,
        comments=comments,
        lines=tuple(lines),
        despatch_date=dates.despatch_date,
        event_date=dates.event_date,
        warehouse_return_date=dates.warehouse_return_date,
    )


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Normalised so 12.5 and 12.50 hash alike (same price, same order).
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def release_revision(order: AcsOrder) -> str:
    """A stable hash of the mapped body: 16 hex digits of SHA-256.

    Canonical JSON: sorted keys, no spaces, ``Decimal`` as its normalised string,
    datetimes as ISO 8601 with their offset. Any change of a field (a line, the
    address, ``cancelled``) gives a new revision; the same body always the same one.
    """
    body = _canonical(order.model_dump(mode="python"))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def release_outbox_key(order: AcsOrder, after: str | None = None) -> str:
    """Outbox idempotency key of a ``PUT orders``: ``order:{order_number}:{revision}``.

    An order edited back to a body it had before (A, then B, then A again) needs a new
    key, or the outbox would take the second A for the first and ACS would keep B:
    ``after`` is the key of the version it follows, which makes the key new and still the
    same on every rerun.
    """
    key = f"order:{order.order_number}:{release_revision(order)}"
    if after is None:
        return key
    return f"{key}:after:{hashlib.sha256(after.encode('utf-8')).hexdigest()[:8]}"


# --- Hold or release -----------------------------------------------------------------------


class SkuReadiness(StrEnum):
    """Where a StockID stands for selling through ACS (fed by the products flow)."""

    READY = "ready"
    UNKNOWN = "unknown"  # ACS does not know the SKU (never pushed, or ACS lost it)
    INACTIVE = "inactive"
    PENDING = "pending"  # pushed, ACS has not set it up yet
    MISMATCH = "mismatch"  # attributes differ between Khaos and ACS
    NOT_READY = "not_ready"  # any other reason (invalid code, discontinued...)


HoldReason = Literal["unknown", "inactive", "pending", "mismatch", "not_ready"]

_CLASSIFICATION_READINESS: dict[str, SkuReadiness] = {
    "matched": SkuReadiness.READY,
    # The ACS SKU stays as first registered and the StockID carries orders (issue 5).
    "renamed": SkuReadiness.READY,
    "missing_in_acs": SkuReadiness.UNKNOWN,
    "pending_in_acs": SkuReadiness.PENDING,
    "inactive_in_acs": SkuReadiness.INACTIVE,
    "attribute_mismatch": SkuReadiness.MISMATCH,
}


def readiness_from_classification(classification: str) -> SkuReadiness:
    """The readiness of a ``sku_mapping`` class (issue 5); any other class is ``not_ready``."""
    return _CLASSIFICATION_READINESS.get(classification.strip().lower(), SkuReadiness.NOT_READY)


class ReadySku(Record):
    """One StockID's ACS SKU and whether orders may use it (a ``ready_for_sale_skus`` row)."""

    stock_id: int
    sku: str
    state: SkuReadiness = SkuReadiness.READY
    detail: str = ""


class SkuProblem(Record):
    """Why one SKU of an order stops its release."""

    stock_id: int | None = None
    stock_code: str = ""
    sku: str = ""
    reason: HoldReason
    detail: str = ""

    def describe(self) -> str:
        name = self.sku or self.stock_code or str(self.stock_id)
        extra = f" ({self.detail})" if self.detail else ""
        return f"{name}: {self.reason}{extra}"


class ReleaseDecision(Record):
    """``release`` or ``hold`` for one order, with the SKUs that hold it."""

    order_number: str
    action: Literal["release", "hold"]
    problems: tuple[SkuProblem, ...] = ()

    @property
    def held(self) -> bool:
        return self.action == "hold"

    @property
    def exception_type(self) -> str:
        return "order_held"

    @property
    def owner(self) -> str:
        return ORDER_HELD_OWNER

    @property
    def exception_ref(self) -> str:
        """Entity reference of the ``order_held`` exception (one per order)."""
        return f"order:{self.order_number}"

    @property
    def message(self) -> str:
        if not self.held:
            return f"order {self.order_number} released"
        skus = "; ".join(p.describe() for p in self.problems)
        return f"order {self.order_number} held until its SKUs are ready at ACS: {skus}"


def validate_against_ready_skus(
    order: SalesOrder,
    ready: Mapping[int, ReadySku],
    *,
    sku_for_stock_id: Mapping[int, str] | None = None,
    invoice: Invoice | None = None,
    released_stage: int = 9,
) -> ReleaseDecision:
    """Release the order only if every line being released has a ready SKU.

    Per line (of the invoice being released, see ``release_lines``), keyed by StockID:
    - in ``ready`` with state ``ready`` -> fine, unless ``sku_for_stock_id`` names a
      different ACS SKU for that StockID -> ``mismatch`` (the identity map and the
      readiness table disagree; sending either could order the wrong garment);
    - in ``ready`` with another state -> that state is the reason;
    - absent from ``ready`` -> ``not_ready`` if the identity map knows an ACS SKU for it
      (pushed, not yet confirmed), else ``unknown``.
    Each StockID is reported once, in line order. Any problem -> ``hold``.
    """
    problems: list[SkuProblem] = []
    seen: set[int] = set()
    for line, _quantity in release_lines(order, invoice, released_stage=released_stage):
        if line.stock_id in seen:
            continue
        seen.add(line.stock_id)
        mapped = (sku_for_stock_id or {}).get(line.stock_id, "")
        entry = ready.get(line.stock_id)
        reason: HoldReason | None
        detail = ""
        if entry is None:
            reason = "not_ready" if mapped else "unknown"
        elif entry.state is not SkuReadiness.READY:
            reason = entry.state.value  # type: ignore[assignment]
            detail = entry.detail
        elif mapped and mapped != entry.sku:
            reason = "mismatch"
            detail = f"identity map says {mapped!r}, ready table says {entry.sku!r}"
        else:
            reason = None
        if reason is not None:
            problems.append(
                SkuProblem(
                    stock_id=line.stock_id,
                    stock_code=line.stock_code,
                    sku=entry.sku if entry is not None else mapped,
                    reason=reason,
                    detail=detail,
                )
            )
    return ReleaseDecision(
        order_number=order.order_code,
        action="hold" if problems else "release",
        problems=tuple(problems),
    )


_ACS_CODE_REASON: dict[str, HoldReason] = {"UNKNOWN_SKU": "unknown", "INACTIVE_SKU": "inactive"}
_INDEX_RE = re.compile(r"\[(\d+)\]")
_SKU_IN_MESSAGE_RE = re.compile(r"\bSKU\s+(\S+)")


def hold_from_acs_rejection(
    order_number: str,
    details: Sequence[Mapping[str, str]],
    order: AcsOrder | None = None,
) -> ReleaseDecision | None:
    """Turn ACS's 422 error list (``PermanentError.details``) into a hold, or ``None``.

    Only ``UNKNOWN_SKU`` (-> ``unknown``) and ``INACTIVE_SKU`` (-> ``inactive``) hold an
    order; any other 422 is not a SKU problem and returns ``None`` (park it as a failed
    effect). The SKU of each error is found from the line index in its ``field`` (the
    n in ``[n]``) against ``order.lines`` when the sent order is given, else from the
    message ("SKU X ..."), else the field itself is named.
    """
    problems: list[SkuProblem] = []
    for error in details:
        reason = _ACS_CODE_REASON.get(str(error.get("code", "")).upper())
        if reason is None:
            continue
        field = str(error.get("field", ""))
        message = str(error.get("message", ""))
        sku = ""
        index = _INDEX_RE.search(field)
        if order is not None and index and int(index.group(1)) < len(order.lines):
            sku = order.lines[int(index.group(1))].sku
        elif found := _SKU_IN_MESSAGE_RE.search(message):
            sku = found.group(1)
        problem = SkuProblem(sku=sku or field, reason=reason, detail=f"ACS: {message}")
        if problem not in problems:
            problems.append(problem)
    if not problems:
        return None
    return ReleaseDecision(order_number=order_number, action="hold", problems=tuple(problems))


# --- Back orders and cancellations ----------------------------------------------------------


def _despatched(invoice: Invoice, stages: KhaosStages) -> bool:
    """Evidence that a shipment was posted against this invoice."""
    return bool(invoice.external_ref) or invoice.stage_id in (stages.issue, *stages.issued)


def is_back_order_of_released_order(
    order: SalesOrder,
    already_released: Collection[str],
    *,
    stages: KhaosStages | None = None,
) -> bool:
    """True when ``order`` is at ACS already and its invoice at 9 or 18 is a back order.

    Rule: the order's code is in ``already_released`` (orders the outbox has sent to
    ACS), it has an invoice at the release stage or Awaiting Stock, and it shows it was
    split by a despatch: another invoice carries a despatch ``external_ref`` or sits at
    Issue / Issued, or it has more than one invoice that is not cancelled. ACS keeps the
    remainder of a partly despatched order open and ships it on the same order number,
    so such an invoice is never released again (a ``PUT`` would replace the order at ACS
    with only the back-ordered lines).

    An order released before and moved back whole to the release stage (one open
    invoice, nothing despatched) is *not* a back order: it may be re-sent, and its
    revision decides whether anything changed.
    """
    stages = stages or KhaosStages()
    if order.order_code not in already_released:
        return False
    waiting = [i for i in order.invoices if i.stage_id in (stages.released, stages.awaiting_stock)]
    if not waiting:
        return False
    others = [i for i in order.invoices if i not in waiting]
    live = [i for i in order.invoices if i.stage_id != stages.cancelled]
    return any(_despatched(i, stages) for i in others) or len(live) > 1


class ReleasePlan(Record):
    """What to do with the orders read at the release stage."""

    to_release: tuple[SalesOrder, ...] = ()
    back_orders: tuple[SalesOrder, ...] = ()


def release_plan(
    orders: Iterable[SalesOrder],
    already_released: Collection[str],
    *,
    stages: KhaosStages | None = None,
) -> ReleasePlan:
    """Orders with an invoice at the release stage, split into ``to_release`` and
    ``back_orders`` (``is_back_order_of_released_order``: never sent again; the order
    release acknowledges their invoice so it stops waiting at the release stage). Orders with
    no invoice at the release stage are ignored. Order of input is kept."""
    stages = stages or KhaosStages()
    to_release: list[SalesOrder] = []
    back: list[SalesOrder] = []
    for order in orders:
        if release_invoice(order, stages.released) is None:
            continue
        if is_back_order_of_released_order(order, already_released, stages=stages):
            back.append(order)
        else:
            to_release.append(order)
    return ReleasePlan(to_release=tuple(to_release), back_orders=tuple(back))


def cancellation_body(order: AcsOrder) -> AcsOrder:
    """The same order with ``cancelled=True`` (``OrderCancelled``): its own revision and key.

    Send the body last sent to ACS (the outbox payload), so ACS sees the order it holds
    being cancelled rather than a different order."""
    return order.model_copy(update={"cancelled": True})


def needs_cancelling_at_acs(
    order: SalesOrder,
    already_released: Collection[str],
    finished_at_acs: Collection[str] = (),
    *,
    stages: KhaosStages | None = None,
) -> bool:
    """True when ``order`` was cancelled in Khaos but is still live at ACS.

    Rule: the order was released to ACS (``already_released``), it is not finished there
    (``finished_at_acs``: orders fully despatched, cancelled already, or whose
    cancellation is in the outbox), it has at least one invoice at the Cancelled stage,
    and no invoice is still open (every invoice is Cancelled, or despatched: Issue,
    Issued or carrying a despatch ``external_ref``). A partly shipped order whose
    back order was cancelled qualifies: ACS must stop shipping the remainder. ACS
    answers ``409 ORDER_LOCKED`` once picking has started: that is an ``order_locked``
    exception for operations, not something to retry.
    """
    stages = stages or KhaosStages()
    if order.order_code not in already_released or order.order_code in finished_at_acs:
        return False
    cancelled = [i for i in order.invoices if i.stage_id == stages.cancelled]
    if not cancelled:
        return False
    return all(i.stage_id == stages.cancelled or _despatched(i, stages) for i in order.invoices)


def orders_to_cancel(
    orders: Iterable[SalesOrder],
    already_released: Collection[str],
    finished_at_acs: Collection[str] = (),
    *,
    stages: KhaosStages | None = None,
) -> list[SalesOrder]:
    """The orders for which ``needs_cancelling_at_acs`` holds, in input order."""
    return [
        order
        for order in orders
        if needs_cancelling_at_acs(order, already_released, finished_at_acs, stages=stages)
    ]
