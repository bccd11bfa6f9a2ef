"""Customers' personal data leaves the store after the retention period (issue 20, point 7).

On SQLite and PostgreSQL: the bodies of order releases (outbox effects and the release
book) lose names, emails, phones, addresses and comments after
``retention.personal_data_days``, but only where nothing can send them again: effects
done, orders finished at ACS. What reconciliation and the audit trail need stays.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.domain.models import AcsOrder, AcsOrderLine, Address, Contact
from acs_khaos_dagster.domain.order_release import release_outbox_key, release_revision
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook, PostingRecord
from acs_khaos_dagster.store.retention import PERSONAL_FIELDS

START = datetime(2026, 1, 5, 9, tzinfo=UTC)
PERSONAL = ("Jane", "Doe", "jane.doe@example.com", "07700 900123", "1 High Street", "LS1 4AP")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class AcsAccepts:
    idempotent = True

    def send(self, payload: dict) -> dict:
        return {"ok": True}

    def read_back(self, payload: dict) -> dict | None:
        return {"ok": True}


class AcsRefuses(AcsAccepts):
    def send(self, payload: dict) -> dict:
        raise PermanentError("refused", system="acs", operation="put_order")


def _order(number: str) -> AcsOrder:
    return AcsOrder(
        order_number=number,
        order_date=START,
        contact=Contact(
            first_name="Jane", last_name="Doe", email="jane.doe@example.com", phone="07700 900123"
        ),
        delivery_address=Address(line1="1 High Street", city="Leeds", postcode="LS1 4AP"),
        comments="Leave with the neighbour",
        lines=(AcsOrderLine(line_item_id="11", sku="DRS-1", quantity=2, price=Decimal("40")),),
    )


@pytest.fixture
def world(store_url: str) -> Iterator[tuple[Store, Clock]]:
    clock = Clock()
    with Store.open(store_url, clock=clock) as store:
        yield store, clock


def _release(store: Store, number: str, handler: object = None) -> str:
    """Release ``number`` to ACS now: the effect, sent by ``handler``, and the release row."""
    order = _order(number)
    key = release_outbox_key(order)
    book = OrderBook(store.db)
    with store.transaction() as session:
        store.outbox.enqueue(
            EffectKind.ACS_ORDER, "acs", number, key, order.model_dump(mode="json"), session=session
        )
        book.record_release(order, 1, [1], release_revision(order), key, store.now(), session)
    store.dispatcher({EffectKind.ACS_ORDER: handler or AcsAccepts()}).drain()
    return key


def _ship(store: Store, number: str, units: int, shipment: str = "1") -> None:
    with store.transaction() as session:
        OrderBook(store.db).record_postings(
            [PostingRecord(f"SH-{number}-{shipment}", number, 1, "E1", "queued", ((11, units),))],
            session,
        )


def _text(store: Store, number: str) -> str:
    release = OrderBook(store.db).releases()[number]
    effect = store.outbox.by_key(release.outbox_key)
    assert effect is not None
    return f"{release.payload} {effect.payload}"


def test_finished_orders_lose_their_personal_data_after_the_retention_period(world) -> None:
    store, clock = world
    _release(store, "SO-SHIPPED")
    _ship(store, "SO-SHIPPED", 2)
    clock.now = START + timedelta(days=91)

    report = store.purge_personal_data(90)

    text = _text(store, "SO-SHIPPED")
    assert [p for p in PERSONAL if p in text] == []
    assert "Leave with the neighbour" not in text
    assert (report.effects_purged, report.releases_purged) == (1, 1)
    # What the flows and the audit trail need is still there.
    release = OrderBook(store.db).releases()["SO-SHIPPED"]
    assert release.payload["order_number"] == "SO-SHIPPED"
    assert release.payload["lines"][0]["quantity"] == 2
    assert AcsOrder.model_validate(release.payload).contact.email == ""
    assert store.audit.list(idempotency_key=release.outbox_key)[0].payload_sha256


def test_nothing_is_purged_before_the_retention_period(world) -> None:
    store, clock = world
    _release(store, "SO-RECENT")
    _ship(store, "SO-RECENT", 2)
    clock.now = START + timedelta(days=89)

    report = store.purge_personal_data(90)

    assert (report.effects_purged, report.releases_purged) == (0, 0)
    assert "jane.doe@example.com" in _text(store, "SO-RECENT")


def test_an_unfinished_order_keeps_its_release_body_until_it_finishes(world) -> None:
    """A Khaos cancellation must send ACS the body it holds; the effect itself is done."""
    store, clock = world
    _release(store, "SO-OPEN")
    _ship(store, "SO-OPEN", 1)  # one of two units shipped
    clock.now = START + timedelta(days=120)

    first = store.purge_personal_data(90)

    release = OrderBook(store.db).releases()["SO-OPEN"]
    assert release.payload["contact"]["email"] == "jane.doe@example.com"
    assert store.outbox.by_key(release.outbox_key).payload["contact"]["email"] == ""
    assert (first.releases_purged, first.releases_kept_unfinished) == (0, 1)

    _ship(store, "SO-OPEN", 1, shipment="2")  # the rest ships a month later
    clock.now = START + timedelta(days=150)
    second = store.purge_personal_data(90)

    assert second.releases_purged == 1
    assert [p for p in PERSONAL if p in _text(store, "SO-OPEN")] == []


def test_a_cancelled_order_is_finished_and_purged(world) -> None:
    store, clock = world
    _release(store, "SO-CANCELLED")
    OrderBook(store.db).set_cancel("SO-CANCELLED", "cancelled", None)
    clock.now = START + timedelta(days=91)

    assert store.purge_personal_data(90).releases_purged == 1
    assert [p for p in PERSONAL if p in _text(store, "SO-CANCELLED")] == []


def test_a_parked_effect_keeps_its_body_because_it_may_be_sent_again(world) -> None:
    store, clock = world
    key = _release(store, "SO-PARKED", AcsRefuses())
    clock.now = START + timedelta(days=200)

    store.purge_personal_data(90)

    effect = store.outbox.by_key(key)
    assert effect is not None and effect.state == "parked"
    assert effect.payload["contact"]["email"] == "jane.doe@example.com"


def test_a_second_pass_reads_only_what_became_old_since(world) -> None:
    store, clock = world
    _release(store, "SO-A")
    _ship(store, "SO-A", 2)
    clock.now = START + timedelta(days=91)
    assert store.purge_personal_data(90).releases_purged == 1

    clock.now = START + timedelta(days=92)
    again = store.purge_personal_data(90)

    assert (again.effects_purged, again.releases_purged) == (0, 0)


def test_the_personal_fields_cover_the_contact_and_address_of_an_acs_order() -> None:
    order = _order("SO-1").model_dump(mode="json")
    personal = set(order["contact"]) | (set(order["delivery_address"]) - {"country"})
    assert personal | {"comments"} <= PERSONAL_FIELDS


def test_the_nightly_job_purges_with_the_configured_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_instance
) -> None:
    from acs_khaos_dagster.definitions import defs
    from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS

    database = tmp_path / "store.sqlite"
    clock = Clock()
    with Store.open(f"sqlite:///{database}", clock=clock) as store:
        _release(store, "SO-JOB")
        _ship(store, "SO-JOB", 2)
    monkeypatch.setenv("ACS_KHAOS_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("ACS_KHAOS_RETENTION__PERSONAL_DATA_DAYS", "1")

    result = defs.resolve_job_def("personal_data_retention").execute_in_process(
        instance=dagster_instance
    )

    assert result.success
    with Store.open(f"sqlite:///{database}") as store:
        assert [p for p in PERSONAL if p in _text(store, "SO-JOB")] == []
    schedule = defs.resolve_schedule_def("personal_data_retention_schedule")
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status == SCHEDULE_STATUS  # running in production's environment
