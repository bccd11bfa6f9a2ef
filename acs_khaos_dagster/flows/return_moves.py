"""Returned units still in Khaos's Level (hire units): written off (WRITEOFF, at the hire
valuation basis) when BER or disposed, or moved to resale (paired EXHIRE adjustments),
through the outbox. A sale return is never adjusted: its customer return is the only
mover. ACS repair costs are reported for finance, never added to stock value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.ex_hire import ex_hire_unit_value
from acs_khaos_dagster.domain.models import StockItem
from acs_khaos_dagster.domain.returns import (
    StockMoveKind,
    apply_grade_policy,
    plan_write_offs,
    repair_costs,
)
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.figures import Figures, Verdict, dispatch_figures, table
from acs_khaos_dagster.flows.hire import hire_write_off_value
from acs_khaos_dagster.flows.queues import dispatch, effect_states, sync_exceptions
from acs_khaos_dagster.flows.return_postings import (
    domain_units,
    owned_by_returns,
    stored_matches,
)
from acs_khaos_dagster.flows.returns_intake import money
from acs_khaos_dagster.store import DispatchReport, Store
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.returns import ReturnsRepository

# Mapping gaps of write-offs: a missing resale StockID, an unknown stock item.
MOVE_PROBLEM_TYPES = ("resale_unmapped", "stock_item_unknown")


@dataclass(frozen=True)
class ReturnMovesResult:
    """Every adjustment group stored, with its effect's state; what this pass queued; the
    sale units written off by their customer return; ACS repair costs by month."""

    table: pd.DataFrame
    moves_queued: int
    sale_written_off: int
    repair_costs: pd.DataFrame
    open_counts: dict[str, int]
    report: DispatchReport

    @property
    def write_offs(self) -> pd.DataFrame:
        return self.table[self.table["kind"] == StockMoveKind.WRITE_OFF.value]

    @property
    def ex_hire_out(self) -> pd.DataFrame:
        table = self.table
        return table[(table["kind"] == StockMoveKind.EX_HIRE.value) & (table["adjust_by"] < 0)]

    def figures(self) -> Figures:
        """This pass's moves, write-offs and ex-hire in units and value, the mapping gaps
        open, ACS repair costs (for finance, never stock value), the dispatch's outcomes."""
        write_offs, ex_hire_out = self.write_offs, self.ex_hire_out
        gaps = sum(self.open_counts.get(t, 0) for t in MOVE_PROBLEM_TYPES)
        return {
            "moves_queued": self.moves_queued,
            "units_written_off": len(write_offs) + self.sale_written_off,
            "units_written_off_by_adjustment": len(write_offs),
            "sale_units_written_off": self.sale_written_off,
            "write_off_value": round(float(write_offs["value"].sum()), 2),
            "ex_hired_to_resale": len(ex_hire_out),
            "ex_hire_value": round(float(ex_hire_out["value"].sum()), 2),
            "mapping_gaps": int(gaps),
            "repair_cost_total": repair_cost_total(self.repair_costs),
            "repair_costs_by_month": table(self.repair_costs),
            **dispatch_figures(self.report),
            "moves": table(self.table[["group_ref", "kind", "value", "state"]]),
        }


def stock_items(client: KhaosClient, codes: set[str]) -> dict[int, StockItem]:
    if not codes:
        return {}
    requestable, _ = client.requestable_codes(sorted(codes))
    return {item.stock_id: item for item in client.export_stock(requestable)}


def post_write_offs(db: Store, client: KhaosClient, conf: Settings) -> ReturnMovesResult:
    """Plan, record and send the adjustments of returned units still in Level."""
    policy = conf.grade_policy
    kind = EffectKind.KHAOS_STOCK_ADJUSTMENT
    repo = ReturnsRepository(db.db)
    units = repo.units()
    graded, _ = apply_grade_policy(stored_matches(units), policy)
    # Only hire units are still in Level; a sale unit left it when invoiced.
    in_level = graded[graded["is_hire"].astype(bool)] if not graded.empty else graded
    items = stock_items(client, set(in_level["stock_code"].dropna().astype(str)))
    identity = {sku: sid for sid, sku in SkuIdentities(db.db).identity().items()}
    moves, move_problems = plan_write_offs(
        graded,
        items,
        identity,
        conf.khaos.sites,
        policy,
        conf.returns.resale_stock_ids,
        already_planned=repo.planned_group_refs(),
        reasons=conf.khaos.reasons,
        ex_hire_value=partial(
            ex_hire_unit_value,
            share_of_cost=conf.returns.ex_hire_value_share,
            unit_values=conf.returns.ex_hire_unit_values,
        ),
        hire_write_off_value=hire_write_off_value(conf, db),
    )
    with db.transaction() as session:
        repo.record_moves(moves, session)
        for move in moves:
            for group in move.groups:
                db.outbox.enqueue(
                    kind,
                    TARGET_OF[kind],
                    move.unique_sku,
                    group.group_ref,
                    group.model_dump(mode="json"),
                    session=session,
                )
    report = dispatch(db, conf, [kind], khaos=client)
    # Unknown grades belong to khaos_return_postings; the rest are mapping gaps.
    gaps = [p for p in move_problems if p.exception_type in MOVE_PROBLEM_TYPES]
    open_counts = sync_exceptions(db, gaps, MOVE_PROBLEM_TYPES, owns=owned_by_returns)
    table = repo.moves()
    table["state"] = effect_states(db, table["group_ref"], missing="missing")
    postings = repo.postings()
    table["value"] = table["value"].map(lambda v: float(money(v)))
    sale_written_off = int(postings[~postings["is_hire"].astype(bool)]["written_off_units"].sum())
    return ReturnMovesResult(
        table,
        moves_queued=len(moves),
        sale_written_off=sale_written_off,
        repair_costs=repair_costs(domain_units(units), by="month"),
        open_counts=open_counts,
        report=report,
    )


def repair_cost_total(costs: pd.DataFrame) -> float:
    return round(float(sum(costs["repair_cost"], Decimal("0"))), 2)


def moves_breaking_one_mover(db: Store, moves: pd.DataFrame) -> pd.DataFrame:
    """Moves (``post_write_offs``' table) that adjust a returned sale unit — its customer
    return is its only mover — or write a unit off twice."""
    units = ReturnsRepository(db.db).units()
    sale_units = set(units[units["is_hire"].eq(False)]["unique_sku"])
    adjusted = moves[moves["unique_sku"].isin(sale_units)]
    doubled = moves[moves.duplicated(["unique_sku", "kind", "adjust_by"], keep=False)]
    return pd.concat([adjusted, doubled]).drop_duplicates("group_ref")


def one_mover_per_event(db: Store, moves: pd.DataFrame) -> Verdict:
    """The blocking check's rule: no move breaks "one mover per event"."""
    bad = moves_breaking_one_mover(db, moves)
    return Verdict(bad.empty, {"bad_moves": len(bad), "sample": table(bad)})
