"""Issue 17 point 6: an ex-hire move to resale survives the next push.

ACS keeps an ex-hired unit under its hire SKU (status ``Ex-Hired``); Khaos has it on the
resale StockID once the integration's EXHIRE legs land. The push must count it there, or
it books −1 VARIANCE on the resale item and silently undoes the move. The oracle is the
Khaos simulator's Level and its adjustment groups.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.models import Barcode, StockItem
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_returns_flow import _deliver, _ship, _unit
from acs_khaos_dagster_tests.test_stock_lifecycle import (
    HIRE_ORDER,
    HIRE_STOCK,
    PRODUCTS,
    SELLING,
    _adjustment_lines,
    _khaos_order,
    _snapshot_and_push,
    _stock,
)

RESALE_ID, RESALE_CODE, COST = 99010, "TOP-0001-BRG-M-EX", Decimal("8.96")


def test_an_ex_hire_move_survives_the_next_push_at_its_used_garment_value(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = integration.sandbox
    [line] = _khaos_order(integration, HIRE_ORDER)["lines"]
    hire_id = line["stock_id"]
    monkeypatch.setenv("ACS_KHAOS_RETURNS__RESALE_STOCK_IDS", f'{{"{hire_id}": {RESALE_ID}}}')
    monkeypatch.setenv("ACS_KHAOS_RETURNS__EX_HIRE_VALUE_SHARE", "0.25")
    box.khaos.add_stock_item(
        StockItem(
            stock_id=RESALE_ID,
            stock_code=RESALE_CODE,
            description="Ex-hire top",
            cost_price=COST,
            style="TOP-0001",
            colour="BRG",
            size="M",
            barcodes=(Barcode(value="5012345990106"),),
        ),
        levels={SELLING: 0},
    )
    integration.run(*PRODUCTS, "acs_sku_push")  # ACS is told of the resale SKU
    integration.run(*PRODUCTS)  # ACS holds it (pending): no unit under it, ever
    _snapshot_and_push(integration)
    hire_before = _stock(integration, hire_id, HIRE_STOCK)["level"]

    # A gown of the hire order comes back worn out: ACS grades it B and ex-hires it,
    # keeping it under its hire SKU in "Ex-Hired". (The simulator's hire cycle only ever
    # grades A, so ACS's decision is made on its state here.)
    _ship(integration, int(HIRE_ORDER[2:]), [(line["order_item_id"], 1)])
    unit = next(
        u
        for u in box.acs.state.units.values()
        if u.sku == line["stock_code"] and u.status == "In Warehouse - Ready For Customer"
    )
    with box.acs.state.lock:
        box.acs.state._set_unit(unit, "Ex-Hired", box.clock.now(), location="EXHIRE")
    _deliver(
        "returns_BRAND01_20260302120000.csv",
        [
            _unit(
                "RX-LIFE-1",
                HIRE_ORDER,
                line["order_item_id"],
                unit.sku,
                unit.unique_sku,
                "B",
                "EX_HIRE",
                received=box.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        ],
    )
    integration.run("acs_returns", "khaos_return_postings", "khaos_write_offs")
    assert _stock(integration, RESALE_ID)["level"] == 1
    assert _stock(integration, hire_id, HIRE_STOCK)["level"] == hire_before - 1
    box.advance(timedelta(hours=1))
    _snapshot_and_push(integration)
    box.advance(timedelta(hours=1))
    _snapshot_and_push(integration)  # and the one after: nothing moves it back

    assert _stock(integration, hire_id, HIRE_STOCK)["level"] == hire_before - 1
    assert _stock(integration, RESALE_ID)["level"] == 1
    variance = load_settings().khaos.reasons.variance
    resale_lines = [ln for ln in _adjustment_lines(integration) if ln["stock_id"] == RESALE_ID]
    assert [ln["reason_code"] for ln in resale_lines] == [load_settings().khaos.reasons.ex_hire]
    assert [ln for ln in resale_lines if ln["reason_code"] == variance] == []
    ex_hire = [ln for ln in _adjustment_lines(integration) if ln["group_ref"].startswith("EXH-")]
    assert sorted(ln["value"] for ln in ex_hire) == ["2.24", "2.24"]  # 25 % of 8.96
