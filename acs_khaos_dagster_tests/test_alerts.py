"""Alerts: one per exception opening and closing, to the owner team's channels, never
leaking a webhook URL; failed runs and blocking checks reach the integration team.

Slack and Teams are a real HTTP receiver on loopback; email is a real SMTP server
(aiosmtpd) on loopback. Ports are free ones.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from dagster import (
    AssetCheckResult,
    Definitions,
    asset,
    asset_check,
    build_run_status_sensor_context,
    build_sensor_context,
    materialize,
)
from sqlalchemy import select

from acs_khaos_dagster.alerts import (
    Alert,
    AlertKind,
    AlertSettings,
    AlertSettingsError,
    Channel,
    Notifier,
    SmtpSettings,
    TeamChannels,
    deliver_exception_alerts,
    load_alert_settings,
    plan_exception_alerts,
)
from acs_khaos_dagster.alerts.exception_alerts import deliveries
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.tables.alerts import AlertDelivery

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# --- a webhook receiver and a mail server on loopback -----------------------------------


@dataclass
class Receiver:
    base: str
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # path -> status codes to answer, in order, before answering 200 again
    failures: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.posts if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                queued = state.failures.get(self.path) or []
                status = queued.pop(0) if queued else 200
                if status == 200:
                    state.posts.append((self.path, body))
            reply = b"ok" if status == 200 else b"error"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class _FreePortController(Controller):
    """aiosmtpd's controller binds a fixed port; bind port 0 and read back the real one."""

    def _create_server(self):  # type: ignore[no-untyped-def]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.hostname, 0))
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        return [message for rcpts, message in self.messages if address in rcpts]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=0)
    controller = _FreePortController(box, hostname="127.0.0.1")
    controller.start()
    box.port = controller.port
    try:
        yield box
    finally:
        controller.stop()


# --- settings, store, clock ---------------------------------------------------------------

SLACK_FINANCE = "/slack/services/T0FIN/B0FIN/finance-slack-secret-token"
TEAMS_FINANCE = "/teams/webhookb2/finance-teams-secret-token"
SLACK_OPERATIONS = "/slack/services/T0OPS/B0OPS/operations-slack-secret-token"
SLACK_INTEGRATION = "/slack/services/T0INT/B0INT/integration-slack-secret-token"


