"""The one settings model of the integration.

Values come, in rising priority, from the defaults below, an optional YAML
file (``ACS_KHAOS_CONFIG_FILE`` or ``--config``), and environment variables
with the prefix ``ACS_KHAOS_`` (nested fields with ``__``, for example
``ACS_KHAOS_KHAOS__SITES__SELLING=1``). Secrets are ``SecretStr`` so they never
print; invalid settings fail at start with the field's name.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from acs_khaos_dagster.domain.hire_valuation import HireValuation
from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites, KhaosStages
from acs_khaos_dagster.domain.order_release import CourierMap
from acs_khaos_dagster.domain.returns import GradePolicy
from acs_khaos_dagster.domain.shipments import CarrierMap
from acs_khaos_dagster.domain.sla import SlaPolicy, WorkingCalendar
from acs_khaos_dagster.domain.stock_status import StatusPolicy

log = logging.getLogger(__name__)

UK_TIME_ZONE = "Europe/London"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A known_hosts key without its host part: "<key type> <base64 key>".
_HOST_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}")


class AcsSettings(BaseModel):
    """The ACS partner API and file drop."""

    base_url: str = "http://127.0.0.1:8701"
    subscription_key: SecretStr = SecretStr("sandbox-acs-key")
    account_code: str = Field("BRAND01", min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")
    # Relative to the data folder unless absolute.
    drop_folder: Path = Path("acs_drop")
    page_size: int = Field(500, ge=1, le=5000)

    # --- how this ACS account writes times (docs/go-live-checklist.md) ---
    # A time with an offset or "Z" is read as written. One without: UK wall-clock time
    # (ACS is a UK warehouse; the same as UTC in winter) unless this says "utc".
    time_without_offset: Literal["uk_local", "utc"] = "uk_local"
    # Dates written dd/mm/yyyy (UK order). Off: such a value is quarantined with its row,
    # the reason naming this setting; never guessed as mm/dd.
    dates_day_first: bool = False

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        return require_https_unless_loopback(value)


class KhaosSettings(BaseModel):
    """The Khaos Control SOAP service."""

    base_url: str = "http://127.0.0.1:8702"
    exe_name: str = Field("KhaosControlWeb", pattern=r"^[A-Za-z0-9_.-]+$")
    username: str = "integration"
    password: SecretStr = SecretStr("sandbox-khaos-password")
    sites: KhaosSites = KhaosSites()
    stages: KhaosStages = KhaosStages()
    export_batch_size: int = Field(100, ge=1, le=100)

    # --- what this install exposes and names (docs/go-live-checklist.md) ---
    # "level": ExportStockStatus carries Level. "available_plus_allocated": it gives only
    # Available and OnOrder; Level is Available + what open invoices at the site allocate.
    stock_level_source: Literal["level", "available_plus_allocated"] = "level"
    # Invoice stages whose invoices allocate stock (not cancelled, not issued).
    allocating_stages: tuple[int, ...] = tuple(range(9, 22))
    # Adjustment reason codes and return reasons (with their processing types).
    reasons: KhaosReasons = KhaosReasons()
    # ExternalRef, GroupRef, AssociatedRef, URN, ConsignmentRef, CourierCode, reason codes.
    reference_max_length: int = Field(50, ge=1, le=255)

    @field_validator("base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        return require_https_unless_loopback(value)

    @property
    def soap_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.exe_name}.exe/soap/IKosWeb"


class HttpSettings(BaseModel):
    """Timeouts and retry limits of the HTTP clients (reads only; writes go via the outbox)."""

    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    max_connections: int = Field(10, ge=1)
    read_retries: int = Field(4, ge=0)
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    verify_tls: bool = True

    @property
    def longest_request_s(self) -> float:
        """The longest one request can be under way once a client starts it: waiting for a
        pooled connection, connecting, writing and reading (httpx gives the pool wait, the
        write and the read each ``read_timeout_s``)."""
        return self.connect_timeout_s + 3 * self.read_timeout_s

    @property
    def longest_read_s(self) -> float:
        """The longest a read with all its retries can take (every attempt runs out its
        timeouts, every backoff waits its cap)."""
        attempts = self.read_retries + 1
        return attempts * self.longest_request_s + self.read_retries * self.backoff_max_s


class OwnerTargets(BaseModel):
    """Hours within which each owner team aims to close its exceptions."""

    operations: float = Field(4.0, gt=0)
    finance: float = Field(24.0, gt=0)
    ecommerce: float = Field(8.0, gt=0)
    integration: float = Field(2.0, gt=0)

    def for_owner(self, owner: str) -> float:
        return float(getattr(self, owner, self.integration))


class ProductSettings(BaseModel):
    # Warn when fewer web-published SKUs than this share are ready for sale at ACS.
    coverage_warn_below: float = Field(0.98, ge=0, le=1)
    # When ``product_sync_schedule`` reads Khaos's SKU master, pushes new and changed SKUs
    # to ACS and refreshes which SKUs are ready for sale (UK time). Order release and the
    # stock push read the latter, so without it nothing is released on a fresh install.
    sync_cron: str = "*/15 * * * *"


class OrderSettings(BaseModel):
    """Order release and despatch feedback."""

    # The seed's "how often outbound orders post to ACS".
    release_interval_s: int = Field(300, ge=15)
    # The despatch sensor only decides whether to start a run; the run posts.
    despatch_sensor_interval_s: int = Field(15, ge=5)
    despatch_page_size: int = Field(200, ge=1, le=5000)


class FreshnessSettings(BaseModel):
    """When each day's data must be in, as cron expressions in UK time (the UI flags a late
    partition; ``defs/freshness.py``)."""

    # ACS drops a stock file every trading morning.
    snapshot_due: str = "0 9 * * 1-6"
    # The nightly reconciliation (02:30) of the day before is done by this time.
    reconciliation_due: str = "0 6 * * *"


class StockSettings(BaseModel):
    """ACS snapshots to Khaos Level (see ARCHITECTURE "Stock arithmetic")."""

    # Plausibility guard against the last accepted snapshot (a truncated file must
    # never zero the website).
    max_total_drop: float = Field(0.10, ge=0, le=1)
    max_sellable_drop: float = Field(0.20, ge=0, le=1)
    max_unknown_share: float = Field(0.02, ge=0, le=1)
    # Above this share of a file's rows quarantined, the snapshot's quality check warns.
    max_quarantine_share: float = Field(0.01, ge=0, le=1)
    # Unexplained differences within both limits are pushed as VARIANCE; above, held
    # for finance to approve.
    variance_tolerance_units: int = Field(2, ge=0)
    variance_tolerance_value: Decimal = Field(Decimal("50.00"), ge=0)
    # A held variance above either limit needs a second finance approver
    # (docs/runbooks/stock_variance_held.md).
    second_approval_units: int = Field(20, ge=0)
    second_approval_value: Decimal = Field(Decimal("500.00"), ge=0)
    max_lines_per_adjustment: int = Field(500, ge=1)
    # batch mode: push the newest snapshot on this schedule (Europe/London).
    batch_cron: str = "0 8-20 * * 1-6"
    sftp_host: str | None = None
    sftp_port: int = 22
    sftp_username: str | None = None
    sftp_password: SecretStr | None = None
    sftp_private_key: SecretStr | None = None
    sftp_folder: str = "/outbound"
    # The SFTP server's host key, pinned: a known_hosts-style "<type> <base64>" line (for
    # example "ssh-ed25519 AAAA..."), or a known_hosts file naming the host. A key that is
    # neither is refused: trusting a key on first use would hand the first connection, and
    # the password with it, to whoever answers first.
    sftp_host_key: str | None = None
    sftp_known_hosts: Path | None = None

    @model_validator(mode="after")
    def _sftp_host_key_pinned(self) -> StockSettings:
        if self.sftp_host and not (self.sftp_host_key or self.sftp_known_hosts):
            raise ValueError(
                "SFTP needs the server's host key pinned: set stock.sftp_host_key "
                "or stock.sftp_known_hosts"
            )
        if self.sftp_host_key is not None and not _HOST_KEY.fullmatch(self.sftp_host_key.strip()):
            raise ValueError(
                "stock.sftp_host_key must be a known_hosts key: '<type> <base64>', "
                "for example 'ssh-ed25519 AAAA...'"
            )
        return self


class ReturnSettings(BaseModel):
    """Returns and refunds."""

    refund_days: int = Field(14, ge=1)
    refund_warn_days: int = Field(3, ge=0)
    # Hire StockID -> the StockID the unit is sold under once ex-hired.
    resale_stock_ids: dict[int, int] = Field(default_factory=dict)
    # The used-garment value an ex-hire move carries (both EXHIRE legs), not the hire
    # item's original cost: a share of CostPrice, or a fixed value per hire StockID.
    ex_hire_value_share: Decimal = Field(Decimal("1"), gt=0, le=1)
    ex_hire_unit_values: dict[int, Decimal] = Field(default_factory=dict)

    @field_validator("ex_hire_unit_values")
    @classmethod
    def _non_negative_values(cls, value: dict[int, Decimal]) -> dict[int, Decimal]:
        bad = sorted(k for k, v in value.items() if v < 0)
        if bad:
            raise ValueError(f"ex-hire unit values cannot be negative (StockIDs {bad})")
        return value


OWNER_TEAMS = ("operations", "finance", "ecommerce", "integration")
SEVERITIES = ("low", "medium", "high", "critical")
Severity = Literal["low", "medium", "high", "critical"]
# A team name the settings do not know (a custom owner map) still reaches someone.
FALLBACK_TEAM = "integration"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_https_unless_loopback(value: str) -> str:
    """An API base URL: ``https://``, or plain ``http://`` to a loopback address (the sandbox).

    Over plain HTTP the ACS subscription key and the Khaos password would cross the network
    in clear. The message never repeats the URL (pydantic would print it back).
    """
    parts = urlsplit(value.strip())
    if parts.scheme == "https" and parts.hostname:
        return value.strip()
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return value.strip()
    raise ValueError("must be an https:// URL (plain http:// only to a loopback address)")


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


class OutboxSettings(BaseModel):
    max_attempts: int = Field(6, ge=1)
    backoff_initial_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(600.0, ge=0)
    claim_batch: int = Field(50, ge=1)
    # Sends one dispatcher keeps in flight at once, for idempotent effects (ACS PUTs); the
    # others, and effects of one business key, go one after another. Stay within
    # ``http.max_connections``.
    concurrency: int = Field(8, ge=1)
    # After an ambiguous failure (a timeout, a reset, a gateway 5xx) the request may still be
    # applied by the target a while later: the read-back that decides whether to send again
    # waits at least this long, or it could miss the late apply and send twice.
    read_back_after_s: float = Field(30.0, ge=0)
    # A claim lasts ``lease_s`` after its last renewal. A live dispatcher renews every claim
    # it holds each ``heartbeat_s`` (one statement for the whole batch, so ``claim_batch``
    # does not bear on expiry) and again right before each send; only an expired claim can
    # be recovered by another dispatcher. See docs/outbox.md.
    lease_s: float = Field(900.0, gt=0)
    heartbeat_s: float = Field(60.0, gt=0)
    # ``outbox_due_sensor`` looks for due effects this often and starts a dispatch run.
    due_sensor_interval_s: int = Field(30, ge=5)
    # The integration owner is alerted when the oldest due effect has waited this long.
    due_alert_after_s: float = Field(1800.0, gt=0)
    # A refusal for the target's rate limit or call quota (429, a gateway's 403 with
    # Retry-After) is not a failure: the effect is sent again exactly when the target said
    # and the refusal never counts toward ``max_attempts``. A longer ``Retry-After`` is cut
    # to ``rate_limit_wait_max_s`` (the target is simply asked again then); a refusal naming
    # no wait waits about as long as the effect has been refused so far, between
    # ``backoff_initial_s`` and that cap.
    rate_limit_wait_max_s: float = Field(900.0, gt=0)
    # An effect refused for the rate limit without a break for longer than this opens an
    # ``effect_rate_limited`` exception for the integration owner; it closes once the
    # effect gets through.
    rate_limit_alert_after_s: float = Field(3600.0, gt=0)


class RetentionSettings(BaseModel):
    """How long the store keeps customers' personal data in what it has sent, and how long
    the data folder keeps each ACS stock snapshot's files."""

    # After this many days, names, emails, phones, addresses and comments are blanked in
    # the stored bodies of finished order releases and of effects already done (see
    # ``store.retention``). The order numbers, lines and hashes stay, so the audit trail
    # and reconciliation still hold.
    personal_data_days: int = Field(90, ge=1)
    # A stock snapshot's files (every unit, and what placing and pushing it kept) are
    # removed once it is this many days older than the newest snapshot, unless something
    # still needs them (``flows.snapshot_retention``, docs/store-archiving.md): the newest
    # and the last pushed snapshot, one the hire lifecycle has not folded yet, and the
    # per-status counts of each day's snapshot until its month's final pack is built. 35
    # days lets any day of the last month be re-run from its own files.
    snapshot_days: int = Field(35, ge=1)


