"""The alert and its renderings: a Slack payload, a Teams card, an email message.

Pure: no network. Personal data is redacted and text is cut to each channel's limits.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from typing import Any

from acs_khaos_dagster.alerts.privacy import redact_personal_data

# Slack refuses a header over 150 characters and a section over 3000.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 2900


class AlertKind(StrEnum):
    OPENED = "opened"
    CLOSED = "closed"
    RUN_FAILED = "run_failed"
    CHECK_FAILED = "check_failed"


class Channel(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"
    EMAIL = "email"


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    title: str
    text: str
    exception_type: str | None = None
    entity_ref: str | None = None
    severity: str = "medium"
    link: str | None = None
    # Short label → value pairs shown as fields (owner, seen, job, run id, ...).
    facts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Every alert, however it was built (or read back from the store), goes out without
        # email addresses, phone numbers or postcodes: see alerts/privacy.py.
        for name in ("title", "text", "entity_ref"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, redact_personal_data(value))
        object.__setattr__(
            self,
            "facts",
            tuple((label, redact_personal_data(value)) for label, value in self.facts),
        )

    def for_brand(self, brand: str | None) -> Alert:
        """The alert as a brand's deployment sends it: the brand first in the title and the
        facts, so a channel shared by several brands tells them apart. Unchanged without one."""
        if not brand or self.title.startswith(f"[{brand}] "):
            return self
        facts = (("Brand", brand), *self.facts)
        return replace(self, title=f"[{brand}] {self.title}", facts=facts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["facts"] = [list(pair) for pair in self.facts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        values = dict(data)
        values["kind"] = AlertKind(values["kind"])
        values["facts"] = tuple((str(k), str(v)) for k, v in values.get("facts") or ())
        return cls(**values)


_KIND_LABEL = {
    AlertKind.OPENED: "Opened",
    AlertKind.CLOSED: "Closed",
    AlertKind.RUN_FAILED: "Run failed",
    AlertKind.CHECK_FAILED: "Check failed",
}
_KIND_EMOJI = {
    AlertKind.OPENED: ":rotating_light:",
    AlertKind.CLOSED: ":white_check_mark:",
    AlertKind.RUN_FAILED: ":x:",
    AlertKind.CHECK_FAILED: ":no_entry:",
}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [("Severity", alert.severity)]
    if alert.exception_type:
        facts.append(("Type", alert.exception_type))
    if alert.entity_ref:
        facts.append(("Reference", alert.entity_ref))
    facts.extend(alert.facts)
    return facts


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Block Kit message; ``text`` is the fallback shown in notifications."""
    label = _KIND_LABEL[alert.kind]
    fallback = f"{label}: {alert.title}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _truncate(f"{label}: {alert.title}", SLACK_HEADER_MAX),
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _truncate(
                    f"{_KIND_EMOJI[alert.kind]} {_slack_escape(alert.text)}", SLACK_SECTION_MAX
                ),
            },
        },
        {
            "type": "section",
            # Slack allows at most 10 fields per section.
            "fields": [
                {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"}
                for k, v in _facts(alert)[:10]
            ],
        },
    ]
    if alert.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open"},
                        "url": alert.link,
                    }
                ],
            }
        )
    return {"text": _truncate(fallback, SLACK_SECTION_MAX), "blocks": blocks}


def teams_payload(alert: Alert) -> dict[str, Any]:
    """An Adaptive Card message: what Teams Workflows webhooks (and the old connectors) take."""
    colour = {AlertKind.CLOSED: "Good"}.get(alert.kind, "Attention")
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": f"{_KIND_LABEL[alert.kind]}: {alert.title}",
                "weight": "Bolder",
                "size": "Medium",
                "color": colour,
                "wrap": True,
            },
            {"type": "TextBlock", "text": alert.text, "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": k, "value": v} for k, v in _facts(alert)],
            },
        ],
    }
    if alert.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": alert.link}]
    return {
        "type": "message",
        "summary": f"{_KIND_LABEL[alert.kind]}: {alert.title}",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def email_message(alert: Alert, sender: str, recipients: list[str]) -> EmailMessage:
    label = _KIND_LABEL[alert.kind]
    message = EmailMessage()
    message["Subject"] = _truncate(f"[ACS-Khaos] {label}: {alert.title}", 200)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    lines = [f"{label}: {alert.title}", "", alert.text, ""]
    lines += [f"{k}: {v}" for k, v in _facts(alert)]
    if alert.link:
        lines += ["", alert.link]
    message.set_content("\n".join(lines) + "\n")
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in _facts(alert)
    )
    link = f"<p><a href='{html.escape(alert.link, quote=True)}'>Open</a></p>" if alert.link else ""
    message.add_alternative(
        "<html><body>"
        f"<h2>{html.escape(label)}: {html.escape(alert.title)}</h2>"
        f"<p>{html.escape(alert.text).replace(chr(10), '<br>')}</p>"
        f"<table>{rows}</table>{link}"
        "</body></html>",
        subtype="html",
    )
    return message
