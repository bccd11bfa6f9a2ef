"""Products through Dagster against the sandbox: Khaos is the master, ACS must confirm.

The tiny scenario's ACS registry holds, on purpose, two SKUs missing, two pending,
one inactive, one with a barcode that differs from Khaos, and one SKU Khaos does not know.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.models import Barcode, StockItem
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.report_links import served_file

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
SYNC = (*PRODUCTS, "acs_sku_push")


def _classes(integration, result) -> Counter:
    mapping = result.output_for_node("sku_mapping")
    return Counter(mapping["classification"])


def _puts(integration: IntegrationHarness) -> dict[str, int]:
    return {p["sku"]: p["puts"] for p in integration.sandbox.acs.truth()["products"]}


def test_first_sync_classifies_every_sku_against_the_acs_registry(
    integration: IntegrationHarness,
) -> None:
    result = integration.run(*PRODUCTS)
    classes = _classes(integration, result)
    assert classes["missing_in_acs"] == 2
    assert classes["pending_in_acs"] == 2
    assert classes["inactive_in_acs"] == 1
    assert classes["attribute_mismatch"] == 1
    assert classes["unknown_to_khaos"] == 1
    mapping = result.output_for_node("sku_mapping")
    mismatch = mapping[mapping["classification"] == "attribute_mismatch"].iloc[0]
    assert mismatch["mismatch_fields"] == "barcode"


def test_ecommerce_gets_the_skus_not_ready_for_sale_and_why(
    integration: IntegrationHarness,
) -> None:
    result = integration.run(*PRODUCTS)
    meta = integration.metadata(result, "ready_for_sale_skus")
    # 2 missing, 2 pending, 1 inactive, 1 mismatched barcode (the scenario's registry).
    assert meta["not_ready_for_sale"] == 6
    with served_file(load_settings().data_dir, meta["not_ready_csv"]).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    mismatch = next(r for r in rows if r["classification"] == "attribute_mismatch")
    assert mismatch["why"].startswith("ACS holds other details: barcode")
    assert "| stock_code " in meta["not_ready_first_50"]


def test_style_parents_are_in_the_master_but_never_sent_to_acs(
    integration: IntegrationHarness,
) -> None:
    result = integration.run(*SYNC)
    master = result.output_for_node("khaos_sku_master")
    parents = master[~master["stock_controlled"]]
    assert len(parents) > 0
    assert set(master["scs_parent_id"].dropna()) <= set(parents["stock_id"])
    mapping = result.output_for_node("sku_mapping")
    assert not set(parents["stock_id"]) & set(mapping["stock_id"].dropna())
    assert not set(parents["stock_code"]) & set(_puts(integration))


def test_missing_and_mismatched_skus_are_pushed_and_become_ready_after_activation(
    integration: IntegrationHarness,
) -> None:
    first = integration.run(*SYNC)
    pushed = first.output_for_node("acs_sku_push")
    assert set(pushed["reason"]) == {"new", "changed"}
    missing = set(pushed[pushed["reason"] == "new"]["acs_sku"])
    before = integration.run(*PRODUCTS).output_for_node("ready_for_sale_skus")
    assert not missing & set(before["acs_sku"])  # pending at ACS: not ready yet

    integration.sandbox.advance(timedelta(hours=3))
    after = integration.run(*SYNC)

    assert missing <= set(after.output_for_node("ready_for_sale_skus")["acs_sku"])
    assert after.output_for_node("acs_sku_push").empty  # ready without another push
    assert all(_puts(integration)[sku] == 1 for sku in missing)


def test_rerunning_the_sync_sends_nothing_new(
    integration: IntegrationHarness,
) -> None:
    integration.run(*SYNC)
    puts_after_first = _puts(integration)
    again = integration.run(*SYNC)
    assert again.output_for_node("acs_sku_push").empty
    assert _puts(integration) == puts_after_first


def test_only_changed_stock_items_are_fetched_after_the_first_run(
    integration: IntegrationHarness,
) -> None:
    integration.sandbox.advance(timedelta(hours=1))  # past the catalogue's own last change
    first = integration.run("khaos_sku_master")
    khaos = integration.sandbox.khaos
    integration.sandbox.advance(timedelta(minutes=30))
    children = first.output_for_node("khaos_sku_master").query("stock_controlled")
    stock_id = int(children.iloc[0]["stock_id"])
    khaos.update_stock_item(stock_id, sell_price=Decimal("99.00"))

    second = integration.run("khaos_sku_master")

    meta = integration.metadata(second, "khaos_sku_master")
    assert meta["stock_items_fetched"] == 1
    master = second.output_for_node("khaos_sku_master").set_index("stock_id")
    assert master.loc[stock_id, "sell_price"] == 99.0
    assert len(master) == meta["stock_items"] == len(first.output_for_node("khaos_sku_master"))


def test_a_renamed_stock_code_keeps_its_acs_sku_and_is_reported_to_ecommerce(
    integration: IntegrationHarness,
) -> None:
    first = integration.run(*SYNC)
    mapping = first.output_for_node("sku_mapping")
    row = mapping[mapping["classification"] == "matched"].iloc[0]
    stock_id, old_code = int(row["stock_id"]), row["stock_code"]
    skus_at_acs = set(_puts(integration))
    integration.sandbox.advance(timedelta(minutes=30))
    integration.sandbox.khaos.rename_stock_code(stock_id, f"{old_code}-R")

    second = integration.run(*SYNC)

    renamed = second.output_for_node("sku_mapping").set_index("stock_id").loc[stock_id]
    assert renamed["classification"] == "renamed"
    assert renamed["acs_sku"] == old_code
    assert bool(renamed["ready_for_sale"])
    assert set(_puts(integration)) == skus_at_acs  # never a duplicate SKU at ACS
    with integration.store() as store:
        [problem] = store.exceptions.list(type="sku_renamed")
    assert problem.row.owner == "ecommerce" and problem.row.entity_ref == str(stock_id)


def test_an_invalid_code_is_never_sent_and_is_owned_by_ecommerce(
    integration: IntegrationHarness,
) -> None:
    integration.sandbox.khaos.add_stock_item(
        StockItem(
            stock_id=99001,
            stock_code="TEE/0001-BLK-M",
            style="BAD",
            colour="X",
            size="M",
            barcodes=(Barcode(value="5099999999994"),),
            publish_on_web=True,
        ),
        levels={},
    )
    result = integration.run(*SYNC)

    assert "TEE/0001-BLK-M" not in _puts(integration)
    mapping = result.output_for_node("sku_mapping").set_index("stock_id")
    assert mapping.loc[99001, "classification"] == "invalid_code"
    [check] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "no_invalid_code_pushed"
    ]
    assert check.passed
    with integration.store() as store:
        [problem] = store.exceptions.list(type="invalid_sku_code")
    assert problem.row.owner == "ecommerce" and "/" in problem.row.message


def test_a_push_acs_rejects_is_parked_as_an_exception_not_retried(
    integration: IntegrationHarness,
) -> None:
    first = integration.run(*PRODUCTS)
    master = first.output_for_node("khaos_sku_master")
    taken = master[master["stock_controlled"] & (master["barcode"] != "")].iloc[0]["barcode"]
    integration.sandbox.khaos.add_stock_item(
        StockItem(
            stock_id=99002,
            stock_code="DUP-0001-BLK-M",
            style="DUP",
            colour="BLK",
            size="M",
            barcodes=(Barcode(value=taken),),
        ),
        levels={},
    )
    integration.sandbox.advance(timedelta(minutes=30))
    result = integration.run(*SYNC)

    pushed = result.output_for_node("acs_sku_push").set_index("acs_sku")
    assert pushed.loc["DUP-0001-BLK-M", "state"] == "parked"
    assert "DUP-0001-BLK-M" not in _puts(integration)
    with integration.store() as store:
        problems = store.exceptions.list(type="effect_failed")
    assert [p.row.owner for p in problems] == ["integration"]
    assert "DUPLICATE_BARCODE" in problems[0].row.message


def test_published_skus_not_live_at_acs_warn_on_coverage(
    integration: IntegrationHarness,
) -> None:
    result = integration.run(*PRODUCTS)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "web_coverage"]
    coverage = check.metadata["coverage"].value
    assert coverage < 1.0
    assert check.passed is (coverage >= 0.98)
    with integration.store() as store:
        not_live = store.exceptions.list(type="sku_not_live")
    assert not_live and all(p.row.owner == "ecommerce" for p in not_live)


def test_a_fixed_mismatch_closes_its_exception(
    integration: IntegrationHarness,
) -> None:
    integration.run(*SYNC)
    with integration.store() as store:
        assert store.exceptions.list(type="sku_mismatch")
    integration.sandbox.advance(timedelta(hours=3))
    integration.run(*PRODUCTS)
    with integration.store() as store:
        assert store.exceptions.list(type="sku_mismatch") == []
        assert store.exceptions.list(type="sku_mismatch", status="resolved")


def test_a_code_khaos_cannot_export_is_reported_and_the_rest_still_syncs(
    integration: IntegrationHarness,
) -> None:
    integration.sandbox.khaos.add_stock_item(
        StockItem(stock_id=99003, stock_code="HAT#01", style="HAT", colour="RED", size="OS"),
        levels={},
    )
    result = integration.run(*SYNC)

    assert len(result.output_for_node("ready_for_sale_skus")) > 0
    with integration.store() as store:
        [problem] = store.exceptions.list(type="invalid_sku_code")
    assert problem.row.entity_ref == "code:HAT#01" and problem.row.owner == "ecommerce"


def test_a_khaos_with_no_stock_items_gives_an_empty_master_not_a_crash(
    integration: IntegrationHarness,
) -> None:
    # A new Khaos install, or a full refresh that finds nothing: the stock list is empty.
    state = integration.sandbox.khaos.books
    state.items.clear()
    state.changed_at.clear()
    result = integration.run(
        *PRODUCTS,
        run_config={"ops": {"khaos_sku_master": {"config": {"full_refresh": True}}}},
    )
    master = result.output_for_node("khaos_sku_master")
    assert master.empty
    assert bool(master["is_hire"].dtype == bool)
    assert integration.metadata(result, "khaos_sku_master")["hire_skus"] == 0
    assert integration.metadata(result, "khaos_sku_master")["dagster/row_count"] == 0
    # ACS's SKUs are then all unknown to Khaos, and nothing is ready for sale.
    assert set(_classes(integration, result)) == {"unknown_to_khaos"}
    assert result.output_for_node("ready_for_sale_skus").empty
