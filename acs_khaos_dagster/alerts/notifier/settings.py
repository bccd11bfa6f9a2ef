"""The ``alerts`` section of the settings, loaded with an error that names no values.

The settings models themselves live in ``acs_khaos_dagster.config``.
"""

from __future__ import annotations

from pathlib import Path

from acs_khaos_dagster.config import AlertSettings


class AlertSettingsError(ValueError):
    """The alert settings are invalid; the message names the fields, never their values."""


def load_alert_settings(config_file: Path | None = None) -> AlertSettings:
    """The ``alerts`` section of the settings (``ACS_KHAOS_ALERTS__...``, the YAML file)."""
    from acs_khaos_dagster.config import SettingsError, load_settings

    try:
        settings = load_settings(config_file)
    except SettingsError as exc:
        message = str(exc).replace("invalid settings", "invalid alert settings")
        raise AlertSettingsError(message) from None
    return settings.alerts.model_copy(update={"brand": settings.brand})