class Settings(BaseSettings):
    """Everything the integration needs to run. See README "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix="ACS_KHAOS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    # The brand this installation (code location) serves, when one Dagster deployment runs
    # several (deploy/README.md "Several brands"): its asset keys are prefixed with it, its
    # runs tagged with it, its API pools named after it. None: one brand, unprefixed keys.
    brand: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,29}$")
    data_dir: Path = Path("data")
    # Sandbox and replay only: read "now" from this URL (GET -> {"now": ISO-8601}) instead
    # of the system clock, so the integration and the simulators agree on the time.
    clock_url: str | None = None
    database_url: SecretStr | None = None
    time_zone: str = UK_TIME_ZONE
    acs: AcsSettings = AcsSettings()
    khaos: KhaosSettings = KhaosSettings()
    http: HttpSettings = HttpSettings()
    outbox: OutboxSettings = OutboxSettings()
    owner_targets: OwnerTargets = OwnerTargets()
    products: ProductSettings = ProductSettings()
    orders: OrderSettings = OrderSettings()
    stock: StockSettings = StockSettings()
    returns: ReturnSettings = ReturnSettings()
    # Hire units: valuation basis (cost, or cost less a per-rental depreciation with a
    # floor) for the pack and hire write-offs; days of grace before a hire is overdue.
    hire: HireValuation = HireValuation()
    grade_policy: GradePolicy = GradePolicy()
    alerts: AlertSettings = AlertSettings()
    status_policy: StatusPolicy = StatusPolicy()
    # Khaos courier code -> ACS delivery agent/service (orders out), and back (despatches in).
    couriers: CourierMap = CourierMap()
    carriers: CarrierMap = CarrierMap()
    # ACS's contracted working days and bank holidays (GB/SCT at Eurocentral; GB/ENG for a
    # warehouse in England), and the despatch SLA per service level.
    working_calendar: WorkingCalendar = WorkingCalendar()
    freshness: FreshnessSettings = FreshnessSettings()
    sla: SlaPolicy = SlaPolicy()
    # The brand's finance calendar: the month-end pack is built on its first working day.
    finance_calendar: WorkingCalendar = WorkingCalendar(holiday_subdivision="ENG")
    sync_mode: Literal["realtime", "batch"] = "batch"
    retention: RetentionSettings = RetentionSettings()

    @model_validator(mode="before")
    @classmethod
    def _install_reasons_into_the_grade_policy(cls, data: Any) -> Any:
        # Before the grade policy validates its rules: it may name only the return
        # reasons the Khaos install has (``khaos.reasons.return_reasons``).
        if not isinstance(data, dict):
            return data
        reasons = _part(_part(data.get("khaos"), "reasons"), "return_reasons")
        if reasons is None:
            return data
        policy = _part(data, "grade_policy") or {}
        if isinstance(policy, BaseModel):
            policy = policy.model_dump()
        return {**data, "grade_policy": {**policy, "return_reasons": reasons}}

    @model_validator(mode="after")
    def _grade_policy_uses_the_install_reasons(self) -> Settings:
        # The grade policy may only name return reasons the Khaos install has, and learns
        # from it which of them return to stock and which write off.
        reasons = self.khaos.reasons.return_reasons
        if self.grade_policy.return_reasons != reasons:
            self.grade_policy = GradePolicy.model_validate(
                {**self.grade_policy.model_dump(), "return_reasons": reasons}
            )
        return self

    @model_validator(mode="after")
    def _a_brand_has_its_own_data_folder(self) -> Settings:
        # Two brands left on the default folder would share one store and one drop folder.
        if self.brand and "data_dir" not in self.model_fields_set:
            self.data_dir = Path("data") / self.brand
        return self

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):
            raise ValueError("not a known IANA time zone (for example Europe/London)") from None
        return value

    @model_validator(mode="after")
    def _claims_outlive_their_work(self) -> Settings:
        """A claim must not expire while its dispatcher is alive and working on it."""
        outbox, http = self.outbox, self.http
        problems = []
        if outbox.lease_s < 3 * outbox.heartbeat_s:
            problems.append(
                f"outbox.lease_s ({outbox.lease_s:g} s) must be at least 3 x "
                f"outbox.heartbeat_s ({outbox.heartbeat_s:g} s): a claim has to survive two "
                "missed renewals"
            )
        talk = http.longest_read_s + http.longest_request_s
        if outbox.lease_s < talk:
            problems.append(
                f"outbox.lease_s ({outbox.lease_s:g} s) must cover the longest read-back and "
                f"send, {talk:g} s from http.connect_timeout_s, http.read_timeout_s, "
                "http.read_retries and http.backoff_max_s"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'integration.sqlite').resolve()}"

    @property
    def drop_folder(self) -> Path:
        folder = self.acs.drop_folder
        return folder if folder.is_absolute() else self.data_dir / folder

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        # The file is named by the environment only (or the CLI's --config, which sets it):
        # never by Dagster run config, so a UI user cannot make the integration read a file.
        config_file = os.environ.get("ACS_KHAOS_CONFIG_FILE")
        if config_file:
            sources.append(_SettingsFile(settings_cls, yaml_file=config_file))
        return (*sources, file_secret_settings)


def _part(value: Any, name: str) -> Any:
    """``value[name]`` of a settings source: a dict, a model or JSON text (None if absent)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, BaseModel):
        return getattr(value, name, None)
    if isinstance(value, dict):
        part = value.get(name)
        return json.loads(part) if isinstance(part, str) and part.startswith("{") else part
    return None


