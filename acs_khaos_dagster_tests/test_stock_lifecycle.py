"""Stock across an order's life, a return and a hire, through Dagster against the sandbox.

Each step takes an ACS snapshot and pushes it, then reads Khaos's ground truth. The
rule under test is "one mover per event" (ARCHITECTURE.md, "Stock arithmetic"): a sale
leaves Khaos's Level only when its invoice is issued, a restocked return comes back
only when Khaos processes it "return to stock", a hire unit moves between sites only
through the push; the push never moves what another path has moved or is about to.

Tiny scenario (seed 7), starting Monday 2 March 2026 07:00 UTC. ACS's timetable after
an order arrives: allocated +30 min, picking +1 h, packed +2 h, despatched +3 h. The
Khaos finance batch issues an invoice 1 h after it reaches stage 16.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, materialize

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.acs.file_layouts import RETURNS_LAYOUT
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.defs.stock import partition_day
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")
RETURNS = ("acs_returns", "khaos_return_postings")
SNAPSHOT = ("acs_stock_snapshot", "sellable_stock", "non_sellable_stock")
PUSH = (*SNAPSHOT, "khaos_stock_update")
SELLING, HIRE_STOCK, ON_HIRE = 1, 2, 3
# Sale lines only, one shipment; its StockID 10002 is on no other order of the scenario.
SALE_ORDER, SALE_STOCK_ID, SALE_UNITS = "SO0050007", 10002, 2
# Hire only, one unit of hire StockID 10010 (SO0050001 also hires one unit of it).
HIRE_ORDER = "SO0050006"


# --- helpers -------------------------------------------------------------------------------


def _take_snapshot(integration: IntegrationHarness, *names: str, path: Path | None = None):
    """ACS writes its daily files now (or has written ``path``); the stock file is taken in
    (and pushed, by default)."""
    from datetime import UTC, datetime

    from acs_khaos_dagster.definitions import defs

    files = [path] if path else integration.sandbox.acs.write_daily_files()
    path = next(p for p in files if "stock_units" in p.name)
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[AssetKey(n) for n in (names or PUSH)],
        partition_key=partition_day(path.name, mtime),
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
    )


def _push(integration: IntegrationHarness) -> dict[str, Any]:
    result = integration.run("khaos_stock_update")
    return integration.metadata(result, "khaos_stock_update")


def _snapshot_and_push(integration: IntegrationHarness) -> dict[str, Any]:
    return integration.metadata(_take_snapshot(integration), "khaos_stock_update")


def _stock(integration: IntegrationHarness, stock_id: int, site_id: int = SELLING) -> dict:
    for row in integration.sandbox.khaos.truth()["stock"]:
        if row["stock_id"] == stock_id and row["site_id"] == site_id:
            return row
    return {"level": 0, "allocated": 0, "available": 0}


def _levels_of(integration: IntegrationHarness, stock_id: int) -> dict[int, int]:
    return {
        row["site_id"]: row["level"]
        for row in integration.sandbox.khaos.truth()["stock"]
        if row["stock_id"] == stock_id
    }


def _adjustment_lines(integration: IntegrationHarness) -> list[dict[str, Any]]:
    return [
        {**line, "site_id": g["site_id"], "group_ref": g["group_ref"]}
        for g in integration.sandbox.khaos.truth()["adjustment_groups"]
        for line in g["lines"]
    ]


def _assert_no_variance(integration: IntegrationHarness, *stock_ids: int) -> None:
    lines = [ln for ln in _adjustment_lines(integration) if ln["stock_id"] in stock_ids]
    variance = load_settings().khaos.reasons.variance  # the install's code
    assert [ln for ln in lines if ln["reason_code"] == variance] == []
    with integration.store() as store:
        held = [
            e
            for e in store.exceptions.list(type="stock_variance_held")
            if e.row.details.get("stock_id") in stock_ids
        ]
    assert held == []


def _khaos_order(integration: IntegrationHarness, order_code: str) -> dict[str, Any]:
    truth = integration.sandbox.khaos.truth()
    order = next(o for o in truth["orders"] if o["order_code"] == order_code)
    invoices = [i for i in truth["invoices"] if i["order_id"] == order["order_id"]]
    return {**order, "invoices": invoices}


def _acs_units(integration: IntegrationHarness, sku: str) -> dict[str, int]:
    """ACS's units of one SKU by status, read from the simulator's state."""
    counts: dict[str, int] = {}
    for unit in integration.sandbox.acs.state.units.values():
        if unit.sku == sku:
            counts[unit.status] = counts.get(unit.status, 0) + 1
    return counts


def _selling_units(integration: IntegrationHarness, sku: str) -> int:
    """ACS's units of ``sku`` that belong on the selling site under the status policy."""
    policy = load_settings().status_policy
    return sum(
        str(policy.bucket_for(unit.status)) in ("sellable", "allocated")
        for unit in integration.sandbox.acs.state.units.values()
        if unit.sku == sku
    )


