"""Stock reconciliation: ACS's units (newest snapshot of the day, status policy) against
Khaos's Level read now, explained by timing (in flight), by pushes never confirmed
(push missing), the rest unexplained; valued at the day's recorded costs."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import reconciliation as rules
from acs_khaos_dagster.domain.models import StockAdjustmentGroup, StockMove
from acs_khaos_dagster.domain.reconciliation import (
    IN_FLIGHT_COLUMNS,
    PUSH_MISSING_COLUMNS,
    STOCK_RECONCILIATION_COLUMNS,
    StockClass,
    drift_findings,
    in_flight_from_corrections,
)
from acs_khaos_dagster.domain.stock_push import (
    VarianceTolerance,
    acs_site_units,
    cost_prices_from,
    timing_corrections,
)
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.common import effect_states, write_parquet_atomically
from acs_khaos_dagster.flows.duplicates import adjustment_duplicates, raise_duplicates
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.flows.period_costs import period_cost_prices, record_day_costs
from acs_khaos_dagster.flows.reconciliation.storage import (
    empty,
    opened,
    record_drift_day,
    sync_findings,
    table_path,
)
from acs_khaos_dagster.flows.stock_facts import adjustment_facts, khaos_levels, movement_facts
from acs_khaos_dagster.flows.stock_push import PUSH_KINDS, TIMING_LOOKBACK
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.stock import StockSnapshots

UNSENT = ("parked", "failed")  # an effect the outbox gave up on: never confirmed
_WAITING = ("pending", "in_flight")  # an effect still on its way


@dataclass(frozen=True)
class StockReconciliation:
    """The day's stock table and what it raised (``None``: a newer day was synced)."""

    frame: pd.DataFrame
    snapshot: str  # the snapshot id, or why there is none
    levels_read_at: datetime | None
    drift_open: int | None
    khaos_duplicates_open: int | None

    def counts(self) -> dict[str, int | float]:
        frame = self.frame
        by_class = frame["classification"].value_counts()
        unexplained = frame.loc[frame["classification"] == str(StockClass.UNEXPLAINED)]
        some = len(frame) > 0
        return {
            "rows": len(frame),
            **{f"{c}_rows": int(by_class.get(str(c), 0)) for c in StockClass},
            "difference_units_gross": int(frame["difference"].abs().sum()) if some else 0,
            "in_flight_units": int(frame["explained_in_flight"].sum()) if some else 0,
            "push_missing_units": int(frame["explained_push_missing"].sum()) if some else 0,
            "unexplained_units_gross": int(unexplained["unexplained"].abs().sum()),
            "unexplained_value_gross": round(
                float(unexplained["unexplained_value"].abs().fillna(0).sum()), 2
            ),
        }

    def figures(self) -> Figures:
        frame, read_at = self.frame, self.levels_read_at
        return {
            "snapshot": self.snapshot,
            **({} if read_at is None else {"levels_read_at": read_at.isoformat()}),
            **self.counts(),
            **opened(khaos_duplicates_open=self.khaos_duplicates_open, drift_open=self.drift_open),
            "not_in_step": table(frame.loc[frame["classification"] != "in_step"]),
        }


class SnapshotPruned(RuntimeError):
    """A day whose snapshot counts retention has removed: it cannot be reconciled again."""


