"""The stock push: the newest checked snapshot to Khaos's Levels, never a stale target.

Steps (ARCHITECTURE "Stock arithmetic"; docs/stock-push.md):

1. the newest snapshot, if newer than the last pushed (else ``skipped``);
2. the units ``sellable_stock`` placed on Khaos sites for it — the table its blocking check
   guards — re-checked here against the raw per-status counts by an independent path, and
   the plausibility guard against the last pushed snapshot: either failing refuses it;
3. earlier push effects are settled: those that cannot land any more are superseded
   (audited; a held variance can no longer be approved), and if one may still land (in
   flight, or waiting for its read-back) the push waits — Levels read now would not show
   it, and the new plan would count it twice;
4. Khaos's Levels and the timing facts read together, the plan made (each line the
   planned *change*, moves between sites in one effect), and everything recorded with
   the snapshot's "pushed" marker in one transaction.

No Dagster here: ``defs/stock.py`` calls ``push_newest_snapshot`` and dispatches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.ex_hire import add_to_site_units
from acs_khaos_dagster.domain.stock_guards import (
    PlausibilityThresholds,
    SnapshotTotals,
    plausibility,
    sellable_mismatches,
)
from acs_khaos_dagster.domain.stock_push import (
    HeldVariance,
    PushPlan,
    VarianceTolerance,
    approved_variance_groups,
    cost_prices_from,
    plan_push,
    should_push,
    timing_corrections,
)
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.flows.stock_facts import (
    adjustment_facts,
    ex_hired_held_units,
    khaos_levels,
    movement_facts,
)
from acs_khaos_dagster.flows.tables.stock import StockUpdateSchema
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import ExceptionType
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.stock import StockSnapshot

ADJUSTMENT = EffectKind.KHAOS_STOCK_ADJUSTMENT
MOVE = EffectKind.KHAOS_STOCK_MOVE
PUSH_KINDS = (ADJUSTMENT, MOVE)
# Every effect of a snapshot push has a business key under this prefix.
PUSH_KEY_PREFIX = "snapshot:"
# Returns and other paths' adjustments older than this before the snapshot are taken as
# settled on both sides. Despatches have no such window (``despatch_facts``).
TIMING_LOOKBACK = timedelta(days=30)


def site_units_path(settings: Settings, snapshot_id: str) -> Path:
    """Units per StockID × Khaos site as ``sellable_stock`` placed them (all sites)."""
    return settings.data_dir / "stock" / "site_units" / f"{snapshot_id}.parquet"


def sellable_path(settings: Settings, snapshot_id: str) -> Path:
    return settings.data_dir / "stock" / "sellable" / f"{snapshot_id}.parquet"


def selling_sites(settings: Settings) -> set[int]:
    """The sites sellable and allocated units are placed on (sale and hire)."""
    return {settings.khaos.sites.selling, settings.khaos.sites.hire_stock}


@dataclass(frozen=True)
class PushResult:
    """What one push attempt did. ``outcome``: pushed, refused, skipped, waiting, nothing."""

    outcome: str
    detail: str
    snapshot_id: str | None = None
    plan: PushPlan | None = None
    corrections: pd.DataFrame | None = None
    guard_metrics: dict[str, float] = field(default_factory=dict)
    superseded: int = 0

    def table(self) -> pd.DataFrame:
        """Every StockID × site the push considered (``StockUpdateSchema``); empty if none."""
        if self.plan is not None:
            return self.plan.targets
        columns = StockUpdateSchema.to_schema().columns
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns}).astype(
            {"reason": "object"}
        )

    def figures(self) -> dict[str, Any]:
        """The attempt in numbers and words, for the run's metadata."""
        figures: dict[str, Any] = {
            "pushed": int(self.outcome == "pushed"),
            "refused": int(self.outcome == "refused"),
            "outcome": self.outcome,
            "detail": self.detail,
            "snapshot": self.snapshot_id or "",
            "earlier_effects_superseded": self.superseded,
            **{f"guard_{k}": round(v, 4) for k, v in self.guard_metrics.items()},
        }
        if self.plan is None:
            return figures
        figures.update({k: v for k, v in self.plan.summary().items() if k != "snapshot_id"})
        corrections = self.corrections
        none = corrections is None or corrections.empty
        figures["corrections"] = 0 if corrections is None else len(corrections)
        figures["correction_units"] = 0 if none else int(corrections["units"].sum())
        return figures


def keep_push_table(settings: Settings, result: PushResult) -> pd.DataFrame:
    """The push's table, kept as Parquet under the snapshot's id when a plan was made."""
    table = result.table()
    if result.plan is not None:
        path = settings.data_dir / "stock" / "pushes" / f"{result.plan.snapshot_id}.parquet"
        write_parquet_atomically(table, path)
    return table


def held_ref(held: HeldVariance) -> str:
    return f"{held.snapshot_id}:{held.stock_id}:S{held.site_id}"


