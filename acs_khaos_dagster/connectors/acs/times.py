"""How ACS writes times, and reading them as instants (UTC).

ACS publishes no spec, and accounts differ. A time with an offset (``+01:00``) or ``Z``
means what it says. One without names a wall-clock time, read in the zone
``acs.time_without_offset`` says: ``uk_local`` (the default: ACS is a UK warehouse, and
in winter it is the same as UTC) or ``utc``. In October's repeated hour a UK wall-clock
time is read as its first occurrence (BST); in March's missing hour with the offset
before the change (01:30 is 01:30 UTC).

``dd/mm/yyyy`` (with or without ``HH:MM[:SS]``) is read day first only when
``acs.dates_day_first`` is on; otherwise such a value is refused with a message naming
the setting (a file row is quarantined with that reason), never guessed as mm/dd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

UK = ZoneInfo("Europe/London")
NaiveZone = Literal["uk_local", "utc"]

DAY_FIRST = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
DAY_FIRST_SHAPE = r"^\d{1,2}/\d{1,2}/\d{4}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?$"
DAY_FIRST_ADVICE = "written dd/mm/yyyy: set acs.dates_day_first if ACS writes dates day first"


@dataclass(frozen=True)
class AcsTimeRules:
    time_without_offset: NaiveZone = "uk_local"
    dates_day_first: bool = False

    @classmethod
    def from_settings(cls, settings: object) -> AcsTimeRules:
        acs = settings.acs  # type: ignore[attr-defined]
        return cls(acs.time_without_offset, acs.dates_day_first)

    @property
    def zone(self) -> ZoneInfo:
        return UK if self.time_without_offset == "uk_local" else ZoneInfo("UTC")

    def parse(self, value: str) -> datetime:
        """One timestamp as an aware UTC instant; ``ValueError`` if it cannot be read."""
        text = value.strip()
        match = DAY_FIRST.match(text)
        if match:
            if not self.dates_day_first:
                raise ValueError(f"{text!r} is {DAY_FIRST_ADVICE}")
            day, month, year, hour, minute, second = (int(g) if g else 0 for g in match.groups())
            parsed = datetime(year, month, day, hour, minute, second)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=self.zone, fold=0)
        return parsed.astimezone(UTC)

    def localise(self, naive: pd.Series) -> pd.Series:
        """Naive wall-clock times (datetime64) as UTC, by the rules in the module doc."""
        if self.time_without_offset == "utc":
            return naive.dt.tz_localize("UTC")
        return naive.dt.tz_localize(
            UK, ambiguous=np.ones(len(naive), dtype=bool), nonexistent=pd.Timedelta(hours=1)
        ).dt.tz_convert("UTC")

    def day_first(self, values: pd.Series) -> pd.Series:
        """``dd/mm/yyyy[ HH:MM[:SS]]`` values as naive datetimes (NaT where unreadable)."""
        parts = values.str.extract(DAY_FIRST.pattern)
        frame = pd.DataFrame(
            {
                "year": pd.to_numeric(parts[2]),
                "month": pd.to_numeric(parts[1]),
                "day": pd.to_numeric(parts[0]),
                "hour": pd.to_numeric(parts[3]).fillna(0),
                "minute": pd.to_numeric(parts[4]).fillna(0),
                "second": pd.to_numeric(parts[5]).fillna(0),
            }
        )
        return pd.to_datetime(frame, errors="coerce")


DEFAULT_TIME_RULES = AcsTimeRules()