def reconcile_stock(
    db: Store,
    client: KhaosClient,
    conf: Settings,
    sku_map: pd.DataFrame,
    day: str,
    now: datetime,
) -> StockReconciliation:
    """Reconcile the day's newest snapshot, keep the table and the day's drift, and sync
    the ``recon:stock:`` drift and the adjustment ``khaos_duplicate`` exceptions."""
    # Costs as at the day: recorded once, so a re-run after a price change values the
    # day as it was (the month-end pack reads the same record).
    record_day_costs(conf, day, cost_prices_from(sku_map), now)
    costs = period_cost_prices(conf, day)
    site_names = {v: k for k, v in conf.khaos.sites.model_dump().items()}
    levels_read_at: datetime | None = None
    # The day's newest snapshot only (not every snapshot ever taken in).
    snapshot = StockSnapshots(db.db).newest_of_day(day)
    if snapshot is None:
        frame = empty(STOCK_RECONCILIATION_COLUMNS)
        snapshot_note = f"no ACS snapshot taken in for {day}"
        findings: list = []
    else:
        if snapshot.counts_pruned_at is not None:
            raise SnapshotPruned(
                f"the counts of the {day} ACS snapshot were removed by snapshot retention on "
                f"{snapshot.counts_pruned_at:%Y-%m-%d}, after the month's final pack was built: "
                "this day can no longer be reconciled again (docs/store-archiving.md)"
            )
        counts = pd.read_parquet(snapshot.counts_path)
        site = acs_site_units(counts, sku_map, conf.status_policy, conf.khaos.sites)
        managed = set(sku_map["stock_id"].astype(int))
        since = snapshot.snapshot_at - TIMING_LOOKBACK
        levels = khaos_levels(client, sorted(set(sku_map["stock_code"])), managed)
        pending, missing, other_facts = push_explanations(db, levels, snapshot.snapshot_at, since)
        despatches, returns = movement_facts(
            db, client, conf, sku_map, snapshot.snapshot_at, since, returns_not_posted=False
        )
        corrections = timing_corrections(
            snapshot_at=snapshot.snapshot_at,
            push_at=now,
            despatches=despatches,
            returns=returns,
            adjustments=other_facts,
        )
        in_flight = pd.concat(
            [f for f in (in_flight_from_corrections(corrections), pending) if len(f)]
            or [empty(IN_FLIGHT_COLUMNS)],
            ignore_index=True,
        )
        frame = rules.stock_reconciliation(
            site.units,
            levels,
            in_flight if len(in_flight) else None,
            missing if len(missing) else None,
            costs,
            VarianceTolerance.from_settings(conf.stock),
        )
        findings = drift_findings(stock=frame)
        snapshot_note = snapshot.snapshot_id
        levels_read_at = now
    opened = sync_findings(db, "stock", ["recon:stock:"], findings, day)
    # Adjustment groups and write-offs Khaos saved twice (khaos_duplicate).
    doubled = raise_duplicates(db, "adjustment", adjustment_duplicates(db, client, conf), day)
    codes = sku_map.set_index("stock_id")["stock_code"]
    frame.insert(2, "stock_code", frame["stock_id"].map(codes).fillna("").astype(str))
    frame.insert(3, "site_name", frame["site_id"].map(site_names).fillna("").astype(str))
    write_parquet_atomically(frame, table_path(conf, "stock", day))
    record_drift_day(conf, day, frame)
    return StockReconciliation(frame, snapshot_note, levels_read_at, opened, doubled)


def push_explanations(
    db: Store, levels: pd.DataFrame, snapshot_at: datetime, since: datetime
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(pending pushes as in_flight rows, unconfirmed pushes, other adjustments' facts).

    The snapshot pushes' "adjust to" lines: the newest line per StockID × site decides
    (a later push supersedes an earlier one); still waiting → ``effect_pending``, given up
    → ``push_missing``; either way its units are how far it moves Level from now. Other
    adjustments (write-offs, ex-hire) given up on are ``push_missing`` by their change;
    those still waiting go to the timing corrections like any other fact.
    """
    level_now = {
        (int(r.stock_id), int(r.site_id)): int(r.level) for r in levels.itertuples(index=False)
    }
    latest: dict[tuple[int, int], tuple[str, int, str]] = {}
    pushes = [e for kind in PUSH_KINDS for e in db.outbox.find(kind=kind)]
    for effect in sorted(pushes, key=lambda e: e.id):
        if effect.state == "superseded":
            continue  # a newer plan replaced it: it moves nothing
        for group in _push_groups(effect):
            for line in group.lines:
                key = (line.stock_id, group.site_id)
                if line.adjust_to is not None:
                    moves = line.adjust_to - level_now.get(key, 0)
                elif line.adjust_by is not None:
                    moves = line.adjust_by
                else:
                    continue
                latest[key] = (effect.state, moves, group.group_ref)
    waiting, unsent = [], []
    for (stock_id, site_id), (state, moves, ref) in latest.items():
        if moves == 0:
            continue
        if state in _WAITING:
            waiting.append((stock_id, site_id, moves, "effect_pending", ref))
        elif state in UNSENT:
            unsent.append((stock_id, site_id, moves, ref))
    facts = adjustment_facts(db, since)
    states = effect_states(db, facts["ref"], missing="missing")
    given_up = pd.Series([s in UNSENT for s in states], index=facts.index, dtype=bool)
    happened = pd.to_datetime(facts["happened_at"], utc=True) <= pd.Timestamp(snapshot_at)
    for r in facts.loc[given_up & happened].itertuples(index=False):
        unsent.append((int(r.stock_id), int(r.site_id), int(r.change), str(r.ref)))
    return (
        pd.DataFrame(waiting, columns=list(IN_FLIGHT_COLUMNS)),
        pd.DataFrame(unsent, columns=list(PUSH_MISSING_COLUMNS)),
        facts.loc[~given_up],
    )


def _push_groups(effect: Any) -> list[StockAdjustmentGroup]:
    """The adjustment groups a snapshot push effect sends (a move's legs, or one group)."""
    if effect.kind == str(EffectKind.KHAOS_STOCK_MOVE):
        return list(StockMove.model_validate(effect.payload).legs)
    group = StockAdjustmentGroup.model_validate(effect.payload)
    return [group] if group.group_ref.startswith("SNAP-") else []
