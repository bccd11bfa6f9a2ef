"""What a trace is: a ``Trace`` of titled ``Section``s of text rows, and the cell formatting.

Times are shown in UK local time; long errors are cut to ``MAX_ERROR`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

MAX_ERROR = 120  # characters of an effect's last error shown
UK = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Section:
    """One part of the journey: a table (``columns`` × ``rows``) and/or a ``note``."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    note: str = ""

    def column(self, name: str) -> list[str]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


@dataclass(frozen=True)
class Trace:
    kind: str  # order | sku | return
    ref: str
    found: bool
    sections: list[Section]

    def section(self, title: str) -> Section:
        return next(s for s in self.sections if s.title == title)

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.sections]


def _when(value: datetime | None) -> str:
    """UK wall time with its zone (GMT/BST): what the people reading it live in."""
    if value is None:
        return ""
    if value.tzinfo is None:  # the store's times are UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UK).strftime("%Y-%m-%d %H:%M:%S %Z")


def _text(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, datetime | pd.Timestamp):
        return _when(pd.Timestamp(value).to_pydatetime())
    return str(value)


def _short(text: str | None) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _mentions(refs: Iterable[str]) -> re.Pattern[str] | None:
    """A whole-reference match: ``SO1`` must not match inside ``SO10``."""
    refs = [r for r in refs if r]
    if not refs:
        return None
    alternatives = "|".join(re.escape(r) for r in sorted(refs, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