def snapshot_left_unpushed(store: Store, settled_for: timedelta) -> str | None:
    """The newest snapshot, if it was taken in at least ``settled_for`` ago and is still
    waiting to be pushed (newer than the last pushed): a push that found an earlier one
    still landing, or lost to another run, left it for the next push."""
    snapshots = StockSnapshots(store.db)
    newest, last = snapshots.newest(), snapshots.last_pushed()
    if newest is None or newest.state != "ingested":
        return None
    if not should_push(newest.snapshot_at, last.snapshot_at if last else None):
        return None
    if newest.created_at > store.db.now() - settled_for:
        return None  # its own run (realtime mode) may be pushing it now
    return newest.snapshot_id


def push_newest_snapshot(
    store: Store, khaos: KhaosClient, settings: Settings, sku_map: pd.DataFrame
) -> PushResult:
    """Push the newest snapshot if it is newer, checked and plausible (see module doc)."""
    snapshots = StockSnapshots(store.db)
    snapshot = snapshots.newest()
    last = snapshots.last_pushed()
    if snapshot is None:
        return PushResult("nothing", "no snapshot taken in yet")
    sid = snapshot.snapshot_id
    if snapshot.state != "ingested":
        return PushResult("nothing", f"{sid} already {snapshot.state}", sid)
    if not should_push(snapshot.snapshot_at, last.snapshot_at if last else None):
        with store.transaction() as session:
            snapshots.mark(sid, "skipped", session=session)
        return PushResult("skipped", f"{sid} is not newer than the last pushed", sid)
    placed = site_units_path(settings, sid)
    if not placed.exists() or not sellable_path(settings, sid).exists():
        return PushResult("waiting", f"sellable_stock has not been built for {sid} yet", sid)
    counts = pd.read_parquet(snapshot.counts_path)
    mismatches = sellable_mismatches(
        counts,
        sku_map,
        pd.read_parquet(sellable_path(settings, sid)),
        settings.status_policy,
        site_units=pd.read_parquet(placed),
        selling_sites=selling_sites(settings),
    )
    if mismatches:
        reasons = [str(m) for m in mismatches[:20]]
        _refuse(store, snapshots, snapshot, reasons, {"mismatched_stock_ids": len(mismatches)})
        return PushResult("refused", "; ".join(reasons), sid)
    guard = plausibility(
        SnapshotTotals.from_counts(counts, settings.status_policy),
        snapshots.last_accepted_totals(),
        PlausibilityThresholds(
            max_total_drop=settings.stock.max_total_drop,
            max_sellable_drop=settings.stock.max_sellable_drop,
            max_unknown_share=settings.stock.max_unknown_share,
        ),
    )
    if not guard.accepted:
        # A truncated file must never zero the website: nothing is pushed.
        _refuse(store, snapshots, snapshot, list(guard.reasons), guard.metrics)
        return PushResult("refused", "; ".join(guard.reasons), sid, guard_metrics=guard.metrics)
    settling = store.outbox.settle_older(
        kinds=PUSH_KINDS,
        business_key_prefix=PUSH_KEY_PREFIX,
        reason=f"superseded by the push of the newer snapshot {sid}",
        late_apply=timedelta(seconds=settings.outbox.read_back_after_s),
    )
    if settling.unsettled:
        ids = ", ".join(str(i) for i in sorted(settling.unsettled)[:10])
        return PushResult(
            "waiting",
            f"an earlier push may still land in Khaos (effects {ids}); {sid} is pushed once "
            "it is settled",
            sid,
            guard_metrics=guard.metrics,
            superseded=len(settling.superseded),
        )
    costs = cost_prices_from(sku_map)
    plan, corrections, push_at = _plan(store, khaos, settings, sku_map, snapshot, placed)
    if not _record(store, snapshots, snapshot, plan, push_at, costs, settings, last):
        return PushResult(
            "skipped",
            f"{sid}: another run pushed a snapshot while this one planned; its plan was "
            "read against Levels that push may still move, so nothing of it is recorded",
            sid,
            guard_metrics=guard.metrics,
            superseded=len(settling.superseded),
        )
    return PushResult(
        "pushed",
        f"{sid}: {plan.lines} line(s), {len(plan.held)} held",
        sid,
        plan=plan,
        corrections=corrections,
        guard_metrics=guard.metrics,
        superseded=len(settling.superseded),
    )


