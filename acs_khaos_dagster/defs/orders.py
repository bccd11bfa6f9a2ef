"""Orders group: release to ACS, despatches back to Khaos, holds, cancellations, stuck orders.

The rules live in ``domain.order_release``, ``domain.shipments`` and ``domain.sla``; this
module reads, calls them, writes through the outbox and the store, and reports.

- ``acs_order_release``: orders waiting at the release stage are validated against the
  SKUs ready for sale, sent to ACS (``PUT orders``) and, once ACS accepted them,
  acknowledged in Khaos (invoice moved to the acknowledgement stage). Orders cancelled
  in Khaos after release are cancelled at ACS.
- ``acs_shipments`` / ``khaos_shipment_postings``: the ACS despatch feed, its cursor in
  the store, and one ``ImportDespatch`` per shipment. ``acs_despatch_sensor`` starts
  ``despatch_posting_job`` when the feed has anything beyond the stored cursor.
- ``order_sla_breaches``: the stuck-order clock over the store's timestamps.
"""

import hashlib
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import pandas as pd
import pandera.pandas as pa
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    BetaWarning,
    DagsterRunStatus,
    Definitions,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)
from dagster_pandera import pandera_schema_to_dagster_type
from pandera.typing import Series
from pydantic import BaseModel

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import OrderSettings, load_settings
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS, SENSOR_STATUS
from acs_khaos_dagster.defs.brand import brand_tags
from acs_khaos_dagster.defs.common import (
    RUN_IN_PROGRESS,
    dispatch,
    dispatch_metadata,
    effect_states,
    markdown_table,
    sync_exceptions,
)
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.defs.schemas import ReleasedOrderLinesType
from acs_khaos_dagster.domain.models import AcsOrder, DespatchPosting, Invoice, SalesOrder
from acs_khaos_dagster.domain.order_release import (
    ReadySku,
    ReleaseDecision,
    SkuProblem,
    SkuReadiness,
    cancellation_body,
    hold_from_acs_rejection,
    orders_to_cancel,
    readiness_from_classification,
    release_invoice,
    release_outbox_key,
    release_plan,
    release_revision,
    to_acs_order,
    validate_against_ready_skus,
)
from acs_khaos_dagster.domain.orders import released_order_lines_frame
from acs_khaos_dagster.domain.shipments import (
    SHIPMENT_COLUMNS,
    PostingProblem,
    ShortLine,
    closed_quantities,
    order_completion,
    shipment_rows,
    short_closures,
    to_despatch_posting,
    unique_events,
)
from acs_khaos_dagster.domain.sla import OrderSlaState, find_breaches
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, versions_of
from acs_khaos_dagster.store import Store, Transaction
from acs_khaos_dagster.store.orders import DESPATCH_CURSOR, OrderBook, PostingRecord
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.tables.orders import OrderRelease, ShipmentPosting

# ACS error codes that mean "the SKU is not ready": the order is held, not failed.
SKU_REJECTION_CODES = ("UNKNOWN_SKU", "INACTIVE_SKU")
_CODE_IN_ERROR_RE = re.compile(r"\[([A-Z_]+)\]\s*$")
_MESSAGE_IN_ERROR_RE = re.compile(r"put_order: (.*?)(?: \(HTTP \d+\))?(?: \[[A-Z_]+\])?$")
SHIPMENT_EXCEPTION_TYPES = ("courier_unmapped", "shipment_unpostable")
RELEASE_JOB = "order_release_job"


class ExceptionSpec(BaseModel):
    """One problem for the exception queue (``sync_exceptions`` reads these fields)."""

    type: str
    entity_ref: str
    message: str
    details: dict[str, Any] = {}


DESPATCH_JOB = "despatch_posting_job"
# Tag carrying the stored feed cursor a despatch run was started for.
CURSOR_TAG = "acs_khaos/despatch_cursor"


# --- pandera models of the group's tables ----------------------------------------------------

RELEASE_ACTIONS = [
    "sent",
    "queued",
    "held",
    "back_order",
    "cancel_queued",
    "cancelled",
    "cancel_locked",
]


class OrderReleaseSchema(pa.DataFrameModel):
    """What happened to each order this run."""

    order_code: Series[str]
    order_id: Series[int]
    action: Series[str] = pa.Field(isin=RELEASE_ACTIONS)
    acknowledged: Series[bool]
    outbox_key: Series[str]
    detail: Series[str]

    class Config:
        strict = "filter"
        coerce = True


