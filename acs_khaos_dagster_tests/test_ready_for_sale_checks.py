"""``ready_for_sale_skus``'s business checks, ecommerce's: every ready SKU is active at ACS
(re-derived from ACS's registry), and not too many SKUs on sale wait to be ready; each
lists the SKUs concerned."""

from __future__ import annotations

import pandas as pd
import pytest

from acs_khaos_dagster.dagster_kit.checks import OWNER_KEY
from acs_khaos_dagster.defs.products import (
    every_ready_sku_is_active_at_acs,
    not_ready_share_within_limit,
)
from acs_khaos_dagster.defs.resources import SettingsResource
from acs_khaos_dagster.domain.readiness import on_sale, ready_but_not_active
from acs_khaos_dagster_tests.conftest import IntegrationHarness


def _ready(*codes: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stock_id": list(range(1, len(codes) + 1)),
            "stock_code": list(codes),
            "acs_sku": list(codes),
            "is_hire": False,
            "cost_price": 1.0,
        }
    )


def _registry(**status: str) -> pd.DataFrame:
    return pd.DataFrame({"sku": list(status), "status": list(status.values())})


def _mapping(*rows: tuple[str, bool, bool]) -> pd.DataFrame:
    """(code, ready, discontinued) per Khaos SKU, and one ACS-only row."""
    khaos = [
        {
            "stock_id": n,
            "stock_code": code,
            "acs_sku": code,
            "classification": "matched" if ready else "pending_in_acs",
            "ready_for_sale": ready,
            "acs_status": "active" if ready else "pending",
            "discontinued": discontinued,
            "publish_on_web": True,
            "mismatch_detail": "",
            "code_problems": "",
        }
        for n, (code, ready, discontinued) in enumerate(rows, start=1)
    ]
    acs_only = {**khaos[0], "stock_id": None, "stock_code": "", "ready_for_sale": False}
    return pd.DataFrame([*khaos, {**acs_only, "classification": "unknown_to_khaos"}])


def test_a_ready_sku_that_acs_holds_pending_inactive_or_not_at_all_is_listed() -> None:
    ready = _ready("A", "B", "C", "D")
    registry = _registry(A="active", B="pending", C="inactive")

    bad = ready_but_not_active(ready, registry)

    assert bad[["acs_sku", "acs_status"]].values.tolist() == [
        ["B", "pending"],
        ["C", "inactive"],
        ["D", "missing"],
    ]


def test_skus_on_sale_leave_out_discontinued_and_acs_only_ones() -> None:
    mapping = _mapping(("A", True, False), ("B", False, False), ("C", False, True))

    assert on_sale(mapping)["stock_code"].tolist() == ["A", "B"]


def test_the_check_fails_for_a_ready_sku_not_active_at_acs_and_names_it() -> None:
    result = every_ready_sku_is_active_at_acs(
        ready_for_sale_skus=_ready("A", "B"),
        acs_product_registry=_registry(A="active", B="inactive"),
    )

    assert not result.passed and result.severity.value == "ERROR"
    assert result.metadata["ready_not_active"].value == 1
    assert "| B " in result.metadata["skus"].value


def test_the_check_passes_when_every_ready_sku_is_active() -> None:
    result = every_ready_sku_is_active_at_acs(
        ready_for_sale_skus=_ready("A"), acs_product_registry=_registry(A="active")
    )

    assert result.passed and result.metadata["skus"].value == "_none_"


@pytest.mark.parametrize(("limit", "passed"), [("0.5", True), ("0.4", False)])
def test_the_share_not_ready_warns_above_the_setting_and_lists_the_skus(
    limit: str, passed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_PRODUCTS__NOT_READY_WARN_ABOVE", limit)
    # A ready, B waiting, C discontinued (not on sale): one of two on sale is not ready.
    mapping = _mapping(("A", True, False), ("B", False, False), ("C", False, True))

    result = not_ready_share_within_limit(
        ready_for_sale_skus=_ready("A"), sku_mapping=mapping, settings=SettingsResource()
    )

    assert result.passed is passed and result.severity.value == "WARN"
    assert result.metadata["not_ready_share"].value == 0.5
    assert result.metadata["limit"].value.startswith(f"{float(limit):.0%}")
    assert "| B " in result.metadata["skus"].value
    assert "| C " not in result.metadata["skus"].value


def test_both_checks_run_with_the_product_sync_and_belong_to_ecommerce(
    integration: IntegrationHarness,
) -> None:
    from acs_khaos_dagster.definitions import defs

    result = integration.run(
        "khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus"
    )

    found = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert found["every_ready_sku_is_active_at_acs"].passed
    share = found["not_ready_share_within_limit"]
    assert share.metadata["on_sale"].value > 0
    assert share.metadata["not_ready"].value <= share.metadata["on_sale"].value
    owners = {
        spec.name: spec.metadata[OWNER_KEY]
        for checks in defs.asset_checks or []
        for spec in checks.check_specs
        if spec.asset_key.to_user_string() == "ready_for_sale_skus"
    }
    assert owners["every_ready_sku_is_active_at_acs"] == "team:ecommerce"
    assert owners["not_ready_share_within_limit"] == "team:ecommerce"
