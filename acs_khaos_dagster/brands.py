"""Brands: the brand code of this installation, and a folder of brands' settings.

``brand_code`` is the code location's brand (``dagster_kit/brand.py`` prefixes its keys with it and
names its API pools after it, ``pool_for``).

Each brand served by one deployment has ``<folder>/<code>.yaml`` (its settings, naming
``brand: <code>``) and, optionally, ``<folder>/<code>.env`` (its secrets as ``KEY=VALUE``
lines, the file its code server's unit reads). ``acs-khaos overview`` reads every brand of
the folder; ``acs-khaos --brand CODE ...`` runs any other command as that brand.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from acs_khaos_dagster.config import Settings, SettingsError, load_settings

BRANDS_DIR_VARIABLE = "ACS_KHAOS_BRANDS_DIR"
DEFAULT_BRANDS_DIR = Path("/etc/acs-khaos/brands")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,29}")
# The external APIs each brand reaches with its own account: one pool per brand and API.
API_POOLS = ("acs_api", "khaos_api")
# Deployment-wide variables a brand's settings never come from.
_KEPT = {BRANDS_DIR_VARIABLE, "ACS_KHAOS_AUTOMATION", "ACS_KHAOS_LOG_LEVEL"}


BRAND_TAG = "brand"


def brand_tags() -> dict[str, str]:
    """Run tags that narrow an instance-wide run lookup to this code location's brand."""
    brand = brand_code()
    return {BRAND_TAG: brand} if brand else {}


def is_brand_code(value: str) -> bool:
    """A brand code: usable as an asset key prefix, a tag value and a pool name."""
    return bool(_CODE.fullmatch(value))


def brand_code() -> str | None:
    """The brand of this code location, from its settings (``brand``)."""
    try:
        return load_settings().brand
    except SettingsError:
        # Runs fail on the bad setting, naming it; the location still loads under its own
        # brand so that it never shows (or runs) another brand's keys.
        return _brand_named_in_raw_settings()


def _brand_named_in_raw_settings() -> str | None:
    """The brand the raw environment or settings file names, when the settings as a whole
    are invalid. A brand named but unusable, or a settings file that cannot be read, stops
    the location loading: under no brand it would show (and run) unprefixed keys and share
    pools and freshness with every other such location."""
    value: Any = os.environ.get("ACS_KHAOS_BRAND")
    file = os.environ.get("ACS_KHAOS_CONFIG_FILE")
    if value is None and file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BrandError(
                f"settings file {file} cannot be read ({type(exc).__name__}): "
                "the code location does not load without knowing its brand"
            ) from None
        value = _brand_line(text)
    if value is None:
        return None
    if isinstance(value, str) and is_brand_code(value):
        return value
    raise BrandError("the brand setting is not a brand code (lower-case letters, digits, _)")


def _brand_line(text: str) -> Any:
    """``brand:`` of a settings file, even one whose YAML is broken elsewhere."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        found = re.search(r"^brand:[ \t]*([^\s#]+)", text, re.MULTILINE)
        return found.group(1).strip("'\"") if found else None
    return data.get("brand") if isinstance(data, dict) else None


def pool_for(pool: str, brand: str | None) -> str:
    """The concurrency pool of ``pool`` (``acs_api``, ``khaos_api``) for ``brand``."""
    return f"{pool}:{brand}" if brand and pool in API_POOLS else pool


class BrandError(SettingsError):
    """A brand is not in the folder, or its files disagree (the message says which)."""


def brands_dir(folder: Path | None = None) -> Path:
    return folder or Path(os.environ.get(BRANDS_DIR_VARIABLE) or DEFAULT_BRANDS_DIR)


def brand_data_dir(file: Path) -> Path | None:
    """The ``data_dir`` a brand's settings file names (None: not named, or unreadable),
    read without the brand's environment (no secret is loaded)."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    value = data.get("data_dir") if isinstance(data, dict) else None
    return Path(value) if isinstance(value, str) and value else None


def demo_brands_dir(data_dir: Path) -> Path:
    """Where ``acs-khaos demo --brands N`` writes its brands' settings (``demo_brands``)."""
    return data_dir.resolve() / "brands" / "settings"


def brands_dir_named() -> bool:
    """Whether a brands folder is named: the variable is set or the default folder exists
    (if not, a command over every brand may fall back to the demo's or to one brand)."""
    return bool(os.environ.get(BRANDS_DIR_VARIABLE)) or DEFAULT_BRANDS_DIR.is_dir()


def brand_codes(folder: Path) -> list[str]:
    """The brands of ``folder``: every ``<code>.yaml`` whose name is a brand code."""
    if not folder.is_dir():
        raise BrandError(f"brands folder {folder} is not a folder ({BRANDS_DIR_VARIABLE})")
    return sorted(p.stem for p in folder.glob("*.yaml") if _CODE.fullmatch(p.stem))


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (systemd ``EnvironmentFile``): comments, blanks, quotes allowed.

    Only ``ACS_KHAOS_*`` keys are taken: the brand's settings and secrets, nothing else."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = type(exc).__name__
    else:
        problem = None
    if problem is not None:
        raise BrandError(f"cannot read {path} ({problem}): run as a user who may read it")
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key.strip()):
            raise BrandError(f"{path}, line {number}: not a KEY=VALUE line")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key.strip().startswith("ACS_KHAOS_"):
            values[key.strip()] = value
    return values


def brand_file(code: str, folder: Path) -> Path:
    if not _CODE.fullmatch(code):
        raise BrandError("a brand code is lower-case letters, digits and _")
    file = folder / f"{code}.yaml"
    if not file.is_file():
        raise BrandError(f"no brand {code}: {file} is not a file")
    return file


def brand_environment_values(file: Path) -> dict[str, str]:
    """The environment a brand's code server has: its settings file, and its secrets from
    the ``.env`` file beside it (if there is one)."""
    secrets = file.with_suffix(".env")
    values = read_env_file(secrets) if secrets.exists() else {}
    return {**values, "ACS_KHAOS_CONFIG_FILE": str(file)}


def _replace_environment(values: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("ACS_KHAOS_") and k not in _KEPT]:
        del os.environ[key]
    os.environ.update(values)


@contextmanager
def brand_environment(file: Path, code: str | None = None) -> Iterator[Settings]:
    """Inside: the process's environment is that of the brand whose settings are ``file``
    alone (no other brand's, nor the process's own ``ACS_KHAOS_*`` values); its validated
    settings are yielded. ``code``: the brand the file must name."""
    values = brand_environment_values(file)
    saved = dict(os.environ)
    try:
        _replace_environment(values)
        yield _checked(file, code, load_settings())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def enter_brand(code: str, folder: Path) -> Settings:
    """Make this process brand ``code``'s for good (the CLI's ``--brand``)."""
    from acs_khaos_dagster.config import get_settings

    file = brand_file(code, folder)
    _replace_environment(brand_environment_values(file))
    get_settings.cache_clear()  # settings read before now were the process's, not the brand's
    return _checked(file, code, load_settings())


def _checked(file: Path, code: str | None, settings: Settings) -> Settings:
    if settings.brand is None or (code is not None and settings.brand != code):
        raise BrandError(
            f"{file} must name its brand (brand: {code or file.stem}); "
            f"it names {settings.brand or 'none'}"
        )
    return settings
