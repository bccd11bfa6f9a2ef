"""The YAML settings file as a settings source, read so that no error ever repeats its
content, and the error every settings problem is raised as."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import YamlConfigSettingsSource

# The name the settings have always logged under (before the module became a package).
log = logging.getLogger("acs_khaos_dagster.config")


class SettingsError(ValueError):
    """Settings failed validation; the message names every bad field, never a value."""


class SettingsFile(YamlConfigSettingsSource):
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
