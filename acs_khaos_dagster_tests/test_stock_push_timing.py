"""Stock and money right under real timing (issue 16), through Dagster against the sandbox.

Each test is one defect found at e627714, written from the case that showed it: a retried
push that reset Level over an invoice issued meanwhile, a held variance approved twice,
units of a shipment held as a posting problem taken out twice, a check that could not
fail, a status move half applied, a SKU nobody can sell, an older file rewriting the
exception queue. Levels are read from the Khaos simulator, never from what was sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from acs_khaos_dagster.domain.stock_push import acs_site_units
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.gateway import Body, Gateway, Misbehaviour, Move
from acs_khaos_dagster.store.outbox import NotApprovable
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_stock_flow import (
    PRODUCTS,
    SELLING,
    _groups,
    _levels,
    _rewrite,
    _snapshot_file,
    _stock,
)

REFURBISHMENT = 5


def _first_push(integration: IntegrationHarness) -> Any:
    integration.run(*PRODUCTS)
    return _stock(integration, _snapshot_file(integration))


def _ready_stock_ids(result: Any, at_least: int = 3) -> list[int]:
    sellable = result.output_for_node("sellable_stock")
    return [int(s) for s in sellable.loc[sellable["sellable_units"] >= at_least, "stock_id"]]


def _level(integration: IntegrationHarness, stock_id: int, site_id: int = SELLING) -> int:
    return int(_levels(integration).get((stock_id, site_id), {"level": 0})["level"])


def _next_snapshot(integration: IntegrationHarness) -> Any:
    integration.sandbox.advance(timedelta(minutes=30))
    return _stock(integration, _snapshot_file(integration))


@pytest.fixture
def wide_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two units and £1,000: a one-unit difference of any garment is pushed as VARIANCE."""
    monkeypatch.setenv("ACS_KHAOS_STOCK__VARIANCE_TOLERANCE_VALUE", "1000")


def test_a_push_retried_after_an_invoice_was_issued_keeps_what_the_invoice_moved(
    integration: IntegrationHarness, wide_tolerance: None
) -> None:
    [stock_id, *_] = _ready_stock_ids(_first_push(integration))
    level = _level(integration, stock_id)
    integration.sandbox.khaos.set_level(stock_id, SELLING, level + 1)  # one too many
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportStockAdjustments", kind=FaultKind.ERROR_5XX, count=1)
    )
    _next_snapshot(integration)  # plans -1; Khaos is busy, the push waits for its retry
    assert _level(integration, stock_id) == level + 1
    # Meanwhile two units are invoiced: Khaos's own path takes them out of Level.
    integration.sandbox.khaos.set_level(stock_id, SELLING, level + 1 - 2)
    integration.sandbox.advance(timedelta(minutes=15))

    integration.run("khaos_outbox")

    # The planned change (-1) on top of the invoice's (-2); the old absolute target (level)
    # would have put the two invoiced units back on sale.
    assert _level(integration, stock_id) == level - 2


def test_a_held_variance_replaced_by_a_newer_snapshots_is_refused_and_applied_once(
    integration: IntegrationHarness,
) -> None:
    [stock_id, *_] = _ready_stock_ids(_first_push(integration))
    level = _level(integration, stock_id)
    integration.sandbox.khaos.set_level(stock_id, SELLING, level + 20)  # far above tolerance
    _next_snapshot(integration)
    _next_snapshot(integration)  # the same difference, held again by the newer snapshot

    with integration.store() as store:
        [older, newer] = sorted(
            store.exceptions.list(type="stock_variance_held", status=None), key=lambda e: e.row.id
        )
        assert (older.row.status, newer.row.status) == ("resolved", "open")
        assert "superseded by the push of the newer snapshot" in older.row.resolution_note
        with pytest.raises(NotApprovable, match="newer snapshot"):
            store.approve(actor="finance-lead", exception_id=older.row.id)
        assert store.approve(actor="finance-lead", exception_id=newer.row.id)
    integration.run("khaos_outbox")

    assert _level(integration, stock_id) == level  # -20 once, not twice


