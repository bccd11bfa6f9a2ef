"""Releases to ACS: the body sent for each order, its acknowledgement in Khaos, its
cancellation, and when the order is over at ACS (``finished_at``, which keeps each cycle's
reads to the orders still in progress).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.domain.models import AcsOrder
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster.store.tables.orders import OrderObservation, OrderRelease, ShipmentPosting

FINISHED_CANCEL_STATES = ("cancelled", "locked")
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


class Releases:
    """The releases half of ``OrderBook``."""

    # Set by ``OrderBook.__init__``.
    _db: Database

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
                    mark_finished(s, finished, self._db.now())
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


def mark_finished(session: Session, order_codes: Sequence[str], now: datetime) -> None:
    """Stamp the orders over at ACS and stop their clocks: a finished order is never
    sighted again, so a back-order clock would otherwise run on for ever and the running
    clocks (``open_observations``, partially indexed) would grow with the order book."""
    session.execute(
        update(OrderRelease).where(OrderRelease.order_code.in_(order_codes)).values(finished_at=now)
    )
    session.execute(
        update(OrderObservation)
        .where(OrderObservation.order_code.in_(order_codes))
        .values(at_release_since=None, back_order_since=None)
    )
