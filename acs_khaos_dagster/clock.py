"""The integration's "now".

The system clock in production. With ``clock_url`` set (the sandbox, a replay), the
time comes from there so that watermarks, SLA clocks, push moments and the store's
own timestamps all agree with the simulated systems:

- ``file:///path``: the file holds one ISO-8601 time (cheap enough to read on every
  store write; the sandbox rewrites it whenever simulated time moves);
- ``http(s)://…``: ``GET`` answers ``{"now": ISO-8601}``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from acs_khaos_dagster.config import Settings

# A store written on a simulated clock (``acs-khaos demo``) records that world's last
# moment under this cursor; people's commands then measure ages on it, not the wall clock.
SIMULATED_CLOCK_CURSOR = "demo.simulated_clock"


def _aware(now: datetime, source: str) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"the clock at {source} gave a time without a zone")
    return now.astimezone(UTC)


def read_clock(url: str, timeout_s: float = 5.0) -> datetime:
    parts = urlsplit(url)
    if parts.scheme == "file":
        text = Path(url2pathname(parts.path)).read_text(encoding="utf-8").strip()
        return _aware(datetime.fromisoformat(text), url)
    answer = httpx.get(url, timeout=timeout_s)
    answer.raise_for_status()
    return _aware(datetime.fromisoformat(answer.json()["now"]), url)


def integration_now(settings: Settings) -> datetime:
    if not settings.clock_url:
        return datetime.now(UTC)
    return read_clock(settings.clock_url, settings.http.connect_timeout_s)


def clock_for(settings: Settings) -> Callable[[], datetime]:
    """A zero-argument clock for components that take one (the store)."""
    if not settings.clock_url:
        return lambda: datetime.now(UTC)
    url, timeout = settings.clock_url, settings.http.connect_timeout_s
    return lambda: read_clock(url, timeout)
