"""Sending: the ``Notifier`` posts to webhooks and SMTP, retries, never raises.

Webhook URLs are bearer secrets: ``SCRUBBER`` (a logging filter on httpx, httpcore and this
module's logger) replaces them in log records.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
from pydantic import SecretStr

from acs_khaos_dagster.alerts.notifier.messages import (
    Alert,
    Channel,
    email_message,
    slack_payload,
    teams_payload,
)
from acs_khaos_dagster.alerts.notifier.settings import load_alert_settings
from acs_khaos_dagster.config import (
    SEVERITIES,
    AlertSettings,
    is_loopback_host,
)

log = logging.getLogger(__name__)
RETRY_AFTER_CAP_S = 10.0


# -- scrubbing secrets out of logs -------------------------------------------------------


class _SecretScrubber(logging.Filter):
    """Replaces known secrets in log records (httpx logs every request's full URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            for variant in _variants(value):
                if len(variant) >= 8:
                    self.secrets.add(variant)

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "[secret]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg = scrubbed
            record.args = None
        return True


def _variants(value: str) -> set[str]:
    found = {value}
    try:
        url = httpx.URL(value)
    except Exception:
        return found
    found.add(str(url))
    tail = url.raw_path.decode("ascii", "replace")
    if tail.strip("/"):
        found.add(tail)
    return found


SCRUBBER = _SecretScrubber()
for _name in ("httpx", "httpcore", __name__, "acs_khaos_dagster.alerts"):
    logging.getLogger(_name).addFilter(SCRUBBER)


# -- delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    channel: Channel
    owner: str
    ok: bool
    attempts: int = 0
    status_code: int | None = None
    # Never the URL or a server's echo of it: a status code or an exception class.
    error: str | None = None
    # True when trying again later cannot help (bad URL, refused login, not configured).
    permanent: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


class _Retryable(Exception):
    def __init__(self, error: str, status_code: int | None = None, wait_s: float = 0) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.wait_s = wait_s


class Notifier:
    """Posts alerts to an owner team's channels. ``notify`` never raises."""

    def __init__(
        self,
        settings: AlertSettings,
        *,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._own_http = http is None
        # TLS verification stays on; redirects are not followed (a webhook that redirects
        # is misconfigured, and following it would hand the body to another host).
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(settings.http_timeout_s),
            verify=True,
            follow_redirects=False,
            headers={"User-Agent": "acs-khaos-dagster-alerts"},
        )
        self._sleep = sleep
        SCRUBBER.add(settings.secrets())

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what goes where -----------------------------------------------------------------

    def channels_for(self, owner: str) -> list[Channel]:
        if not self.settings.enabled:
            return []
        team = self.settings.team(owner)
        channels = []
        if team.slack_webhook_url is not None:
            channels.append(Channel.SLACK)
        if team.teams_webhook_url is not None:
            channels.append(Channel.TEAMS)
        if team.email_to:
            channels.append(Channel.EMAIL)
        return channels

    def wants(self, owner: str, severity: str) -> bool:
        """Whether the team asked to hear about problems of this severity."""
        threshold = self.settings.team(owner).min_severity
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1
        return rank >= SEVERITIES.index(threshold)

    def notify(self, owner: str, alert: Alert) -> list[DeliveryResult]:
        """Send ``alert`` to every channel of ``owner``; one result per channel."""
        channels = self.channels_for(owner)
        if not channels:
            log.warning("no alert channel configured for team %s; alert dropped", owner)
        return [self.send(owner, channel, alert) for channel in channels]

    def send(self, owner: str, channel: Channel | str, alert: Alert) -> DeliveryResult:
        channel = Channel(channel)
        team = self.settings.team(owner)
        alert = alert.for_brand(self.settings.brand)
        try:
            if channel is Channel.SLACK and team.slack_webhook_url is not None:
                result = self._post(owner, channel, team.slack_webhook_url, slack_payload(alert))
            elif channel is Channel.TEAMS and team.teams_webhook_url is not None:
                result = self._post(owner, channel, team.teams_webhook_url, teams_payload(alert))
            elif channel is Channel.EMAIL and team.email_to:
                result = self._email(owner, team.email_to, alert)
            else:
                result = DeliveryResult(
                    channel, owner, ok=False, error="channel not configured", permanent=True
                )
        except Exception as exc:  # a bug here must not break the caller's flow
            result = DeliveryResult(channel, owner, ok=False, error=type(exc).__name__)
        if result.ok:
            log.info("alert %s sent to %s via %s", alert.kind, owner, channel)
        else:
            log.warning(
                "alert %s to %s via %s failed after %d attempt(s): %s",
                alert.kind,
                owner,
                channel,
                result.attempts,
                SCRUBBER.scrub(result.error or "unknown error"),
            )
        return result

    def _with_retries(
        self, owner: str, channel: Channel, attempt: Callable[[], DeliveryResult]
    ) -> DeliveryResult:
        tries = self.settings.retries + 1
        last: _Retryable | None = None
        for number in range(1, tries + 1):
            try:
                result = attempt()
                return DeliveryResult(
                    result.channel,
                    result.owner,
                    result.ok,
                    number,
                    result.status_code,
                    result.error,
                    result.permanent,
                    result.detail,
                )
            except _Retryable as exc:
                last = exc
                if number < tries:
                    backoff = self.settings.retry_backoff_s * 2 ** (number - 1)
                    self._sleep(min(max(backoff, exc.wait_s), RETRY_AFTER_CAP_S))
        assert last is not None
        return DeliveryResult(
            channel, owner, ok=False, attempts=tries, status_code=last.status_code, error=last.error
        )

    def _post(
        self, owner: str, channel: Channel, url: SecretStr, payload: dict[str, Any]
    ) -> DeliveryResult:
        def attempt() -> DeliveryResult:
            try:
                response = self._http.post(url.get_secret_value(), json=payload)
            except httpx.HTTPError as exc:
                # str(exc) of an httpx error may carry the URL; the class is enough.
                raise _Retryable(type(exc).__name__) from None
            code = response.status_code
            if code == 429 or code >= 500:
                raise _Retryable(f"HTTP {code}", code, _retry_after(response))
            if 200 <= code < 300:
                return DeliveryResult(channel, owner, ok=True, status_code=code)
            # 3xx/4xx: a wrong, revoked or archived webhook; retrying will not help.
            return DeliveryResult(
                channel, owner, ok=False, status_code=code, error=f"HTTP {code}", permanent=True
            )

        return self._with_retries(owner, channel, attempt)

    def _email(self, owner: str, recipients: list[str], alert: Alert) -> DeliveryResult:
        smtp = self.settings.smtp
        if not smtp.host:
            return DeliveryResult(
                Channel.EMAIL, owner, ok=False, error="SMTP host not configured", permanent=True
            )
        if smtp.username and not (smtp.starttls or smtp.ssl) and not is_loopback_host(smtp.host):
            return DeliveryResult(
                Channel.EMAIL,
                owner,
                ok=False,
                error="refusing to send the SMTP password over an unencrypted connection",
                permanent=True,
            )
        message = email_message(alert, smtp.from_address, recipients)

        def attempt() -> DeliveryResult:
            try:
                refused = self._smtp_send(message)
            except smtplib.SMTPAuthenticationError as exc:
                return DeliveryResult(
                    Channel.EMAIL,
                    owner,
                    ok=False,
                    status_code=exc.smtp_code,
                    error=f"SMTP login refused ({exc.smtp_code})",
                    permanent=True,
                )
            except smtplib.SMTPRecipientsRefused:
                return DeliveryResult(
                    Channel.EMAIL,
                    owner,
                    ok=False,
                    error="all recipients refused",
                    permanent=True,
                )
            except smtplib.SMTPResponseException as exc:
                if 400 <= exc.smtp_code < 500:
                    raise _Retryable(f"SMTP {exc.smtp_code}", exc.smtp_code) from None
                return DeliveryResult(
                    Channel.EMAIL,
                    owner,
                    ok=False,
                    status_code=exc.smtp_code,
                    error=f"SMTP {exc.smtp_code}",
                    permanent=True,
                )
            except (smtplib.SMTPException, OSError) as exc:
                raise _Retryable(type(exc).__name__) from None
            return DeliveryResult(
                Channel.EMAIL,
                owner,
                ok=True,
                detail={"refused": sorted(refused)} if refused else {},
            )

        return self._with_retries(owner, Channel.EMAIL, attempt)

    def _smtp_send(self, message: EmailMessage) -> dict[str, Any]:
        smtp = self.settings.smtp
        assert smtp.host is not None
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if smtp.ssl:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.starttls and not smtp.ssl:
                client.starttls(context=context)
            if smtp.username:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.username, password)
            return dict(client.send_message(message))


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


@contextmanager
def open_notifier(settings: AlertSettings | None = None) -> Iterator[Notifier]:
    with Notifier(settings or load_alert_settings()) as notifier:
        yield notifier
