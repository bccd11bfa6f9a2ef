"""What the outbox's users share: the states, the handler protocol, the errors and the
answers (``Settling``, ``DueEffects``, ``OutboxStatus``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

PENDING, IN_FLIGHT, DONE, FAILED, PARKED, HELD, SUPERSEDED = (
    "pending",
    "in_flight",
    "done",
    "failed",
    "parked",
    "held",
    "superseded",
)
# States an effect never leaves by itself.
FINAL_STATES = (DONE, FAILED, SUPERSEDED)

# Called inside the transaction that supersedes effects, with their ids and why: the
# exception queue closes what it had open about them.
SupersededHook = Callable[[Session, list[int], str], None]


class NotApprovable(ValueError):
    """The effect behind an approval is no longer waiting for one (it was superseded)."""


@runtime_checkable
class EffectHandler(Protocol):
    """Sends one kind of effect. Raise only the classes of ``connectors/errors.py``.

    A handler may declare ``idempotent = True`` when sending the same payload twice leaves
    the target as sending it once (ACS PUTs); those are sent several at a time. Another
    may define ``entities(payload) -> frozenset[str]`` (what the effect acts on at the
    target): up to ``outbox.import_concurrency`` go at once, never two sharing any; without
    it, one at a time.
    """

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Apply the effect; return what the target system answered (stored as the result)."""
        ...

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Ask the target whether the effect already happened: its result if so, else None."""
        ...


class EffectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class Settling:
    """What ``settle_older`` did: superseded ids, and the effects that may still land
    (id -> state)."""

    superseded: list[int]
    unsettled: dict[int, str]


@dataclass(frozen=True)
class DueEffects:
    """Effects a dispatcher could take now, per target system, and how long the oldest
    has been waiting since it fell due."""

    by_target: dict[str, int]
    oldest_due_age: timedelta | None

    @property
    def total(self) -> int:
        return sum(self.by_target.values())


@dataclass(frozen=True)
class OutboxStatus:
    counts: dict[tuple[str, str], int]
    oldest_pending_age: timedelta | None

    def total(self, state: str) -> int:
        return sum(n for (_, s), n in self.counts.items() if s == state)

    @property
    def parked(self) -> int:
        return self.total(PARKED)

    @property
    def held(self) -> int:
        return self.total(HELD)

    @property
    def pending(self) -> int:
        return self.total(PENDING)

    @property
    def in_flight(self) -> int:
        return self.total(IN_FLIGHT)
