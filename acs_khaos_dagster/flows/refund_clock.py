"""The 14-day refund clock of each sale return part: its credit status read back from
Khaos, and a ``refund_due`` exception (owner finance) that opens before the deadline and
closes itself once the credit is raised."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.returns import refund_deadline, refund_due
from acs_khaos_dagster.flows.figures import Figures, Verdict, table
from acs_khaos_dagster.flows.queues import sync_exceptions
from acs_khaos_dagster.flows.return_postings import REFUND_REF_PREFIX
from acs_khaos_dagster.flows.returns_intake import money
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.returns import ReturnsRepository

CLOCK_COLUMNS = [
    "associated_ref",
    "return_ref",
    "received_at",
    "deadline",
    "credit_status",
    "credit_value",
    "days_left",
    "due",
    "breached",
]


def read_credit_status(client: KhaosClient, refs: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for ref in refs:
        try:
            found = client.export_customer_returns(associated_ref=ref)
        except NotFoundError:
            continue
        if found:
            statuses[ref] = found[0].credit_status
    return statuses


def deadline_of(received: Any, days: int, time_zone: str) -> datetime | None:
    if received is None or pd.isna(received):
        return None
    return refund_deadline(pd.Timestamp(received).to_pydatetime(), days, time_zone)


def run_refund_clock(db: Store, client: KhaosClient, conf: Settings, now: datetime) -> pd.DataFrame:
    """Each sale return part (``CLOCK_COLUMNS``) with its credit status and deadline at
    ``now``; syncs the ``refund_due`` exceptions."""
    repo = ReturnsRepository(db.db)
    postings = repo.postings()
    sale = postings[~postings["is_hire"].astype(bool)].copy()
    pending = sale[sale["credit_status"] != "raised"]
    fresh = read_credit_status(client, list(pending["associated_ref"]))
    repo.set_credit_status(fresh, now)
    sale["credit_status"] = [
        fresh.get(ref, known or "none")
        for ref, known in zip(sale["associated_ref"], sale["credit_status"], strict=True)
    ]
    sale["credit_value"] = sale["goods_value"].map(money)
    due = refund_due(
        sale,
        now,
        days=conf.returns.refund_days,
        warn_days=conf.returns.refund_warn_days,
        time_zone=conf.time_zone,
    )
    sync_exceptions(db, due, ["refund_due"], owns=lambda ref: ref.startswith(REFUND_REF_PREFIX))
    warned = {w.associated_ref: w for w in due}
    rows = []
    for row in sale.to_dict("records"):
        received = row["received_at"]
        warning = warned.get(row["associated_ref"])
        deadline = (
            warning.deadline
            if warning
            else deadline_of(received, conf.returns.refund_days, conf.time_zone)
        )
        rows.append(
            {
                "associated_ref": row["associated_ref"],
                "return_ref": row["return_ref"],
                "received_at": received,
                "deadline": deadline,
                "credit_status": row["credit_status"],
                "credit_value": float(row["credit_value"]),
                "days_left": round((deadline - now).total_seconds() / 86400, 2)
                if deadline
                else 0.0,
                "due": warning is not None,
                "breached": bool(warning and warning.breached),
            }
        )
    return pd.DataFrame(rows, columns=CLOCK_COLUMNS)


def clock_figures(clock: pd.DataFrame) -> Figures:
    """The refund clock (``run_refund_clock``'s table) in numbers, and the parts due."""
    return {
        "sale_return_parts": len(clock),
        "credits_raised": int((clock["credit_status"] == "raised").sum()),
        "credits_pending_review": int((clock["credit_status"] == "review").sum()),
        "refunds_due": int(clock["due"].sum()),
        "refunds_breached": int(clock["breached"].sum()),
        "due": table(clock[clock["due"]]),
    }


def no_refund_breached(clock: pd.DataFrame) -> Verdict:
    """A warning: no sale return part is past its refund deadline without a credit."""
    breached = clock[clock["breached"]]
    return Verdict(
        breached.empty, {"breached": len(breached), "sample": table(breached)}, warn=True
    )
