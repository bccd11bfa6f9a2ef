"""The one settings model of the integration.

Values come, in rising priority, from the defaults, an optional YAML file
(``ACS_KHAOS_CONFIG_FILE`` or ``--config``), and environment variables with the prefix
``ACS_KHAOS_`` (nested fields with ``__``, for example ``ACS_KHAOS_KHAOS__SITES__SELLING=1``).
Secrets are ``SecretStr`` so they never print; invalid settings fail at start with the
field's name.

The model is split by responsibility; every name is imported from here:

- ``systems``: ACS, Khaos Control, the HTTP clients, the https-unless-loopback rule;
- ``operations``: the flows' settings (products, orders, stock, returns, freshness, the
  outbox, owner targets, retention);
- ``alerts``: owner teams' channels and the mail server;
- ``settings``: ``Settings`` itself, with its cross-field rules;
- ``sources``: the YAML settings file, ``SettingsError``;
- ``loading``: ``load_settings``, ``get_settings`` and ``setting_at_load``.
"""

from __future__ import annotations

from acs_khaos_dagster.config.alerts import (
    FALLBACK_TEAM,
    OWNER_TEAMS,
    SEVERITIES,
    AlertSettings,
    Severity,
    SmtpSettings,
    TeamChannels,
    _split_addresses,
)
from acs_khaos_dagster.config.loading import (
    _SHOWABLE,
    _problem,
    get_settings,
    load_settings,
    setting_at_load,
)
from acs_khaos_dagster.config.operations import (
    _HOST_KEY,
    FreshnessSettings,
    OrderSettings,
    OutboxSettings,
    OwnerTargets,
    ProductSettings,
    RetentionSettings,
    ReturnSettings,
    StockSettings,
)
from acs_khaos_dagster.config.settings import PROJECT_ROOT, UK_TIME_ZONE, Settings, _part
from acs_khaos_dagster.config.sources import (
    _WARNED_READABLE,
    SettingsError,
    SettingsFile,
    _warn_if_readable_by_others,
    log,
)
from acs_khaos_dagster.config.systems import (
    AcsSettings,
    HttpSettings,
    KhaosSettings,
    is_loopback_host,
    require_https_unless_loopback,
)
from acs_khaos_dagster.domain.hire_valuation import HireValuation
from acs_khaos_dagster.domain.layout import KhaosReasons, KhaosSites, KhaosStages
from acs_khaos_dagster.domain.order_release import CourierMap
from acs_khaos_dagster.domain.returns import GradePolicy
from acs_khaos_dagster.domain.shipments import CarrierMap
from acs_khaos_dagster.domain.sla import SlaPolicy, WorkingCalendar
from acs_khaos_dagster.domain.stock_status import StatusPolicy

_SettingsFile = SettingsFile  # its name before the split

__all__ = [
    "FALLBACK_TEAM",
    "OWNER_TEAMS",
    "PROJECT_ROOT",
    "SEVERITIES",
    "UK_TIME_ZONE",
    "_HOST_KEY",
    "_SHOWABLE",
    "_WARNED_READABLE",
    "AcsSettings",
    "AlertSettings",
    "CarrierMap",
    "CourierMap",
    "FreshnessSettings",
    "GradePolicy",
    "HireValuation",
    "HttpSettings",
    "KhaosReasons",
    "KhaosSettings",
    "KhaosSites",
    "KhaosStages",
    "OrderSettings",
    "OutboxSettings",
    "OwnerTargets",
    "ProductSettings",
    "RetentionSettings",
    "ReturnSettings",
    "Settings",
    "SettingsError",
    "SettingsFile",
    "Severity",
    "SlaPolicy",
    "SmtpSettings",
    "StatusPolicy",
    "StockSettings",
    "TeamChannels",
    "WorkingCalendar",
    "_SettingsFile",
    "_part",
    "_problem",
    "_split_addresses",
    "_warn_if_readable_by_others",
    "get_settings",
    "is_loopback_host",
    "load_settings",
    "log",
    "require_https_unless_loopback",
    "setting_at_load",
]
