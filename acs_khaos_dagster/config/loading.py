"""Building the settings: ``load_settings`` turns pydantic's errors into one message that
names every bad field and never repeats a value."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from acs_khaos_dagster.config.settings import Settings
from acs_khaos_dagster.config.sources import SettingsError

# A location part that can be shown: a field name of the model (or a list index). Anything
# else came from the input (an unknown key, a dict key) and may be any text of the file.
_SHOWABLE = re.compile(r"[a-z][a-z0-9_]{0,63}")
T = TypeVar("T")


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


def setting_at_load(read: Callable[[Settings], T], default: T) -> T:
    """A setting read outside a run: when the code location loads (a schedule's cron, a
    sensor's interval, a freshness deadline) or on a schedule's tick. ``default`` when the
    settings are invalid: the location still loads and ticks, and every run then fails
    with the bad field named."""
    try:
        return read(load_settings())
    except SettingsError:
        return default
