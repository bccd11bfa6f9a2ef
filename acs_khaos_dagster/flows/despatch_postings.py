"""Despatches back to Khaos: the ACS despatch feed read from the cursor kept in the store
(events and cursor land together), and one ``ImportDespatch`` per shipment through the
outbox; unpostable shipments and short closures are exceptions.

``unrecorded_despatches`` is what the despatch sensor asks before it starts a run: does the
feed have anything the store has not recorded, or did a run die before posting it?
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import DespatchEvent, DespatchPosting
from acs_khaos_dagster.domain.shipments import (
    PostingProblem,
    ShortLine,
    closed_quantities,
    order_completion,
    shipment_rows,
    short_closures,
    to_despatch_posting,
    unique_events,
)
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.order_progress import posted_and_closed, postings_by_order
from acs_khaos_dagster.flows.queues import (
    ExceptionSpec,
    dispatch,
    effect_states,
    sync_exceptions,
    transaction_batches,
)
from acs_khaos_dagster.store import DispatchReport, Store
from acs_khaos_dagster.store.orders import DESPATCH_CURSOR, OrderBook, PostingRecord
from acs_khaos_dagster.store.tables.orders import ShipmentPosting

SHIPMENT_EXCEPTION_TYPES = ("courier_unmapped", "shipment_unpostable")
POSTING_STATES = ["queued", "nothing", "problem"]
POSTING_COLUMNS = [
    "shipment_id",
    "order_number",
    "state",
    "effect_state",
    "units",
    "closed_short_units",
    "order_completion",
    "problem",
]


@dataclass(frozen=True)
class DespatchIntake:
    """The feed read this run: every event received, how many were new, the cursor now."""

    received: list[DespatchEvent]
    new: int
    cursor: str | None


@dataclass(frozen=True)
class PostingResult:
    """Each shipment handled this run (``POSTING_COLUMNS``) and what came of it."""

    frame: pd.DataFrame
    closed_short_lines: int
    completion: dict[str, str]
    open_counts: dict[str, int]
    report: DispatchReport


@dataclass(frozen=True)
class FeedNews:
    """What the feed has beyond the store: events not recorded on the stored cursor's page,
    whether more pages follow, and events recorded by a run that died before posting them."""

    cursor: str | None
    unseen: list[str]
    has_more: bool
    stranded: list[str]

    @property
    def anything(self) -> bool:
        return bool(self.unseen or self.has_more or self.stranded)

    @property
    def tag(self) -> str:
        """Names the work: the stored cursor and the events a run would take."""
        text = "\n".join([self.cursor or "", *sorted([*self.unseen, *self.stranded])])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def nothing_new(self) -> str | None:
        """Why no run is needed, or None when the feed has work for one."""
        if self.anything:
            return None
        return f"no event beyond those recorded (stored cursor {self.cursor or '(start)'})"

    def run_key(self, earlier_runs: int) -> str:
        """The run's key for this work; a failed run leaves the stored cursor where it was,
        so the next run for the same work needs a key of its own."""
        retry = f":retry{earlier_runs}" if earlier_runs else ""
        return f"despatch:{self.tag}{retry}"


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


def read_despatch_feed(db: Store, acs: AcsClient, settings: Settings) -> DespatchIntake:
    """Read the feed from the stored cursor to its end (``ingest_despatches``)."""
    received, new = ingest_despatches(db, acs, settings.orders.despatch_page_size)
    return DespatchIntake(received, new, db.cursors.get(DESPATCH_CURSOR))


def unrecorded_despatches(db: Store, acs: AcsClient, page_size: int) -> FeedNews:
    """One read of the stored cursor's page, against what the store recorded."""
    # The contract's feed gives only ``next_cursor``, null on the last page: caught up,
    # the stored cursor is the start of that page, so it is read again every tick and
    # new events are told from old ones by their event_id.
    cursor = db.cursors.get(DESPATCH_CURSOR)
    page = acs.read_despatch_page(cursor, page_size)
    book = OrderBook(db.db)
    unseen = book.unseen_event_ids(e.event_id for e in page.events)
    # Recorded by a run that died before posting them: the feed will not bring them back.
    stranded = book.stranded_event_ids()
    return FeedNews(cursor, list(unseen), page.has_more, list(stranded))


def post_shipments(db: Store, kc: KhaosClient, conf: Settings) -> PostingResult:
    """Post every recorded, unposted shipment to Khaos (one ``ImportDespatch`` each)."""
    kind = EffectKind.KHAOS_DESPATCH
    rows: list[dict[str, Any]] = []
    problems: list[ExceptionSpec] = []
    shorts = 0
    book = OrderBook(db.db)
    events = unique_events(book.unposted_events())
    # The events' orders only, finished or not (a late event of an order finished long
    # ago still finds its Khaos order id).
    releases = book.releases_of(e.order_number for e in events)
    ids = sorted({releases[e.order_number].order_id for e in events if e.order_number in releases})
    orders = (
        {o.order_code: o for o in kc.export_order_status(ids, include_tracking=False)}
        if ids
        else {}
    )
    by_order = postings_by_order(book.postings({e.order_number for e in events}))
    short_found: list[ShortLine] = []
    # One transaction per batch, not per shipment: a day at a brand's scale is
    # thousands of shipments, and nothing is sent before the batch is committed.
    for session, batch in transaction_batches(db, events):
        records: list[PostingRecord] = []
        for event in batch:
            order = orders.get(event.order_number)
            history = by_order.setdefault(event.order_number, [])
            posted, _ = posted_and_closed(history, exclude=event.shipment_id)
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
                record = replace(record, state="queued", lines=tuple(result.lines), outbox_key=key)
            elif result is not None:
                record = replace(record, state="problem", problem=result.message)
                problems.append(posting_exception(result))
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
    completion = _completion(by_order, orders)
    for row, state in zip(rows, effect_states(db, [r.pop("_key") for r in rows]), strict=True):
        row["effect_state"] = state
        row["order_completion"] = completion.get(row["order_number"], "unknown")
    frame = pd.DataFrame(rows, columns=POSTING_COLUMNS)
    return PostingResult(frame, shorts, completion, open_counts, report)


def _completion(
    by_order: dict[str, list[ShipmentPosting]], orders: dict[str, Any]
) -> dict[str, str]:
    completion: dict[str, str] = {}
    for number, history in by_order.items():
        order = orders.get(number)
        if order is not None:
            completion[number] = order_completion(order, *posted_and_closed(history))
    return completion


def posting_exception(problem: PostingProblem) -> ExceptionSpec:
    return ExceptionSpec(
        type=problem.exception_type,
        entity_ref=problem.exception_ref,
        message=f"shipment {problem.shipment_id} of order {problem.order_number}: "
        f"{problem.message}",
        details=problem.model_dump(mode="json"),
    )


def shipments_frame(intake: DespatchIntake) -> pd.DataFrame:
    """One row per shipment received (``domain.shipments.shipment_rows``)."""
    return shipment_rows(intake.received)