def alert_settings(receiver: Receiver, mailbox: Mailbox, **overrides: Any) -> AlertSettings:
    return AlertSettings(
        finance=TeamChannels(
            slack_webhook_url=receiver.url(SLACK_FINANCE),
            teams_webhook_url=receiver.url(TEAMS_FINANCE),
            email_to=["finance@brand.example"],
        ),
        operations=TeamChannels(slack_webhook_url=receiver.url(SLACK_OPERATIONS)),
        integration=TeamChannels(
            slack_webhook_url=receiver.url(SLACK_INTEGRATION),
            email_to=["integration@brand.example"],
        ),
        smtp=SmtpSettings(host="127.0.0.1", port=mailbox.port, starttls=False, timeout_s=5),
        retries=1,
        retry_backoff_s=0,
        **overrides,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[Store]:
    """SQLite and PostgreSQL (``store_url`` from the root conftest)."""
    with Store.open(store_url, clock=clock) as opened:
        yield opened


@pytest.fixture
def notifier(receiver: Receiver, mailbox: Mailbox) -> Iterator[Notifier]:
    with Notifier(alert_settings(receiver, mailbox)) as sender:
        yield sender


def deliveries_to_finance(receiver: Receiver, mailbox: Mailbox) -> tuple[int, int, int]:
    return (
        len(receiver.bodies(SLACK_FINANCE)),
        len(receiver.bodies(TEAMS_FINANCE)),
        len(mailbox.to("finance@brand.example")),
    )


def open_drift(store: Store, ref: str = "stock:1001@selling") -> int:
    row = store.exceptions.raise_exception("drift", ref, "ACS 12 units, Khaos Level 10", None)
    return row.id


# --- one alert per opening and closing ------------------------------------------------


def test_an_opened_exception_alerts_each_channel_of_its_owner_once(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    open_drift(store)

    summary = deliver_exception_alerts(store, notifier, clock.now)

    assert summary.sent == 3
    assert deliveries_to_finance(receiver, mailbox) == (1, 1, 1)
    assert receiver.bodies(SLACK_OPERATIONS) == []
    slack = receiver.bodies(SLACK_FINANCE)[0]
    assert "drift opened: stock:1001@selling" in slack["text"]
    assert slack["blocks"][0]["type"] == "header"
    card = receiver.bodies(TEAMS_FINANCE)[0]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "ACS 12 units, Khaos Level 10" in json.dumps(card["content"])
    email = mailbox.to("finance@brand.example")[0]
    assert email["Subject"].startswith("[ACS-Khaos] Opened: drift opened")
    assert {part.get_content_type() for part in email.walk()} >= {"text/plain", "text/html"}


def test_an_exception_seen_again_on_later_runs_sends_nothing_new(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    open_drift(store)
    deliver_exception_alerts(store, notifier, clock.now)

    for _ in range(3):
        clock.advance(hours=1)
        open_drift(store)
        summary = deliver_exception_alerts(store, notifier, clock.now)
        assert summary.sent == 0

    assert deliveries_to_finance(receiver, mailbox) == (1, 1, 1)


def test_a_resolved_exception_sends_exactly_one_closed_alert(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    exception_id = open_drift(store)
    deliver_exception_alerts(store, notifier, clock.now)

    clock.advance(hours=2)
    store.exceptions.resolve(exception_id, actor="jo.finance", note="stock count corrected")
    deliver_exception_alerts(store, notifier, clock.now)
    deliver_exception_alerts(store, notifier, clock.advance(minutes=5))

    assert deliveries_to_finance(receiver, mailbox) == (2, 2, 2)
    closed = receiver.bodies(SLACK_FINANCE)[1]
    assert closed["text"].startswith("Closed: drift resolved: stock:1001@selling")
    assert "jo.finance" in json.dumps(closed)


def test_auto_resolved_and_ignored_exceptions_each_close_once(
    store: Store, notifier: Notifier, receiver: Receiver, clock: FakeClock
) -> None:
    store.exceptions.raise_exception("order_locked", "order:A1", "locked in Khaos", None)
    locked_b = store.exceptions.raise_exception("order_locked", "order:B2", "locked", None).id
    deliver_exception_alerts(store, notifier, clock.now)

    store.exceptions.auto_resolve("order_locked", ["order:B2"])
    store.exceptions.ignore(locked_b, actor="sam.ops")
    deliver_exception_alerts(store, notifier, clock.advance(minutes=1))
    deliver_exception_alerts(store, notifier, clock.advance(minutes=1))

    texts = [body["text"] for body in receiver.bodies(SLACK_OPERATIONS)]
    assert sorted(texts) == sorted(
        [
            "Opened: order_locked opened: order:A1",
            "Opened: order_locked opened: order:B2",
            "Closed: order_locked auto-resolved: order:A1",
            "Closed: order_locked ignored: order:B2",
        ]
    )


def test_a_reopened_exception_sends_one_new_opened_alert(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    exception_id = open_drift(store)
    deliver_exception_alerts(store, notifier, clock.now)
    store.exceptions.resolve(exception_id, actor="jo.finance")
    deliver_exception_alerts(store, notifier, clock.advance(hours=1))

    clock.advance(days=1)
    open_drift(store)
    deliver_exception_alerts(store, notifier, clock.now)
    open_drift(store)
    deliver_exception_alerts(store, notifier, clock.advance(hours=1))

    texts = [body["text"] for body in receiver.bodies(SLACK_FINANCE)]
    assert texts == [
        "Opened: drift opened: stock:1001@selling",
        "Closed: drift resolved: stock:1001@selling",
        "Opened: drift reopened: stock:1001@selling",
    ]
    assert deliveries_to_finance(receiver, mailbox) == (3, 3, 3)


def test_an_exception_closed_and_reopened_between_passes_still_closes_the_first_occurrence(
    store: Store, notifier: Notifier, receiver: Receiver, clock: FakeClock
) -> None:
    exception_id = open_drift(store)
    deliver_exception_alerts(store, notifier, clock.now)
    store.exceptions.resolve(exception_id, actor="jo.finance")
    clock.advance(minutes=1)
    open_drift(store)

    deliver_exception_alerts(store, notifier, clock.advance(minutes=1))

    texts = [body["text"] for body in receiver.bodies(SLACK_FINANCE)]
    assert texts == [
        "Opened: drift opened: stock:1001@selling",
        "Closed: drift resolved: stock:1001@selling",
        "Opened: drift reopened: stock:1001@selling",
    ]


def test_a_team_without_channels_gets_nothing_and_the_others_are_unaffected(
    store: Store, notifier: Notifier, receiver: Receiver, clock: FakeClock
) -> None:
    store.exceptions.raise_exception("sku_renamed", "stock:7", "renamed in Khaos", None)
    open_drift(store)

    summary = deliver_exception_alerts(store, notifier, clock.now)

    assert summary.no_channel == 1  # ecommerce has none configured
    assert summary.sent == 3


def test_alerts_recorded_before_a_crash_are_sent_once_by_the_next_pass(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    open_drift(store)
    plan_exception_alerts(store, notifier, clock.now)  # the process dies before sending

    deliver_exception_alerts(store, notifier, clock.advance(minutes=1))
    deliver_exception_alerts(store, notifier, clock.advance(minutes=1))

    assert deliveries_to_finance(receiver, mailbox) == (1, 1, 1)


def test_a_send_cut_off_by_a_crash_is_sent_again_rather_than_lost(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    open_drift(store)
    plan_exception_alerts(store, notifier, clock.now)
    # Claimed for sending, then the process died before recording the outcome.
    deliveries(store).claim_due(clock.now, 10, timedelta(minutes=5))

    deliver_exception_alerts(store, notifier, clock.advance(minutes=1))
    assert deliveries_to_finance(receiver, mailbox) == (0, 0, 0)

    deliver_exception_alerts(store, notifier, clock.advance(minutes=10))
    assert deliveries_to_finance(receiver, mailbox) == (1, 1, 1)


# --- failures and retries -----------------------------------------------------------------


def test_a_failing_webhook_does_not_stop_the_other_channels_and_is_retried_without_duplicates(
    store: Store, notifier: Notifier, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    receiver.failures[SLACK_FINANCE] = [500, 500]  # both tries of the first pass
    open_drift(store)

    first = deliver_exception_alerts(store, notifier, clock.now)
    again_too_soon = deliver_exception_alerts(store, notifier, clock.now)

    assert (first.sent, first.failed) == (2, 1)
    assert again_too_soon.sent == 0
    assert deliveries_to_finance(receiver, mailbox) == (0, 1, 1)

    later = deliver_exception_alerts(store, notifier, clock.advance(hours=1))

    assert later.sent == 1
    assert deliveries_to_finance(receiver, mailbox) == (1, 1, 1)
    with store.transaction() as s:
        slack_row = s.scalars(select(AlertDelivery).where(AlertDelivery.channel == "slack")).one()
    assert (slack_row.status, slack_row.attempts) == ("sent", 2)


def test_a_rate_limited_or_erroring_webhook_is_retried_within_one_delivery(
    notifier: Notifier, receiver: Receiver
) -> None:
    receiver.failures[SLACK_OPERATIONS] = [429]
    alert = Alert(AlertKind.OPENED, "order_locked opened: order:A1", "locked")

    [result] = notifier.notify("operations", alert)

    assert (result.ok, result.attempts, result.status_code) == (True, 2, 200)
    assert len(receiver.bodies(SLACK_OPERATIONS)) == 1


def test_a_closed_alert_waits_for_its_opened_alert_on_the_same_channel(
    store: Store, notifier: Notifier, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.failures[SLACK_FINANCE] = [503, 503]
    exception_id = open_drift(store)
    deliver_exception_alerts(store, notifier, clock.now)
    store.exceptions.resolve(exception_id, actor="jo.finance")

    deliver_exception_alerts(store, notifier, clock.advance(seconds=10))
    assert receiver.bodies(SLACK_FINANCE) == []

    deliver_exception_alerts(store, notifier, clock.advance(hours=1))
    texts = [body["text"] for body in receiver.bodies(SLACK_FINANCE)]
    assert texts == [
        "Opened: drift opened: stock:1001@selling",
        "Closed: drift resolved: stock:1001@selling",
    ]


def test_delivery_failures_are_returned_not_raised(mailbox: Mailbox) -> None:
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))
    port = closed_port.getsockname()[1]
    closed_port.close()
    settings = AlertSettings(
        finance=TeamChannels(
            slack_webhook_url=f"http://127.0.0.1:{port}/slack/nobody-listens-secret",
            email_to=["finance@brand.example"],
        ),
        smtp=SmtpSettings(host="127.0.0.1", port=port, starttls=False, timeout_s=2),
        retries=0,
    )
    with Notifier(settings) as sender:
        results = sender.notify("finance", Alert(AlertKind.OPENED, "t", "x"))

    assert [(r.channel, r.ok) for r in results] == [(Channel.SLACK, False), (Channel.EMAIL, False)]
    assert results[0].error == "ConnectError"


# --- secrets --------------------------------------------------------------------------------


def test_webhook_urls_never_appear_in_logs_results_or_store_rows(
    store: Store,
    receiver: Receiver,
    mailbox: Mailbox,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = alert_settings(receiver, mailbox)
    receiver.failures[TEAMS_FINANCE] = [404]  # a revoked webhook: permanent failure
    receiver.failures[SLACK_FINANCE] = [500, 500]
    secrets = [SLACK_FINANCE, TEAMS_FINANCE, "finance-slack-secret-token"]

    with Notifier(settings) as sender:
        open_drift(store)
        deliver_exception_alerts(store, sender, clock.now)
        results = sender.notify("finance", Alert(AlertKind.OPENED, "t", "x"))

    with store.transaction() as s:
        rows = [
            json.dumps({c.name: str(getattr(row, c.name)) for c in AlertDelivery.__table__.columns})
            for row in s.scalars(select(AlertDelivery))
        ]
    assert any('"HTTP 404"' in row for row in rows)
    assert "HTTP Request: POST" in caplog.text  # httpx did log its requests...
    for secret in secrets:
        assert secret not in caplog.text  # ...with the URL scrubbed
        assert secret not in repr(results)
        assert all(secret not in row for row in rows)
        assert secret not in repr(settings) and secret not in str(settings.model_dump())


def test_an_invalid_webhook_url_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "ACS_KHAOS_ALERTS__FINANCE__SLACK_WEBHOOK_URL", "http://hooks.example/T1/B1/leaky-token"
    )
    with pytest.raises(AlertSettingsError) as raised:
        load_alert_settings()
    assert "finance.slack_webhook_url" in str(raised.value)
    assert "leaky-token" not in str(raised.value)


def test_alert_settings_come_from_acs_khaos_alerts_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_ALERTS__FINANCE__SLACK_WEBHOOK_URL", "https://hooks.example/x")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__FINANCE__EMAIL_TO", "a@brand.example, b@brand.example")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__OPERATIONS__EMAIL_TO", '["ops@brand.example"]')
    monkeypatch.setenv("ACS_KHAOS_ALERTS__OPERATIONS__MIN_SEVERITY", "high")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__SMTP__HOST", "smtp.brand.example")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__SMTP__PASSWORD", "smtp-secret")

    settings = load_alert_settings()

    assert settings.finance.slack_webhook_url is not None
    assert settings.finance.email_to == ["a@brand.example", "b@brand.example"]
    assert settings.operations.email_to == ["ops@brand.example"]
    assert settings.operations.min_severity == "high"
    assert settings.smtp.host == "smtp.brand.example"
    assert "smtp-secret" not in repr(settings)
    # The integration's main settings ignore the section until config.py adopts it.
    from acs_khaos_dagster.config import load_settings

    load_settings()


def test_exceptions_below_a_teams_minimum_severity_are_not_announced(
    store: Store, receiver: Receiver, mailbox: Mailbox, clock: FakeClock
) -> None:
    settings = alert_settings(receiver, mailbox)
    settings.finance.min_severity = "critical"
    with Notifier(settings) as sender:
        open_drift(store)  # high
        summary = deliver_exception_alerts(store, sender, clock.now)
    assert summary.sent == 0


def test_email_logs_in_to_the_smtp_server_without_logging_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiosmtpd.smtp import AuthResult

    caplog.set_level(logging.DEBUG)
    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    box = Mailbox(port=0)
    controller = _FreePortController(
        box, hostname="127.0.0.1", authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        settings = AlertSettings(
            integration=TeamChannels(email_to=["integration@brand.example"]),
            smtp=SmtpSettings(
                host="127.0.0.1",
                port=controller.port,
                username="alerts",
                password="smtp-password-secret",
                starttls=False,
            ),
        )
        with Notifier(settings) as sender:
            [result] = sender.notify("integration", Alert(AlertKind.RUN_FAILED, "t", "x"))
    finally:
        controller.stop()

    assert result.ok
    assert logins == [("alerts", "smtp-password-secret")]
    assert len(box.to("integration@brand.example")) == 1
    assert "smtp-password-secret" not in caplog.text


# --- Dagster: failed runs, failed blocking checks, the exception sensor -----------------


@asset
def upstream_figures() -> int:
    return 1


@asset
def broken_push(upstream_figures: int) -> int:
    raise ValueError("customer jane@customer.example order 4711 refused")


@asset_check(asset=upstream_figures, blocking=True)
def figures_are_sane() -> AssetCheckResult:
    return AssetCheckResult(passed=False, description="jane@customer.example")


@pytest.fixture
def alert_env(
    receiver: Receiver, mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, object]:
    """The production resources, configured through the environment as in a deployment."""
    from acs_khaos_dagster.defs.alerts import NotifierResource
    from acs_khaos_dagster.defs.resources import default_resources

    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    for team, path in (("INTEGRATION", SLACK_INTEGRATION), ("FINANCE", SLACK_FINANCE)):
        monkeypatch.setenv(f"ACS_KHAOS_ALERTS__{team}__SLACK_WEBHOOK_URL", receiver.url(path))
    monkeypatch.setenv("ACS_KHAOS_ALERTS__INTEGRATION__EMAIL_TO", "integration@brand.example")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__SMTP__PORT", str(mailbox.port))
    monkeypatch.setenv("ACS_KHAOS_ALERTS__SMTP__STARTTLS", "false")
    monkeypatch.setenv("ACS_KHAOS_ALERTS__DAGSTER_UI_URL", "http://dagster.internal:3000")
    resources = default_resources()
    return {
        "notifier": NotifierResource(),
        "store": resources["store"],
        "settings": resources["settings"],
    }


def evaluate_run_failure_sensor(result: Any, instance: Any, resources: dict[str, object]) -> None:
    from acs_khaos_dagster.defs.alerts import integration_run_failure_alerts

    with build_run_status_sensor_context(
        sensor_name=integration_run_failure_alerts.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources=resources,
    ) as context:
        integration_run_failure_alerts(context.for_run_failure())


def test_a_failed_run_alerts_the_integration_owner_once(
    dagster_instance: Any, alert_env: dict[str, object], receiver: Receiver, mailbox: Mailbox
) -> None:
    result = materialize(
        [upstream_figures, broken_push], instance=dagster_instance, raise_on_error=False
    )
    assert not result.success

    evaluate_run_failure_sensor(result, dagster_instance, alert_env)
    evaluate_run_failure_sensor(result, dagster_instance, alert_env)  # a re-evaluated tick

    [slack] = receiver.bodies(SLACK_INTEGRATION)
    assert len(mailbox.to("integration@brand.example")) == 1
    everything = json.dumps(slack)
    assert result.dagster_run.run_id in everything
    assert result.dagster_run.job_name in everything
    assert "broken_push (ValueError)" in everything
    assert f"http://dagster.internal:3000/runs/{result.dagster_run.run_id}" in everything
    assert "jane@customer.example" not in everything and "4711" not in everything
    assert receiver.bodies(SLACK_FINANCE) == []


def test_a_failed_blocking_check_alerts_the_integration_owner(
    dagster_instance: Any, alert_env: dict[str, object], receiver: Receiver
) -> None:
    result = materialize(
        [upstream_figures, broken_push, figures_are_sane],
        instance=dagster_instance,
        raise_on_error=False,
    )
    assert not result.success

    evaluate_run_failure_sensor(result, dagster_instance, alert_env)

    [slack] = receiver.bodies(SLACK_INTEGRATION)
    assert slack["text"].startswith("Check failed: blocking check failed in")
    assert "upstream_figures: figures_are_sane" in json.dumps(slack)
    assert "jane@customer.example" not in json.dumps(slack)


def test_the_exception_sensor_sends_each_opening_once(
    alert_env: dict[str, object], receiver: Receiver, dagster_instance: Any
) -> None:
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.defs.alerts import exception_alerts

    with Store.from_settings(load_settings()) as opened:
        open_drift(opened)

    ticks = []
    for _ in range(2):
        with build_sensor_context(instance=dagster_instance, resources=alert_env) as context:
            ticks.append(exception_alerts.evaluate_tick(context))

    assert [tick.run_requests for tick in ticks] == [[], []]
    assert "sent=1" in (ticks[0].skip_message or "")
    assert "sent=0" in (ticks[1].skip_message or "")
    assert len(receiver.bodies(SLACK_FINANCE)) == 1


def test_the_alert_definitions_load_with_the_shared_resources() -> None:
    from acs_khaos_dagster.defs import alerts
    from acs_khaos_dagster.defs.resources import default_resources

    merged = Definitions.merge(alerts.defs, Definitions(resources=default_resources()))
    Definitions.validate_loadable(merged)
    names = {s.name for s in alerts.defs.sensors or []}
    assert names == {"integration_run_failure_alerts", "exception_alerts"}
