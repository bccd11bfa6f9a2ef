"""The stuck-order clock: warehouse working time and the breaches it finds.

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

Service levels (the 3PL contract)
---------------------------------
A 3PL contract states the despatch SLA per service level as a cut-off and working days:
"standard: in by 14:00, out the same working day". ``ServiceLevel`` is that sentence:
an order acknowledged to ACS on a working day before ``cutoff`` (local) is due out by
``despatch_by`` (default: the close of the working day) ``working_days`` working days
later (0 = the same day); one acknowledged at or after the cut-off, or on a day ACS does
not work, counts from the next working day. ``SlaPolicy.service_levels`` names them
(default ``standard``: 14:00, same working day; ``next_day``: 14:00, out by the 16:00
courier collection the same day); ``SlaPolicy.delivery_services`` maps the order's ACS
``DeliveryService`` to a level (default ``24`` and ``ND`` → ``next_day``), anything else
is ``default_service_level``. The working days are ACS's contracted ones: the
``WorkingCalendar`` (weekdays, the Scottish or English bank holidays, closures).

Breaches (``find_breaches``)
----------------------------
- ``turnaround``: acknowledged to ACS, units not yet despatched or closed, and past its
  service level's due time (``turnaround_due``) — whatever the order's Khaos stage now.
- ``release_stage``: waiting at the release stage (not held) longer than
  ``release_stage_max_hours`` of **wall-clock** time: the integration runs round the
  clock, so an order it has not picked up in that time means the integration is
  stuck, weekend or not. Held orders are left out: they already have an ``order_held``
  exception.
- ``back_order``: a back-order invoice in Awaiting Stock for longer than
  ``back_order_max_days`` of **wall-clock** days (suppliers and stock arrival do not
  follow warehouse hours).
Each ``Breach`` key is ``sla:{kind}:{order_number}:{start in UTC ISO}``: the same breach
keeps its key on every run (alert once), and an order that starts a new wait (acknowledged
again, a new back order) gets a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import holidays
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from acs_khaos_dagster.domain.models import Record

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


# --- Policy and breaches ---------------------------------------------------------------------


class ServiceLevel(BaseModel):
    """One service level of the 3PL contract: in by ``cutoff``, out by ``despatch_by``
    (``None``: the close of the working day) ``working_days`` working days later."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cutoff: time = time(14, 0)
    working_days: int = Field(0, ge=0, le=30)
    despatch_by: time | None = None


def _default_levels() -> dict[str, ServiceLevel]:
    return {
        "standard": ServiceLevel(),
        "next_day": ServiceLevel(despatch_by=time(16, 0)),
    }


