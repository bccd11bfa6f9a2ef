"""Outbox of effects on other systems: recorded before anything is sent, done when confirmed.

An effect is one write to ACS or Khaos (push a SKU, release an order, post a despatch,
adjust stock, import a return), recorded with a deterministic idempotency key before it
is sent. ``store/dispatcher.py`` sends due effects; this module records them, answers
questions about them and carries out people's decisions (approve, requeue, abandon).

States (docs/outbox.md draws the machine): ``held`` (waits for a person) → ``pending``
(due at ``next_attempt_at``) → ``in_flight`` (claimed by one dispatcher) → ``done``, or
back to ``pending`` for a retry, or ``parked`` with an owned exception; ``failed`` when a
person abandons it; ``superseded`` when a newer version of the same thing (the same
``supersede_key``: an order at ACS, a stock item's Level at a site) was recorded before
this one was sent.

The package's modules: ``book`` (``Outbox``: recording, look-ups, decisions) and
``records`` (the states, ``EffectHandler``, the errors and the answers it returns).
"""

from __future__ import annotations

from acs_khaos_dagster.store.outbox.book import Outbox
from acs_khaos_dagster.store.outbox.records import (
    DONE,
    FAILED,
    FINAL_STATES,
    HELD,
    IN_FLIGHT,
    PARKED,
    PENDING,
    SUPERSEDED,
    DueEffects,
    EffectHandler,
    EffectNotFound,
    NotApprovable,
    OutboxStatus,
    Settling,
    SupersededHook,
)

__all__ = [
    "DONE",
    "FAILED",
    "FINAL_STATES",
    "HELD",
    "IN_FLIGHT",
    "PARKED",
    "PENDING",
    "SUPERSEDED",
    "DueEffects",
    "EffectHandler",
    "EffectNotFound",
    "NotApprovable",
    "Outbox",
    "OutboxStatus",
    "Settling",
    "SupersededHook",
]