def test_units_of_a_shipment_held_as_a_posting_problem_are_taken_out_once(
    integration: IntegrationHarness, wide_tolerance: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_push(integration)
    integration.run("ready_for_sale_skus")
    integration.run("khaos_released_orders", "acs_order_release")
    integration.sandbox.advance(timedelta(hours=12))  # ACS picks and ships every order
    monkeypatch.setenv("ACS_KHAOS_CARRIERS__ROUTES", '{"RM/*": "RM"}')  # DPD: unmapped
    integration.run("acs_shipments", "khaos_shipment_postings")
    before = _selling_levels(integration)

    _next_snapshot(integration)  # the shipped units have left ACS; no invoice yet

    # Sale units leave Level when their invoice is issued, not before (hire units move
    # to the on-hire site through the snapshot, as they should).
    assert _selling_levels(integration) == before
    monkeypatch.delenv("ACS_KHAOS_CARRIERS__ROUTES")
    integration.run("acs_shipments", "khaos_shipment_postings")  # fixed: posted now
    integration.sandbox.advance(timedelta(days=2))  # finance issues the invoices
    last = _next_snapshot(integration)

    expected = _acs_site_units(integration, last)
    for (stock_id, site_id), units in expected.items():
        if site_id == SELLING:
            assert _level(integration, stock_id) == units, stock_id


def _selling_levels(integration: IntegrationHarness) -> dict[int, int]:
    return {k[0]: v["level"] for k, v in _levels(integration).items() if k[1] == SELLING}


def _acs_site_units(integration: IntegrationHarness, result: Any) -> dict[tuple[int, int], int]:
    """ACS's units per StockID × site from the sellable_stock the push took them from."""
    sellable = result.output_for_node("sellable_stock")
    return {
        (int(r.stock_id), int(r.site_id)): int(r.sellable_units + r.allocated_units)
        for r in sellable.itertuples(index=False)
    }


def test_a_placement_counting_refurbishment_units_as_sellable_fails_the_check_and_is_not_pushed(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_push(integration)
    before = {k: v["level"] for k, v in _levels(integration).items()}

    def misplaced(*args: Any, **kwargs: Any) -> Any:
        site = acs_site_units(*args, **kwargs)
        units = site.units.copy()
        units.loc[units["site_id"] == REFURBISHMENT, "site_id"] = SELLING
        units = units.groupby(["stock_id", "site_id"], as_index=False)["units"].sum()
        return type(site)(**{**site.__dict__, "units": units})

    monkeypatch.setattr("acs_khaos_dagster.flows.stock_placement.acs_site_units", misplaced)
    integration.sandbox.advance(timedelta(minutes=30))
    result = _stock(integration, _snapshot_file(integration), raise_on_error=False)

    [check] = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "no_non_sellable_counted_as_sellable"
    ]
    assert check.passed is False
    integration.run("khaos_stock_update")  # a push of its own, as the batch schedule runs
    assert {k: v["level"] for k, v in _levels(integration).items()} == before
    with integration.store() as store:
        [refused] = store.exceptions.list(type="snapshot_refused")
    assert "sellable_stock counts" in refused.row.message


def test_a_status_move_refused_on_one_site_is_reversed_on_the_other(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    [stock_id, *_] = _ready_stock_ids(_first_push(integration))
    level = _level(integration, stock_id)
    refurb = _level(integration, stock_id, REFURBISHMENT)
    # Khaos thinks one unit is in refurbishment that ACS has back on the shelf: a move.
    integration.sandbox.khaos.set_level(stock_id, SELLING, level - 1)
    integration.sandbox.khaos.set_level(stock_id, REFURBISHMENT, refurb + 1)
    with Gateway(integration.sandbox.khaos_url) as gateway:
        monkeypatch.setenv("ACS_KHAOS_KHAOS__BASE_URL", gateway.url)
        gateway.then("ImportStockAdjustments", Misbehaviour(Move.BEFORE_APPLY))  # leg 1 lands
        gateway.then(
            "ImportStockAdjustments",
            Misbehaviour(Move.STATUS_BEFORE, status=500, body=Body.SOAP_CLIENT_FAULT),
        )  # leg 2 refused
        _next_snapshot(integration)

    assert _level(integration, stock_id) == level - 1  # the landed leg was reversed
    assert _level(integration, stock_id, REFURBISHMENT) == refurb + 1
    refs = [g["group_ref"] for g in _groups(integration)]
    assert len(refs) == 2 and refs[1] == f"{refs[0]}-U"
    with integration.store() as store:
        [problem] = store.exceptions.list(type="effect_failed")
    assert "reversed" in problem.row.message


def test_sellable_units_of_a_sku_khaos_cannot_use_are_an_owned_exception(
    integration: IntegrationHarness,
) -> None:
    baseline = integration.metadata(_first_push(integration), "sellable_stock")
    integration.sandbox.advance(timedelta(minutes=30))
    original = _snapshot_file(integration)
    lines = original.read_bytes().decode("utf-8-sig").splitlines(keepends=True)
    ready = [i for i, line in enumerate(lines) if "Ready For Customer" in line][:2]
    sku = lines[ready[0]].split(",")[2]

    def with_hash(text: str) -> bytes:
        out = text.splitlines(keepends=True)
        for i in ready:
            parts = out[i].split(",")
            parts[2] = "XMAS#JUMPER-M"
            out[i] = ",".join(parts)
        return "".join(out).encode("utf-8")

    path = _rewrite(original, original.name.replace(".csv", "9.csv"), with_hash)
    original.unlink()
    result = _stock(integration, path)

    unmatched = integration.metadata(result, "sellable_stock")["unmatched_sellable_units"]
    assert unmatched == baseline["unmatched_sellable_units"] + 2
    with integration.store() as store:
        [problem] = store.exceptions.list(
            type="sku_unknown_to_khaos", entity_ref="stock:XMAS#JUMPER-M"
        )
    assert problem.row.owner == "ecommerce" and "2 sellable" in problem.row.message
    assert problem.row.details["units"] == 2 and sku != "XMAS#JUMPER-M"


def test_a_refused_redelivery_does_not_rewrite_the_unknown_status_queue(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    first = _snapshot_file(integration)
    lines = first.read_bytes().decode("utf-8-sig")
    _stock(
        integration,
        _rewrite(first, first.name, lambda t: t.replace("Quarantine", "Lost In Space").encode()),
    )
    # The same snapshot moment delivered again, another status unknown this time: it is
    # not newer than what was pushed, so it is skipped, and must not speak for the stock.
    again = first.with_name(first.name.replace(".csv", "_2.csv"))
    again.write_bytes(lines.replace("Quarantine", "Mystery Shelf").encode())
    _stock(integration, again)

    with integration.store() as store:
        refs = {e.row.entity_ref for e in store.exceptions.list(type="unknown_stock_status")}
    assert refs == {"status:Lost In Space"}


def test_an_unreadable_returns_table_stops_the_push_instead_of_dropping_corrections(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _first_push(integration)

    def broken(self: Any) -> pd.DataFrame:
        raise RuntimeError("returned_units could not be read")

    monkeypatch.setattr("acs_khaos_dagster.store.returns.ReturnsRepository.units", broken)
    integration.sandbox.advance(timedelta(minutes=30))
    result = _stock(integration, _snapshot_file(integration), raise_on_error=False)

    assert not result.success
    with integration.store() as store:
        assert store.outbox.find(kind="khaos.import_stock_adjustments") == []
