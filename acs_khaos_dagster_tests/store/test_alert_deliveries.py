"""Alert deliveries (``store/alerts.py``): one row per alert per channel, written before the
send, so a rerun never sends an alert twice and a failed one is tried again. Runs on SQLite
and PostgreSQL (the store suite's ``store`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.alerts import AlertDeliveries, PlannedDelivery

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STALE = timedelta(minutes=10)


def owed(
    subject: str = "exception:1",
    kind: str = "opened",
    channel: str = "ops",
    occurrence: str = "2026-03-02T09:00:00",
    alert: dict | None = None,
) -> PlannedDelivery:
    return PlannedDelivery(
        subject=subject,
        occurrence=occurrence,
        kind=kind,
        channel=channel,
        owner="operations",
        alert=alert or {"title": f"{kind} {subject}"},
    )


def deliveries(store: Store) -> AlertDeliveries:
    return AlertDeliveries(store.db)


# --- planning ------------------------------------------------------------------------------------


def test_planned_deliveries_are_recorded_pending_and_counted(store: Store) -> None:
    alerts = deliveries(store)
    assert alerts.plan([owed("exception:1"), owed("exception:2")], T0) == 2
    rows = alerts.list()
    assert [(r.subject, r.status, r.attempts) for r in rows] == [
        ("exception:1", "pending", 0),
        ("exception:2", "pending", 0),
    ]
    assert rows[0].alert == {"title": "opened exception:1"}


def test_planning_a_known_delivery_again_leaves_it_as_it_was(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed(alert={"title": "first"})], T0)
    [row] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    alerts.mark_sent(row.id, T0)
    assert alerts.plan([owed(alert={"title": "second"})], T0 + timedelta(hours=1)) == 0
    [again] = alerts.list()
    assert (again.status, again.alert) == ("sent", {"title": "first"})


def test_the_same_alert_on_another_channel_is_another_delivery(store: Store) -> None:
    alerts = deliveries(store)
    assert alerts.plan([owed(channel="ops"), owed(channel="finance")], T0) == 2


def test_a_new_occurrence_of_the_same_subject_is_another_delivery(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed(occurrence="2026-03-02T09:00:00")], T0)
    assert alerts.plan([owed(occurrence="2026-03-05T09:00:00")], T0) == 1


# --- keys already owed ---------------------------------------------------------------------------


def test_keys_for_gives_the_keys_of_those_subjects_and_that_kind_only(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan(
        [
            owed("exception:1", "opened", "ops", "a"),
            owed("exception:1", "closed", "ops", "a"),
            owed("exception:2", "opened", "finance", "b"),
            owed("exception:3", "opened", "ops", "c"),
        ],
        T0,
    )
    assert alerts.keys_for(["exception:1", "exception:2"], "opened") == {
        ("exception:1", "a", "opened", "ops"),
        ("exception:2", "b", "opened", "finance"),
    }


def test_keys_for_finds_every_subject_of_a_long_list(store: Store) -> None:
    alerts = deliveries(store)
    subjects = [f"exception:{i}" for i in range(1, 1201)]
    alerts.plan([owed(s) for s in subjects], T0)
    found = alerts.keys_for(subjects, "opened")
    assert len(found) == 1200
    assert {s for s, *_ in found} == set(subjects)


# --- openings not yet closed ---------------------------------------------------------------------


def test_unmatched_gives_openings_with_no_closing_on_the_same_occurrence_and_channel(
    store: Store,
) -> None:
    alerts = deliveries(store)
    alerts.plan(
        [
            owed("exception:1", "opened", "ops", "a"),
            owed("exception:1", "closed", "ops", "a"),  # closed: matched
            owed("exception:2", "opened", "ops", "b"),  # never closed
            owed("exception:3", "opened", "ops", "c"),
            owed("exception:3", "closed", "finance", "c"),  # closed on another channel only
            owed("exception:4", "opened", "ops", "d"),
            owed("exception:4", "closed", "ops", "older"),  # an earlier occurrence's closing
            owed("run:9", "opened", "ops", ""),  # another prefix
        ],
        T0,
    )
    left = alerts.unmatched("opened", "closed", "exception:")
    assert [(r.subject, r.occurrence, r.channel) for r in left] == [
        ("exception:2", "b", "ops"),
        ("exception:3", "c", "ops"),
        ("exception:4", "d", "ops"),
    ]


# --- claiming what is due ------------------------------------------------------------------------


def test_due_deliveries_are_claimed_oldest_first_up_to_the_limit_and_marked_sending(
    store: Store,
) -> None:
    alerts = deliveries(store)
    alerts.plan([owed(f"exception:{i}") for i in range(1, 5)], T0)
    claimed = alerts.claim_due(T0, limit=3, stale_after=STALE)
    assert [r.subject for r in claimed] == ["exception:1", "exception:2", "exception:3"]
    assert {r.status for r in claimed} == {"sending"}
    assert [r.status for r in alerts.list()] == ["sending", "sending", "sending", "pending"]


def test_a_claimed_delivery_is_not_claimed_again_while_it_is_being_sent(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0)
    assert len(alerts.claim_due(T0, limit=10, stale_after=STALE)) == 1
    assert alerts.claim_due(T0 + timedelta(minutes=9), limit=10, stale_after=STALE) == []


def test_a_delivery_left_sending_by_a_crash_is_due_again_once_stale(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0)
    alerts.claim_due(T0, limit=10, stale_after=STALE)
    [again] = alerts.claim_due(T0 + STALE, limit=10, stale_after=STALE)
    assert again.subject == "exception:1"


def test_a_delivery_planned_for_later_is_not_due_yet(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0 + timedelta(minutes=5))
    assert alerts.claim_due(T0, limit=10, stale_after=STALE) == []
    assert len(alerts.claim_due(T0 + timedelta(minutes=5), limit=10, stale_after=STALE)) == 1


def test_a_closing_waits_while_its_opening_on_the_same_channel_is_unsent(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed(kind="opened")], T0 + timedelta(minutes=1))  # not due yet
    alerts.plan([owed(kind="closed")], T0)
    assert alerts.claim_due(T0, limit=10, stale_after=STALE) == []
    later = T0 + timedelta(minutes=1)
    [opening] = alerts.claim_due(later, limit=10, stale_after=STALE)
    assert opening.kind == "opened"
    alerts.mark_sent(opening.id, later)
    [closing] = alerts.claim_due(later, limit=10, stale_after=STALE)
    assert closing.kind == "closed"


def test_a_closing_does_not_wait_for_an_opening_on_another_channel(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed(kind="opened", channel="finance")], T0 + timedelta(hours=1))
    alerts.plan([owed(kind="closed", channel="ops")], T0)
    [closing] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    assert (closing.kind, closing.channel) == ("closed", "ops")


def test_a_closing_does_not_wait_for_an_opening_that_was_given_up(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed(kind="opened")], T0)
    [opening] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    alerts.mark_failed(opening.id, T0, "410 Gone", retry_at=None)
    alerts.plan([owed(kind="closed")], T0)
    [closing] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    assert closing.kind == "closed"


# --- outcomes ------------------------------------------------------------------------------------


def test_a_sent_delivery_counts_the_try_records_when_and_is_never_due_again(
    store: Store,
) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0)
    [row] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    alerts.mark_failed(row.id, T0, "timeout", retry_at=T0 + timedelta(minutes=1))
    [row] = alerts.claim_due(T0 + timedelta(minutes=1), limit=10, stale_after=STALE)
    sent_at = T0 + timedelta(minutes=2)
    alerts.mark_sent(row.id, sent_at)
    [done] = alerts.list()
    assert (done.status, done.attempts, done.sent_at, done.last_error) == (
        "sent",
        2,
        sent_at,
        None,
    )
    assert alerts.claim_due(T0 + timedelta(days=1), limit=10, stale_after=STALE) == []


def test_a_failed_delivery_is_tried_again_at_its_retry_time_not_before(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0)
    [row] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    alerts.mark_failed(row.id, T0, "503 from the webhook", retry_at=T0 + timedelta(minutes=4))
    [failed] = alerts.list()
    assert (failed.status, failed.attempts, failed.last_error) == (
        "failed",
        1,
        "503 from the webhook",
    )
    assert alerts.claim_due(T0 + timedelta(minutes=3), limit=10, stale_after=STALE) == []
    assert len(alerts.claim_due(T0 + timedelta(minutes=4), limit=10, stale_after=STALE)) == 1


def test_a_delivery_failed_without_a_retry_time_is_given_up_for_good(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0)
    [row] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    alerts.mark_failed(row.id, T0, "channel removed", retry_at=None)
    assert [r.status for r in alerts.list()] == ["abandoned"]
    assert alerts.claim_due(T0 + timedelta(days=30), limit=10, stale_after=STALE) == []


def test_a_long_error_is_kept_to_its_first_500_characters(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed()], T0)
    [row] = alerts.claim_due(T0, limit=10, stale_after=STALE)
    alerts.mark_failed(row.id, T0, "x" * 499 + "yz" + "!" * 1000, retry_at=None)
    [failed] = alerts.list()
    assert failed.last_error == "x" * 499 + "y"


# --- listing -------------------------------------------------------------------------------------


def test_list_filters_by_subject_kind_and_status(store: Store) -> None:
    alerts = deliveries(store)
    alerts.plan([owed("exception:1", "opened"), owed("exception:1", "closed")], T0)
    alerts.plan([owed("exception:2", "opened")], T0)
    [first] = alerts.claim_due(T0, limit=1, stale_after=STALE)
    alerts.mark_sent(first.id, T0)
    assert [r.kind for r in alerts.list(subject="exception:1")] == ["opened", "closed"]
    assert [r.subject for r in alerts.list(kind="opened")] == ["exception:1", "exception:2"]
    assert [(r.subject, r.kind) for r in alerts.list(status="sent")] == [("exception:1", "opened")]
    assert [r.subject for r in alerts.list(kind="opened", status="pending")] == ["exception:2"]