class ShipmentsSchema(pa.DataFrameModel):
    """One row per ACS shipment received this run."""

    order_number: Series[str]
    shipment_id: Series[str] = pa.Field(unique=True)
    event_id: Series[str]
    despatched_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"tz": "UTC"})
    carrier: Series[str]
    service: Series[str]
    lines: Series[str]
    units: Series[int] = pa.Field(ge=0)
    parcels: Series[int] = pa.Field(ge=0)
    tracking_numbers: Series[str]
    tracking_urls: Series[str]
    closed_short_units: Series[int] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


POSTING_STATES = ["queued", "nothing", "problem"]
POSTING_BATCH = 500  # releases or shipments recorded per transaction
T = TypeVar("T")


class ShipmentPostingsSchema(pa.DataFrameModel):
    """Each shipment handled this run and what became of it in Khaos."""

    shipment_id: Series[str] = pa.Field(unique=True)
    order_number: Series[str]
    state: Series[str] = pa.Field(isin=POSTING_STATES)
    effect_state: Series[str]
    units: Series[int] = pa.Field(ge=0)
    closed_short_units: Series[int] = pa.Field(ge=0)
    order_completion: Series[str]
    problem: Series[str]

    class Config:
        strict = "filter"
        coerce = True


class SlaBreachesSchema(pa.DataFrameModel):
    key: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=["turnaround", "release_stage", "back_order"])
    order_number: Series[str]
    age_working_hours: Series[float]
    age_hours: Series[float]
    due_at: Series[str]

    class Config:
        strict = "filter"
        coerce = True


warnings.filterwarnings("ignore", category=BetaWarning, module=__name__)
OrderReleaseType = pandera_schema_to_dagster_type(OrderReleaseSchema)
ShipmentsType = pandera_schema_to_dagster_type(ShipmentsSchema)
ShipmentPostingsType = pandera_schema_to_dagster_type(ShipmentPostingsSchema)
SlaBreachesType = pandera_schema_to_dagster_type(SlaBreachesSchema)


# --- order release ---------------------------------------------------------------------------


@asset(
    group_name="orders",
    kinds={"khaos", "pandas"},
    dagster_type=ReleasedOrderLinesType,
    pool="khaos_api",
    description="Lines of orders whose invoice waits at the release stage "
    "for the sites ACS fulfils.",
)
def khaos_released_orders(
    context: AssetExecutionContext, settings: SettingsResource, khaos: KhaosApiResource
) -> pd.DataFrame:
    conf = settings.load().khaos
    released = conf.stages.released
    orders = []
    with khaos.client() as client:
        for site_id in (conf.sites.selling, conf.sites.hire_stock):
            orders.extend(client.export_orders([released], site_id))
    unique = {order.order_id: order for order in orders}
    frame = released_order_lines_frame(unique.values(), released)
    context.add_output_metadata(
        {
            "orders": int(frame["order_id"].nunique()),
            "lines": len(frame),
            "units": int(frame["quantity"].sum()),
            "hire_lines": int(frame["is_hire"].sum()),
        }
    )
    return frame


def ready_sku_map(
    sku_mapping: pd.DataFrame, ready_for_sale_skus: pd.DataFrame
) -> dict[int, ReadySku]:
    """Every StockID the products flow knows, with its readiness for orders.

    All ``sku_mapping`` rows count (a pending or inactive SKU holds an order with that
    reason, not as ``unknown``); ``ready_for_sale_skus`` has the last word on ``ready``.
    """
    ready_ids = set(ready_for_sale_skus["stock_id"].astype(int))
    out: dict[int, ReadySku] = {}
    for row in sku_mapping[sku_mapping["stock_id"].notna()].itertuples(index=False):
        stock_id = int(row.stock_id)
        state = readiness_from_classification(str(row.classification))
        if stock_id in ready_ids:
            state = SkuReadiness.READY
        elif state is SkuReadiness.READY:
            state = SkuReadiness.NOT_READY
        detail = "; ".join(
            str(v) for v in (row.mismatch_detail, row.code_problems) if isinstance(v, str) and v
        )
        out[stock_id] = ReadySku(
            stock_id=stock_id,
            sku=str(row.acs_sku or row.stock_code),
            state=state,
            detail=detail or str(row.classification),
        )
    return out


def _rejection_details(last_error: str | None) -> list[dict[str, str]]:
    """The ACS error behind a parked effect (the outbox keeps its text only)."""
    text = (last_error or "").strip()
    code = _CODE_IN_ERROR_RE.search(text)
    message = _MESSAGE_IN_ERROR_RE.search(text)
    if code is None:
        return []
    return [{"code": code.group(1), "field": "", "message": message.group(1) if message else text}]


def _is_sku_rejection(last_error: str | None) -> bool:
    return any(d["code"] in SKU_REJECTION_CODES for d in _rejection_details(last_error))


