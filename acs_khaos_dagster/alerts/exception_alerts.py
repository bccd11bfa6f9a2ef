"""One alert when an exception opens, one when it closes; never one per run or sighting.

Each occurrence of an exception (its ``opened_at``: a reopened exception is a new
occurrence) is announced once per channel of its owner team. The deliveries owed are
written to the store *before* anything is sent, under a unique key (subject,
occurrence, kind, channel), so a rerun or a crash never sends the same alert twice
(apart from the one in flight at the moment of a crash, which is sent again rather
than lost). A channel that fails is tried again on later ticks without repeating the
channels that succeeded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from acs_khaos_dagster.alerts.notifier import SCRUBBER, Alert, AlertKind, Channel, Notifier
from acs_khaos_dagster.alerts.privacy import connector_failure_text, is_connector_failure
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.alerts import AlertDeliveries, PlannedDelivery
from acs_khaos_dagster.store.schema import ExceptionRow

log = logging.getLogger(__name__)
log.addFilter(SCRUBBER)

EXCEPTION_SUBJECT = "exception:"
RUN_SUBJECT = "run:"
# A send still marked "sending" this long after it started was cut off by a crash.
STALE_SENDING = timedelta(minutes=5)


@dataclass
class AlertSummary:
    """What one delivery pass did (figures for sensor messages and metadata)."""

    opened_planned: int = 0
    closed_planned: int = 0
    sent: int = 0
    failed: int = 0
    abandoned: int = 0
    no_channel: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        return {
            "alerts_opened_planned": self.opened_planned,
            "alerts_closed_planned": self.closed_planned,
            "alerts_sent": self.sent,
            "alerts_failed": self.failed,
            "alerts_abandoned": self.abandoned,
            "alerts_no_channel": self.no_channel,
        }

    def __str__(self) -> str:
        return ", ".join(f"{k.removeprefix('alerts_')}={v}" for k, v in self.as_metadata().items())


def deliveries(store: Store) -> AlertDeliveries:
    """The alert-deliveries repository of ``store`` (until the Store facade has ``alerts``)."""
    return AlertDeliveries(store.db)


def occurrence_of(row: ExceptionRow) -> str:
    return row.opened_at.astimezone(UTC).isoformat()


def exception_subject(exception_id: int) -> str:
    return f"{EXCEPTION_SUBJECT}{exception_id}"


def _runbook(base: str | None, exception_type: str) -> str | None:
    return f"{base.rstrip('/')}/{exception_type}" if base else None


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def opened_alert(row: ExceptionRow, runbook_base_url: str | None = None) -> Alert:
    """The alert for an exception that has just opened (or reopened)."""
    reopened = row.first_seen < row.opened_at
    verb = "reopened" if reopened else "opened"
    # A failed call to ACS or Khaos is told from our own record, never in the other
    # system's words (they echo the customer's data they refuse): see alerts/privacy.py.
    details = row.details if isinstance(row.details, dict) else None
    text = (
        connector_failure_text(details, row.id)
        if details is not None and is_connector_failure(details)
        else row.message
    )
    return Alert(
        kind=AlertKind.OPENED,
        title=f"{row.type} {verb}: {row.entity_ref}",
        text=text,
        exception_type=row.type,
        entity_ref=row.entity_ref,
        severity=row.severity,
        link=_runbook(runbook_base_url, row.type),
        facts=(
            ("Owner", row.owner),
            ("Exception", f"#{row.id}"),
            ("Opened", _when(row.opened_at)),
            ("First seen", _when(row.first_seen)),
            ("Times seen", str(row.count)),
        ),
    )


def closed_alert(row: ExceptionRow, occurrence: str, runbook_base_url: str | None = None) -> Alert:
    """The alert for an occurrence that has closed (resolved, ignored or no longer seen)."""
    if occurrence_of(row) != occurrence:
        # It closed and was seen again before this pass; its new occurrence is announced
        # separately.
        how, text = "resolved", "Resolved; it has since been seen again and reopened."
    elif row.status == "ignored":
        how, text = "ignored", f"Ignored by {row.acted_by or 'someone'}."
    elif row.resolution_note == "no longer seen":
        how, text = "auto-resolved", "No longer seen: the integration closed it."
    else:
        how, text = "resolved", f"Resolved by {row.acted_by or 'someone'}."
    if row.resolution_note and row.resolution_note != "no longer seen":
        text += f" Note: {row.resolution_note}"
    return Alert(
        kind=AlertKind.CLOSED,
        title=f"{row.type} {how}: {row.entity_ref}",
        text=text,
        exception_type=row.type,
        entity_ref=row.entity_ref,
        severity=row.severity,
        link=_runbook(runbook_base_url, row.type),
        facts=(
            ("Owner", row.owner),
            ("Exception", f"#{row.id}"),
            ("Opened", _when(datetime.fromisoformat(occurrence))),
            ("Closed", _when(row.acted_at)),
            ("Times seen", str(row.count)),
        ),
    )


def plan_exception_alerts(store: Store, notifier: Notifier, now: datetime) -> AlertSummary:
    """Record the opened / closed alerts owed since the last pass (sends nothing)."""
    summary = AlertSummary()
    repo = deliveries(store)
    runbook = notifier.settings.runbook_base_url

    # Closings first, so a reopened exception's "closed" goes out before its new
    # "opened". Closing: every announced occurrence without its closed alert whose exception has
    # since been resolved/ignored, or reopened (a newer occurrence).
    pending_close = repo.unmatched(AlertKind.OPENED, AlertKind.CLOSED, EXCEPTION_SUBJECT)
    rows = _exceptions(
        store, {int(d.subject.removeprefix(EXCEPTION_SUBJECT)) for d in pending_close}
    )
    owed: list[PlannedDelivery] = []
    for delivery in pending_close:
        row = rows.get(int(delivery.subject.removeprefix(EXCEPTION_SUBJECT)))
        if row is None:
            continue
        still_open = row.status == "open" and occurrence_of(row) == delivery.occurrence
        if still_open:
            continue
        alert = closed_alert(row, delivery.occurrence, runbook).to_json()
        owed.append(
            PlannedDelivery(
                delivery.subject,
                delivery.occurrence,
                AlertKind.CLOSED,
                delivery.channel,
                delivery.owner,
                alert,
            )
        )
    summary.closed_planned = repo.plan(owed, now)

    open_rows = [item.row for item in store.exceptions.list(status="open")]
    announced = repo.keys_for((exception_subject(r.id) for r in open_rows), AlertKind.OPENED)
    owed = []
    for row in open_rows:
        if not notifier.wants(row.owner, row.severity):
            continue
        channels = notifier.channels_for(row.owner)
        if not channels:
            summary.no_channel += 1
            continue
        subject, occurrence = exception_subject(row.id), occurrence_of(row)
        missing = [
            c for c in channels if (subject, occurrence, AlertKind.OPENED, c) not in announced
        ]
        if missing:
            alert = opened_alert(row, runbook).to_json()
            owed += [
                PlannedDelivery(subject, occurrence, AlertKind.OPENED, c, row.owner, alert)
                for c in missing
            ]
    summary.opened_planned = repo.plan(owed, now)

    return summary


def _exceptions(store: Store, ids: Iterable[int]) -> dict[int, ExceptionRow]:
    wanted = sorted(ids)
    found: dict[int, ExceptionRow] = {}
    with store.transaction() as s:
        for start in range(0, len(wanted), 500):
            query = select(ExceptionRow).where(ExceptionRow.id.in_(wanted[start : start + 500]))
            found.update((row.id, row) for row in s.scalars(query))
    return found


def _retry_at(notifier: Notifier, attempts: int, now: datetime, permanent: bool) -> datetime | None:
    settings = notifier.settings
    if attempts >= settings.max_attempts:
        return None
    # A permanent refusal (revoked webhook, bad login) is still retried, slowly: someone
    # may fix the settings, and the alert should then arrive.
    steps = attempts + (3 if permanent else 0)
    wait = min(settings.retry_interval_s * 2 ** (steps - 1), settings.retry_interval_max_s)
    return now + timedelta(seconds=wait)


def deliver_pending(
    store: Store, notifier: Notifier, now: datetime, summary: AlertSummary | None = None
) -> AlertSummary:
    """Send the deliveries that are due (new, or failed and due for another try)."""
    summary = summary or AlertSummary()
    repo = deliveries(store)
    budget = notifier.settings.max_sends_per_tick
    # Claimed in rounds: a "closed" becomes sendable once its "opened" has gone out.
    while budget > 0:
        batch = repo.claim_due(now, budget, STALE_SENDING)
        if not batch:
            break
        for delivery in batch:
            budget -= 1
            result = notifier.send(
                delivery.owner, Channel(delivery.channel), Alert.from_json(delivery.alert)
            )
            if result.ok:
                repo.mark_sent(delivery.id, now)
                summary.sent += 1
                summary.by_channel[delivery.channel] = (
                    summary.by_channel.get(delivery.channel, 0) + 1
                )
                continue
            retry_at = _retry_at(notifier, delivery.attempts + 1, now, result.permanent)
            error = SCRUBBER.scrub(result.error or "unknown error")
            repo.mark_failed(delivery.id, now, error, retry_at)
            if retry_at is None:
                summary.abandoned += 1
                log.error(
                    "gave up on alert %s %s to %s via %s after %d tries: %s",
                    delivery.kind,
                    delivery.subject,
                    delivery.owner,
                    delivery.channel,
                    delivery.attempts + 1,
                    error,
                )
            else:
                summary.failed += 1
    return summary


def deliver_exception_alerts(store: Store, notifier: Notifier, now: datetime) -> AlertSummary:
    """Plan the opened/closed alerts owed, then send everything due. Safe to run often."""
    summary = plan_exception_alerts(store, notifier, now)
    return deliver_pending(store, notifier, now, summary)


def alert_once(
    store: Store,
    notifier: Notifier,
    *,
    subject: str,
    owner: str,
    alert: Alert,
    now: datetime,
    occurrence: str = "",
) -> AlertSummary:
    """Record and send one alert (a failed run, a failed check) once per channel."""
    summary = AlertSummary()
    channels = notifier.channels_for(owner)
    if not channels:
        summary.no_channel = 1
        log.warning("no alert channel configured for team %s; %s not sent", owner, subject)
        return summary
    planned = [
        PlannedDelivery(subject, occurrence, str(alert.kind), c, owner, alert.to_json())
        for c in channels
    ]
    deliveries(store).plan(planned, now)
    return deliver_pending(store, notifier, now, summary)
