"""Orders in the store: releases to ACS, despatch events, shipment postings, order clocks.

Every write takes the caller's session, so a release is recorded in the same transaction
as its outbox effect, and despatch events with the feed cursor that covers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.models import AcsOrder, DespatchEvent
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster.store.tables.orders import (
    DespatchEventRow,
    OrderObservation,
    OrderRelease,
    ShipmentInvoice,
    ShipmentPosting,
)

DESPATCH_CURSOR = "acs.despatch_feed"


_POSTING_VALUES = (
    "order_number",
    "order_id",
    "event_id",
    "state",
    "lines",
    "closed",
    "outbox_key",
    "problem",
    "updated_at",
)


@dataclass(frozen=True)
class PostingRecord:
    """What was done with one ACS shipment (``ShipmentPosting`` row to write)."""

    shipment_id: str
    order_number: str
    order_id: int | None
    event_id: str
    state: str
    lines: tuple[tuple[int, int], ...] = ()
    closed: Mapping[int, int] = field(default_factory=dict)
    outbox_key: str | None = None
    problem: str | None = None


FINISHED_CANCEL_STATES = ("cancelled", "locked")
# Postings that settle their shipment: queued to Khaos, or nothing to post.
_DECIDED = ("queued", "nothing")
_KEYS_PER_QUERY = 500  # well under SQLite's bound-parameter limit


def release_finished(
    release: OrderRelease, postings: Iterable[ShipmentPosting], done: set[str]
) -> bool:
    """The order is over at ACS, so nothing can still need the body sent there: its release
    confirmed, and cancelled there or every unit of its lines posted to Khaos or closed
    short. ``done``: the idempotency keys of effects that are done."""
    if release.outbox_key not in done:
        return False  # not yet confirmed at ACS: the body may be sent again
    if release.cancel_state in FINISHED_CANCEL_STATES:
        return release.cancel_outbox_key is None or release.cancel_outbox_key in done
    if release.cancel_state is not None:
        return False  # a cancellation is on its way: it sends this body
    # Every unit posted to Khaos or closed short (the rule of the orders flow's open units).
    ordered: dict[int, int] = {}
    for line in (release.payload or {}).get("lines", []):
        item = int(line["line_item_id"])
        ordered[item] = ordered.get(item, 0) + int(line["quantity"])
    covered: dict[int, int] = {}
    for posting in postings:
        moved = list(posting.closed) + (list(posting.lines) if posting.state == "queued" else [])
        for item, quantity in moved:
            covered[int(item)] = covered.get(int(item), 0) + int(quantity)
    return all(covered.get(item, 0) >= quantity for item, quantity in ordered.items())


class OrderBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- releases ----------------------------------------------------------------------

    def releases(self, session: Session | None = None) -> dict[str, OrderRelease]:
        """Every release ever recorded (the month-end pack, reconciliation, traces). A
        cycle's steps want ``open_releases``: this grows with the installation's age."""
        with self._db.transaction(session) as s:
            return {r.order_code: r for r in s.scalars(select(OrderRelease))}

    def open_releases(self, session: Session | None = None) -> dict[str, OrderRelease]:
        """Releases of orders still open at ACS (``finished_at`` unset): what the release
        and SLA steps need each cycle. Reads no finished order, however long the history."""
        with self._db.transaction(session) as s:
            query = select(OrderRelease).where(OrderRelease.finished_at.is_(None))
            return {r.order_code: r for r in s.scalars(query)}

    def releases_of(
        self, order_codes: Iterable[str], session: Session | None = None
    ) -> dict[str, OrderRelease]:
        """The releases of these orders only (finished or not), by primary key: what the
        release plan needs to tell a back order of an accepted order from a new one."""
        codes = sorted(set(order_codes))
        found: dict[str, OrderRelease] = {}
        with self._db.transaction(session) as s:
            for start in range(0, len(codes), _KEYS_PER_QUERY):
                chunk = codes[start : start + _KEYS_PER_QUERY]
                query = select(OrderRelease).where(OrderRelease.order_code.in_(chunk))
                found.update({r.order_code: r for r in s.scalars(query)})
        return found

    def unacknowledged_releases(self) -> dict[str, OrderRelease]:
        """Releases whose acknowledgement in Khaos is not recorded yet (indexed: a day's
        new releases, not the history)."""
        query = select(OrderRelease).where(OrderRelease.acknowledged_at.is_(None))
        with self._db.transaction() as s:
            return {r.order_code: r for r in s.scalars(query)}

    def open_postings(self) -> list[ShipmentPosting]:
        """The shipment postings of open orders only (see ``open_releases``)."""
        still_open = select(OrderRelease.order_code).where(OrderRelease.finished_at.is_(None))
        query = select(ShipmentPosting).where(ShipmentPosting.order_number.in_(still_open))
        with self._db.transaction() as s:
            return list(s.scalars(query))

    def close_finished(
        self, order_codes: Iterable[str] | None = None, session: Session | None = None
    ) -> list[str]:
        """Stamp ``finished_at`` on those open releases (of ``order_codes``, or all) that are
        over at ACS (``release_finished``); the codes closed. Called whenever postings or a
        cancellation are recorded, so the open set stays the orders still in progress."""
        codes = None if order_codes is None else sorted(set(order_codes))
        closed: list[str] = []
        with self._db.transaction(session) as s:
            chunks = (
                [None]
                if codes is None
                else [codes[i : i + _KEYS_PER_QUERY] for i in range(0, len(codes), _KEYS_PER_QUERY)]
            )
            for chunk in chunks:
                query = select(OrderRelease).where(OrderRelease.finished_at.is_(None))
                if chunk is not None:
                    query = query.where(OrderRelease.order_code.in_(chunk))
                releases = list(s.scalars(query))
                if not releases:
                    continue
                keys = [r.outbox_key for r in releases] + [
                    r.cancel_outbox_key for r in releases if r.cancel_outbox_key
                ]
                done = set(
                    s.scalars(
                        select(Effect.idempotency_key).where(
                            Effect.idempotency_key.in_(keys), Effect.state == "done"
                        )
                    )
                )
                postings: dict[str, list[ShipmentPosting]] = {}
                for posting in s.scalars(
                    select(ShipmentPosting).where(
                        ShipmentPosting.order_number.in_([r.order_code for r in releases])
                    )
                ):
                    postings.setdefault(posting.order_number, []).append(posting)
                finished = [
                    r.order_code
                    for r in releases
                    if release_finished(r, postings.get(r.order_code, []), done)
                ]
                if finished:
                    s.execute(
                        update(OrderRelease)
                        .where(OrderRelease.order_code.in_(finished))
                        .values(finished_at=self._db.now())
                    )
                closed += finished
        return closed

    def record_release(
        self,
        order: AcsOrder,
        order_id: int,
        invoice_ids: Sequence[int],
        revision: str,
        outbox_key: str,
        released_at: datetime,
        session: Session,
    ) -> None:
        """The body sent to ACS for this order (a new revision replaces the previous one)."""
        payload = order.model_dump(mode="json")
        row = session.get(OrderRelease, order.order_number, populate_existing=True)
        if row is None:
            session.add(
                OrderRelease(
                    order_code=order.order_number,
                    order_id=order_id,
                    invoice_ids=list(invoice_ids),
                    revision=revision,
                    outbox_key=outbox_key,
                    payload=payload,
                    released_at=released_at,
                    updated_at=self._db.now(),
                )
            )
            return
        if row.outbox_key == outbox_key:
            return
        row.invoice_ids = list(invoice_ids)
        row.revision = revision
        row.outbox_key = outbox_key
        row.payload = payload
        row.released_at = released_at
        row.acknowledged_at = None
        # A new body at ACS opens the order again (an order finished and then edited or
        # moved back whole to the release stage): the cycle's open reads must see it.
        row.finished_at = None
        row.updated_at = self._db.now()

    def mark_acknowledged(
        self, order_code: str, at: datetime, session: Session | None = None
    ) -> None:
        with self._db.transaction(session) as s:
            row = s.get(OrderRelease, order_code, populate_existing=True)
            if row is not None and row.acknowledged_at is None:
                row.acknowledged_at = at
                row.updated_at = self._db.now()

    def set_cancel(
        self, order_code: str, state: str, outbox_key: str | None, session: Session | None = None
    ) -> None:
        with self._db.transaction(session) as s:
            row = s.get(OrderRelease, order_code, populate_existing=True)
            if row is None:
                return
            row.cancel_state = state
            if outbox_key is not None:
                row.cancel_outbox_key = outbox_key
            row.updated_at = self._db.now()
            if state in FINISHED_CANCEL_STATES:
                s.flush()
                self.close_finished([order_code], session=s)

    # --- observations (the stuck-order clock) ---------------------------------------------

    def observations(self) -> dict[str, OrderObservation]:
        """Every observation ever recorded; a cycle wants ``open_observations``."""
        with self._db.transaction() as s:
            return {o.order_code: o for o in s.scalars(select(OrderObservation))}

    def open_observations(self) -> dict[str, OrderObservation]:
        """Observations whose clock is running (waiting at the release stage or in back
        order) of orders not finished at ACS: the SLA's inputs, without the orders whose
        waits are long over. (A back order's clock is stopped only by a sighting without
        it; a finished order is not sighted again, so its finish is what leaves it out.)"""
        running = or_(
            OrderObservation.at_release_since.is_not(None),
            OrderObservation.back_order_since.is_not(None),
        )
        finished = (
            select(OrderRelease.order_code)
            .where(
                OrderRelease.order_code == OrderObservation.order_code,
                OrderRelease.finished_at.is_not(None),
            )
            .exists()
        )
        query = select(OrderObservation).where(running, ~finished)
        with self._db.transaction() as s:
            return {o.order_code: o for o in s.scalars(query)}

    def observe(
        self,
        seen: Mapping[str, tuple[int, bool, bool]],
        at: datetime,
        *,
        release_stage_complete: bool,
    ) -> None:
        """Record what was seen now: ``order_code -> (order_id, at_release, back_order)``.

        The first sighting of a wait starts its clock; a wait no longer seen stops it.
        With ``release_stage_complete`` every order at the release stage is in ``seen``,
        so a tracked order missing from it has left that stage.
        """
        now = self._db.now()
        with self._db.transaction() as s:
            # Only the orders seen now and the clocks still running: an order whose waits
            # ended long ago is never read again.
            codes = sorted(seen)
            rows: dict[str, OrderObservation] = {}
            for start in range(0, len(codes), _KEYS_PER_QUERY):
                chunk = codes[start : start + _KEYS_PER_QUERY]
                query = select(OrderObservation).where(OrderObservation.order_code.in_(chunk))
                rows.update({o.order_code: o for o in s.scalars(query)})
            if release_stage_complete:
                running = select(OrderObservation).where(
                    OrderObservation.at_release_since.is_not(None)
                )
                for o in s.scalars(running):
                    rows.setdefault(o.order_code, o)
            for code, (order_id, at_release, back_order) in seen.items():
                row = rows.get(code)
                if row is None:
                    row = OrderObservation(order_code=code, order_id=order_id, updated_at=now)
                    s.add(row)
                    rows[code] = row
                if at_release and row.at_release_since is None:
                    row.at_release_since = at
                if not at_release:
                    row.at_release_since = None
                if back_order and row.back_order_since is None:
                    row.back_order_since = at
                if not back_order:
                    row.back_order_since = None
                row.updated_at = now
            if release_stage_complete:
                for code, row in rows.items():
                    if code not in seen and row.at_release_since is not None:
                        row.at_release_since = None
                        row.updated_at = now

    # --- despatch events ---------------------------------------------------------------

    def record_events(self, events: Iterable[DespatchEvent], session: Session) -> int:
        """Insert events not seen before (by ``event_id``); returns how many were new."""
        events = list(events)
        now = self._db.now()
        new = 0
        for event in events:
            stmt = (
                self._db.insert(DespatchEventRow)
                .values(
                    event_id=event.event_id,
                    order_number=event.order_number,
                    shipment_id=event.shipment_id,
                    despatched_at=event.despatched_at,
                    payload=event.model_dump(mode="json"),
                    received_at=now,
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
            )
            new += session.execute(stmt).rowcount or 0
        # A shipment's event sent again under a new id: decided already if its shipment is.
        self._mark_decided(session, {e.shipment_id for e in events})
        return new

    def _mark_decided(self, session: Session, shipment_ids: Iterable[str]) -> None:
        """Set ``decided`` on the events of these shipments from their postings."""
        ids = sorted(set(shipment_ids))
        for start in range(0, len(ids), _KEYS_PER_QUERY):
            chunk = ids[start : start + _KEYS_PER_QUERY]
            decided = select(ShipmentPosting.shipment_id).where(
                ShipmentPosting.shipment_id.in_(chunk),
                ShipmentPosting.state.in_(_DECIDED),
            )
            mine = DespatchEventRow.shipment_id.in_(chunk)
            session.execute(
                update(DespatchEventRow)
                .where(mine, DespatchEventRow.shipment_id.in_(decided))
                .values(decided=True)
            )
            session.execute(
                update(DespatchEventRow)
                .where(mine, DespatchEventRow.shipment_id.not_in(decided))
                .values(decided=False)
            )

    def unposted_events(self) -> list[DespatchEvent]:
        """Events whose shipment is not yet queued to Khaos (nor known to need nothing)."""
        # ``decided`` is kept by ``record_postings`` (indexed): the events of past days
        # are neither loaded nor scanned.
        query = (
            select(DespatchEventRow)
            .where(DespatchEventRow.decided.is_(False))
            .order_by(DespatchEventRow.despatched_at)
        )
        with self._db.transaction() as s:
            return [DespatchEvent.model_validate(r.payload) for r in s.scalars(query)]

    def despatch_events(
        self, since: datetime | None = None, also_shipments: Iterable[str] = ()
    ) -> list[DespatchEvent]:
        """Every despatch event recorded (despatched at or after ``since``, plus every event
        of ``also_shipments`` whatever its age), oldest first."""
        query = select(DespatchEventRow).order_by(DespatchEventRow.despatched_at)
        if since is not None:
            older = sorted(set(also_shipments))
            query = query.where(
                or_(
                    DespatchEventRow.despatched_at >= since,
                    DespatchEventRow.shipment_id.in_(older),
                )
            )
        with self._db.transaction() as s:
            return [DespatchEvent.model_validate(r.payload) for r in s.scalars(query)]

    def despatch_times(self) -> list[tuple[str, str, datetime]]:
        """(order number, shipment id, despatched at) of every recorded despatch event."""
        with self._db.transaction() as s:
            return [
                (r.order_number, r.shipment_id, r.despatched_at)
                for r in s.scalars(select(DespatchEventRow))
            ]

    def stranded_event_ids(self) -> list[str]:
        """Events recorded whose shipment has no posting at all (queued, nothing to post or a
        problem): a run recorded them and died before deciding. Nothing on the feed will
        bring them back, so the despatch sensor starts a run for them."""
        with self._db.transaction() as s:
            decided = select(ShipmentPosting.shipment_id)
            rows = s.scalars(
                select(DespatchEventRow.event_id)
                .where(DespatchEventRow.shipment_id.not_in(decided))
                .order_by(DespatchEventRow.event_id)
            )
            return list(rows)

    def unseen_event_ids(self, event_ids: Iterable[str]) -> list[str]:
        """Those of ``event_ids`` not recorded yet, in the order given."""
        wanted = list(dict.fromkeys(event_ids))
        if not wanted:
            return []
        with self._db.transaction() as s:
            seen = set(
                s.scalars(
                    select(DespatchEventRow.event_id).where(DespatchEventRow.event_id.in_(wanted))
                )
            )
        return [e for e in wanted if e not in seen]

    def event_count(self) -> int:
        with self._db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(DespatchEventRow)) or 0)

    # --- shipment postings --------------------------------------------------------------

    def postings(self, order_numbers: Iterable[str] | None = None) -> list[ShipmentPosting]:
        query = select(ShipmentPosting)
        if order_numbers is not None:
            query = query.where(ShipmentPosting.order_number.in_(list(order_numbers)))
        with self._db.transaction() as s:
            return list(s.scalars(query))

    def record_postings(self, postings: Iterable[PostingRecord], session: Session) -> None:
        """Insert or replace many shipment postings in one statement (a day's despatches
        at a brand's scale are thousands); the last record of a shipment wins."""
        now = self._db.now()
        rows = {
            p.shipment_id: {
                "shipment_id": p.shipment_id,
                "order_number": p.order_number,
                "order_id": p.order_id,
                "event_id": p.event_id,
                "state": p.state,
                "lines": [[i, q] for i, q in p.lines],
                "closed": [[i, q] for i, q in p.closed.items()],
                "outbox_key": p.outbox_key,
                "problem": p.problem,
                "updated_at": now,
            }
            for p in postings
        }
        if not rows:
            return
        stmt = self._db.insert(ShipmentPosting)
        replaced = {c: stmt.excluded[c] for c in _POSTING_VALUES}
        session.execute(
            stmt.on_conflict_do_update(index_elements=["shipment_id"], set_=replaced),
            list(rows.values()),
        )
        self._mark_decided(session, rows)
        # An order whose last units were just posted or closed short leaves the open set.
        self.close_finished({r["order_number"] for r in rows.values()}, session=session)

    # --- invoices of shipments (the stock push's timing facts) ---------------------------

    def shipments_to_correct(
        self, despatched_after: datetime
    ) -> list[tuple[DespatchEvent, int | None]]:
        """Every shipment whose invoice was not yet seen issued, however old, and every
        shipment despatched after ``despatched_after`` — with the Khaos order id its
        posting names (None while it is a posting problem). One event per shipment."""
        issued = select(ShipmentInvoice.shipment_id)
        query = (
            select(DespatchEventRow.payload, ShipmentPosting.order_id)
            .outerjoin(ShipmentPosting, ShipmentPosting.shipment_id == DespatchEventRow.shipment_id)
            .where(
                DespatchEventRow.shipment_id.not_in(issued)
                | (DespatchEventRow.despatched_at > despatched_after)
            )
            .order_by(DespatchEventRow.despatched_at, DespatchEventRow.event_id)
        )
        seen: dict[str, tuple[DespatchEvent, int | None]] = {}
        with self._db.transaction() as s:
            for payload, order_id in s.execute(query):
                event = DespatchEvent.model_validate(payload)
                seen.setdefault(event.shipment_id, (event, order_id))
        return list(seen.values())

    def issued_invoices(self, shipment_ids: Iterable[str]) -> dict[str, datetime]:
        ids = list(shipment_ids)
        with self._db.transaction() as s:
            rows = s.execute(
                select(ShipmentInvoice.shipment_id, ShipmentInvoice.issued_at).where(
                    ShipmentInvoice.shipment_id.in_(ids)
                )
            )
            return dict(rows.all())

    def record_issued(self, issued: Mapping[str, datetime]) -> None:
        """Remember shipments whose invoice Khaos now shows issued (and when)."""
        if not issued:
            return
        now = self._db.now()
        stmt = self._db.insert(ShipmentInvoice).on_conflict_do_nothing(
            index_elements=["shipment_id"]
        )
        with self._db.transaction() as s:
            s.execute(
                stmt,
                [{"shipment_id": k, "issued_at": v, "seen_at": now} for k, v in issued.items()],
            )
