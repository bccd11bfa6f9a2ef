"""Writes Khaos applies late: after the caller gave up on them, maybe after it read back.

A real Khaos behind a slow queue or a stuck lock can take a write, let the caller's
connection die, and apply the write minutes later. If that is after the integration's
read-back found nothing and it sent the write again, the effect is applied twice: Khaos
does not de-duplicate. The ``late_apply`` fault keeps the parsed request here and
applies it once ``apply_after_s`` seconds of simulated time have passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from acs_khaos_dagster.sandbox.khaos.soap import run_operation
from acs_khaos_dagster.sandbox.khaos.state import KhaosBooks, SimFault


@dataclass
class LateWrite:
    operation: str
    request: ET.Element
    taken_at: datetime
    due_at: datetime
    applied_at: datetime | None = None
    refused: str = ""  # the fault Khaos met when it finally applied it


@dataclass
class LateWrites:
    writes: list[LateWrite] = field(default_factory=list)

    def keep(self, operation: str, request: ET.Element, now: datetime, after_s: float) -> None:
        self.writes.append(LateWrite(operation, request, now, now + timedelta(seconds=after_s)))

    def apply_due(self, books: KhaosBooks, now: datetime) -> int:
        """Apply every kept write whose time has come (callers hold the books' lock)."""
        applied = 0
        for write in self.writes:
            if write.applied_at is not None or write.due_at > now:
                continue
            write.applied_at = now
            try:
                run_operation(books, write.operation, write.request)
            except SimFault as fault:
                write.refused = f"{fault.code}: {fault.message}"
            applied += 1
        return applied

    def truth(self) -> list[dict[str, str | None]]:
        return [
            {
                "operation": w.operation,
                "taken_at": w.taken_at.isoformat(),
                "due_at": w.due_at.isoformat(),
                "applied_at": w.applied_at.isoformat() if w.applied_at else None,
                "refused": w.refused,
            }
            for w in self.writes
        ]
