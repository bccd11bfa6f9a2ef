"""Shipments: despatch events from ACS's feed, what was posted to Khaos for each shipment
(``ShipmentPosting``), and when Khaos showed each shipment's invoice issued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.models import DespatchEvent
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.orders.releases import _KEYS_PER_QUERY
from acs_khaos_dagster.store.tables.orders import DespatchEventRow, ShipmentInvoice, ShipmentPosting

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


# Postings that settle their shipment: queued to Khaos, or nothing to post.
_DECIDED = ("queued", "nothing")


class Shipments:
    """The despatch half of ``OrderBook``."""

    # Set by ``OrderBook.__init__``.
    _db: Database
    # ``Releases.close_finished``: recording postings may finish their orders.
    close_finished: Callable[..., list[str]]

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