def _close_effect_failed(db: Store, key: str, note: str) -> None:
    """The parked effect is now a business exception of its own; its technical one closes."""
    for item in db.exceptions.list(type="effect_failed", entity_ref=key):
        db.exceptions.resolve(item.row.id, "integration", note)


def _ack_key(order_code: str, invoice_ids: Iterable[int]) -> str:
    return f"ack:{order_code}:{'-'.join(str(i) for i in sorted(invoice_ids))}"


def _transaction_batches(
    db: Store, items: Sequence[T]
) -> Iterator[tuple[Transaction, Sequence[T]]]:
    """``items`` ``POSTING_BATCH`` at a time, each batch in a transaction of its own (a brand's
    first load or despatch day is thousands of records; one commit each is the cost)."""
    for first in range(0, len(items), POSTING_BATCH):
        with db.transaction() as session:
            yield session, items[first : first + POSTING_BATCH]


def _enqueue_ack(
    db: Store,
    order_code: str,
    order_id: int,
    invoice_ids: list[int],
    stage_id: int,
    session: Transaction | None = None,
) -> str:
    key = _ack_key(order_code, invoice_ids)
    kind = EffectKind.KHAOS_MOVE_INVOICES
    payload = {"order_ids": [order_id], "invoice_ids": sorted(invoice_ids), "stage_id": stage_id}
    db.outbox.enqueue(kind, TARGET_OF[kind], order_code, key, payload, session=session)
    return key


def _row(
    order: SalesOrder | OrderRelease, action: str, key: str = "", detail: str = ""
) -> dict[str, Any]:
    code = order.order_code
    return {
        "order_code": code,
        "order_id": order.order_id,
        "action": action,
        "acknowledged": False,
        "outbox_key": key,
        "detail": detail,
    }


