"""The simulated clock shared by both simulators.

Simulated time only moves when told to (``advance``), so tests and the demo
decide when ACS picks and despatches and when Khaos's finance batch issues invoices.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock starts at a timezone-aware time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the simulated clock never goes backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> datetime:
        return self.advance(when.astimezone(UTC) - self.now())