def _write_returns(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customer_returns_by_hand.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(RETURNS_LAYOUT.columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- 1. an order's whole life --------------------------------------------------------------


def test_an_order_moves_khaos_level_once_when_its_invoice_is_issued_and_never_by_the_push(
    integration: IntegrationHarness,
) -> None:
    box = integration.sandbox
    integration.run(*PRODUCTS)
    order = _khaos_order(integration, SALE_ORDER)
    [line] = [ln for ln in order["lines"] if ln["stock_id"] == SALE_STOCK_ID]
    assert not any(ln["is_hire"] for ln in order["lines"])
    [invoice] = order["invoices"]
    sku = line["stock_code"]
    start = _stock(integration, SALE_STOCK_ID)["level"]
    assert sum(_acs_units(integration, sku).values()) == start

    def step(level: int, available: int, despatched_not_issued: int = 0) -> None:
        now = _stock(integration, SALE_STOCK_ID)
        assert (now["level"], now["available"]) == (level, available)
        # Level is ACS's selling-site units (ready, allocated, picking, packed) plus what
        # ACS despatched whose invoice Khaos has not issued.
        assert now["level"] == _selling_units(integration, sku) + despatched_not_issued
        _assert_no_variance(integration, SALE_STOCK_ID)

    # (a) Before release: the open invoice already allocates in Khaos.
    _snapshot_and_push(integration)
    step(start, start - SALE_UNITS)

    # (b) Released and acknowledged, then allocated at ACS: still in the selling site.
    integration.run(*RELEASE)
    box.advance(timedelta(minutes=45))
    assert _acs_units(integration, sku).get("Allocated") == SALE_UNITS
    _snapshot_and_push(integration)
    step(start, start - SALE_UNITS)

    # (c) Picked, then packed.
    box.advance(timedelta(minutes=30))
    assert _acs_units(integration, sku).get("Picking") == SALE_UNITS
    _snapshot_and_push(integration)
    step(start, start - SALE_UNITS)
    box.advance(timedelta(hours=1))
    assert _acs_units(integration, sku).get("Packed") == SALE_UNITS
    _snapshot_and_push(integration)
    step(start, start - SALE_UNITS)

    # (d) Despatched at ACS and posted to Khaos; finance holds the invoice: ACS no longer
    # counts the units, Khaos still holds them until the invoice is issued.
    box.khaos.issue_policy.hold_invoice_ids.add(invoice["invoice_id"])
    box.advance(timedelta(minutes=45))
    assert sum(_acs_units(integration, sku).values()) == start - SALE_UNITS
    integration.run(*DESPATCH)
    assert _khaos_order(integration, SALE_ORDER)["invoices"][0]["stage"] == 16
    box.advance(timedelta(hours=2))  # past the batch's delay: only the hold keeps it open
    meta = _snapshot_and_push(integration)
    assert meta["correction_units"] >= SALE_UNITS
    step(start, start - SALE_UNITS, despatched_not_issued=SALE_UNITS)

    # (e) The invoice is issued between the snapshot and the push: subtracted once.
    box.advance(timedelta(minutes=10))
    _take_snapshot(integration, *SNAPSHOT)
    box.khaos.issue_policy.hold_invoice_ids.clear()
    box.advance(timedelta(minutes=5))
    assert _khaos_order(integration, SALE_ORDER)["invoices"][0]["stage"] == 70
    _push(integration)
    step(start - SALE_UNITS, start - SALE_UNITS)

    # (f) Issued: the next snapshot agrees with Khaos, nothing moves.
    box.advance(timedelta(minutes=30))
    _snapshot_and_push(integration)
    step(start - SALE_UNITS, start - SALE_UNITS)
    assert [ln for ln in _adjustment_lines(integration) if ln["stock_id"] == SALE_STOCK_ID] == []


@pytest.mark.variants
def test_a_snapshot_taken_while_packed_and_pushed_after_the_invoice_is_issued_subtracts_once(
    integration: IntegrationHarness,
) -> None:
    box = integration.sandbox
    integration.run(*PRODUCTS)
    start = _stock(integration, SALE_STOCK_ID)["level"]
    integration.run(*RELEASE)
    box.advance(timedelta(hours=2, minutes=15))
    _take_snapshot(integration, *SNAPSHOT)  # ACS counts the two packed units

    box.advance(timedelta(minutes=50))  # despatched at ACS after the snapshot
    integration.run(*DESPATCH)
    box.advance(timedelta(hours=1, minutes=15))  # and the invoice issued before the push
    assert _stock(integration, SALE_STOCK_ID)["level"] == start - SALE_UNITS
    meta = _push(integration)

    assert meta["pushed"] == 1 and meta["correction_units"] <= -SALE_UNITS
    now = _stock(integration, SALE_STOCK_ID)
    assert (now["level"], now["available"]) == (start - SALE_UNITS, start - SALE_UNITS)
    assert [ln for ln in _adjustment_lines(integration) if ln["stock_id"] == SALE_STOCK_ID] == []
    _assert_no_variance(integration, SALE_STOCK_ID)


# --- 2. a return restocked at ACS before Khaos processes it ------------------------------------


@pytest.mark.parametrize(
    "taken_in_first",
    [False, True],
    ids=["returns-file-still-in-the-drop", "taken-in-not-posted"],
)
def test_a_return_restocked_at_acs_before_khaos_processes_it_is_counted_once(
    integration: IntegrationHarness, tmp_path: Path, taken_in_first: bool
) -> None:
    box = integration.sandbox
    integration.run(*PRODUCTS)
    start = _stock(integration, SALE_STOCK_ID)["level"]
    integration.run(*RELEASE)
    box.advance(timedelta(hours=3, minutes=15))
    integration.run(*DESPATCH)
    box.advance(timedelta(hours=1, minutes=15))  # the finance batch issues the invoice
    assert _stock(integration, SALE_STOCK_ID)["level"] == start - SALE_UNITS
    _snapshot_and_push(integration)
    assert _stock(integration, SALE_STOCK_ID)["level"] == start - SALE_UNITS

    # The customer sends one unit back; ACS grades it A and restocks it.
    event = next(e for e in box.acs.truth()["despatch_events"] if e["order_number"] == SALE_ORDER)
    [shipped] = [ln for ln in event["lines"] if ln["quantity"] == SALE_UNITS]
    now = box.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    row = {
        "return_ref": "RMA-LIFE-1",
        "order_number": SALE_ORDER,
        "line_item_id": str(shipped["line_item_id"]),
        "sku": shipped["sku"],
        "unique_sku": shipped["unique_skus"][0],
        "received_at": now,
        "grade": "A",
        "action_taken": "RESTOCK",
        "action_reason": "unwanted",
        "defect_codes": "",
        "repair_cost": "0.00",
    }
    assert box.acs.receive_customer_returns(_write_returns(tmp_path / "returns_in", [row])) == 1
    box.advance(timedelta(minutes=10))

    # ACS counts the unit; Khaos has not processed the return: the push leaves it alone,
    # whether or not the returns flow has read ACS's returns file yet.
    path = next(p for p in box.acs.write_daily_files() if "stock_units" in p.name)
    if taken_in_first:
        integration.run("acs_returns")
    _take_snapshot(integration, path=path)
    assert _stock(integration, SALE_STOCK_ID)["level"] == start - SALE_UNITS
    _assert_no_variance(integration, SALE_STOCK_ID)

    # The returns flow posts it "return to stock": that, and only that, raises Level.
    integration.run(*RETURNS)
    assert _stock(integration, SALE_STOCK_ID)["level"] == start - SALE_UNITS + 1
    box.advance(timedelta(minutes=30))
    _snapshot_and_push(integration)
    assert _stock(integration, SALE_STOCK_ID)["level"] == start - SALE_UNITS + 1
    assert sum(_acs_units(integration, shipped["sku"]).values()) == start - SALE_UNITS + 1
    _assert_no_variance(integration, SALE_STOCK_ID)
    assert [ln for ln in _adjustment_lines(integration) if ln["stock_id"] == SALE_STOCK_ID] == []


# --- 3. hire units on their sites -----------------------------------------------------------


@pytest.mark.variants("khaos_without_level", "khaos_own_codes")
def test_a_despatched_hire_unit_moves_to_the_on_hire_site_by_a_paired_transfer(
    integration: IntegrationHarness,
) -> None:
    box = integration.sandbox
    integration.run(*PRODUCTS)
    order = _khaos_order(integration, HIRE_ORDER)
    [line] = order["lines"]
    assert line["is_hire"]
    hire_id, sku = line["stock_id"], line["stock_code"]
    _snapshot_and_push(integration)
    stock_before = _stock(integration, hire_id, HIRE_STOCK)["level"]
    on_hire_before = _stock(integration, hire_id, ON_HIRE)["level"]
    with_customer_before = _acs_units(integration, sku).get("With Customer", 0)

    integration.run(*RELEASE)
    box.advance(timedelta(hours=3, minutes=15))
    integration.run(*DESPATCH)
    out = _acs_units(integration, sku).get("With Customer", 0) - with_customer_before
    assert out >= 1  # this order's unit (and any other hire order's shipped alongside)
    levels_before_issue = _levels_of(integration, hire_id)
    box.advance(timedelta(hours=1, minutes=15))  # the hire invoice is issued
    [invoice] = _khaos_order(integration, HIRE_ORDER)["invoices"]
    assert invoice["stage"] == 70
    assert _levels_of(integration, hire_id) == levels_before_issue  # never moves Level
    assert levels_before_issue[HIRE_STOCK] == stock_before

    _snapshot_and_push(integration)

    assert _stock(integration, hire_id, HIRE_STOCK)["level"] == stock_before - out
    assert _stock(integration, hire_id, ON_HIRE)["level"] == on_hire_before + out
    lines = [ln for ln in _adjustment_lines(integration) if ln["stock_id"] == hire_id]
    transfer = load_settings().khaos.reasons.transfer  # the install's code
    assert sorted((ln["site_id"], ln["reason_code"]) for ln in lines) == [
        (HIRE_STOCK, transfer),
        (ON_HIRE, transfer),
    ]
    assert sum(ln["level_after"] - ln["level_before"] for ln in lines) == 0
    _assert_no_variance(integration, hire_id)
