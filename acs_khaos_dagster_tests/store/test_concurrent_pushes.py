"""Two stock pushes at once never both land.

A push plans against the Levels Khaos has when it reads them; every earlier push's changes
must have landed (or be superseded) by then, or the new plan counts them again. Two runs
planning at once (a retried run and the schedule's next one, with no pool limit) each read
Levels the other's changes had not reached: only the first to record keeps its plan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_guards import SnapshotTotals
from acs_khaos_dagster.domain.stock_push import VarianceTolerance, plan_push
from acs_khaos_dagster.flows.stock_push import PUSH_KEY_PREFIX, PUSH_KINDS, _record
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster.store.stock import StockSnapshots

SITES = KhaosSites()
MONDAY = datetime(2026, 3, 2, 5, tzinfo=UTC)


def _snapshot(store: Store, n: int) -> str:
    snapshot_id = f"2026030{n + 1}T050000-F{n}"
    with store.transaction() as session:
        StockSnapshots(store.db).record(
            snapshot_id=snapshot_id,
            file_id=n,
            file_name=f"stock_units_{n}.csv",
            snapshot_at=MONDAY + timedelta(days=n),
            partition_day=f"2026-03-0{n + 1}",
            totals=SnapshotTotals(total=10, sellable=10, unknown=0),
            counts_path="unused",
            units_path="unused",
            session=session,
        )
    return snapshot_id


def _plan(snapshot_id: str, acs_units: int, level: int):  # type: ignore[no-untyped-def]
    return plan_push(
        pd.DataFrame({"stock_id": [101], "site_id": [SITES.selling], "units": [acs_units]}),
        pd.DataFrame({"stock_id": [101], "site_id": [SITES.selling], "level": [level]}),
        None,
        snapshot_id=snapshot_id,
        sites=SITES,
        tolerance=VarianceTolerance(units=5, value=Decimal("1000")),
        cost_prices={101: Decimal("10")},
    )


def _push_effects(store: Store) -> list[str]:
    return sorted(e.business_key for k in PUSH_KINDS for e in store.outbox.find(kind=k))


def test_a_push_planned_while_another_run_pushed_records_nothing(store: Store) -> None:
    settings = load_settings()
    snapshots = StockSnapshots(store.db)
    tuesday, wednesday = _snapshot(store, 1), _snapshot(store, 2)
    last_at_start = snapshots.last_pushed()  # nothing pushed yet when both runs began
    # Khaos had 10 on the selling site; both runs read it and plan +2 (ACS counts 12).
    first = _plan(wednesday, 12, 10)
    second = _plan(tuesday, 12, 10)
    now = MONDAY + timedelta(days=3)

    assert _record(store, snapshots, snapshots.get(wednesday), first, now, {}, settings, None)
    assert not _record(
        store, snapshots, snapshots.get(tuesday), second, now, {}, settings, last_at_start
    )

    assert _push_effects(store) == [f"{PUSH_KEY_PREFIX}{wednesday}:site:{SITES.selling}"]
    assert snapshots.get(tuesday).state == "ingested"


def test_a_push_whose_last_pushed_snapshot_is_unchanged_is_recorded(store: Store) -> None:
    settings = load_settings()
    snapshots = StockSnapshots(store.db)
    tuesday, wednesday = _snapshot(store, 1), _snapshot(store, 2)
    now = MONDAY + timedelta(days=3)
    assert _record(
        store, snapshots, snapshots.get(tuesday), _plan(tuesday, 12, 10), now, {}, settings, None
    )
    last = snapshots.last_pushed()

    assert _record(
        store,
        snapshots,
        snapshots.get(wednesday),
        _plan(wednesday, 13, 12),
        now,
        {},
        settings,
        last,
    )
    assert snapshots.get(wednesday).state == "pushed"


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_an_effect_claimed_while_the_push_settles_is_waited_for_or_superseded(
    store: Store,
) -> None:
    """A dispatcher claims an earlier push's pending line at the moment the newer push
    settles: it must come out waited for (claimed first) or superseded (settled first),
    never neither — neither meant the newer plan was read against a Level that change
    was about to move, and both landed."""
    effect = store.outbox.enqueue(
        PUSH_KINDS[0], "khaos", f"{PUSH_KEY_PREFIX}S1:site:1", "SNAP-S1-B001", {"lines": []}
    )
    claimed: list[bool] = []

    def claim_once(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if claimed or "FROM outbox_effects" not in statement:
            return
        claimed.append(True)
        # Another dispatcher, on its own connection, claims it now (giving up if it must
        # wait for a lock this transaction holds).
        with store.db.engine.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            try:
                other.execute(
                    update(Effect)
                    .where(Effect.id == effect.id, Effect.state == "pending")
                    .values(state="in_flight", claimed_at=store.db.now())
                )
                other.commit()
            except OperationalError:  # lock_timeout: settle_older holds the row, no claim
                other.rollback()

    from sqlalchemy import event

    event.listen(store.db.engine, "after_cursor_execute", claim_once)
    try:
        settling = store.outbox.settle_older(
            kinds=PUSH_KINDS,
            business_key_prefix=PUSH_KEY_PREFIX,
            reason="superseded by a newer push",
            late_apply=timedelta(seconds=30),
        )
    finally:
        event.remove(store.db.engine, "after_cursor_execute", claim_once)

    state = store.outbox.get(effect.id).state
    assert (effect.id in settling.unsettled) == (state == "in_flight"), state
    assert (effect.id in settling.superseded) == (state == "superseded"), state
    assert effect.id in settling.unsettled or effect.id in settling.superseded
