"""Customer returns to Khaos: returned sale units matched to their Khaos order lines,
graded by the policy, and posted as customer returns (``ImportCustomerReturns``) through
the outbox — one part per return, arrival batch and credit mode, credited at the line's
UnitNet. Unmatched units and unknown grades are exceptions, never guesses; a unit settled
by hand is never matched or credited again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import SalesOrder
from acs_khaos_dagster.domain.returns import (
    MATCHED_COLUMNS,
    apply_grade_policy,
    match_returns,
    plan_return_postings,
)
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.figures import Figures, dispatch_figures, table
from acs_khaos_dagster.flows.queues import dispatch, effect_states, sync_exceptions
from acs_khaos_dagster.flows.returns_intake import money
from acs_khaos_dagster.store import DispatchReport, Store
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.returns import ReturnsRepository

# Problems raised by the returns flows carry refs starting with these; other flows'
# exceptions of the same type are never closed here.
RETURN_REF_PREFIX = "return:"
REFUND_REF_PREFIX = "refund:"
PROBLEM_TYPES = ("return_unmatched", "unknown_grade")


@dataclass(frozen=True)
class ReturnPostingsResult:
    """Every return part stored, with its effect's state; and what this pass did."""

    table: pd.DataFrame
    parts_queued: int
    units_posted: int
    units_matched: int
    open_counts: dict[str, int]
    report: DispatchReport

    def figures(self) -> Figures:
        """This pass's parts and units, every part's credits, the dispatch's outcomes."""
        parts = self.table
        return {
            "parts_queued": self.parts_queued,
            "units_posted": self.units_posted,
            "units_matched": self.units_matched,
            "units_unmatched": int(self.open_counts.get("return_unmatched", 0)),
            "units_unknown_grade": int(self.open_counts.get("unknown_grade", 0)),
            "return_parts": len(parts),
            **credit_figures(parts),
            **dispatch_figures(self.report),
            "parts": table(
                parts[["associated_ref", "credit_mode", "units", "credit_value", "state"]]
            ),
        }


def owned_by_returns(ref: str) -> bool:
    return ref.startswith(RETURN_REF_PREFIX)


def domain_units(units: pd.DataFrame) -> pd.DataFrame:
    """Stored units as the domain's returns table (batch id as text, money as Decimal)."""
    frame = units.copy()
    frame["batch_id"] = frame["batch_id"].astype(str)
    frame["repair_cost"] = frame["repair_cost"].map(money)
    frame["defect_codes"] = frame["defect_codes"].map(
        lambda s: [c for c in str(s or "").split("|") if c]
    )
    return frame


def stored_matches(units: pd.DataFrame) -> pd.DataFrame:
    """Units already linked to their order line, in ``match_returns``' shape."""
    matched = domain_units(units[units["order_item_id"].notna()])
    if matched.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
    matched["order_item_id"] = matched["order_item_id"].astype(int)
    matched["stock_id"] = matched["stock_id"].astype(int)
    matched["unit_net"] = matched["unit_net"].map(money)
    matched["is_hire"] = matched["is_hire"].astype(bool)
    return matched[list(MATCHED_COLUMNS)].reset_index(drop=True)


def orders_by_code(
    client: KhaosClient, conf: Settings, codes: set[str], db: Store | None = None
) -> dict[str, SalesOrder]:
    """Khaos orders named by code (ACS order number = Khaos ``order_code``), with invoices.

    Khaos cannot be asked by order code. The store knows the Khaos id of every order this
    integration released; only codes it does not know are looked up by listing the orders
    at every live stage (a brand's whole book of issued orders: at scale the read that
    timed out every returns run of the soak, so the returns were never posted). Then
    those ids' status is read (invoices with their despatch ExternalRef)."""
    if not codes:
        return {}
    known = {} if db is None else OrderBook(db.db).releases_of(codes)
    ids = {r.order_id for r in known.values()}
    missing = codes - set(known)
    if missing:
        stages = conf.khaos.stages
        live = {stages.released, stages.acknowledged, stages.issue, stages.awaiting_stock}
        listed = client.export_orders(sorted(live | set(stages.issued)), None)
        ids |= {o.order_id for o in listed if o.order_code in missing}
    if not ids:
        return {}
    found = client.export_order_status(sorted(ids), include_tracking=False)
    return {o.order_code: o for o in found if o.order_code in codes}


