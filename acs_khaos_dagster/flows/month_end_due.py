"""Which month the month-end schedule builds at a tick: the month just closed, on the first
working day of the next (the finance calendar in settings: by default weekdays,
England-and-Wales bank holidays excluded). ``defs/month_end.py`` turns the answer into a
run request or a skip reason.
"""

from datetime import datetime

from acs_khaos_dagster.config import setting_at_load
from acs_khaos_dagster.domain.month_end import FINANCE_CALENDAR, month_closed_on
from acs_khaos_dagster.domain.sla import WorkingCalendar


def finance_calendar() -> WorkingCalendar:
    # Bad settings fail the run itself, with their message.
    return setting_at_load(lambda s: s.finance_calendar, FINANCE_CALENDAR)


def month_due(when: datetime | None, calendar: WorkingCalendar) -> tuple[str | None, str]:
    """The month whose pack is due at the tick ``when``, or ``None`` and why not."""
    if when is None:  # only a hand-built context has no tick time
        return None, "no scheduled execution time"
    day = when.astimezone(calendar.tz).date()
    month = month_closed_on(day, calendar)
    if month is None:
        return None, f"{day.isoformat()} is not the first working day of its month"
    return month, ""