@asset(
    group_name="orders",
    kinds={"acs", "khaos", "pandas"},
    dagster_type=OrderReleaseType,
    pool="acs_api",
    description="Orders sent to ACS, held for SKUs, cancelled and acknowledged in Khaos this run.",
)
def acs_order_release(
    context: AssetExecutionContext,
    khaos_released_orders: pd.DataFrame,
    sku_mapping: pd.DataFrame,
    ready_for_sale_skus: pd.DataFrame,
    settings: SettingsResource,
    acs: AcsApiResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    stages = conf.khaos.stages
    now = integration_now(conf)
    ready = ready_sku_map(sku_mapping, ready_for_sale_skus)
    order_ids = sorted({int(i) for i in khaos_released_orders["order_id"]})
    rows: dict[str, dict[str, Any]] = {}
    holds: list[ReleaseDecision] = []
    with store.connect() as db, khaos.client() as kc, acs.client() as ac:
        book = OrderBook(db.db)
        identities = SkuIdentities(db.db).identity()
        sku_for = {sid: e.sku for sid, e in ready.items() if e.state is SkuReadiness.READY}
        sku_for.update(identities)
        releases = book.releases()
        release_states = effect_states(db, [r.outbox_key for r in releases.values()])
        accepted = {
            code for code, state in zip(releases, release_states, strict=True) if state == "done"
        }
        waiting = kc.export_order_status(order_ids, include_tracking=False) if order_ids else []
        plan = release_plan(waiting, accepted, stages=stages)

        # Back orders of orders ACS already has: acknowledged without being sent again.
        for order in plan.back_orders:
            invoice_ids = [i.invoice_id for i in order.invoices if i.stage_id == stages.released]
            key = _enqueue_ack(
                db, order.order_code, order.order_id, invoice_ids, stages.acknowledged
            )
            rows[order.order_code] = _row(order, "back_order", key, "already at ACS")

        to_send: dict[str, tuple[SalesOrder, AcsOrder, Invoice, str]] = {}
        for order in plan.to_release:
            invoice = release_invoice(order, stages.released)
            assert invoice is not None  # release_plan keeps only orders with one
            decision = validate_against_ready_skus(
                order,
                ready,
                sku_for_stock_id=identities,
                invoice=invoice,
                released_stage=stages.released,
            )
            if not decision.held:
                try:
                    acs_order = to_acs_order(
                        order,
                        sku_for,
                        couriers=conf.couriers,
                        invoice=invoice,
                        released_stage=stages.released,
                    )
                except (KeyError, ValueError) as exc:
                    problem = SkuProblem(reason="not_ready", detail=str(exc))
                    decision = ReleaseDecision(
                        order_number=order.order_code, action="hold", problems=(problem,)
                    )
            if decision.held:
                holds.append(decision)
                rows[order.order_code] = _row(order, "held", detail=decision.message)
                continue
            to_send[order.order_code] = (order, acs_order, invoice, release_outbox_key(acs_order))
        known = db.outbox.states(key for *_, key in to_send.values())
        # Edited back to a body already recorded (A, B, A): a new version with a new key.
        for code, (order, acs_order, invoice, key) in list(to_send.items()):
            last = releases.get(code)
            if last is None:
                continue
            if last.revision == release_revision(acs_order):
                to_send[code] = (order, acs_order, invoice, last.outbox_key)
            elif key in known:
                again = release_outbox_key(acs_order, after=last.outbox_key)
                to_send[code] = (order, acs_order, invoice, again)
        known = db.outbox.states(key for *_, key in to_send.values())
        new_releases = [entry for entry in to_send.values() if entry[3] not in known]
        # Recorded a batch per transaction (a first load is a brand's whole order book);
        # nothing is sent before its batch is committed.
        kind = EffectKind.ACS_ORDER
        for session, batch in _transaction_batches(db, new_releases):
            for order, acs_order, invoice, key in batch:
                db.outbox.enqueue(
                    kind,
                    TARGET_OF[kind],
                    order.order_code,
                    key,
                    acs_order.model_dump(mode="json"),
                    session=session,
                    supersede_key=versions_of(kind, order.order_code),
                )
                book.record_release(
                    acs_order,
                    order.order_id,
                    [invoice.invoice_id],
                    release_revision(acs_order),
                    key,
                    now,
                    session,
                )
        for *_, key in to_send.values():
            if known.get(key) in ("parked", "failed"):
                existing = db.outbox.by_key(key)
                if existing is not None and _is_sku_rejection(existing.last_error):
                    # ACS refused a SKU last time; it is the authority, so ask again
                    # (idempotent).
                    db.outbox.requeue(existing.id, "integration")

        # Cancelled in Khaos after release: cancel at ACS unless finished there.
        # Orders fully despatched per the store are finished: Khaos is not asked about them.
        all_postings = _postings_by_order(book.postings())
        live = {
            code: r
            for code, r in book.releases().items()
            if code in accepted
            and r.cancel_state is None
            and _open_units(r, all_postings.get(code, [])) > 0
        }
        statuses = (
            kc.export_order_status([r.order_id for r in live.values()], include_tracking=False)
            if live
            else []
        )
        postings = all_postings
        shipped = {
            o.order_code
            for o in statuses
            if order_completion(o, *_posted_and_closed(postings.get(o.order_code, []))) == "shipped"
        }
        cancels: dict[str, str] = {}
        for order in orders_to_cancel(statuses, accepted, shipped, stages=stages):
            release = live[order.order_code]
            body = cancellation_body(AcsOrder.model_validate(release.payload))
            key = release_outbox_key(body)
            kind = EffectKind.ACS_ORDER
            with db.transaction() as session:
                db.outbox.enqueue(
                    kind,
                    TARGET_OF[kind],
                    order.order_code,
                    key,
                    body.model_dump(mode="json"),
                    session=session,
                    supersede_key=versions_of(kind, order.order_code),
                )
                book.set_cancel(order.order_code, "requested", key, session)
            cancels[order.order_code] = key
        # A cancellation still waiting in the outbox from an earlier run.
        for code, r in book.releases().items():
            if r.cancel_state == "requested" and r.cancel_outbox_key and code not in cancels:
                cancels[code] = r.cancel_outbox_key

        acs_report = dispatch(db, conf, [EffectKind.ACS_ORDER], acs=ac)

        sent_states = db.outbox.states(key for *_, key in to_send.values())
        accepted_now = [
            (code, entry) for code, entry in to_send.items() if sent_states.get(entry[3]) == "done"
        ]
        for session, batch in _transaction_batches(db, accepted_now):
            for code, (order, _, invoice, key) in batch:
                ack = _enqueue_ack(
                    db,
                    code,
                    order.order_id,
                    [invoice.invoice_id],
                    stages.acknowledged,
                    session=session,
                )
                rows[code] = _row(order, "sent", key)
                rows[code]["ack_key"] = ack
        for code, (order, acs_order, _, key) in to_send.items():
            if sent_states.get(key) == "done":
                continue
            effect = db.outbox.by_key(key)
            state = effect.state if effect is not None else ""
            if state in ("parked", "failed") and effect is not None:
                hold = hold_from_acs_rejection(
                    code, _rejection_details(effect.last_error), acs_order
                )
                if hold is None:
                    rows[code] = _row(order, "queued", key, effect.last_error or "")
                    continue
                holds.append(hold)
                _close_effect_failed(db, key, "ACS refused a SKU: the order is held (order_held)")
                rows[code] = _row(order, "held", key, hold.message)
            else:
                rows[code] = _row(order, "queued", key, effect.last_error or "" if effect else "")

        locked: list[ExceptionSpec] = []
        for code, key in cancels.items():
            effect = db.outbox.by_key(key)
            release = book.releases()[code]
            if effect is None:
                continue
            if effect.state == "done":
                book.set_cancel(code, "cancelled", None)
                rows[code] = _row(release, "cancelled", key)
            elif effect.state in ("parked", "failed"):
                if "ORDER_LOCKED" in (effect.last_error or ""):
                    locked.append(
                        ExceptionSpec(
                            type="order_locked",
                            entity_ref=f"order:{code}",
                            message=(
                                f"order {code} was cancelled in Khaos but ACS has started "
                                "picking it (ORDER_LOCKED): stop the parcel at ACS or raise a "
                                "return when it arrives"
                            ),
                            details={"order_code": code, "outbox_key": key},
                        )
                    )
                    _close_effect_failed(db, key, "ACS refused: order_locked raised")
                    book.set_cancel(code, "locked", None)
                    rows[code] = _row(release, "cancel_locked", key, effect.last_error or "")
                else:
                    rows[code] = _row(release, "cancel_queued", key, effect.last_error or "")
            else:
                rows[code] = _row(release, "cancel_queued", key)
        for spec in locked:
            db.exceptions.raise_exception(spec.type, spec.entity_ref, spec.message, spec.details)

        khaos_report = dispatch(db, conf, [EffectKind.KHAOS_MOVE_INVOICES], khaos=kc)
        acknowledged = 0
        unacknowledged = {
            code: r for code, r in book.releases().items() if r.acknowledged_at is None
        }
        ack_states = effect_states(
            db, [_ack_key(code, r.invoice_ids) for code, r in unacknowledged.items()]
        )
        with db.transaction() as session:
            for code, state in zip(unacknowledged, ack_states, strict=True):
                if state == "done":
                    book.mark_acknowledged(code, now, session)
                    acknowledged += 1
                    if code in rows:
                        rows[code]["acknowledged"] = True
        back_orders = [row for row in rows.values() if row["action"] == "back_order"]
        for row, state in zip(
            back_orders, effect_states(db, [r["outbox_key"] for r in back_orders]), strict=True
        ):
            row["acknowledged"] = state == "done"

        open_holds = sync_exceptions(
            db, holds, ["order_held"], owns=lambda ref: ref.startswith("order:")
        )
        # What the stuck-order clock needs: who waits at the release stage or in back order.
        seen: dict[str, tuple[int, bool, bool]] = {}
        for order in [*waiting, *statuses]:
            # Read before this run's moves: an order acknowledged just now has left stage 9.
            moved = rows.get(order.order_code, {}).get("acknowledged", False)
            at_release = not moved and any(i.stage_id == stages.released for i in order.invoices)
            back = any(i.stage_id == stages.awaiting_stock for i in order.invoices)
            seen[order.order_code] = (order.order_id, at_release, back)
        book.observe(seen, now, release_stage_complete=True)

    frame = pd.DataFrame(
        [{k: v for k, v in r.items() if k != "ack_key"} for r in rows.values()],
        columns=list(OrderReleaseSchema.to_schema().columns),
    )
    counts = frame["action"].value_counts()
    context.add_output_metadata(
        {
            **{f"orders_{a}": int(counts.get(a, 0)) for a in RELEASE_ACTIONS},
            "orders_acknowledged": acknowledged,
            "open_order_held": open_holds.get("order_held", 0),
            "order_locked": len(locked),
            **{f"acs_{k}": v for k, v in dispatch_metadata(acs_report).items()},
            **{f"khaos_{k}": v for k, v in dispatch_metadata(khaos_report).items()},
            "sample": markdown_table(frame),
        }
    )
    return frame


def _postings_by_order(postings: Iterable[ShipmentPosting]) -> dict[str, list[ShipmentPosting]]:
    out: dict[str, list[ShipmentPosting]] = {}
    for posting in postings:
        out.setdefault(posting.order_number, []).append(posting)
    return out


def _posted_and_closed(
    postings: Iterable[ShipmentPosting], exclude: str | None = None
) -> tuple[dict[int, int], dict[int, int]]:
    posted: dict[int, int] = {}
    closed: dict[int, int] = {}
    for p in postings:
        if p.shipment_id == exclude:
            continue
        if p.state == "queued":
            for item, qty in p.lines:
                posted[int(item)] = posted.get(int(item), 0) + int(qty)
        for item, qty in p.closed:
            closed[int(item)] = closed.get(int(item), 0) + int(qty)
    return posted, closed


def _open_units(release: OrderRelease, postings: Iterable[ShipmentPosting]) -> int:
    """Units of the body sent to ACS neither posted to Khaos nor closed short."""
    ordered: dict[int, int] = {}
    for line in release.payload.get("lines", []):
        item = int(line["line_item_id"])
        ordered[item] = ordered.get(item, 0) + int(line["quantity"])
    posted, closed = _posted_and_closed(postings)
    return sum(max(0, q - posted.get(i, 0) - closed.get(i, 0)) for i, q in ordered.items())


# --- despatch back ---------------------------------------------------------------------------


def ingest_despatches(db: Store, acs_client: Any, page_size: int) -> tuple[list[Any], int]:
    """Read the feed from the stored cursor to the end; events and cursor land together."""
    book = OrderBook(db.db)
    cursor = db.cursors.get(DESPATCH_CURSOR)
    received: list[Any] = []
    new = 0
    while True:
        page = acs_client.read_despatch_page(cursor, page_size)
        with db.transaction() as session:
            new += book.record_events(page.events, session)
            if page.cursor and page.cursor != cursor:
                db.cursors.set(DESPATCH_CURSOR, page.cursor, session)
        received.extend(page.events)
        cursor = page.cursor
        if not page.has_more or not page.events:
            return received, new


@asset(
    group_name="orders",
    kinds={"acs", "pandas"},
    dagster_type=ShipmentsType,
    pool="acs_api",
    description="ACS shipments read from the despatch feed this run (one row per shipment); "
    "the feed cursor is kept in the store and moves with the events it covers.",
)
def acs_shipments(
    context: AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    with store.connect() as db, acs.client() as client:
        received, new = ingest_despatches(db, client, conf.orders.despatch_page_size)
        cursor = db.cursors.get(DESPATCH_CURSOR)
    frame = shipment_rows(received)
    context.add_output_metadata(
        {
            "events_read": len(received),
            "events_new": new,
            "events_repeated": len(received) - new,
            "shipments": len(frame),
            "units": int(frame["units"].sum()) if not frame.empty else 0,
            "cursor": str(cursor or ""),
            "sample": markdown_table(frame[[c for c in SHIPMENT_COLUMNS if c != "event_id"]]),
        }
    )
    return frame


@asset(
    group_name="orders",
    kinds={"khaos", "pandas"},
    dagster_type=ShipmentPostingsType,
    pool="khaos_api",
    deps=[acs_shipments],
    description="Each ACS shipment posted to Khaos as one ImportDespatch (keyed by the ACS "
    "shipment id) through the outbox; problems and short closures are exceptions.",
)
def khaos_shipment_postings(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    kind = EffectKind.KHAOS_DESPATCH
    rows: list[dict[str, Any]] = []
    problems: list[ExceptionSpec] = []
    shorts = 0
    with store.connect() as db, khaos.client() as kc:
        book = OrderBook(db.db)
        events = unique_events(book.unposted_events())
        releases = book.releases()
        ids = sorted(
            {releases[e.order_number].order_id for e in events if e.order_number in releases}
        )
        orders = (
            {o.order_code: o for o in kc.export_order_status(ids, include_tracking=False)}
            if ids
            else {}
        )
        by_order = _postings_by_order(book.postings({e.order_number for e in events}))
        short_found: list[ShortLine] = []
        # One transaction per batch, not per shipment: a day at a brand's scale is
        # thousands of shipments, and nothing is sent before the batch is committed.
        for session, batch in _transaction_batches(db, events):
            records: list[PostingRecord] = []
            for event in batch:
                order = orders.get(event.order_number)
                history = by_order.setdefault(event.order_number, [])
                posted, _ = _posted_and_closed(history, exclude=event.shipment_id)
                result = to_despatch_posting(event, order, conf.carriers, posted)
                short_lines = short_closures(event, order)
                closed = closed_quantities(short_lines)
                record = PostingRecord(
                    shipment_id=event.shipment_id,
                    order_number=event.order_number,
                    order_id=order.order_id if order is not None else None,
                    event_id=event.event_id,
                    state="nothing",
                    closed=closed,
                )
                if isinstance(result, DespatchPosting):
                    key = f"despatch:{event.shipment_id}"
                    db.outbox.enqueue(
                        kind,
                        TARGET_OF[kind],
                        event.shipment_id,
                        key,
                        result.model_dump(mode="json"),
                        session=session,
                    )
                    record = replace(
                        record, state="queued", lines=tuple(result.lines), outbox_key=key
                    )
                elif result is not None:
                    record = replace(record, state="problem", problem=result.message)
                    problems.append(_posting_exception(result))
                records.append(record)
                history.append(
                    ShipmentPosting(
                        shipment_id=event.shipment_id,
                        order_number=event.order_number,
                        state=record.state,
                        lines=[[i, q] for i, q in record.lines],
                        closed=[[i, q] for i, q in closed.items()],
                    )
                )
                short_found.extend(short_lines)
                rows.append(
                    {
                        "shipment_id": event.shipment_id,
                        "order_number": event.order_number,
                        "state": record.state,
                        "units": sum(q for _, q in record.lines),
                        "closed_short_units": sum(closed.values()),
                        "problem": record.problem or "",
                        "_key": record.outbox_key or "",
                    }
                )
            book.record_postings(records, session)
        for short in short_found:
            db.exceptions.raise_exception(
                short.exception_type,
                short.exception_ref,
                short.message,
                {"action": short.action, **short.model_dump(mode="json")},
            )
            shorts += 1
        open_counts = sync_exceptions(
            db, problems, SHIPMENT_EXCEPTION_TYPES, owns=lambda ref: ref.startswith("shipment:")
        )
        report = dispatch(db, conf, [kind], khaos=kc)
        completion: dict[str, str] = {}
        for number, history in by_order.items():
            order = orders.get(number)
            if order is not None:
                completion[number] = order_completion(order, *_posted_and_closed(history))
        for row, state in zip(rows, effect_states(db, [r.pop("_key") for r in rows]), strict=True):
            row["effect_state"] = state
            row["order_completion"] = completion.get(row["order_number"], "unknown")
    frame = pd.DataFrame(rows, columns=list(ShipmentPostingsSchema.to_schema().columns))
    context.add_output_metadata(
        {
            "shipments": len(frame),
            "queued": int((frame["state"] == "queued").sum()),
            "posted": int((frame["effect_state"] == "done").sum()),
            "problems": int((frame["state"] == "problem").sum()),
            "closed_short_lines": shorts,
            "orders_shipped": sum(1 for c in completion.values() if c == "shipped"),
            "orders_partially_shipped": sum(
                1 for c in completion.values() if c == "partially_shipped"
            ),
            **{f"open_{t}": n for t, n in open_counts.items()},
            **dispatch_metadata(report),
            "sample": markdown_table(frame),
        }
    )
    return frame


def _posting_exception(problem: PostingProblem) -> ExceptionSpec:
    return ExceptionSpec(
        type=problem.exception_type,
        entity_ref=problem.exception_ref,
        message=f"shipment {problem.shipment_id} of order {problem.order_number}: "
        f"{problem.message}",
        details=problem.model_dump(mode="json"),
    )


# --- stuck orders ----------------------------------------------------------------------------


def sla_states(db: Store) -> list[OrderSlaState]:
    """Each tracked order's clock inputs, from the store alone."""
    book = OrderBook(db.db)
    releases = book.releases()
    observations = book.observations()
    postings = _postings_by_order(book.postings())
    held = {
        item.row.entity_ref.removeprefix("order:") for item in db.exceptions.list(type="order_held")
    }
    states = []
    for code in sorted({*releases, *observations}):
        release = releases.get(code)
        seen = observations.get(code)
        live = release is not None and release.cancel_state in (None, "locked")
        open_units = 0
        if live and release is not None:
            open_units = _open_units(release, postings.get(code, []))
        states.append(
            OrderSlaState(
                order_number=code,
                released_at=seen.at_release_since if seen else None,
                acknowledged_at=release.acknowledged_at if live and release else None,
                open_units=open_units,
                back_order_since=seen.back_order_since if seen else None,
                held=code in held,
                delivery_service=str((release.payload or {}).get("delivery_service", ""))
                if release
                else "",
            )
        )
    return states


@asset(
    group_name="orders",
    kinds={"pandas"},
    dagster_type=SlaBreachesType,
    deps=[acs_order_release],
    description="Orders past the agreed turnaround (warehouse working time), left at the "
    "release stage, or waiting too long in back order; each an exception for operations.",
)
def order_sla_breaches(
    context: AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> pd.DataFrame:
    conf = settings.load()
    now = integration_now(conf)
    with store.connect() as db:
        states = sla_states(db)
        breaches = find_breaches(states, now, conf.sla, conf.working_calendar)
        specs = [
            ExceptionSpec(
                type=b.exception_type,
                entity_ref=b.key,
                message=b.message,
                details=b.model_dump(mode="json"),
            )
            for b in breaches
        ]
        open_counts = sync_exceptions(db, specs, ["order_sla_breach"])
    frame = pd.DataFrame(
        [
            {
                "key": b.key,
                "kind": b.kind,
                "order_number": b.order_number,
                "age_working_hours": b.age_working_hours,
                "age_hours": b.age_hours,
                "due_at": b.due_at.isoformat(),
            }
            for b in breaches
        ],
        columns=list(SlaBreachesSchema.to_schema().columns),
    )
    kinds = frame["kind"].value_counts()
    context.add_output_metadata(
        {
            "orders_tracked": len(states),
            "breaching": len(frame),
            **{
                f"breach_{k}": int(kinds.get(k, 0))
                for k in ("turnaround", "release_stage", "back_order")
            },
            "open_order_sla_breach": open_counts.get("order_sla_breach", 0),
            "sample": markdown_table(frame),
        }
    )
    return frame


# --- jobs, sensor, schedule ------------------------------------------------------------------


def _order_settings() -> OrderSettings:
    """Intervals are fixed when the code location loads; a bad environment fails later."""
    try:
        return load_settings().orders
    except Exception:
        return OrderSettings()


def release_cron(interval_s: int) -> str:
    """A cron for ``release_interval_s`` (whole minutes, at least one; hourly past 59)."""
    minutes = max(1, interval_s // 60)
    if minutes >= 60:
        return "0 * * * *"
    return f"*/{minutes} * * * *"


order_release_job = define_asset_job(
    RELEASE_JOB,
    selection=AssetSelection.assets(khaos_released_orders, acs_order_release, order_sla_breaches),
    description="Release waiting orders to ACS, cancel, acknowledge, and check the SLA clock.",
)

despatch_posting_job = define_asset_job(
    DESPATCH_JOB,
    selection=AssetSelection.assets(acs_shipments, khaos_shipment_postings),
    description="Read the ACS despatch feed from the stored cursor and post each shipment.",
)

_ORDER_SETTINGS = _order_settings()

order_release_schedule = ScheduleDefinition(
    name="order_release_schedule",
    job=order_release_job,
    cron_schedule=release_cron(_ORDER_SETTINGS.release_interval_s),
    execution_timezone="Europe/London",
    default_status=SCHEDULE_STATUS,
    description="How often outbound orders post to ACS (settings.orders.release_interval_s).",
)

_LIVE = (*RUN_IN_PROGRESS, DagsterRunStatus.SUCCESS)


def _cursor_tag(cursor: str | None, unseen: Iterable[str] = ()) -> str:
    text = "\n".join([cursor or "", *sorted(unseen)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@sensor(
    job=despatch_posting_job,
    minimum_interval_seconds=_ORDER_SETTINGS.despatch_sensor_interval_s,
    default_status=SENSOR_STATUS,
    description="Starts one despatch posting run when the ACS feed has events the "
    "integration's database has not recorded yet, beyond or on the page of its stored "
    "cursor (the run reads and posts them itself).",
)
def acs_despatch_sensor(
    context: SensorEvaluationContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> SensorResult | SkipReason:
    # The contract's feed gives only ``next_cursor``, null on the last page: caught up,
    # the stored cursor is the start of that page, so it is read again every tick and
    # new events are told from old ones by their event_id.
    page_size = settings.load().orders.despatch_page_size
    with store.connect() as db:
        cursor = db.cursors.get(DESPATCH_CURSOR)
        with acs.client() as client:
            page = client.read_despatch_page(cursor, page_size)
        book = OrderBook(db.db)
        unseen = book.unseen_event_ids(e.event_id for e in page.events)
        # Recorded by a run that died before posting them: the feed will not bring them back.
        stranded = book.stranded_event_ids()
    if not unseen and not page.has_more and not stranded:
        return SkipReason(f"no event beyond those recorded (stored cursor {cursor or '(start)'})")
    tag = _cursor_tag(cursor, [*unseen, *stranded])
    runs = context.instance.get_runs(
        filters=RunsFilter(job_name=DESPATCH_JOB, tags={CURSOR_TAG: tag, **brand_tags()})
    )
    if any(run.status in _LIVE for run in runs):
        return SkipReason(f"a run for stored cursor {tag} is already on its way")
    # A failed run leaves the stored cursor where it was: start another under a new key.
    run_key = f"despatch:{tag}" + (f":retry{len(runs)}" if runs else "")
    return SensorResult(
        run_requests=[RunRequest(run_key=run_key, tags={CURSOR_TAG: tag})],
        cursor=tag,
    )


defs = Definitions(
    assets=[
        khaos_released_orders,
        acs_order_release,
        acs_shipments,
        khaos_shipment_postings,
        order_sla_breaches,
    ],
    jobs=[order_release_job, despatch_posting_job],
    schedules=[order_release_schedule],
    sensors=[acs_despatch_sensor],
)
