"""The day a month's pack is due: the first working day of the next month (finance calendar)."""

from datetime import date

from acs_khaos_dagster.domain.month_end import FINANCE_CALENDAR, month_closed_on
from acs_khaos_dagster.domain.sla import WorkingCalendar


def test_a_month_is_closed_on_the_first_weekday_of_the_next() -> None:
    # 1 August 2026 is a Saturday: July closes on Monday the 3rd, not before.
    assert month_closed_on(date(2026, 8, 1)) is None
    assert month_closed_on(date(2026, 8, 3)) == "2026-07"
    assert month_closed_on(date(2026, 8, 4)) is None


def test_a_bank_holiday_on_the_first_moves_the_close_to_the_next_working_day() -> None:
    # New Year's Day 2027 is a Friday bank holiday: December 2026 closes on Monday 4 January.
    assert month_closed_on(date(2027, 1, 1)) is None
    assert month_closed_on(date(2027, 1, 4)) == "2026-12"


def test_the_brands_own_calendar_decides_scotlands_second_of_january() -> None:
    # 2 January is a bank holiday in Scotland, not in England: 2026-01-02 is a Friday.
    scotland = WorkingCalendar(holiday_country="GB", holiday_subdivision="SCT")
    assert month_closed_on(date(2026, 1, 2), FINANCE_CALENDAR) == "2025-12"
    assert month_closed_on(date(2026, 1, 2), scotland) is None
    assert month_closed_on(date(2026, 1, 5), scotland) == "2025-12"
