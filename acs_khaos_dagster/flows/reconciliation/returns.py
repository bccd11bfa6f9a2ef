"""Returns reconciliation: each graded returned unit against Khaos — its customer return
and credit, BER/disposed units against write-offs, the refund clock — and the exception
queue by owner team and type."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.connectors.khaos.records import KhaosCustomerReturn
from acs_khaos_dagster.domain import reconciliation as rules
from acs_khaos_dagster.domain.duplicates import duplicate_returns
from acs_khaos_dagster.domain.reconciliation import (
    EXCEPTIONS_TABLE_COLUMNS,
    RETURNS_RECONCILIATION_COLUMNS,
    drift_findings,
    exceptions_table,
)
from acs_khaos_dagster.domain.returns import StockMoveKind, apply_grade_policy
from acs_khaos_dagster.flows.common import effect_states, write_parquet_atomically
from acs_khaos_dagster.flows.duplicates import raise_duplicates, return_frame
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.flows.reconciliation.stock import UNSENT
from acs_khaos_dagster.flows.reconciliation.storage import (
    as_at,
    empty,
    opened,
    sync_findings,
    table_path,
)
from acs_khaos_dagster.flows.return_postings import stored_matches
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.returns import ReturnsRepository

# A sale return whose credit Khaos does not have at all this long after receipt is drift.
CREDIT_MISSING_AFTER_HOURS = 24.0


@dataclass(frozen=True)
class ReturnsReconciliation:
    frame: pd.DataFrame
    drift_open: int | None
    khaos_duplicates_open: int | None

    @property
    def problems(self) -> pd.DataFrame:
        """Units not written off, and refunds due soon or overdue."""
        frame = self.frame
        return frame.loc[
            frame["write_off_status"].isin(["missing", "missing_reason"])
            | frame["refund_state"].isin(["due_soon", "overdue"])
        ]

    def counts(self) -> dict[str, int | float]:
        frame = self.frame
        sale = frame.loc[~frame["is_hire"].astype(bool)] if len(frame) else frame
        credits = sale["credit_status"] if len(sale) else pd.Series(dtype=object)
        return {
            "units": len(frame),
            "credits_raised": int((credits == "raised").sum()),
            "credits_pending_review": int((credits == "review").sum()),
            "credits_missing": int(credits.isin(["missing", "none"]).sum()),
            "credits_pending_value": round(float(frame["credit_pending_value"].sum()), 2)
            if len(frame)
            else 0.0,
            "refunds_due_soon": int((frame["refund_state"] == "due_soon").sum()),
            "refunds_overdue": int((frame["refund_state"] == "overdue").sum()),
            "write_offs_missing": int(
                frame["write_off_status"].isin(["missing", "missing_reason"]).sum()
            ),
            "write_offs_pending": int((frame["write_off_status"] == "pending").sum()),
        }

    def figures(self) -> Figures:
        return {
            **self.counts(),
            **opened(drift_open=self.drift_open, khaos_duplicates_open=self.khaos_duplicates_open),
            "problems": table(self.problems),
        }


def reconcile_returns(
    db: Store, khaos: KhaosClient, conf: Settings, day: str, now: datetime
) -> ReturnsReconciliation:
    """Every graded unit received by the day's end against Khaos; keeps the table, syncs
    the ``recon:writeoff:``/``recon:credit:`` drift and the return duplicates."""
    at = as_at(conf, day, now)
    doubled: int | None = 0
    repo = ReturnsRepository(db.db)
    units = repo.units()
    graded, _ = apply_grade_policy(stored_matches(units), conf.grade_policy)
    if graded.empty:
        frame = empty(RETURNS_RECONCILIATION_COLUMNS)
    else:
        keys = ["return_ref", "unique_sku"]
        graded = graded.merge(
            units[[*keys, "associated_ref"]], on=keys, how="left", suffixes=("_x", "")
        )
        graded = graded.loc[pd.to_datetime(graded["received_at"], utc=True) <= at]
        ordered = {
            code: r.payload.get("order_date") for code, r in OrderBook(db.db).releases().items()
        }
        graded["order_date"] = pd.to_datetime(
            graded["order_number"].astype(str).map(ordered), utc=True
        )
        write_offs = _write_offs(db, repo)
        khaos_returns, read = _khaos_returns(
            khaos, graded["associated_ref"].dropna().astype(str), conf.khaos.reasons.written_off
        )
        # Customer returns Khaos holds twice under one AssociatedRef (khaos_duplicate).
        posted = repo.postings()
        goods = dict(zip(posted["associated_ref"], posted["goods_value"], strict=True))
        doubled = raise_duplicates(db, "return", duplicate_returns(return_frame(read, goods)), day)
        frame = rules.returns_reconciliation(
            graded,
            khaos_returns,
            write_offs,
            at,
            refund_days=conf.returns.refund_days,
            warn_days=conf.returns.refund_warn_days,
            tz=conf.time_zone,
        )
    findings = drift_findings(
        returns=frame if len(frame) else None,
        credit_missing_after_hours=CREDIT_MISSING_AFTER_HOURS,
        now=at,
    )
    opened = sync_findings(db, "returns", ["recon:writeoff:", "recon:credit:"], findings, day)
    write_parquet_atomically(frame, table_path(conf, "returns", day))
    return ReturnsReconciliation(frame, opened, doubled)


def _write_offs(db: Store, repo: ReturnsRepository) -> pd.DataFrame:
    """Write-off moves not given up on, with when Khaos confirmed each (NaT: not yet)."""
    moves = repo.moves()
    offs = moves.loc[moves["kind"] == StockMoveKind.WRITE_OFF.value].copy()
    offs["state"] = effect_states(db, offs["group_ref"], missing="missing")
    offs = offs.loc[~offs["state"].isin(UNSENT)]
    updated = {
        ref: db.outbox.by_key(ref).updated_at  # type: ignore[union-attr]
        for ref, state in zip(offs["group_ref"], offs["state"], strict=True)
        if state == "done"
    }
    return pd.DataFrame(
        {
            "unique_sku": offs["unique_sku"].astype(str),
            "applied_at": pd.to_datetime(offs["group_ref"].map(updated), utc=True),
        }
    )


def _khaos_returns(
    client: KhaosClient, refs: Iterable[str], written_off: frozenset[str]
) -> tuple[pd.DataFrame, list[KhaosCustomerReturn]]:
    """Every customer return Khaos holds under each AssociatedRef: all of them, so one
    imported twice shows (``duplicate_return_ids``, ``khaos_duplicate``)."""
    rows, returns = [], []
    for ref in sorted(set(refs)):
        try:
            found = client.export_customer_returns(associated_ref=ref)
        except NotFoundError:
            continue
        returns.extend(found)
        for ret in found:
            rows.append(
                {
                    "associated_ref": ref,
                    "return_id": ret.return_id,
                    "credit_status": ret.credit_status,
                    "write_off_units": sum(
                        i.quantity for i in ret.items if i.return_reason in written_off
                    ),
                }
            )
    columns = ["associated_ref", "return_id", "credit_status", "write_off_units"]
    return pd.DataFrame(rows, columns=columns), returns


# --- the exception queue -----------------------------------------------------------------------


def exception_queue(db: Store, conf: Settings, day: str) -> pd.DataFrame:
    """The open exceptions by owner and type, aged on the store's clock; kept for the day."""
    now = db.db.now()
    rows = pd.DataFrame(
        [
            {"type": e.row.type, "owner": e.row.owner, "opened_at": e.row.opened_at}
            for e in db.exceptions.list()
        ],
        columns=["type", "owner", "opened_at"],
    )
    frame = (
        exceptions_table(rows, now, conf.owner_targets)
        if len(rows)
        else empty(EXCEPTIONS_TABLE_COLUMNS)
    )
    write_parquet_atomically(frame, table_path(conf, "exceptions", day))
    return frame


def queue_figures(queue: pd.DataFrame) -> Figures:
    """The exception queue (``exception_queue``'s table) in numbers, per owner team."""
    some = len(queue) > 0
    per_owner = queue.groupby("owner")["count"].sum() if some else pd.Series(dtype=int)
    return {
        "open_exceptions": int(queue["count"].sum()) if some else 0,
        "over_target": int(queue["over_target"].sum()) if some else 0,
        **{f"open_{owner}": int(n) for owner, n in per_owner.items()},
        "queue": table(queue, 40),
    }
