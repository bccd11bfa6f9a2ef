"""Alerts carry no customer data and never repeat another system's words (issue 20, point 8).

Alerts leave for Slack, Teams and mailboxes. ACS echoes the values it refuses, and an
order's values are a customer's name, address, email and phone: the alert for a
rejected call says what failed from the integration's own record; the full text stays
in the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acs_khaos_dagster.alerts.exception_alerts import (
    closed_alert,
    deliveries,
    occurrence_of,
    opened_alert,
    plan_exception_alerts,
)
from acs_khaos_dagster.alerts.notifier import (
    AlertSettings,
    Notifier,
    email_message,
    slack_payload,
    teams_payload,
)
from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster.store import Store

PERSONAL = ("Jane", "Doe", "jane.doe@example.com", "07700 900123", "SW1A 1AA", "+44 20 7946 0958")
ECHO = (
    "Delivery_Postcode 'SW1A 1AA' is not valid for Jane Doe (jane.doe@example.com, "
    "07700 900123, +44 20 7946 0958)"
)


class RefusingAcs:
    """ACS answering 422 with a message that repeats the order's personal data."""

    def send(self, payload: dict) -> dict:
        raise PermanentError(
            ECHO,
            system="acs",
            operation="put_order",
            status_code=422,
            code="VALIDATION_FAILED",
            details=[{"field": "Delivery_Postcode", "code": "INVALID", "message": ECHO}],
        )

    def read_back(self, payload: dict) -> dict | None:
        return None


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as opened:
        yield opened


def _everything_sent(alert) -> str:
    mail = email_message(alert, "integration@brand.example", ["ops@brand.example"])
    return "\n".join(
        [
            json.dumps(slack_payload(alert)),
            json.dumps(teams_payload(alert)),
            mail.as_string(),
            json.dumps(alert.to_json()),
        ]
    )


def test_a_rejected_acs_call_is_alerted_without_the_personal_data_acs_echoed(store) -> None:
    store.outbox.enqueue("acs.put_order", "acs", "SO-1042", "order:SO-1042:r1", {"n": 1})
    store.dispatcher({"acs.put_order": RefusingAcs()}).drain()
    (item,) = store.exceptions.list(type="effect_failed")

    alert = opened_alert(item.row)
    sent = _everything_sent(alert)

    assert [p for p in PERSONAL if p in sent] == []
    assert "PermanentError" in alert.text
    assert "[VALIDATION_FAILED]" in alert.text and "Delivery_Postcode" in alert.text
    assert "SO-1042" in alert.text
    # The engineer still finds ACS's full answer in the store.
    assert "Jane Doe" in item.row.message


def test_the_alerts_planned_for_delivery_are_stored_without_personal_data(store) -> None:
    store.outbox.enqueue("acs.put_order", "acs", "SO-1042", "order:SO-1042:r1", {"n": 1})
    store.dispatcher({"acs.put_order": RefusingAcs()}).drain()
    settings = AlertSettings.model_validate(
        {"integration": {"slack_webhook_url": "http://127.0.0.1:9/hook"}}
    )

    with Notifier(settings) as notifier:
        summary = plan_exception_alerts(store, notifier, datetime.now(UTC))

    assert summary.opened_planned == 1
    stored = json.dumps([d.alert for d in deliveries(store).list()])
    assert "acs.put_order to acs for SO-1042 was rejected" in stored
    assert [p for p in PERSONAL if p in stored] == []


def test_personal_data_in_a_message_of_our_own_is_blanked(store) -> None:
    row = store.exceptions.raise_exception(
        "order_held",
        "SO-7",
        "order SO-7 held: contact jane.doe@example.com or 07700 900123, deliver to SW1A 1AA",
    )

    sent = _everything_sent(opened_alert(row))

    assert [p for p in PERSONAL if p in sent] == []
    assert "order SO-7 held" in sent


def test_a_resolution_note_with_personal_data_is_blanked_in_the_closing_alert(store) -> None:
    row = store.exceptions.raise_exception("order_held", "SO-8", "order SO-8 held")
    occurrence = occurrence_of(row)
    closed = store.exceptions.resolve(
        row.id, "ops", note="rang the customer on 07700 900123, jane.doe@example.com"
    )

    sent = _everything_sent(closed_alert(closed, occurrence))

    assert [p for p in PERSONAL if p in sent] == []
    assert "Resolved by ops" in sent
