"""``Settings``: everything the integration needs to run, one validated model (README
"Configuration"), from its parts in the sibling modules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from acs_khaos_dagster.config.alerts import AlertSettings
from acs_khaos_dagster.config.operations import (
    FreshnessSettings,
    OrderSettings,
    OutboxSettings,
    OwnerTargets,
    ProductSettings,
    RetentionSettings,
    ReturnSettings,
    StockSettings,
)
from acs_khaos_dagster.config.sources import SettingsFile
from acs_khaos_dagster.config.systems import AcsSettings, HttpSettings, KhaosSettings
from acs_khaos_dagster.domain.hire_valuation import HireValuation
from acs_khaos_dagster.domain.order_release import CourierMap
from acs_khaos_dagster.domain.returns import GradePolicy
from acs_khaos_dagster.domain.shipments import CarrierMap
from acs_khaos_dagster.domain.sla import SlaPolicy, WorkingCalendar
from acs_khaos_dagster.domain.stock_status import StatusPolicy

UK_TIME_ZONE = "Europe/London"
# The repository's root (this file is acs_khaos_dagster/config/settings.py).
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


# The report folders the webserver serves at /files/ (report_files.py).
RESERVED_BRAND_CODES = frozenset({"month_end", "audit", "overview", "products"})


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

    @field_validator("brand")
    @classmethod
    def _a_brand_is_not_named_like_a_report_folder(cls, value: str | None) -> str | None:
        # The webserver serves a brand's reports at /files/<brand>/...: a brand named like a
        # report folder (/files/audit/...) would have links that open nothing.
        if value in RESERVED_BRAND_CODES:
            raise ValueError(f"a brand may not be named any of {sorted(RESERVED_BRAND_CODES)}")
        return value

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
            sources.append(SettingsFile(settings_cls, yaml_file=config_file))
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
