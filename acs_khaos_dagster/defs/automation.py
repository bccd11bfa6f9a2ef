"""Whether sensors and schedules start running when the code location loads.

Production turns them on (``ACS_KHAOS_AUTOMATION=running`` in ``deploy/env.example``); a
laptop's ``make dev`` after ``make demo`` starts them stopped, so the UI does not turn red
with ticks against simulators that are not running. Turn one on in the UI (Automation)
or set the variable before ``make dev``.
"""

from __future__ import annotations

import os

import dagster as dg

AUTOMATION_ENV = "ACS_KHAOS_AUTOMATION"


def automation_running() -> bool:
    value = os.environ.get(AUTOMATION_ENV, "stopped").strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(f"{AUTOMATION_ENV} must be 'running' or 'stopped', not {value!r}")
    return value == "running"


RUNNING = automation_running()
SENSOR_STATUS = dg.DefaultSensorStatus.RUNNING if RUNNING else dg.DefaultSensorStatus.STOPPED
SCHEDULE_STATUS = dg.DefaultScheduleStatus.RUNNING if RUNNING else dg.DefaultScheduleStatus.STOPPED
