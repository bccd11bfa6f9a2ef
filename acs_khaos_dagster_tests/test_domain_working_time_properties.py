"""Properties of warehouse working time (``domain/working_time.py``) over generated instants.

``test_sla.py`` pins the calendar's worked examples; these check the laws every SLA
deadline relies on, for any instant in 2024-2027 (clock changes and Scottish bank
holidays included):

* a deadline ``h`` working hours after ``t`` is ``h`` working hours after ``t``;
* working hours add up over consecutive intervals and never exceed the real hours;
* nothing counts outside a working day's opening hours (weekends, bank holidays, nights);
* the SLA clock starts at a working instant, never before the acknowledgement.

The oracle for "is this instant working time" is the calendar written out by hand below:
the local weekday, 08:00-18:00 wall time, and the Scottish bank holidays listed here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.working_time import (
    WorkingCalendar,
    add_working_hours,
    sla_start,
    working_hours_between,
)

CAL = WorkingCalendar()  # 08:00-18:00, cut-off 14:00, Mon-Fri, GB/SCT bank holidays
UK = ZoneInfo("Europe/London")

# Scotland's bank holidays of 2025, written out (gov.uk) rather than read from the library.
SCOTTISH_2025 = {
    date(2025, 1, 1),
    date(2025, 1, 2),
    date(2025, 4, 18),
    date(2025, 5, 5),
    date(2025, 5, 26),
    date(2025, 8, 4),
    date(2025, 12, 1),  # St Andrew's Day (30 Nov is a Sunday)
    date(2025, 12, 25),
    date(2025, 12, 26),
}

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
instants_2025 = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2025, 12, 20), timezones=st.just(UTC)
)
hours = st.floats(min_value=0, max_value=200, allow_nan=False).map(lambda h: round(h, 2))


def is_working_instant_2025(at: datetime) -> bool:
    """The hand-written oracle: a weekday that is no 2025 Scottish bank holiday, 08-18 local."""
    local = at.astimezone(UK)
    return (
        local.weekday() < 5
        and local.date() not in SCOTTISH_2025
        and time(8) <= local.time() < time(18)
    )


@settings(max_examples=150, deadline=None)
@given(instants, hours)
def test_a_deadline_h_working_hours_away_is_h_working_hours_away(start, h) -> None:
    deadline = add_working_hours(start, h, CAL)
    assert deadline >= start
    assert working_hours_between(start, deadline, CAL) == pytest.approx(h, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(instants, hours, hours)
# Found by CI: 30 h from New Year's Day end at Friday's close; 0 h more from a close give
# Monday's opening. Different clock times, the same working instant: no working time lies
# between them, which is all an SLA deadline means.
@example(datetime(2024, 1, 1, tzinfo=UTC), 30.0, 0.0)
def test_deadlines_compose_h1_then_h2_is_h1_plus_h2(start, h1, h2) -> None:
    stepwise = add_working_hours(add_working_hours(start, h1, CAL), h2, CAL)
    at_once = add_working_hours(start, h1 + h2, CAL)
    early, late = sorted((stepwise, at_once))
    assert working_hours_between(early, late, CAL) == pytest.approx(0, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(instants, instants, instants)
def test_working_hours_add_up_over_consecutive_intervals(a, b, c) -> None:
    first, middle, last = sorted((a, b, c))
    whole = working_hours_between(first, last, CAL)
    parts = working_hours_between(first, middle, CAL) + working_hours_between(middle, last, CAL)
    assert whole == pytest.approx(parts, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(instants, instants)
def test_working_hours_never_exceed_real_hours_and_never_go_negative(a, b) -> None:
    counted = working_hours_between(a, b, CAL)
    real = (b - a).total_seconds() / 3600
    assert 0 <= counted <= max(real, 0) + 1e-9
    if b <= a:
        assert counted == 0


@settings(max_examples=150, deadline=None)
@given(instants_2025)
def test_an_hour_of_working_time_is_counted_exactly_when_the_calendar_says_working(at) -> None:
    # Minute by minute over one hour, against the hand-written calendar.
    minutes = [at + timedelta(minutes=m) for m in range(60)]
    expected = sum(is_working_instant_2025(m) for m in minutes) / 60
    counted = working_hours_between(at, at + timedelta(hours=1), CAL)
    # The sampled minute grid can be off by under a minute at each edge of the hour.
    assert counted == pytest.approx(expected, abs=2 / 60)


@settings(max_examples=150, deadline=None)
@given(instants_2025)
def test_the_sla_clock_starts_at_a_working_instant_never_before_the_acknowledgement(at) -> None:
    start = sla_start(at, CAL)
    assert start >= at
    assert is_working_instant_2025(start)


@settings(max_examples=150, deadline=None)
@given(instants_2025)
def test_an_order_in_before_the_cut_off_on_a_working_day_starts_that_day(at) -> None:
    local = at.astimezone(UK)
    start = sla_start(at, CAL).astimezone(UK)
    working_day = local.weekday() < 5 and local.date() not in SCOTTISH_2025
    if working_day and local.time() < time(14):
        assert start.date() == local.date()
        assert start.time() == max(local.time(), time(8))
    else:
        assert start.date() > local.date()
        assert start.time() == time(8)


@settings(max_examples=100, deadline=None)
@given(instants_2025)
def test_zero_hours_from_a_working_instant_is_that_instant_else_the_next_opening(at) -> None:
    deadline = add_working_hours(at, 0, CAL)
    if is_working_instant_2025(at):
        assert deadline == at
    else:
        local = deadline.astimezone(UK)
        assert deadline > at and local.time() == time(8)
        assert working_hours_between(at, deadline, CAL) == 0


def test_a_whole_working_week_in_scotland_counts_its_bank_holiday_out() -> None:
    # Mon 4 Aug 2025 is the Scottish summer bank holiday (England works): 4 days x 10 h.
    monday = datetime(2025, 8, 4, tzinfo=UK)
    assert working_hours_between(monday, monday + timedelta(days=7), CAL) == 40.0
    england = WorkingCalendar(holiday_subdivision="ENG")
    assert working_hours_between(monday, monday + timedelta(days=7), england) == 50.0


def test_an_extra_closed_day_is_not_working_time() -> None:
    stocktake = WorkingCalendar(extra_closed_days=frozenset({date(2025, 6, 4)}))
    wednesday = datetime(2025, 6, 4, 8, tzinfo=UK)
    assert working_hours_between(wednesday, wednesday + timedelta(hours=10), stocktake) == 0.0
    assert working_hours_between(wednesday, wednesday + timedelta(hours=10), CAL) == 10.0


def test_a_calendar_closing_at_midnight_works_until_the_end_of_the_day() -> None:
    late = WorkingCalendar(day_start=time(16), day_end=time(0), holiday_country=None)
    friday = datetime(2025, 6, 6, 12, tzinfo=UK)
    assert working_hours_between(friday, friday + timedelta(days=1), late) == 8.0
    assert add_working_hours(friday, 8, late) == datetime(2025, 6, 7, 0, tzinfo=UK)


def test_a_calendar_whose_day_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="day_end must be after day_start"):
        WorkingCalendar(day_start=time(18), day_end=time(8))


def test_a_calendar_with_no_working_weekday_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty set"):
        WorkingCalendar(working_weekdays=frozenset())
    with pytest.raises(ValueError, match="non-empty set"):
        WorkingCalendar(working_weekdays=frozenset({7}))


def test_a_negative_number_of_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        add_working_hours(datetime(2025, 6, 2, 9, tzinfo=UTC), -1, CAL)


def test_a_calendar_closed_every_day_says_so_rather_than_looping() -> None:
    every_day = frozenset(date(2025, 6, 2) + timedelta(days=d) for d in range(-1, 3700))
    closed = WorkingCalendar(extra_closed_days=every_day, holiday_country=None)
    with pytest.raises(ValueError, match="no working day in ten years"):
        add_working_hours(datetime(2025, 6, 2, 9, tzinfo=UTC), 1, closed)