class SettingsError(ValueError):
    """Settings failed validation; the message names every bad field, never a value."""


class _SettingsFile(YamlConfigSettingsSource):
    """The YAML settings file, read so that no error ever repeats the file's content.

    A missing file is an error (pydantic-settings would silently skip it); a parse error
    names only the line and column (PyYAML's message can quote the offending text); a
    file that is not a mapping of settings says so without showing what it holds.
    """

    def _existing_files(self, files: Any) -> list[Path]:
        path = Path(str(files)).expanduser()
        if not path.is_file():
            raise SettingsError(f"settings file {path} (ACS_KHAOS_CONFIG_FILE) is not a file")
        return [path]

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        # Errors are raised after the ``except`` block, so that neither PyYAML's nor the
        # OS's exception travels on as the ``__context__`` of ours (Dagster prints both).
        problem: str | None = None
        try:
            with open(file_path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = f"is not valid YAML{where}"
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"cannot be read ({type(exc).__name__})"
        if problem is None and data is not None and not isinstance(data, dict):
            problem = "must hold a mapping of settings at the top level"
        if problem is not None:
            raise SettingsError(f"settings file {file_path} {problem}")
        _warn_if_readable_by_others(Path(file_path))
        return data or {}


_WARNED_READABLE: set[str] = set()


def _warn_if_readable_by_others(path: Path) -> None:
    """A settings file may hold secrets (webhooks, passwords): say so once if others can read it."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and str(path) not in _WARNED_READABLE:
        _WARNED_READABLE.add(str(path))
        log.warning(
            "settings file %s is readable by other users (mode %04o): it may hold secrets; "
            "chmod 600 it",
            path,
            mode,
        )


# A location part that can be shown: a field name of the model (or a list index). Anything
# else came from the input (an unknown key, a dict key) and may be any text of the file.
_SHOWABLE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _problem(err: Any) -> str:
    """One validation error as text: the field's path and pydantic's message, no input.

    pydantic puts the offending input in ``input`` and, for unknown keys and dict keys, in
    ``loc``: neither is repeated, so a file that is not a settings file (``/etc/shadow``)
    or a value holding a secret never reaches a log or a Dagster event.
    """
    loc = list(err.get("loc", ()))
    unknown = err.get("type") == "extra_forbidden"
    if unknown and loc:
        loc = loc[:-1]
    shown: list[str] = []
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and _SHOWABLE.fullmatch(part)):
            shown.append(str(part))
        else:
            shown.append("<key>")
    where = ".".join(shown) or "settings"
    if unknown:
        return f"{where}: an unknown setting (its name is not repeated here; see README)"
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str) and len(value) >= 3:
        message = message.replace(repr(value), "<value>").replace(value, "<value>")
    return f"{where}: {message}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings, turning pydantic's error into one readable message."""
    if config_file is not None:
        os.environ["ACS_KHAOS_CONFIG_FILE"] = str(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
    # Raised here, outside the ``except``: pydantic's error (which holds the input) must not
    # ride along as the ``__context__`` that Dagster and tracebacks print.
    raise SettingsError(f"invalid settings: {problems}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
