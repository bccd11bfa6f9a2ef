"""The brand overview in Dagster: the ``brand_overview`` asset a brand's location materialises.

The store's content is built here by hand at known moments of the sandbox's simulated
clock (exceptions, a posted despatch, a snapshot, a due effect, a drift file, a month-end
preview), so every figure the asset reports has an answer known before it runs. The asset
is materialised through Dagster with the production resources.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.models import AdjustmentLine, StockAdjustmentGroup
from acs_khaos_dagster.domain.stock_guards import SnapshotTotals
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.month_end_pack import PREVIEW_DIR, reconciliation_dir
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster_tests.report_links import served_file

DRIFT = 123.45


class Accepting:
    """A target that applies whatever it is sent."""

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def read_back(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None


def _adjustment(ref: str) -> dict[str, Any]:
    return StockAdjustmentGroup(
        site_id=1,
        group_ref=ref,
        lines=(AdjustmentLine(stock_id=1, adjust_by=1, reason_code="VARIANCE"),),
    ).model_dump(mode="json")


@pytest.fixture
def known_store(integration) -> dict[str, Any]:
    """The store as the test built it; the sandbox's clock stands 5 h after the start."""
    box = integration.sandbox
    with integration.store() as store:
        store.exceptions.raise_exception("order_locked", "SO-1", "locked")  # operations, 4 h
        store.exceptions.raise_exception("sku_not_live", "SKU-1", "not live")  # ecommerce, 8 h
        store.exceptions.raise_exception("stock_variance_held", "2026-01-01", "held")  # finance
        store.exceptions.resolve(
            store.exceptions.raise_exception("order_locked", "SO-2", "locked").id, "test"
        )
        kind = EffectKind.KHAOS_DESPATCH
        store.outbox.enqueue(kind, TARGET_OF[kind], "SHIP-1", "SHIP-1", {"ref": "SHIP-1"})
        store.dispatcher({kind: Accepting()}).drain()  # posted at the start
    box.advance(timedelta(hours=1))
    with integration.store() as store, store.transaction() as session:
        StockSnapshots(store.db).record(
            snapshot_id="S1",
            file_id=1,
            file_name="stock_units_1.csv",
            snapshot_at=box.clock.now(),
            partition_day=box.clock.now().date().isoformat(),
            totals=SnapshotTotals(total=1, sellable=1, unknown=0),
            counts_path="-",
            units_path="-",
            session=session,
        )
    box.advance(timedelta(hours=2))
    with integration.store() as store:
        kind = EffectKind.KHAOS_STOCK_ADJUSTMENT
        store.outbox.enqueue(kind, TARGET_OF[kind], "ADJ-1", "ADJ-1", _adjustment("ADJ-1"))
    box.advance(timedelta(hours=2))
    settings = load_settings()
    drift = reconciliation_dir(settings) / "drift_by_day.parquet"
    drift.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"day": ["2026-01-01", "2026-01-02"], "unexplained_value": [999.0, DRIFT]}
    ).to_parquet(drift)
    today = box.clock.now().astimezone(settings.tz).date()
    month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    (settings.data_dir / "month_end" / month / PREVIEW_DIR).mkdir(parents=True)
    return {"month": month, "settings": settings}


def test_the_overview_asset_reports_the_brands_exceptions_by_owner_and_over_target(
    integration, known_store
) -> None:
    meta = integration.metadata(integration.run("brand_overview"), "brand_overview")
    assert (meta["open_exceptions"], meta["over_target"]) == (3, 1)
    assert {k: v for k, v in meta.items() if k.startswith(("open_", "over_target_"))} == {
        "open_exceptions": 3,
        "open_operations": 1,
        "open_ecommerce": 1,
        "open_finance": 1,
        "open_integration": 0,
        "over_target_operations": 1,  # 5 h against 4 h
        "over_target_ecommerce": 0,  # 5 h against 8 h
        "over_target_finance": 0,
        "over_target_integration": 0,
    }


def test_the_overview_asset_reports_the_ages_drift_and_month_end_the_store_holds(
    integration, known_store
) -> None:
    meta = integration.metadata(integration.run("brand_overview"), "brand_overview")
    assert meta["oldest_due_age_h"] == 2.0
    assert meta["snapshot_age_h"] == 4.0
    assert meta["despatch_posted_age_h"] == 5.0
    assert meta["unexplained_drift_value"] == DRIFT
    assert meta["month_end"] == f"{known_store['month']}: preview only"
    assert "operations: 1 (1 over target)" in meta["overview"]


def test_the_overview_asset_writes_its_row_as_csv_and_html_in_the_data_folder(
    integration, known_store
) -> None:
    meta = integration.metadata(integration.run("brand_overview"), "brand_overview")
    folder = known_store["settings"].data_dir / "overview"
    data_dir = known_store["settings"].data_dir
    csv_file, html_file = served_file(data_dir, meta["csv"]), served_file(data_dir, meta["html"])
    assert csv_file == folder / "brand_overview.csv"  # the link the UI opens
    with csv_file.open(encoding="utf-8") as file:
        [row] = list(csv.DictReader(file))
    assert (row["open_exceptions"], row["over_target"], row["drift_value"]) == ("3", "1", "123.45")
    assert float(row["snapshot_age_s"]) == 4 * 3600
    page = html_file.read_text(encoding="utf-8")
    assert "ecommerce: 1" in page and f"{known_store['month']}: preview only" in page
    assert html_file.stat().st_mode & 0o077 == 0  # private, like the data folder


def test_an_empty_store_gives_an_overview_with_nothing_to_attend_to(integration) -> None:
    meta = integration.metadata(integration.run("brand_overview"), "brand_overview")
    assert (meta["open_exceptions"], meta["over_target"]) == (0, 0)
    assert meta["oldest_due_age_h"] is None and meta["snapshot_age_h"] is None
    assert meta["month_end"].endswith("not built")
