"""The stuck-order clock: warehouse working time (Scotland) and SLA breaches.

The despatch SLA is the 3PL contract's sentence per service level (issue 17 point 13):
standard "in by 14:00, out the same working day"; next-day out by the 16:00 collection.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from acs_khaos_dagster.config import SettingsError, load_settings
from acs_khaos_dagster.domain.sla import (
    OrderSlaState,
    ServiceLevel,
    SlaPolicy,
    WorkingCalendar,
    add_working_hours,
    find_breaches,
    sla_start,
    turnaround_due,
    working_hours_between,
)

UK = ZoneInfo("Europe/London")
CAL = WorkingCalendar()  # 08:00-18:00, cut-off 14:00, Mon-Fri, Scottish bank holidays
# standard: in by 14:00, out by close (18:00) the same working day; next_day (ACS services
# 24 and ND): out by 16:00; 4 h at release stage, 5 days back order.
POLICY = SlaPolicy()
ROUND_THE_CLOCK = WorkingCalendar(
    day_start=time(0),
    day_end=time(0),
    cutoff=time(23, 59),
    working_weekdays=frozenset(range(7)),
    holiday_country=None,
)


def uk(*args: int) -> datetime:
    return datetime(*args, tzinfo=UK)  # type: ignore[misc]


# --- working time ----------------------------------------------------------------------


def test_a_working_day_counts_its_opening_hours_only() -> None:
    assert working_hours_between(uk(2025, 6, 2, 6), uk(2025, 6, 2, 22), CAL) == 10.0


def test_the_weekend_does_not_count() -> None:
    # Friday 16:00 to Monday 10:00: 2 h on Friday, 2 h on Monday.
    assert working_hours_between(uk(2025, 6, 6, 16), uk(2025, 6, 9, 10), CAL) == 4.0


def test_a_deadline_skips_the_weekend() -> None:
    # Friday 10:00 + 24 h: Friday 8, Monday 10, Tuesday 6 -> Tuesday 14:00.
    assert add_working_hours(uk(2025, 6, 6, 10), 24, CAL) == uk(2025, 6, 10, 14)


def test_the_scottish_2_january_holiday_is_not_working_time() -> None:
    # Tue 31 Dec 10:00: 8 h, 1 and 2 Jan off, Fri 3 Jan 10 h, Mon 6 Jan 6 h.
    assert add_working_hours(uk(2024, 12, 31, 10), 24, CAL) == uk(2025, 1, 6, 14)


def test_england_works_on_2_january_so_the_calendar_is_scotlands() -> None:
    england = WorkingCalendar(holiday_subdivision="ENG")
    assert add_working_hours(uk(2024, 12, 31, 10), 24, england) == uk(2025, 1, 3, 14)


def test_st_andrews_day_is_not_working_time() -> None:
    # Monday 30 November 2026 is St Andrew's Day.
    assert working_hours_between(uk(2026, 11, 27, 18), uk(2026, 12, 1, 8), CAL) == 0.0
    assert add_working_hours(uk(2026, 11, 27, 10), 24, CAL) == uk(2026, 12, 2, 14)


def test_working_hours_across_the_spring_clock_change_are_real_hours() -> None:
    # Clocks go forward on Sunday 30 March 2025: Friday 10:00 GMT to Monday 18:00 BST.
    start = datetime(2025, 3, 28, 10, tzinfo=UTC)
    end = datetime(2025, 3, 31, 17, tzinfo=UTC)  # 18:00 BST
    assert working_hours_between(start, end, CAL) == 18.0


def test_a_deadline_across_the_spring_clock_change_is_in_local_opening_hours() -> None:
    deadline = add_working_hours(uk(2025, 3, 28, 10), 24, CAL)
    assert deadline == datetime(2025, 4, 1, 13, tzinfo=UTC)  # Tuesday 14:00 BST


def test_a_round_the_clock_day_is_23_hours_when_the_clocks_go_forward() -> None:
    assert working_hours_between(uk(2025, 3, 30), uk(2025, 3, 31), ROUND_THE_CLOCK) == 23.0


def test_a_round_the_clock_day_is_25_hours_when_the_clocks_go_back() -> None:
    assert working_hours_between(uk(2025, 10, 26), uk(2025, 10, 27), ROUND_THE_CLOCK) == 25.0


def test_a_deadline_on_closing_time_stays_on_that_day() -> None:
    assert add_working_hours(uk(2025, 6, 2, 8), 10, CAL) == uk(2025, 6, 2, 18)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        working_hours_between(datetime(2025, 6, 2, 8), uk(2025, 6, 2, 9), CAL)


# --- cut-off ---------------------------------------------------------------------------


def test_an_order_acknowledged_before_the_cut_off_starts_counting_at_once() -> None:
    assert sla_start(uk(2025, 6, 2, 13, 59), CAL) == uk(2025, 6, 2, 13, 59)


def test_an_order_acknowledged_at_the_cut_off_starts_counting_next_working_day() -> None:
    assert sla_start(uk(2025, 6, 2, 14, 0), CAL) == uk(2025, 6, 3, 8)


def test_an_order_acknowledged_before_opening_starts_at_opening() -> None:
    assert sla_start(uk(2025, 6, 2, 6, 30), CAL) == uk(2025, 6, 2, 8)


def test_an_order_acknowledged_on_saturday_starts_on_monday_morning() -> None:
    assert sla_start(uk(2025, 6, 7, 11), CAL) == uk(2025, 6, 9, 8)


def test_an_order_acknowledged_after_friday_cut_off_starts_on_monday() -> None:
    assert sla_start(uk(2025, 6, 6, 15), CAL) == uk(2025, 6, 9, 8)


# --- breaches --------------------------------------------------------------------------


def acked(
    at: datetime, open_units: int = 1, order: str = "SO1", service: str = "48"
) -> OrderSlaState:
    return OrderSlaState(
        order_number=order, acknowledged_at=at, open_units=open_units, delivery_service=service
    )


def test_a_standard_order_in_before_the_cut_off_and_not_out_by_close_that_day_breaches() -> None:
    # Acknowledged Monday 10:00: due out by 18:00 the same working day.
    (breach,) = find_breaches([acked(uk(2025, 6, 2, 10))], uk(2025, 6, 2, 18, 1), POLICY, CAL)
    assert (breach.kind, breach.order_number) == ("turnaround", "SO1")
    assert breach.due_at == uk(2025, 6, 2, 18)
    assert breach.age_working_hours == 8.0  # 10:00 to 18:00; the minute after closing is not
    assert breach.exception_type == "order_sla_breach" and breach.owner == "operations"


def test_a_standard_order_out_by_close_of_its_day_does_not_breach() -> None:
    assert find_breaches([acked(uk(2025, 6, 2, 10))], uk(2025, 6, 2, 17, 59), POLICY, CAL) == []


def test_a_standard_order_in_after_the_cut_off_is_due_by_close_of_the_next_working_day() -> None:
    assert turnaround_due(uk(2025, 6, 2, 14), ServiceLevel(), CAL) == uk(2025, 6, 3, 18)


def test_a_next_day_order_must_leave_by_the_collection_the_same_day() -> None:
    state = acked(uk(2025, 6, 2, 13), service="24")
    (breach,) = find_breaches([state], uk(2025, 6, 2, 16, 1), POLICY, CAL)
    assert breach.due_at == uk(2025, 6, 2, 16)
    # The same order on the standard service still has until 18:00.
    assert find_breaches([acked(uk(2025, 6, 2, 13))], uk(2025, 6, 2, 16, 1), POLICY, CAL) == []


def test_a_contract_can_give_a_service_level_more_working_days_and_its_own_cut_off() -> None:
    policy = SlaPolicy(
        service_levels={"standard": ServiceLevel(cutoff=time(12, 0), working_days=1)}
    )
    # Friday 12:30 is after this cut-off: counts from Monday, out by close on Tuesday.
    state = acked(uk(2025, 6, 6, 12, 30))
    assert find_breaches([state], uk(2025, 6, 10, 17, 59), policy, CAL) == []
    assert [b.due_at for b in find_breaches([state], uk(2025, 6, 10, 18, 1), policy, CAL)] == [
        uk(2025, 6, 10, 18)
    ]


def test_the_scottish_2_january_holiday_moves_the_standard_due_time_to_the_next_day() -> None:
    thursday = uk(2025, 1, 2, 10)  # a bank holiday in Scotland, not in England
    assert turnaround_due(thursday, ServiceLevel(), CAL) == uk(2025, 1, 3, 18)
    england = WorkingCalendar(holiday_subdivision="ENG")
    assert turnaround_due(thursday, ServiceLevel(), england) == uk(2025, 1, 2, 18)


def test_acs_contracted_saturday_working_makes_saturday_a_despatch_day() -> None:
    saturdays = WorkingCalendar(working_weekdays=frozenset({0, 1, 2, 3, 4, 5}))
    assert turnaround_due(uk(2025, 6, 7, 10), ServiceLevel(), saturdays) == uk(2025, 6, 7, 18)
    assert turnaround_due(uk(2025, 6, 7, 10), ServiceLevel(), CAL) == uk(2025, 6, 9, 18)


def test_an_unknown_bank_holiday_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="bank-holiday calendar"):
        WorkingCalendar(holiday_subdivision="SCOTLAND")


def test_a_delivery_service_mapped_to_an_unknown_service_level_is_refused() -> None:
    with pytest.raises(ValueError, match="express"):
        SlaPolicy(delivery_services={"ND": "express"})


def test_the_calendars_and_service_levels_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_KHAOS_WORKING_CALENDAR__HOLIDAY_SUBDIVISION", "ENG")
    monkeypatch.setenv("ACS_KHAOS_FINANCE_CALENDAR__HOLIDAY_SUBDIVISION", "SCT")
    monkeypatch.setenv("ACS_KHAOS_SLA__SERVICE_LEVELS__NEXT_DAY__DESPATCH_BY", "15:30")
    conf = load_settings()
    assert conf.working_calendar.holiday_subdivision == "ENG"
    assert conf.finance_calendar.holiday_subdivision == "SCT"
    assert conf.sla.service_levels["next_day"].despatch_by == time(15, 30)
    monkeypatch.setenv("ACS_KHAOS_FINANCE_CALENDAR__HOLIDAY_SUBDIVISION", "XX")
    with pytest.raises(SettingsError, match="finance_calendar"):
        load_settings()


def test_a_fully_despatched_order_does_not_breach() -> None:
    state = acked(uk(2025, 6, 2, 10), open_units=0)
    assert find_breaches([state], uk(2025, 6, 20, 12), POLICY, CAL) == []


def test_the_weekend_does_not_make_an_order_late() -> None:
    # Acknowledged Friday 15:00 (after cut-off): due by close on Monday.
    assert find_breaches([acked(uk(2025, 6, 6, 15))], uk(2025, 6, 9, 17), POLICY, CAL) == []


def test_breach_key_is_the_same_on_every_run() -> None:
    state = [acked(uk(2025, 6, 2, 10))]
    first = find_breaches(state, uk(2025, 6, 4, 15), POLICY, CAL)
    later = find_breaches(state, uk(2025, 6, 5, 9), POLICY, CAL)
    assert [b.key for b in first] == [b.key for b in later]
    assert first[0].age_working_hours < later[0].age_working_hours


def test_an_order_acknowledged_again_is_a_new_breach() -> None:
    first = find_breaches([acked(uk(2025, 6, 2, 10))], uk(2025, 6, 12, 9), POLICY, CAL)
    again = find_breaches([acked(uk(2025, 6, 5, 10))], uk(2025, 6, 12, 9), POLICY, CAL)
    assert first[0].key != again[0].key


def test_an_order_left_at_the_release_stage_breaches_on_wall_clock_time() -> None:
    # Saturday: the warehouse is closed but the integration should still pick it up.
    state = OrderSlaState(order_number="SO2", released_at=uk(2025, 6, 7, 10))
    (breach,) = find_breaches([state], uk(2025, 6, 7, 14, 1), POLICY, CAL)
    assert breach.kind == "release_stage"
    assert breach.due_at == uk(2025, 6, 7, 14)


def test_a_held_order_at_the_release_stage_is_not_a_breach() -> None:
    state = OrderSlaState(order_number="SO2", released_at=uk(2025, 6, 7, 10), held=True)
    assert find_breaches([state], uk(2025, 6, 9, 10), POLICY, CAL) == []


def test_a_back_order_waiting_past_its_age_breaches() -> None:
    state = OrderSlaState(order_number="SO3", back_order_since=uk(2025, 6, 2, 10))
    assert find_breaches([state], uk(2025, 6, 7, 10), POLICY, CAL) == []
    (breach,) = find_breaches([state], uk(2025, 6, 7, 10, 1), POLICY, CAL)
    assert breach.kind == "back_order"


def test_order_state_can_be_a_dataframe_with_missing_values() -> None:
    frame = pd.DataFrame(
        [
            {
                "order_number": "SO1",
                "acknowledged_at": pd.Timestamp("2025-06-02 09:00Z"),
                "open_units": 2,
                "released_at": pd.NaT,
                "back_order_since": pd.NaT,
                "held": False,
                "stage_id": 12,
            },
            {
                "order_number": "SO2",
                "acknowledged_at": pd.NaT,
                "open_units": 0,
                "released_at": pd.Timestamp("2025-06-04 06:00Z"),
                "back_order_since": pd.NaT,
                "held": False,
                "stage_id": 9,
            },
        ]
    )
    breaches = find_breaches(frame, uk(2025, 6, 4, 15), POLICY, CAL)
    assert [(b.kind, b.order_number) for b in breaches] == [
        ("release_stage", "SO2"),
        ("turnaround", "SO1"),
    ]


def test_a_back_order_beside_an_acknowledged_order_does_not_restart_its_clock() -> None:
    # Measured from the acknowledgement whatever the Khaos stage: a back order beside it
    # does not restart the turnaround clock.
    state = OrderSlaState(
        order_number="SO4",
        acknowledged_at=uk(2025, 6, 2, 10),
        open_units=1,
        back_order_since=uk(2025, 6, 3, 10),
    )
    kinds = [b.kind for b in find_breaches([state], uk(2025, 6, 4, 15), POLICY, CAL)]
    assert kinds == ["turnaround"]


def test_policy_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SlaPolicy(release_stage_max_hours=0)
    with pytest.raises(ValueError):
        ServiceLevel(working_days=-1)


def test_one_hour_of_working_time_is_one_real_hour() -> None:
    start = uk(2025, 6, 2, 9)
    assert add_working_hours(start, 1, CAL) - start == timedelta(hours=1)


def test_the_month_end_schedule_follows_the_finance_calendar_in_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dagster import RunRequest, SkipReason, build_schedule_context

    from acs_khaos_dagster.defs.month_end import month_end_schedule

    def tick(day: int) -> object:
        context = build_schedule_context(scheduled_execution_time=uk(2026, 1, day, 6))
        [answer] = list(month_end_schedule(context))
        return answer

    # 2 January 2026 is a Friday: a working day in England, a bank holiday in Scotland.
    assert isinstance(tick(2), RunRequest)
    monkeypatch.setenv("ACS_KHAOS_FINANCE_CALENDAR__HOLIDAY_SUBDIVISION", "SCT")
    assert isinstance(tick(2), SkipReason)
    answer = tick(5)
    assert isinstance(answer, RunRequest) and answer.partition_key == "2025-12"
