"""Which waiting claims a dispatcher may start now: the hand-out rule, free of threads and I/O.

Two kinds of send:

- an *idempotent* one (ACS ``PUT``): up to ``width`` in flight, never two of one target and
  business key at once;
- a *non-idempotent* one (a Khaos import, which Khaos does not de-duplicate): besides that,
  at most ``exclusive_width`` in flight at once, and never two whose *entities* overlap (an
  order, a stock item, an invoice, a return: ``Entities`` from the handler's ``entities``).
  ``None`` (a handler that names none) conflicts with every other non-idempotent send, so
  such a kind goes one at a time, as every non-idempotent kind once did.

Why per entity is enough: every send in flight has its own claim, renewed by the guard
right before it goes. A dispatcher killed with several in flight leaves each of them
``in_flight``; recovery puts each back with a read-back due only after the longest time
its own request could still land (``claims.Claiming.recover``), and each read-back looks
for that effect's own reference (ExternalRef, GroupRef, AssociatedRef, invoice stages).
A request for another effect still in transit cannot change what that read-back finds,
unless both act on the same thing at Khaos (a second despatch of an order, a move's
reversal seeing another adjustment of its stock): that is what the entity rule excludes.

Order: a claim kept back reserves its business key and (if non-idempotent) its entities
for the rest of the pass, so a later claim never overtakes an earlier one sharing either.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# What a non-idempotent send acts on at the target; None: unknown (conflicts with all).
Entities = frozenset[str] | None


@dataclass(frozen=True)
class Lane:
    """How one claim may share the workers: its key, and its entities if non-idempotent."""

    key: Hashable
    exclusive: bool
    entities: Entities = None


def overlap(a: Entities, b: Entities) -> bool:
    """Whether two non-idempotent sends may not be in flight together."""
    return a is None or b is None or not a.isdisjoint(b)


def hand_out(
    waiting: Iterable[T],
    running: Iterable[Lane],
    lane_of: Callable[[T], Lane],
    *,
    width: int,
    exclusive_width: int,
) -> tuple[list[T], list[T]]:
    """Split ``waiting`` (in claim order) into those to start now and those kept, in order."""
    lanes = list(running)
    busy_keys = {lane.key for lane in lanes}
    in_flight = len(lanes)
    exclusive = 0
    # Entities of the non-idempotent claims in flight or kept back in this pass; ``unknown``
    # counts those naming none (they conflict with every other).
    held: set[str] = set()
    holders = unknown = 0
    for lane in lanes:
        if lane.exclusive:
            exclusive += 1
            holders, unknown = _hold(held, lane.entities, holders, unknown)
    start: list[T] = []
    kept: list[T] = []
    reserved_keys: set[Hashable] = set()
    queue = iter(waiting)
    for claim in queue:
        if in_flight >= width:
            kept.append(claim)
            kept.extend(queue)
            break
        lane = lane_of(claim)
        blocked = lane.key in busy_keys or lane.key in reserved_keys
        if lane.exclusive and not blocked:
            blocked = exclusive >= exclusive_width or (
                bool(holders)
                and (unknown > 0 or lane.entities is None or not held.isdisjoint(lane.entities))
            )
        if lane.exclusive:
            # Started or kept back, its entities are taken for the rest of the pass.
            holders, unknown = _hold(held, lane.entities, holders, unknown)
        if blocked:
            kept.append(claim)
            reserved_keys.add(lane.key)
            continue
        start.append(claim)
        busy_keys.add(lane.key)
        in_flight += 1
        exclusive += lane.exclusive
    return start, kept


def _hold(held: set[str], entities: Entities, holders: int, unknown: int) -> tuple[int, int]:
    if entities is None:
        return holders + 1, unknown + 1
    held.update(entities)
    return holders + 1, unknown
