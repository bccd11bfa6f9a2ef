"""Where each owner team hears about its problems, and how alerts are delivered."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from acs_khaos_dagster.config.systems import is_loopback_host

OWNER_TEAMS = ("operations", "finance", "ecommerce", "integration")
SEVERITIES = ("low", "medium", "high", "critical")
Severity = Literal["low", "medium", "high", "critical"]
# A team name the settings do not know (a custom owner map) still reaches someone.
FALLBACK_TEAM = "integration"


def _split_addresses(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class TeamChannels(BaseModel):
    """Where one owner team hears about its problems. Any combination; none is allowed."""

    slack_webhook_url: SecretStr | None = None
    teams_webhook_url: SecretStr | None = None
    # Comma-separated or a JSON list in the environment.
    email_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Exceptions below this severity are not announced to this team (run failures always are).
    min_severity: Severity = "low"

    @field_validator("slack_webhook_url", "teams_webhook_url")
    @classmethod
    def _https_only(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never repeats the URL: pydantic would print it back in the error.
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value().strip())
        if parts.scheme == "https" and parts.hostname:
            return SecretStr(value.get_secret_value().strip())
        if parts.scheme == "http" and is_loopback_host(parts.hostname):
            return SecretStr(value.get_secret_value().strip())
        raise ValueError("webhook URL must be https:// (plain http only to a loopback address)")

    @field_validator("email_to", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        return _split_addresses(value)

    @field_validator("email_to")
    @classmethod
    def _plausible(cls, value: list[str]) -> list[str]:
        for position, address in enumerate(value, start=1):
            if "@" not in address or any(ch.isspace() for ch in address):
                raise ValueError(f"entry {position} is not an email address")
        return value

    @property
    def configured(self) -> bool:
        return bool(self.slack_webhook_url or self.teams_webhook_url or self.email_to)


class SmtpSettings(BaseModel):
    """The mail server alerts go out through (shared by all teams)."""

    host: str | None = None
    port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = "acs-khaos-integration@localhost"
    # STARTTLS on a plain connection (port 587); ``ssl`` is implicit TLS (port 465).
    starttls: bool = True
    ssl: bool = False
    timeout_s: float = Field(10.0, gt=0)


class AlertSettings(BaseModel):
    """Alert channels per owner team, the SMTP server, and delivery limits."""

    enabled: bool = True
    operations: TeamChannels = TeamChannels()
    finance: TeamChannels = TeamChannels()
    ecommerce: TeamChannels = TeamChannels()
    integration: TeamChannels = TeamChannels()
    smtp: SmtpSettings = SmtpSettings()
    http_timeout_s: float = Field(10.0, gt=0)
    # Tries within one delivery on 429 / 5xx / connection errors, then the next tick.
    retries: int = Field(2, ge=0, le=5)
    retry_backoff_s: float = Field(0.5, ge=0)
    # Deliveries that keep failing are retried on later ticks, then given up (and logged).
    max_attempts: int = Field(12, ge=1)
    retry_interval_s: float = Field(60.0, ge=0)
    retry_interval_max_s: float = Field(3600.0, ge=0)
    # A sensor tick has 60 s; a slow channel must not eat it all.
    max_sends_per_tick: int = Field(50, ge=1)
    # Links in alerts: the Dagster UI (runs) and the runbook pages (one per exception type).
    dagster_ui_url: str | None = None
    runbook_base_url: str | None = None
    # The installation's brand (the top-level ``brand`` setting, copied in by
    # ``load_alert_settings``): every alert names it, for channels shared across brands.
    brand: str | None = None

    def team(self, owner: str) -> TeamChannels:
        name = str(owner)
        if name in OWNER_TEAMS:
            return getattr(self, name)
        return getattr(self, FALLBACK_TEAM)

    def secrets(self) -> list[str]:
        values = []
        for name in OWNER_TEAMS:
            team: TeamChannels = getattr(self, name)
            for secret in (team.slack_webhook_url, team.teams_webhook_url):
                if secret is not None:
                    values.append(secret.get_secret_value())
        if self.smtp.password is not None:
            values.append(self.smtp.password.get_secret_value())
        return [value for value in values if value]
