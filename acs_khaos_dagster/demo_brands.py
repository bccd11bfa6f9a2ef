"""``acs-khaos demo --brands N``: N generated brands, each its own world, on one instance.

Each brand gets a settings file of its own (``<data>/brands/settings/<code>.yaml``: its
brand code, data folder and ACS account) and runs the one-brand demo in a process of its
own, as its code location would: its own simulators, store and drop folder, the runs on
the one local Dagster instance (``DAGSTER_HOME``) tagged with its brand and its asset keys
under ``<code>/``. Then ``acs-khaos overview`` shows every brand side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from acs_khaos_dagster.config import Settings

MAX_BRANDS = 6


def brand_codes(count: int) -> list[str]:
    return [f"brand_{chr(ord('a') + n)}" for n in range(count)]


def write_brand_settings(settings: Settings, count: int) -> Path:
    """The brands folder of the demo: one settings file per generated brand."""
    root = (settings.data_dir / "brands").resolve()
    folder = root / "settings"
    folder.mkdir(parents=True, exist_ok=True)
    for number, code in enumerate(brand_codes(count), start=1):
        file = folder / f"{code}.yaml"
        file.write_text(
            f"brand: {code}\ndata_dir: {root / code}\nacs:\n  account_code: BRAND{number:02d}\n",
            encoding="utf-8",
        )
        file.chmod(0o600)
    return folder


def run_brands_demo(
    settings: Settings, *, brands: int, size: str, seed: int, console: Console
) -> int:
    """Each brand's demo in turn (the embedded instance is SQLite: one writer at a time),
    then the overview of them all; returns the process exit code."""
    if not 1 <= brands <= MAX_BRANDS:
        console.print(f"[red]--brands must be 1 to {MAX_BRANDS}[/red]")
        return 2
    folder = write_brand_settings(settings, brands)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    cli = [sys.executable, "-m", "acs_khaos_dagster.cli"]
    for offset, code in enumerate(brand_codes(brands)):
        console.rule(f"brand {code}")
        brand_env = {**env, "ACS_KHAOS_CONFIG_FILE": str(folder / f"{code}.yaml")}
        # Another seed per brand: another world (orders, parcels, stock) for each.
        command = [*cli, "demo", "--size", size, "--seed", str(seed + offset)]
        if subprocess.run(command, env=brand_env, check=False).returncode != 0:
            console.print(f"[red]the demo of brand {code} failed[/red]")
            return 1
    console.rule("every brand")
    overview = subprocess.run([*cli, "overview", "--brands-dir", str(folder)], env=env)
    console.print(
        f"brand settings: {folder}; in the UI (make dev) filter runs by the tag brand=<code>"
    )
    return overview.returncode
