"""``flows.order_release.ready_sku_map``: which StockIDs orders may use, from the products
flow's ``sku_mapping`` and ``ready_for_sale_skus`` tables (no system, no Dagster)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from acs_khaos_dagster.domain.order_release import SkuReadiness
from acs_khaos_dagster.flows.order_release import ready_sku_map, rejection_details


def _mapping(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {
        "stock_id": 1,
        "stock_code": "TOP-1",
        "acs_sku": "TOP-1",
        "classification": "matched",
        "mismatch_detail": None,
        "code_problems": None,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def _ready(*stock_ids: int) -> pd.DataFrame:
    return pd.DataFrame({"stock_id": list(stock_ids)})


def test_a_matched_sku_in_ready_for_sale_is_ready_under_its_acs_sku() -> None:
    ready = ready_sku_map(_mapping({"acs_sku": "ACS-TOP-1"}), _ready(1))

    assert ready[1].state is SkuReadiness.READY and ready[1].sku == "ACS-TOP-1"


def test_a_matched_sku_missing_from_ready_for_sale_is_not_ready() -> None:
    ready = ready_sku_map(_mapping({}), _ready())

    assert ready[1].state is SkuReadiness.NOT_READY


def test_a_pending_sku_keeps_its_reason_and_detail() -> None:
    mapping = _mapping(
        {"classification": "pending_in_acs", "mismatch_detail": "colour", "code_problems": "#"}
    )

    ready = ready_sku_map(mapping, _ready())

    assert ready[1].state is SkuReadiness.PENDING and ready[1].detail == "colour; #"


def test_ready_for_sale_has_the_last_word_over_the_classification() -> None:
    ready = ready_sku_map(_mapping({"classification": "attribute_mismatch"}), _ready(1))

    assert ready[1].state is SkuReadiness.READY


def test_a_row_without_a_stock_id_is_left_out() -> None:
    ready = ready_sku_map(_mapping({"stock_id": None}, {"stock_id": 2}), _ready(2))

    assert set(ready) == {2}


def test_the_acs_error_code_and_message_are_read_back_from_a_parked_effects_text() -> None:
    text = "put_order: SKU TOP-1 is not active (HTTP 422) [INACTIVE_SKU]"

    assert rejection_details(text) == [
        {"code": "INACTIVE_SKU", "field": "", "message": "SKU TOP-1 is not active"}
    ]
    assert rejection_details("connection reset") == []
