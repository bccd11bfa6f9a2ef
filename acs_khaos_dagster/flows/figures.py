"""What a flow says about its run, in values the Dagster UI shows, without importing Dagster.

A flow's result hands ``defs/`` a mapping of figures: a number is plotted across
materialisations, a string is shown as text (settings, ids: never plotted), a
``Markdown`` is a table, a ``FileLink`` a report the UI opens. An asset check's rule
returns a ``Verdict``. ``dagster_kit/results.py`` turns both into Dagster's metadata and check
results, so the flow and its tests never see Dagster.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.report_files import report_url
from acs_khaos_dagster.store import DispatchReport

Figures = dict[str, Any]


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class FileLink:
    """A report file: its ``/files/`` URL when the webserver serves it, else its path."""

    path: Path
    url: str | None


@dataclass(frozen=True)
class Verdict:
    """An asset check's answer. ``warn`` checks flag without failing the run's health."""

    passed: bool
    figures: Figures = field(default_factory=dict)
    warn: bool = False
    # Shown beside this result (the check's own description is fixed when defined).
    description: str | None = None


def table(frame: pd.DataFrame, limit: int = 20) -> Markdown:
    """The first ``limit`` rows of ``frame`` as a Markdown table (``_none_`` when empty)."""
    if frame.empty:
        return Markdown("_none_")
    return Markdown(frame.head(limit).to_markdown(index=False))


def bullets(items: Iterable[object], limit: int | None = 20) -> Markdown:
    """The first ``limit`` items (all with None) as a Markdown list, ``_none_`` if none."""
    return Markdown("\n".join(f"- {item}" for item in islice(items, limit)) or "_none_")


def dispatch_figures(report: DispatchReport, prefix: str = "") -> dict[str, int]:
    """Effects per outcome of a dispatch pass (``effects_sent``, ...), in outcome order."""
    outcomes = sorted(report.outcomes.items())
    return {f"{prefix}effects_{outcome}": count for outcome, count in outcomes}


def file_link(conf: Settings, path: Path) -> FileLink:
    return FileLink(path, report_url(conf.data_dir, path, conf.brand))


def setting(value: float, name: str) -> str:
    """A threshold as text, so the UI does not plot a setting as if it were measured."""
    return f"{value:.0%} ({name})"
