"""Warehouse working time: ACS's contracted working days, hours and bank holidays.

Pure: no Dagster, no I/O. All datetimes in and out are timezone-aware (UTC out).

Working time
------------
A working day is a local (``time_zone``, default Europe/London) date that is one of
``working_weekdays`` (Monday-Friday by default; ACS does not despatch at weekends) and
not a bank holiday of ``holiday_country``/``holiday_subdivision`` (GB/SCT: ACS is at
Eurocentral) from the ``holidays`` package, nor one of ``extra_closed_days``. Working
time on such a day runs from ``day_start`` to ``day_end`` local time (``day_end`` of
00:00 means midnight at the end of the day). Each boundary is turned into an instant
with the zone's rules, so every count is in **real elapsed hours**: an interval that
spans a clock change counts what a clock on the wall of the warehouse measured, and a
24-hour working day is 23 or 25 hours on the day the clocks change. A boundary that
falls in the skipped hour of spring is taken after the gap (``fold=0``, normalised).

Cut-off
-------
``sla_start(acknowledged_at)``: an order acknowledged on a working day strictly before
``cutoff`` (local) starts its clock at the acknowledgement, or at ``day_start`` if it
came before opening; one acknowledged at or after the cut-off, or on a non-working
day, starts at ``day_start`` of the next working day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

_HOUR = 3600.0
_MAX_SCAN_DAYS = 3660  # ten years of calendar: a longer search means no working day exists


class WorkingCalendar(BaseModel):
    """When the warehouse works (configuration; see the module docstring for the rules)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_zone: str = "Europe/London"
    day_start: time = time(8, 0)
    day_end: time = time(18, 0)  # 00:00 = midnight at the end of the day
    cutoff: time = time(14, 0)
    working_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    holiday_country: str | None = "GB"
    holiday_subdivision: str | None = "SCT"
    extra_closed_days: frozenset[date] = frozenset()

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @model_validator(mode="after")
    def _known_holidays(self) -> WorkingCalendar:
        if self.holiday_country is not None:
            try:
                _holidays(self.holiday_country, self.holiday_subdivision, 2026)
            except NotImplementedError as exc:
                raise ValueError(
                    f"unknown bank-holiday calendar {self.holiday_country}/"
                    f"{self.holiday_subdivision} (for the UK: GB with ENG, SCT, WLS or NIR)"
                ) from exc
        return self

    @field_validator("working_weekdays")
    @classmethod
    def _weekdays(cls, value: frozenset[int]) -> frozenset[int]:
        if not value or any(d < 0 or d > 6 for d in value):
            raise ValueError("working_weekdays must be a non-empty set of 0 (Mon) to 6 (Sun)")
        return value

    @model_validator(mode="after")
    def _hours(self) -> WorkingCalendar:
        if self.day_end != time(0, 0) and self.day_end <= self.day_start:
            raise ValueError("day_end must be after day_start (or 00:00 for midnight)")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_working_day(self, day: date) -> bool:
        if day.weekday() not in self.working_weekdays or day in self.extra_closed_days:
            return False
        if self.holiday_country is None:
            return True
        return day not in _holidays(self.holiday_country, self.holiday_subdivision, day.year)

    def working_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC instants the warehouse opens and closes on local ``day``, or ``None``."""
        if not self.is_working_day(day):
            return None
        start = _instant(day, self.day_start, self.tz)
        end_day = day + timedelta(days=1) if self.day_end == time(0, 0) else day
        end = _instant(end_day, self.day_end, self.tz)
        return (start, end) if end > start else None


@lru_cache(maxsize=64)
def _holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Local wall time -> UTC instant; a time in the spring gap lands after it."""
    # In the gap zoneinfo applies the offset before the change (fold=0), which reads
    # later on the wall once converted: the instant just after the gap, as intended.
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _intervals_from(
    start: datetime, calendar: WorkingCalendar
) -> Iterator[tuple[datetime, datetime]]:
    """Working intervals (UTC) that end after ``start``, in time order, clipped at ``start``."""
    day = start.astimezone(calendar.tz).date() - timedelta(days=1)  # a midnight day_end
    for _ in range(_MAX_SCAN_DAYS):
        interval = calendar.working_interval(day)
        day += timedelta(days=1)
        if interval is None or interval[1] <= start:
            continue
        yield max(interval[0], start), interval[1]
    raise ValueError("the working calendar has no working day in ten years")


def working_hours_between(
    start_utc: datetime, end_utc: datetime, calendar: WorkingCalendar
) -> float:
    """Working hours (real elapsed) between two instants; 0 when ``end <= start``."""
    start = _require_aware(start_utc, "start_utc")
    end = _require_aware(end_utc, "end_utc")
    if end <= start:
        return 0.0
    total = 0.0
    for open_at, close_at in _intervals_from(start, calendar):
        if open_at >= end:
            break
        total += (min(close_at, end) - open_at).total_seconds()
    return total / _HOUR


def add_working_hours(start_utc: datetime, hours: float, calendar: WorkingCalendar) -> datetime:
    """The instant ``hours`` of working time after ``start_utc`` (the deadline), in UTC.

    A deadline that lands exactly on closing time is that closing time, not the next
    opening. ``hours=0`` gives ``start_utc`` if the warehouse is working then, else the
    next opening.
    """
    start = _require_aware(start_utc, "start_utc")
    if hours < 0:
        raise ValueError("hours must not be negative")
    remaining = hours * _HOUR
    for open_at, close_at in _intervals_from(start, calendar):
        available = (close_at - open_at).total_seconds()
        if remaining <= available:
            return open_at + timedelta(seconds=remaining)
        remaining -= available
    raise AssertionError("unreachable")  # _intervals_from raises first


def sla_start(
    acknowledged_at: datetime, calendar: WorkingCalendar, cutoff: time | None = None
) -> datetime:
    """When the turnaround clock starts for an order acknowledged at ``acknowledged_at``
    (the working-hours age of a breach counts from here).

    Before the cut-off (``cutoff``, default ``calendar.cutoff``) on a working day: at the
    acknowledgement (or at opening if earlier). At or after the cut-off, or on a
    non-working day: at the next working day's opening.
    """
    at = _require_aware(acknowledged_at, "acknowledged_at")
    local = at.astimezone(calendar.tz)
    today = calendar.working_interval(local.date())
    if today is not None and local.time() < (calendar.cutoff if cutoff is None else cutoff):
        return max(at, today[0])
    day = local.date() + timedelta(days=1)
    for _ in range(_MAX_SCAN_DAYS):
        interval = calendar.working_interval(day)
        if interval is not None:
            return interval[0]
        day += timedelta(days=1)
    raise ValueError("the working calendar has no working day in ten years")
