"""What each step of the orders group says about its run, as figures for the UI.

One function per step's result: the lines waiting at the release stage
(``flows.order_release.released_orders``), the release pass (``release_orders``), the
despatch feed read (``flows.despatch_postings``), the postings to Khaos and the SLA clock
(``flows.order_sla``). Counts are plotted across runs; the samples are tables.

No Dagster here: ``defs/orders.py`` turns them into each asset's metadata.
"""

from __future__ import annotations

import pandas as pd

from acs_khaos_dagster.domain.shipments import SHIPMENT_COLUMNS
from acs_khaos_dagster.flows.despatch_postings import DespatchIntake, PostingResult
from acs_khaos_dagster.flows.figures import Figures, dispatch_figures, table
from acs_khaos_dagster.flows.order_release import RELEASE_ACTIONS, ReleaseResult
from acs_khaos_dagster.flows.order_sla import SLA_KINDS, SlaResult


def released_lines_figures(lines: pd.DataFrame) -> Figures:
    return {
        "orders": int(lines["order_id"].nunique()),
        "lines": len(lines),
        "units": int(lines["quantity"].sum()),
        "hire_lines": int(lines["is_hire"].sum()),
    }


def release_figures(result: ReleaseResult) -> Figures:
    """Orders per action (every action, zero when none), acknowledgements, holds, and the
    two dispatch passes (``acs_effects_*``, ``khaos_effects_*``)."""
    counts = result.frame["action"].value_counts()
    return {
        **{f"orders_{a}": int(counts.get(a, 0)) for a in RELEASE_ACTIONS},
        "orders_acknowledged": result.acknowledged,
        "open_order_held": result.open_holds,
        "order_locked": result.order_locked,
        **dispatch_figures(result.acs_report, prefix="acs_"),
        **dispatch_figures(result.khaos_report, prefix="khaos_"),
        "sample": table(result.frame),
    }


def shipments_figures(intake: DespatchIntake, shipments: pd.DataFrame) -> Figures:
    """The feed read: events received, new and seen before, the shipments and the cursor
    (text: an id, not plotted)."""
    received = intake.received
    return {
        "events_read": len(received),
        "events_new": intake.new,
        "events_repeated": len(received) - intake.new,
        "shipments": len(shipments),
        "units": int(shipments["units"].sum()) if not shipments.empty else 0,
        "cursor": str(intake.cursor or ""),
        "sample": table(shipments[[c for c in SHIPMENT_COLUMNS if c != "event_id"]]),
    }


def postings_figures(result: PostingResult) -> Figures:
    frame, completion = result.frame, result.completion.values()
    return {
        "shipments": len(frame),
        "queued": int((frame["state"] == "queued").sum()),
        "posted": int((frame["effect_state"] == "done").sum()),
        "problems": int((frame["state"] == "problem").sum()),
        "closed_short_lines": result.closed_short_lines,
        "orders_shipped": sum(1 for c in completion if c == "shipped"),
        "orders_partially_shipped": sum(1 for c in completion if c == "partially_shipped"),
        **{f"open_{t}": n for t, n in result.open_counts.items()},
        **dispatch_figures(result.report),
        "sample": table(frame),
    }


def sla_figures(result: SlaResult) -> Figures:
    """Breaches per kind (every kind, zero when none) of the orders the clock tracks."""
    kinds = result.frame["kind"].value_counts()
    return {
        "orders_tracked": result.orders_tracked,
        "breaching": len(result.frame),
        **{f"breach_{k}": int(kinds.get(k, 0)) for k in SLA_KINDS},
        "open_order_sla_breach": result.open_breaches,
        "sample": table(result.frame),
    }
