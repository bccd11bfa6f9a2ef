"""The products watermark across October's repeated hour, through Dagster (issue 18, point 4).

Khaos stores and compares UK wall-clock times. A watermark taken at 01:45 BST re-reads
from 01:40 less its overlap, but a change saved at 01:10 GMT (the second 01:10, later
than the watermark) sorts before 01:40 on the clock: the client widens such a bound to
the start of the repeated hour, so the change is read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from acs_khaos_dagster_tests.conftest import IntegrationHarness

AUTUMN_EVE = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Saturday 23:00 BST


@pytest.fixture(scope="module")
def tiny_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny brand (seed 7) on the eve of the clocks going back."""
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    folder = tmp_path_factory.mktemp("scenario-tiny-autumn")
    generate_scenario("tiny", 7, folder, start_at=AUTUMN_EVE)
    return folder


def test_an_item_changed_in_the_repeated_hour_after_the_watermark_is_fetched(
    integration: IntegrationHarness,
) -> None:
    box = integration.sandbox
    box.advance(timedelta(hours=2, minutes=45))  # 00:45 UTC: the first 01:45 (BST)
    first = integration.run("khaos_sku_master")  # the watermark
    box.advance(timedelta(minutes=25))  # 01:10 UTC: the second 01:10 (GMT)
    children = first.output_for_node("khaos_sku_master").query("stock_controlled")
    stock_id = int(children.iloc[0]["stock_id"])
    box.khaos.update_stock_item(stock_id, sell_price=Decimal("99.00"))
    box.advance(timedelta(minutes=5))

    second = integration.run("khaos_sku_master")

    master = second.output_for_node("khaos_sku_master").set_index("stock_id")
    assert master.loc[stock_id, "sell_price"] == 99.0
    assert integration.metadata(second, "khaos_sku_master")["stock_items_fetched"] >= 1
