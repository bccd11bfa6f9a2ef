"""The adjustments other paths booked, as the stock push reads them (``flows/stock_facts.py``
``adjustment_facts``), on SQLite and PostgreSQL: every ``adjust_by`` line of an adjustment
effect that is not the push's own (``SNAP-``), with when ACS handled the unit and when
Khaos applied it (empty while the effect waits). And stock codes to StockIDs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.domain.models import AdjustmentLine, StockAdjustmentGroup
from acs_khaos_dagster.domain.returns.write_offs import StockMove, StockMoveKind
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.stock_facts import adjustment_facts, stock_ids_by_code
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.returns import ReturnsRepository

from .conftest import FakeClock

KIND = EffectKind.KHAOS_STOCK_ADJUSTMENT
EARLY = datetime(2026, 3, 1, tzinfo=UTC)


class Accepts:
    """Khaos saving every group it is sent."""

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"group_ref": payload["group_ref"]}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None


def group(ref: str, *lines: AdjustmentLine, site: int = 2) -> StockAdjustmentGroup:
    return StockAdjustmentGroup(site_id=site, group_ref=ref, lines=lines)


def by(stock_id: int, change: int) -> AdjustmentLine:
    return AdjustmentLine(stock_id=stock_id, adjust_by=change, reason_code="WRITEOFF")


def enqueue(store: Store, g: StockAdjustmentGroup) -> None:
    store.outbox.enqueue(KIND, "khaos", g.group_ref, g.group_ref, g.model_dump(mode="json"))


def send_all(store: Store) -> None:
    store.dispatcher({KIND: Accepts()}, OutboxSettings(backoff_initial_s=0)).drain()


def test_a_write_off_khaos_applied_is_a_fact_with_when_it_was_applied(
    store: Store, clock: FakeClock
) -> None:
    enqueue(store, group("WO-H1", by(3, -1)))
    queued_at = clock.now
    clock.advance(minutes=5)
    send_all(store)
    [row] = adjustment_facts(store, EARLY).to_dict("records")
    assert (row["stock_id"], row["site_id"], row["change"], row["ref"]) == (3, 2, -1, "WO-H1")
    assert (row["happened_at"], row["applied_at"]) == (queued_at, clock.now)


def test_an_adjustment_still_waiting_has_no_applied_time(store: Store) -> None:
    enqueue(store, group("WO-H1", by(3, -1)))
    [row] = adjustment_facts(store, EARLY).to_dict("records")
    assert pd.isna(row["applied_at"])


def test_the_push_own_adjustments_are_not_facts(store: Store) -> None:
    enqueue(store, group("SNAP-20260302T0700-S1-B001", by(40, 3), site=1))
    enqueue(store, group("EXH-H1-OUT", by(3, -1)))
    assert adjustment_facts(store, EARLY)["ref"].tolist() == ["EXH-H1-OUT"]


def test_a_line_setting_a_level_rather_than_changing_it_is_not_a_fact(store: Store) -> None:
    to_line = AdjustmentLine(stock_id=41, adjust_to=5, reason_code="VARIANCE")
    enqueue(store, group("FIX-1", to_line, by(42, 2)))
    assert adjustment_facts(store, EARLY)[["stock_id", "change"]].values.tolist() == [[42, 2]]


def test_adjustments_queued_before_the_lookback_are_left_out(
    store: Store, clock: FakeClock
) -> None:
    enqueue(store, group("WO-OLD", by(3, -1)))
    clock.advance(days=3)
    enqueue(store, group("WO-NEW", by(3, -1)))
    since = clock.now - timedelta(days=1)
    assert adjustment_facts(store, since)["ref"].tolist() == ["WO-NEW"]


def test_when_acs_handled_the_unit_is_taken_from_its_write_off(
    store: Store, clock: FakeClock
) -> None:
    handled = datetime(2026, 3, 1, 15, tzinfo=UTC)
    move = StockMove(
        kind=StockMoveKind.WRITE_OFF,
        unique_sku="H1",
        return_ref="R1",
        stock_id=3,
        value=Decimal("10"),
        happened_at=handled,
        groups=(group("WO-H1", by(3, -1)),),
    )
    with store.transaction() as s:
        ReturnsRepository(store.db).record_moves([move], s)
    enqueue(store, move.groups[0])
    [row] = adjustment_facts(store, EARLY).to_dict("records")
    assert row["happened_at"] == handled


def test_no_adjustments_give_an_empty_table_with_its_columns(store: Store) -> None:
    facts = adjustment_facts(store, EARLY)
    assert facts.empty
    assert list(facts.columns) == [
        "stock_id",
        "site_id",
        "change",
        "happened_at",
        "applied_at",
        "ref",
    ]


def test_stock_codes_map_to_their_stock_ids() -> None:
    sku_map = pd.DataFrame({"stock_code": ["DRS-1", "GOWN-H"], "stock_id": [40.0, 3.0]})
    assert stock_ids_by_code(sku_map) == {"DRS-1": 40, "GOWN-H": 3}