class SlaPolicy(BaseModel):
    """The agreed limits (configuration): the contract's service levels, and two limits
    on the integration's own waits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_levels: dict[str, ServiceLevel] = Field(default_factory=_default_levels)
    # ACS DeliveryService of the order (from the courier map) -> service level name.
    delivery_services: dict[str, str] = Field(
        default_factory=lambda: {"24": "next_day", "ND": "next_day"}
    )
    default_service_level: str = "standard"
    release_stage_max_hours: float = Field(4.0, gt=0)  # wall-clock
    back_order_max_days: float = Field(5.0, gt=0)  # wall-clock

    @field_validator("service_levels", mode="before")
    @classmethod
    def _over_the_defaults(cls, value: Any) -> Any:
        # A brand that sets one level (from YAML or one environment variable) keeps the
        # others: ``standard`` and ``next_day`` are always there unless redefined.
        if isinstance(value, Mapping):
            return {**_default_levels(), **value}
        return value

    @model_validator(mode="after")
    def _levels_named(self) -> SlaPolicy:
        named = {self.default_service_level, *self.delivery_services.values()}
        unknown = sorted(named - set(self.service_levels))
        if unknown:
            raise ValueError(f"sla: service level(s) {unknown} are not in sla.service_levels")
        return self

    def level_for(self, delivery_service: str | None) -> str:
        return self.delivery_services.get(delivery_service or "", self.default_service_level)


def turnaround_due(
    acknowledged_at: datetime, level: ServiceLevel, calendar: WorkingCalendar
) -> datetime:
    """When an order acknowledged at ``acknowledged_at`` must be out (UTC), by ``level``.

    >>> cal = WorkingCalendar(holiday_country=None)
    >>> ack = datetime(2025, 6, 2, 13, 59, tzinfo=UTC)  # Monday 14:59 BST: after 14:00
    >>> turnaround_due(ack, ServiceLevel(), cal).isoformat()  # Tuesday 18:00 BST
    '2025-06-03T17:00:00+00:00'
    """
    at = _require_aware(acknowledged_at, "acknowledged_at")
    local = at.astimezone(calendar.tz)
    day = local.date()
    if not (calendar.is_working_day(day) and local.time() < level.cutoff):
        day = _next_working_day(day, calendar)
    for _ in range(level.working_days):
        day = _next_working_day(day, calendar)
    by = level.despatch_by
    if by is None:
        interval = calendar.working_interval(day)
        assert interval is not None  # a working day has one
        return interval[1]
    return _instant(day, by, calendar.tz)


def _next_working_day(day: date, calendar: WorkingCalendar) -> date:
    for _ in range(_MAX_SCAN_DAYS):
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            return day
    raise ValueError("the working calendar has no working day in ten years")


class OrderSlaState(Record):
    """What the clock needs to know about one order (built from the store's observations).

    - ``released_at``: first seen with an invoice at the release stage, if it is
      still there (``None`` once acknowledged or gone).
    - ``acknowledged_at``: when it was sent to ACS and acknowledged in Khaos.
    - ``open_units``: units neither despatched (posted) nor closed short.
    - ``back_order_since``: first seen with a back-order invoice in Awaiting Stock, if
      one is still there.
    - ``held``: held for SKUs (has an open ``order_held`` exception).
    - ``delivery_service``: the ACS DeliveryService it was released with (its service
      level through ``SlaPolicy.delivery_services``).
    """

    order_number: str
    released_at: datetime | None = None
    acknowledged_at: datetime | None = None
    open_units: int = 0
    back_order_since: datetime | None = None
    held: bool = False
    delivery_service: str = ""


BreachKind = Literal["turnaround", "release_stage", "back_order"]


class Breach(Record):
    """One order past one limit: an ``order_sla_breach`` exception for operations."""

    key: str
    kind: BreachKind
    order_number: str
    started_at: datetime
    due_at: datetime
    age_working_hours: float
    age_hours: float  # wall-clock

    @property
    def exception_type(self) -> str:
        return "order_sla_breach"

    @property
    def owner(self) -> str:
        return "operations"

    @property
    def message(self) -> str:
        what = {
            "turnaround": "acknowledged to ACS and not fully despatched",
            "release_stage": "waiting at the release stage, not picked up by the integration",
            "back_order": "back order waiting in Awaiting Stock",
        }[self.kind]
        return (
            f"order {self.order_number} {what}: due {self.due_at.isoformat()}, "
            f"age {self.age_working_hours:.1f} working h ({self.age_hours:.1f} h)"
        )


def _key(kind: str, order_number: str, started: datetime) -> str:
    return f"sla:{kind}:{order_number}:{started.astimezone(UTC).isoformat()}"


def _states(
    orders_state: pd.DataFrame | Iterable[OrderSlaState | Mapping[str, Any]],
) -> list[OrderSlaState]:
    rows: Iterable[Any]
    if isinstance(orders_state, pd.DataFrame):
        rows = orders_state.to_dict("records")
    else:
        rows = orders_state
    out = []
    for row in rows:
        if isinstance(row, OrderSlaState):
            out.append(row)
            continue
        clean = {}
        for name, value in row.items():
            if name not in OrderSlaState.model_fields:
                continue
            if value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.to_pydatetime()
            clean[name] = value
        out.append(OrderSlaState.model_validate(clean))
    return out


def find_breaches(
    orders_state: pd.DataFrame | Iterable[OrderSlaState | Mapping[str, Any]],
    now: datetime,
    policy: SlaPolicy,
    calendar: WorkingCalendar,
) -> list[Breach]:
    """Every breach at ``now`` (rules in the module docstring), sorted by key.

    ``orders_state`` is ``OrderSlaState`` records, mappings or a DataFrame with those
    columns (extra columns ignored, NaN/NaT read as missing). A breach is strictly
    past its due time.
    """
    now_utc = _require_aware(now, "now")
    breaches: list[Breach] = []

    def add(
        kind: BreachKind, order: str, started: datetime, due: datetime, clock: datetime
    ) -> None:
        if now_utc <= due:
            return
        breaches.append(
            Breach(
                key=_key(kind, order, started),
                kind=kind,
                order_number=order,
                started_at=started,
                due_at=due,
                age_working_hours=round(working_hours_between(clock, now_utc, calendar), 4),
                age_hours=round((now_utc - started).total_seconds() / _HOUR, 4),
            )
        )

    for state in _states(orders_state):
        if state.acknowledged_at is not None and state.open_units > 0:
            acknowledged = _require_aware(state.acknowledged_at, "acknowledged_at")
            level = policy.service_levels[policy.level_for(state.delivery_service)]
            clock = sla_start(acknowledged, calendar, level.cutoff)
            due = turnaround_due(acknowledged, level, calendar)
            add("turnaround", state.order_number, acknowledged, due, clock)
        if state.released_at is not None and not state.held:
            released = _require_aware(state.released_at, "released_at")
            due = released + timedelta(hours=policy.release_stage_max_hours)
            add("release_stage", state.order_number, released, due, released)
        if state.back_order_since is not None:
            since = _require_aware(state.back_order_since, "back_order_since")
            due = since + timedelta(days=policy.back_order_max_days)
            add("back_order", state.order_number, since, due, since)
    return sorted(breaches, key=lambda b: b.key)
