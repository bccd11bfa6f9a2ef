"""The stuck-order clock: each tracked order's clock inputs from the store, the breaches
the domain finds at ``now``, each an ``order_sla_breach`` exception for operations (closed
once the order moves on)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.domain.sla import OrderSlaState, find_breaches
from acs_khaos_dagster.flows.order_progress import open_units, postings_by_order
from acs_khaos_dagster.flows.queues import ExceptionSpec, sync_exceptions
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook

SLA_KINDS = ("turnaround", "release_stage", "back_order")
SLA_COLUMNS = ["key", "kind", "order_number", "age_working_hours", "age_hours", "due_at"]


@dataclass(frozen=True)
class SlaResult:
    """The breaches found (one row each), how many orders the clock tracks, and how many
    ``order_sla_breach`` exceptions are open."""

    frame: pd.DataFrame
    orders_tracked: int
    open_breaches: int


def sla_states(db: Store) -> list[OrderSlaState]:
    """Each tracked order's clock inputs, from the store alone: the orders still open at
    ACS and those with a clock running."""
    book = OrderBook(db.db)
    # Open orders only: a finished order has no open units, and its clocks are over (a
    # back order's clock, stopped only by a sighting without it, would otherwise run on
    # for an order cancelled whole and never sighted again).
    releases = book.open_releases()
    observations = book.open_observations()
    postings = postings_by_order(book.open_postings())
    held = {
        item.row.entity_ref.removeprefix("order:") for item in db.exceptions.list(type="order_held")
    }
    states = []
    for code in sorted({*releases, *observations}):
        release = releases.get(code)
        seen = observations.get(code)
        live = release is not None and release.cancel_state in (None, "locked")
        units = 0
        if live and release is not None:
            units = open_units(release, postings.get(code, []))
        states.append(
            OrderSlaState(
                order_number=code,
                released_at=seen.at_release_since if seen else None,
                acknowledged_at=release.acknowledged_at if live and release else None,
                open_units=units,
                back_order_since=seen.back_order_since if seen else None,
                held=code in held,
                delivery_service=str((release.payload or {}).get("delivery_service", ""))
                if release
                else "",
            )
        )
    return states


def check_order_sla(db: Store, settings: Settings, now: datetime) -> SlaResult:
    """Find the orders past their clock at ``now`` and sync their exceptions."""
    states = sla_states(db)
    breaches = find_breaches(states, now, settings.sla, settings.working_calendar)
    specs = [
        ExceptionSpec(
            type=b.exception_type,
            entity_ref=b.key,
            message=b.message,
            details=b.model_dump(mode="json"),
        )
        for b in breaches
    ]
    open_counts = sync_exceptions(db, specs, ["order_sla_breach"])
    frame = pd.DataFrame(
        [
            {
                "key": b.key,
                "kind": b.kind,
                "order_number": b.order_number,
                "age_working_hours": b.age_working_hours,
                "age_hours": b.age_hours,
                "due_at": b.due_at.isoformat(),
            }
            for b in breaches
        ],
        columns=SLA_COLUMNS,
    )
    return SlaResult(frame, len(states), open_counts.get("order_sla_breach", 0))
