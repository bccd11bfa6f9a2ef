"""Fault injection shared by both simulators.

A rule names an operation (``"*"`` for every one) and a fault kind, with a rate
(probability per call) and/or a count (the next N calls). The injector is
seeded, so a run can be replayed. Every injected fault is counted so a soak can
report faults by kind.

Kinds:
- ``error_5xx``: 503 (ACS) or a ``Server.Busy`` SOAP fault (Khaos); nothing applied.
- ``rate_limit``: 429 with ``Retry-After: retry_after`` seconds; nothing applied.
- ``latency``: sleep ``latency_s`` and then serve normally.
- ``timeout_before``: sleep ``latency_s`` (set it beyond the client's timeout),
  then drop the request without applying it.
- ``timeout_after``: apply the write, then sleep ``latency_s`` before answering.
- ``reset_before`` / ``reset_after``: close the connection mid-response, before / after applying.
- ``duplicate``, ``reorder``, ``suppress``: feed events (ACS despatch feed) served twice,
  out of order, or never.

What real systems do beyond that (each available to tests, ``scripts/chaos.py`` and the
benchmarks through the same rules):

- ``applied_then_5xx``: apply the write, then answer as an API gateway whose upstream
  timed out: ``502`` with an HTML body (neither a SOAP fault nor ACS's JSON errors).
- ``late_apply``: hold the request ``latency_s``, cut the connection without applying,
  and apply it once ``apply_after_s`` seconds of *simulated* time have passed — after
  the integration's read-back delay if ``apply_after_s`` exceeds it (Khaos).
- ``quota_403``: the API gateway's call quota: ``403`` with ``Retry-After:
  retry_after`` seconds; nothing applied (ACS). A ``403`` without it is an auth failure.
- ``replay``: the page re-delivers the events of the page before it (after the cursor
  moved, across pages); ``cursor_reset``: the cursor is forgotten and the feed served from
  its start; ``delay``: the page's first event (one carrying ``closed_short`` if any) is
  held back and delivered at the end of the feed, in a later run; ``republish`` /
  ``republish_partial``: a shipment already delivered is published again under a new
  ``event_id`` with all / only its first line (ACS despatch feed).
- ``file_late``: the next daily file of the kind named by ``operation`` (``stock_units``,
  ``returns``) reaches the drop ``later_by`` deliveries late (so after newer files);
  ``file_twice``: it arrives now and again ``later_by`` deliveries later under a new name
  (ACS file drop).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from enum import StrEnum

from pydantic import BaseModel, Field


class FaultKind(StrEnum):
    ERROR_5XX = "error_5xx"
    RATE_LIMIT = "rate_limit"
    LATENCY = "latency"
    TIMEOUT_BEFORE = "timeout_before"
    TIMEOUT_AFTER = "timeout_after"
    RESET_BEFORE = "reset_before"
    RESET_AFTER = "reset_after"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    SUPPRESS = "suppress"
    APPLIED_THEN_5XX = "applied_then_5xx"
    LATE_APPLY = "late_apply"
    QUOTA_403 = "quota_403"
    REPLAY = "replay"
    CURSOR_RESET = "cursor_reset"
    DELAY = "delay"
    REPUBLISH = "republish"
    REPUBLISH_PARTIAL = "republish_partial"
    FILE_LATE = "file_late"
    FILE_TWICE = "file_twice"


FEED_FAULTS = frozenset(
    {
        FaultKind.DUPLICATE,
        FaultKind.REORDER,
        FaultKind.SUPPRESS,
        FaultKind.REPLAY,
        FaultKind.CURSOR_RESET,
        FaultKind.DELAY,
        FaultKind.REPUBLISH,
        FaultKind.REPUBLISH_PARTIAL,
    }
)
FILE_FAULTS = frozenset({FaultKind.FILE_LATE, FaultKind.FILE_TWICE})


class FaultRule(BaseModel):
    operation: str = "*"
    kind: FaultKind
    rate: float = Field(0.0, ge=0.0, le=1.0)
    count: int = Field(0, ge=0, description="fire on the next N matching calls, then stop")
    latency_s: float = Field(0.0, ge=0.0)
    retry_after: int = Field(1, ge=0)
    apply_after_s: float = Field(0.0, ge=0.0, description="late_apply: simulated seconds")
    later_by: int = Field(1, ge=1, description="file faults: deliveries later")


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule.model_copy())

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def decide(self, operation: str, kinds: set[FaultKind] | None = None) -> FaultRule | None:
        """The fault to inject on this call of ``operation``, if any (consumes counted rules).

        ``kinds`` limits the choice to faults the caller can apply at this point
        (the despatch feed asks only for feed faults, a write for the others).
        """
        with self._lock:
            self.calls[operation] += 1
            for rule in self._rules:
                if rule.operation not in ("*", operation):
                    continue
                if kinds is not None and rule.kind not in kinds:
                    continue
                if rule.count > 0:
                    rule.count -= 1
                    if rule.count == 0 and rule.rate == 0.0:
                        self._rules.remove(rule)
                    self.injected[f"{operation}:{rule.kind}"] += 1
                    return rule.model_copy()
                if rule.rate > 0 and self._random.random() < rule.rate:
                    self.injected[f"{operation}:{rule.kind}"] += 1
                    return rule.model_copy()
            return None

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"calls": dict(self.calls), "injected": dict(self.injected)}
