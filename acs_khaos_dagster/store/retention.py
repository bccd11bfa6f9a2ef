"""Customers' personal data is kept only as long as an order can still need it.

An order released to ACS carries the customer's name, email, phone, delivery address and
comments; the store keeps that body twice: as the outbox effect's payload (what was
sent) and as the order release (what ACS holds, so that a cancellation sends the same
order back). After ``retention.personal_data_days`` those fields are blanked:

- in the payload of every effect that is **done** or **superseded** (never sent again:
  only parked or failed effects can be requeued, and they keep their payload until they
  are settled);
- in an order release once the order is **finished** at ACS: cancelled or locked there,
  or every unit of its lines posted to Khaos or closed short. An unfinished order keeps
  its body, however old, because a Khaos cancellation must send ACS the same order.

Order numbers, lines, quantities, prices, idempotency keys and the audit log's payload
hashes stay: the audit trail and the reconciliation still hold. Each pass remembers
where it stopped (``cursors``), so it reads only what became old since the last pass
plus releases that were unfinished then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.cursors import Cursors
from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.orders import release_finished
from acs_khaos_dagster.store.orders.releases import mark_finished
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster.store.tables.orders import OrderRelease, ShipmentPosting

# Field names that hold a person's data: the domain's (``AcsOrder``: contact and delivery
# address) and ACS's wire names, should a body be stored in that form.
PERSONAL_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        "phone",
        "line1",
        "line2",
        "line3",
        "line4",
        "city",
        "county",
        "postcode",
        "comments",
        "FirstName",
        "LastName",
        "Email",
        "MobilePhone",
        "Delivery_Address1",
        "Delivery_Address2",
        "Delivery_Address3",
        "Delivery_Address4",
        "Delivery_City",
        "Delivery_County",
        "Delivery_Postcode",
        "Comments",
    }
)
# Effects that are never sent again.
SETTLED = ("done", "superseded")
CURSOR = "retention:personal_data"
BATCH = 500


def blank_personal_data(value: Any) -> tuple[Any, bool]:
    """``value`` with every personal field's text blanked (``""``), and whether any was set.

    Blank strings keep the body valid for the models that read it back.

    >>> blank_personal_data({"contact": {"email": "j@x.example", "first_name": ""}, "n": 1})
    ({'contact': {'email': '', 'first_name': ''}, 'n': 1}, True)
    """
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in PERSONAL_FIELDS and isinstance(item, str):
                out[key] = ""
                changed = changed or item != ""
            else:
                out[key], inner = blank_personal_data(item)
                changed = changed or inner
        return out, changed
    if isinstance(value, list):
        items = [blank_personal_data(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime
    effects_purged: int
    releases_purged: int
    releases_kept_unfinished: int


class PersonalDataRetention:
    def __init__(self, db: Database, cursors: Cursors) -> None:
        self._db = db
        self._cursors = cursors

    def purge(self, days: int, now: datetime | None = None) -> PurgeReport:
        """Blank personal data older than ``days`` (see the module docstring)."""
        if days < 1:
            raise ValueError("retention must be at least one day")
        cutoff = (now or self._db.now()) - timedelta(days=days)
        with self._db.transaction() as s:
            state = self._cursors.get(CURSOR, session=s) or {}
            effects_since = _moment(state.get("effects_before"))
            releases_since = _moment(state.get("releases_from"))
            effects = self._purge_effects(s, effects_since, cutoff)
            releases, oldest_unfinished, kept = self._purge_releases(s, releases_since, cutoff)
            self._cursors.set(
                CURSOR,
                {
                    "effects_before": cutoff.isoformat(),
                    # Next time, start at the oldest release still unfinished (if any).
                    "releases_from": (oldest_unfinished or cutoff).isoformat(),
                },
                session=s,
            )
        return PurgeReport(cutoff, effects, releases, kept)

    def _purge_effects(self, s: Session, since: datetime | None, cutoff: datetime) -> int:
        purged = 0
        last_id = 0
        while True:
            # Keyset pages: a first pass over years of effects reads BATCH rows at a time.
            query = (
                select(Effect.id, Effect.payload)
                .where(
                    Effect.state.in_(SETTLED),
                    Effect.updated_at < cutoff,
                    Effect.id > last_id,
                )
                .order_by(Effect.id)
                .limit(BATCH)
            )
            if since is not None:
                query = query.where(Effect.updated_at >= since)
            page = list(s.execute(query))
            if not page:
                return purged
            for effect_id, payload in page:
                blanked, changed = blank_personal_data(payload)
                if changed:
                    # Only the payload: ``updated_at`` is the effect's own history.
                    s.execute(update(Effect).where(Effect.id == effect_id).values(payload=blanked))
                    purged += 1
            last_id = page[-1][0]

    def _purge_releases(
        self, s: Session, since: datetime | None, cutoff: datetime
    ) -> tuple[int, datetime | None, int]:
        query = select(OrderRelease).where(OrderRelease.released_at < cutoff)
        if since is not None:
            query = query.where(OrderRelease.released_at >= since)
        releases = list(s.scalars(query.order_by(OrderRelease.released_at)))
        if not releases:
            return 0, None, 0
        done_keys = self._done(s, [r.outbox_key for r in releases] + _cancel_keys(releases))
        postings = self._postings(s, [r.order_code for r in releases])
        purged = kept = 0
        oldest_unfinished: datetime | None = None
        for release in releases:
            if not release_finished(release, postings.get(release.order_code, []), done_keys):
                kept += 1
                if oldest_unfinished is None:
                    oldest_unfinished = release.released_at
                continue
            if release.finished_at is None:
                # Finished before the store kept ``finished_at``: the open-order reads
                # (``OrderBook.open_releases``) leave it out from now on.
                mark_finished(s, [release.order_code], self._db.now())
            blanked, changed = blank_personal_data(release.payload)
            if changed:
                s.execute(
                    update(OrderRelease)
                    .where(OrderRelease.order_code == release.order_code)
                    .values(payload=blanked)
                )
                purged += 1
        return purged, oldest_unfinished, kept

    def _done(self, s: Session, keys: list[str]) -> set[str]:
        done: set[str] = set()
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            done.update(
                s.scalars(
                    select(Effect.idempotency_key).where(
                        Effect.idempotency_key.in_(chunk), Effect.state == "done"
                    )
                )
            )
        return done

    def _postings(self, s: Session, order_codes: list[str]) -> dict[str, list[ShipmentPosting]]:
        found: dict[str, list[ShipmentPosting]] = {}
        for start in range(0, len(order_codes), BATCH):
            chunk = order_codes[start : start + BATCH]
            query = select(ShipmentPosting).where(ShipmentPosting.order_number.in_(chunk))
            for posting in s.scalars(query):
                found.setdefault(posting.order_number, []).append(posting)
        return found


def _cancel_keys(releases: Iterable[OrderRelease]) -> list[str]:
    return [r.cancel_outbox_key for r in releases if r.cancel_outbox_key]


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None