def _plan(
    store: Store,
    khaos: KhaosClient,
    settings: Settings,
    sku_map: pd.DataFrame,
    snapshot: StockSnapshot,
    placed: Path,
) -> tuple[PushPlan, pd.DataFrame, datetime]:
    # An ex-hired unit ACS holds under its hire SKU is counted on its resale StockID, or
    # the push would undo the integration's own EXHIRE move (domain/ex_hire.py).
    units = add_to_site_units(
        pd.read_parquet(placed), ex_hired_held_units(store, settings, snapshot.units_path)
    )
    managed = set(sku_map["stock_id"].astype(int))
    since = snapshot.snapshot_at - TIMING_LOOKBACK
    # Levels and invoice/return states read together, right before applying.
    push_at = integration_now(settings)
    levels = khaos_levels(khaos, sorted(set(sku_map["stock_code"])), managed)
    despatches, returns = movement_facts(
        store, khaos, settings, sku_map, snapshot.snapshot_at, since
    )
    corrections = timing_corrections(
        snapshot_at=snapshot.snapshot_at,
        push_at=push_at,
        despatches=despatches,
        returns=returns,
        adjustments=adjustment_facts(store, since),
    )
    plan = plan_push(
        units,
        levels,
        corrections,
        snapshot_id=snapshot.snapshot_id,
        sites=settings.khaos.sites,
        tolerance=VarianceTolerance.from_settings(settings.stock),
        cost_prices=cost_prices_from(sku_map),
        max_lines_per_group=settings.stock.max_lines_per_adjustment,
        reasons=settings.khaos.reasons,
    )
    return plan, corrections, push_at


def _refuse(
    store: Store,
    snapshots: StockSnapshots,
    snapshot: StockSnapshot,
    reasons: list[str],
    metrics: dict[str, Any],
) -> None:
    with store.transaction() as session:
        snapshots.mark(snapshot.snapshot_id, "refused", session=session, reasons=reasons)
        store.exceptions.raise_exception(
            ExceptionType.SNAPSHOT_REFUSED,
            snapshot.snapshot_id,
            f"snapshot {snapshot.file_name} refused, nothing pushed: " + "; ".join(reasons),
            {"file": snapshot.file_name, **metrics},
            session=session,
        )


def _record(
    store: Store,
    snapshots: StockSnapshots,
    snapshot: StockSnapshot,
    plan: PushPlan,
    push_at: datetime,
    costs: dict[int, Any],
    settings: Settings,
    last: StockSnapshot | None,
) -> bool:
    """Every group, every move, every held variance (a held effect + its exception) and
    the snapshot's "pushed" marker in ONE transaction: a crash leaves all or nothing.

    Nothing is recorded (False) if another run recorded a push since this one began
    (``last`` was the last pushed then): two runs planning at once read Levels the other's
    changes had not reached, and both sets would land on top of each other."""
    sid = plan.snapshot_id
    with store.transaction() as session:
        store.db.serialize(session, PUSH_KEY_PREFIX)
        now_last = snapshots.last_pushed(session)
        if (now_last.id if now_last else None) != (last.id if last else None):
            return False
        marked = snapshots.mark(
            sid,
            "pushed",
            session=session,
            summary=dict(plan.summary()),
            pushed_at=push_at,
            only_from="ingested",  # another run pushed it meanwhile: record nothing twice
        )
        if marked is None:
            return False
        for group in plan.groups:
            store.outbox.enqueue(
                ADJUSTMENT,
                TARGET_OF[ADJUSTMENT],
                f"{PUSH_KEY_PREFIX}{sid}:site:{group.site_id}",
                group.group_ref,
                group.model_dump(mode="json"),
                session=session,
            )
        for move in plan.moves:
            store.outbox.enqueue(
                MOVE,
                TARGET_OF[MOVE],
                f"{PUSH_KEY_PREFIX}{sid}:move",
                move.ref,
                move.model_dump(mode="json"),
                session=session,
            )
        for held in plan.held:
            _record_held(store, held, costs, settings, session)
    return True


def _record_held(
    store: Store, held: HeldVariance, costs: dict[int, Any], settings: Settings, session: Any
) -> None:
    [group] = approved_variance_groups(
        [held],
        approval_ref=str(held.stock_id),
        cost_prices=costs,
        reasons=settings.khaos.reasons,
    )
    effect = store.outbox.enqueue(
        ADJUSTMENT,
        TARGET_OF[ADJUSTMENT],
        f"{PUSH_KEY_PREFIX}{held.snapshot_id}:held:{held.stock_id}:{held.site_id}",
        group.group_ref,
        group.model_dump(mode="json"),
        hold=True,
        session=session,
    )
    store.exceptions.raise_exception(
        ExceptionType.STOCK_VARIANCE_HELD,
        held_ref(held),
        f"StockID {held.stock_id} on site {held.site_id}: {held.held_units:+d} unit(s) "
        f"held (value {held.value if held.value is not None else 'unknown'}): "
        f"{held.reason}. Approve to push them as VARIANCE (the change, applied to the "
        "Level Khaos has when it is sent).",
        {
            "snapshot_id": held.snapshot_id,
            "stock_id": held.stock_id,
            "site_id": held.site_id,
            "level": held.level,
            "target": held.target,
            "pushed_to": held.pushed_to,
            "held_units": held.held_units,
            "sku_difference": held.sku_difference,
            "value": None if held.value is None else str(held.value),
            "group_ref": group.group_ref,
        },
        effect_id=effect.id,
        session=session,
    )
