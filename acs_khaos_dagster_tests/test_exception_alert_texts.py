"""What an exception's opened and closed alerts say (``alerts/exception_alerts.py``): the
title names the type, what happened and the entity; the text is the exception's message
(or, for a failed call to ACS or Khaos, the integration's own account of it); the facts
give the owner, the number, when it opened and how often it was seen; the link is the
type's runbook page. Built from exception rows in memory: no store, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acs_khaos_dagster.alerts.exception_alerts import (
    AlertSummary,
    closed_alert,
    exception_subject,
    occurrence_of,
    opened_alert,
)
from acs_khaos_dagster.alerts.notifier import AlertKind
from acs_khaos_dagster.store.schema import ExceptionRow

OPENED = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
RUNBOOK = "https://wiki.example/runbook/"


def row(**changed: Any) -> ExceptionRow:
    fields: dict[str, Any] = {
        "id": 17,
        "type": "order_held",
        "entity_ref": "order:SO1042",
        "owner": "ecommerce",
        "severity": "high",
        "status": "open",
        "message": "SO1042 held: courier XYZ is not mapped",
        "details": None,
        "count": 3,
        "first_seen": OPENED,
        "last_seen": OPENED + timedelta(hours=2),
        "opened_at": OPENED,
        "resolution_note": None,
        "acted_by": None,
        "acted_at": None,
    }
    fields.update(changed)
    return ExceptionRow(**fields)


def facts(alert: Any) -> dict[str, str]:
    return dict(alert.facts)


# --- keys ----------------------------------------------------------------------------------------


def test_an_exceptions_alerts_are_about_exception_and_its_number() -> None:
    assert exception_subject(17) == "exception:17"


def test_an_occurrence_is_named_by_when_it_opened_in_utc() -> None:
    assert occurrence_of(row()) == "2026-03-02T09:05:00+00:00"


# --- opened --------------------------------------------------------------------------------------


def test_an_opened_alert_names_the_type_and_the_entity_and_carries_the_message() -> None:
    alert = opened_alert(row())
    assert alert.kind == AlertKind.OPENED
    assert alert.title == "order_held opened: order:SO1042"
    assert alert.text == "SO1042 held: courier XYZ is not mapped"
    assert (alert.exception_type, alert.entity_ref, alert.severity) == (
        "order_held",
        "order:SO1042",
        "high",
    )


def test_an_opened_alert_gives_owner_number_times_and_count() -> None:
    assert facts(opened_alert(row())) == {
        "Owner": "ecommerce",
        "Exception": "#17",
        "Opened": "2026-03-02 09:05 UTC",
        "First seen": "2026-03-02 09:05 UTC",
        "Times seen": "3",
    }


def test_an_exception_open_again_after_it_was_first_seen_is_announced_as_reopened() -> None:
    alert = opened_alert(row(first_seen=OPENED - timedelta(days=2)))
    assert alert.title == "order_held reopened: order:SO1042"
    assert facts(alert)["First seen"] == "2026-02-28 09:05 UTC"


def test_the_link_is_the_types_runbook_page() -> None:
    assert opened_alert(row(), RUNBOOK).link == "https://wiki.example/runbook/order_held"
    assert (
        opened_alert(row(), "https://wiki.example/rb").link == "https://wiki.example/rb/order_held"
    )


def test_without_a_runbook_there_is_no_link() -> None:
    assert opened_alert(row()).link is None


def test_a_failed_call_is_told_from_the_integrations_record_not_the_other_systems_words() -> None:
    details = {
        "kind": "acs_order_put",
        "target": "acs",
        "business_key": "SO1042",
        "permanent": True,
        "error_class": "AcsRejected",
        "message": "postcode LS1 4AB invalid for Jane Smith",
    }
    alert = opened_alert(
        row(type="effect_failed", message="ACS said: Jane Smith, LS1 4AB", details=details)
    )
    assert alert.text.startswith("acs_order_put to acs for SO1042 was rejected: AcsRejected.")
    assert "acs-khaos exceptions show 17" in alert.text
    assert "Jane" not in alert.text


def test_details_that_are_not_a_failed_call_leave_the_message_as_the_text() -> None:
    alert = opened_alert(row(details={"order": "SO1042", "courier": "XYZ"}))
    assert alert.text == "SO1042 held: courier XYZ is not mapped"


def test_personal_data_in_a_message_is_blanked() -> None:
    alert = opened_alert(row(message="customer jane@example.com rang 07700 900123"))
    assert alert.text == "customer [redacted] rang [redacted]"


# --- closed --------------------------------------------------------------------------------------

CLOSED_AT = OPENED + timedelta(hours=5)


def closed(**changed: Any) -> Any:
    fields: dict[str, Any] = {"status": "resolved", "acted_at": CLOSED_AT}
    fields.update(changed)
    return closed_alert(row(**fields), occurrence_of(row()))


def test_a_resolved_exception_says_who_resolved_it_and_their_note() -> None:
    alert = closed(acted_by="ops.anna", resolution_note="courier mapped")
    assert alert.kind == AlertKind.CLOSED
    assert alert.title == "order_held resolved: order:SO1042"
    assert alert.text == "Resolved by ops.anna. Note: courier mapped"


def test_an_ignored_exception_says_who_ignored_it() -> None:
    alert = closed(status="ignored", acted_by="ops.anna")
    assert alert.title == "order_held ignored: order:SO1042"
    assert alert.text == "Ignored by ops.anna."


def test_an_exception_no_longer_seen_is_told_as_closed_by_the_integration() -> None:
    alert = closed(acted_by="integration", resolution_note="no longer seen")
    assert alert.title == "order_held auto-resolved: order:SO1042"
    assert alert.text == "No longer seen: the integration closed it."


def test_a_closing_by_nobody_known_says_someone() -> None:
    assert closed().text == "Resolved by someone."
    assert closed(status="ignored").text == "Ignored by someone."


def test_an_occurrence_that_closed_and_reopened_is_told_as_resolved_and_seen_again() -> None:
    reopened = row(status="open", opened_at=OPENED + timedelta(days=1))
    alert = closed_alert(reopened, occurrence_of(row()))
    assert alert.title == "order_held resolved: order:SO1042"
    assert alert.text == "Resolved; it has since been seen again and reopened."


def test_a_closed_alert_gives_when_its_occurrence_opened_and_when_it_closed() -> None:
    assert facts(closed(acted_by="ops.anna")) == {
        "Owner": "ecommerce",
        "Exception": "#17",
        "Opened": "2026-03-02 09:05 UTC",
        "Closed": "2026-03-02 14:05 UTC",
        "Times seen": "3",
    }


def test_a_closed_alert_without_a_closing_time_shows_a_dash() -> None:
    assert facts(closed(acted_at=None))["Closed"] == "-"


def test_a_closed_alert_links_to_the_runbook_too() -> None:
    alert = closed_alert(row(status="resolved"), occurrence_of(row()), RUNBOOK)
    assert alert.link == "https://wiki.example/runbook/order_held"


# --- summary -------------------------------------------------------------------------------------


def test_a_pass_summary_is_given_as_metadata_and_as_one_line() -> None:
    summary = AlertSummary(opened_planned=2, closed_planned=1, sent=3, failed=1, no_channel=4)
    assert summary.as_metadata() == {
        "alerts_opened_planned": 2,
        "alerts_closed_planned": 1,
        "alerts_sent": 3,
        "alerts_failed": 1,
        "alerts_abandoned": 0,
        "alerts_no_channel": 4,
    }
    assert str(summary) == (
        "opened_planned=2, closed_planned=1, sent=3, failed=1, abandoned=0, no_channel=4"
    )


@pytest.mark.parametrize("status", ["resolved", "ignored"])
def test_a_closed_alert_keeps_the_exceptions_severity_and_type(status: str) -> None:
    alert = closed(status=status, severity="critical")
    assert (alert.severity, alert.exception_type, alert.entity_ref) == (
        "critical",
        "order_held",
        "order:SO1042",
    )
