"""The stuck-order clock: warehouse working time and the breaches it finds.

Pure: no Dagster, no I/O. All datetimes in and out are timezone-aware (UTC out).

Working time and the cut-off are ``domain.working_time`` (re-exported here).

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

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from acs_khaos_dagster.domain.models import Record
from acs_khaos_dagster.domain.working_time import (
    _HOUR,
    _MAX_SCAN_DAYS,
    WorkingCalendar,
    _instant,
    _require_aware,
    add_working_hours,
    sla_start,
    working_hours_between,
)

__all__ = [
    "Breach",
    "OrderSlaState",
    "ServiceLevel",
    "SlaPolicy",
    "WorkingCalendar",
    "add_working_hours",
    "find_breaches",
    "sla_start",
    "turnaround_due",
    "working_hours_between",
]


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