def post_customer_returns(db: Store, client: KhaosClient, conf: Settings) -> ReturnPostingsResult:
    """Match, grade and post every returned unit not yet posted (see module doc)."""
    policy = conf.grade_policy
    kind = EffectKind.KHAOS_CUSTOMER_RETURN
    repo = ReturnsRepository(db.db)
    identity = SkuIdentities(db.db).identity()
    repo.settle_units_closed_by_hand()
    every_unit = repo.units()
    # A unit settled by hand is never matched or credited here again (a second refund).
    units = every_unit[every_unit["settled_by_hand_at"].isna()]
    unmatched = units[units["order_item_id"].isna()]
    matched_before = {
        (r, u): (str(n), int(o))
        for r, u, n, o in units[units["order_item_id"].notna()][
            ["return_ref", "unique_sku", "order_number", "order_item_id"]
        ].itertuples(index=False)
    }
    problems: list[Any] = []
    newly = pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
    if not unmatched.empty:
        codes = set(unmatched["order_number"].dropna().astype(str))
        orders = orders_by_code(client, conf, codes, db)
        newly, unmatched_problems = match_returns(
            domain_units(unmatched), orders, identity, matched_before=matched_before
        )
        problems.extend(unmatched_problems)
    stored = stored_matches(units)
    unposted = units[units["associated_ref"].isna()][["return_ref", "unique_sku"]]
    candidates = stored.merge(unposted, on=["return_ref", "unique_sku"])
    frames = [f for f in (candidates, newly) if not f.empty]
    everything = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
    )
    graded, grade_problems = apply_grade_policy(everything, policy)
    problems.extend(grade_problems)
    postings = plan_return_postings(
        graded,
        policy,
        already_posted_units=repo.posted_units(),
        part_numbers_used=repo.part_numbers_used(),
    )
    # Matches, parts and their effects land together or not at all.
    with db.transaction() as session:
        # A person may have closed a unit's exception while this run talked to Khaos:
        # claimed again here, in the transaction that would post it, it is never posted.
        repo.settle_units_closed_by_hand(session)
        settled = repo.settled_units(session)
        postings = [
            p for p in postings if not any((p.return_ref, u) in settled for u in p.unique_skus)
        ]
        keys = list(zip(newly["return_ref"], newly["unique_sku"], strict=True))
        newly = newly[[(str(r), str(u)) not in settled for r, u in keys]]
        repo.record_matches(newly, session)
        repo.record_postings(postings, session)
        for posting in postings:
            db.outbox.enqueue(
                kind,
                TARGET_OF[kind],
                posting.return_ref,
                posting.idempotency_key,
                posting.customer_return.model_dump(mode="json"),
                session=session,
            )
    report = dispatch(db, conf, [kind], khaos=client)
    open_counts = sync_exceptions(db, problems, PROBLEM_TYPES, owns=owned_by_returns)
    table = repo.postings()
    table["state"] = effect_states(db, table["idempotency_key"], missing="missing")
    table["credit_value"] = table["credit_value"].map(lambda v: float(money(v)))
    table["goods_value"] = table["goods_value"].map(lambda v: float(money(v)))
    return ReturnPostingsResult(
        table,
        parts_queued=len(postings),
        units_posted=sum(len(p.unique_skus) for p in postings),
        units_matched=len(newly),
        open_counts=open_counts,
        report=report,
    )


def credit_figures(table: pd.DataFrame) -> dict[str, float | int]:
    """Sale return parts' credits: raised, pending review, and units written off."""
    sale = table[~table["is_hire"].astype(bool)]
    # Not yet read back from Khaos: an auto credit is raised on import, else the mode says.
    assumed = sale["credit_mode"].map({"auto": "raised"}).fillna(sale["credit_mode"])
    status = sale["credit_status"].where(sale["credit_status"].notna(), assumed)
    raised, review = sale[status == "raised"], sale[status == "review"]
    return {
        "credits_raised": len(raised),
        "credits_raised_value": round(float(raised["credit_value"].sum()), 2),
        "credits_pending_review": len(review),
        "credits_pending_review_value": round(float(review["credit_value"].sum()), 2),
        "sale_units_written_off": int(sale["written_off_units"].sum()),
    }
