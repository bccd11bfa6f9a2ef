"""Tell a team something: Slack / Microsoft Teams incoming webhooks and email (SMTP).

Each owner team (operations, finance, ecommerce, integration) has its own channels. A
webhook URL is a bearer secret (whoever has it can post into the channel), so it is a
``SecretStr`` and never reaches a log line, an exception, a result or the store: errors
are described by status code or exception class, and a logging filter scrubs the URLs
from httpx's own request log. A delivery failure is returned as a result, never raised
into the caller's flow.

The package's modules: ``messages`` (the alert and its Slack / Teams / email renderings),
``sending`` (``Notifier``: delivery, retries, the secret scrubber) and ``settings``
(loading the ``alerts`` settings).
"""

from __future__ import annotations

from acs_khaos_dagster.alerts.notifier.messages import (
    SLACK_HEADER_MAX,
    SLACK_SECTION_MAX,
    Alert,
    AlertKind,
    Channel,
    email_message,
    slack_payload,
    teams_payload,
)
from acs_khaos_dagster.alerts.notifier.sending import (
    RETRY_AFTER_CAP_S,
    SCRUBBER,
    DeliveryResult,
    Notifier,
    open_notifier,
)
from acs_khaos_dagster.alerts.notifier.settings import AlertSettingsError, load_alert_settings
from acs_khaos_dagster.config import (
    SEVERITIES,
    AlertSettings,
    SmtpSettings,
    TeamChannels,
    is_loopback_host,
)

__all__ = [
    "RETRY_AFTER_CAP_S",
    "SCRUBBER",
    "SEVERITIES",
    "SLACK_HEADER_MAX",
    "SLACK_SECTION_MAX",
    "Alert",
    "AlertKind",
    "AlertSettings",
    "AlertSettingsError",
    "Channel",
    "DeliveryResult",
    "Notifier",
    "SmtpSettings",
    "TeamChannels",
    "email_message",
    "is_loopback_host",
    "load_alert_settings",
    "open_notifier",
    "slack_payload",
    "teams_payload",
]
