"""The integration's "now".

The system clock in production. With ``clock_url`` set (the sandbox, a replay),
the time comes from that URL so that watermarks, SLA clocks and push moments
agree with the simulated systems.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from acs_khaos_dagster.config import Settings


def integration_now(settings: Settings) -> datetime:
    if not settings.clock_url:
        return datetime.now(UTC)
    answer = httpx.get(settings.clock_url, timeout=settings.http.connect_timeout_s)
    answer.raise_for_status()
    now = datetime.fromisoformat(answer.json()["now"])
    if now.tzinfo is None:
        raise ValueError(f"the clock at {settings.clock_url} gave a time without a zone")
    return now.astimezone(UTC)
