"""The seeded scenario generator: determinism, shapes, distributions and consistency."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import pytest

from acs_khaos_dagster.config import KhaosSettings
from acs_khaos_dagster.connectors.acs.file_layouts import RETURNS_COLUMNS, STOCK_UNITS_COLUMNS
from acs_khaos_dagster.connectors.acs.files import read_returns, read_stock_units
from acs_khaos_dagster.domain.models import AcsProductStatus
from acs_khaos_dagster.domain.stock_status import (
    DEFAULT_STATUS_POLICY,
    StockBucket,
    normalise_status,
    site_id_for,
)
from acs_khaos_dagster.sandbox.scenario.generator import ScenarioSpec, ean13, generate_scenario
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioManifest, Path]:
    folder = tmp_path_factory.mktemp("small")
    return generate_scenario("small", 20260302, folder), folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioManifest, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    return generate_scenario("tiny", 11, folder), folder


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate_scenario("tiny", 5, tmp_path / "a")
    generate_scenario("tiny", 5, tmp_path / "b")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    generate_scenario("tiny", 5, tmp_path / "a")
    generate_scenario("tiny", 6, tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "b")


def test_manifest_loads_and_names_the_files(tiny: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = tiny
    loaded = ScenarioManifest.load(folder)
    assert loaded == manifest
    assert loaded.files.stock_units == "stock_units_BRAND01_20260302070000.csv"
    assert loaded.files.returns.startswith("returns_BRAND01_")
    assert (folder / loaded.files.returns).exists()


def test_tiny_has_the_documented_size(tiny: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = tiny
    assert manifest.counts["skus"] == 20
    assert 250 <= manifest.counts["units"] <= 400
    assert len(manifest.orders) == 10
    assert manifest.counts["returns"] == 5


def test_files_have_exactly_the_contract_columns(tiny: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = tiny
    for name, columns in (
        (manifest.files.stock_units, STOCK_UNITS_COLUMNS),
        (manifest.files.returns, RETURNS_COLUMNS),
    ):
        header = (folder / name).read_text(encoding="utf-8").splitlines()[0]
        assert tuple(header.split(",")) == columns


def test_sites_are_the_default_khaos_sites(tiny: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = tiny
    assert {s.site_id for s in manifest.sites} == set(KhaosSettings().sites.model_dump().values())


def test_styles_have_a_parent_and_colour_size_children(
    small: tuple[ScenarioManifest, Path],
) -> None:
    manifest, _ = small
    by_id = {s.stock_id: s for s in manifest.stock_items}
    children = [s for s in manifest.stock_items if s.scs_parent_id is not None]
    assert len(children) == 500
    for child in children:
        parent = by_id[child.scs_parent_id]
        assert not parent.stock_controlled and child.stock_controlled
        assert child.stock_code.startswith(parent.stock_code + "-")
        assert child.style == parent.style and child.colour and child.size


def test_stock_codes_fit_khaos(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    codes = [s.stock_code for s in manifest.stock_items]
    assert len(set(codes)) == len(codes)
    assert all(len(c) <= 50 and "#" not in c and c == c.strip() for c in codes)


def test_barcodes_are_valid_unique_ean13(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    values = [b.value for s in manifest.stock_items for b in s.barcodes]
    assert len(values) == 500 == len(set(values))
    assert all(len(v) == 13 and v.isdigit() and ean13(v[:12]) == v for v in values)


def test_prices_have_cost_below_sell(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    for item in manifest.stock_items:
        assert 0 < item.cost_price < item.sell_price
        assert item.sell_price.as_tuple().exponent == -2


def test_about_a_tenth_of_skus_are_hire(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    children = [s for s in manifest.stock_items if s.scs_parent_id is not None]
    share = sum(s.is_hire for s in children) / len(children)
    assert 0.04 <= share <= 0.2
    assert any(s.discontinued for s in children)
    assert sum(s.publish_on_web for s in children) > 0.8 * len(children)


def test_addresses_fit_khaos_and_carry_awkward_characters(
    small: tuple[ScenarioManifest, Path],
) -> None:
    manifest, _ = small
    text = []
    for customer in manifest.customers:
        address = customer.address
        for line in (
            address.line1,
            address.line2,
            address.line3,
            address.line4,
            address.city,
            address.county,
        ):
            assert len(line) <= 35
        assert 0 < len(address.postcode) <= 10
        text += [
            address.line1,
            address.line2,
            customer.contact.first_name,
            customer.contact.last_name,
        ]
    joined = " ".join(text)
    assert "'" in joined and "&" in joined
    assert any(ch in joined for ch in "ëéâ")


def test_orders_are_released_with_one_invoice(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    stock = {s.stock_id: s for s in manifest.stock_items}
    customers = {c.urn for c in manifest.customers}
    for order in manifest.orders:
        assert order.order_date < manifest.start_at
        assert order.site_id == 1 and order.customer_urn in customers
        assert order.associated_ref.startswith("WEB-")
        assert 1 <= len(order.lines) <= 4
        (invoice,) = order.invoices
        assert invoice.stage_id == 9
        assert [ln.order_item_id for ln in invoice.lines] == [
            ln.order_item_id for ln in order.lines
        ]
        for line in order.lines:
            assert line.is_hire == stock[line.stock_id].is_hire
    assert any(ln.is_hire for o in manifest.orders for ln in o.lines)


def test_registry_holds_the_deliberate_problems(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    registry = {p.sku: p for p in manifest.acs_registry}
    children = {s.stock_code: s for s in manifest.stock_items if s.stock_controlled}
    assert len(set(children) - set(registry)) == 2
    statuses = Counter(p.status for p in registry.values())
    assert statuses[AcsProductStatus.PENDING] == 2
    assert statuses[AcsProductStatus.INACTIVE] == 1
    assert len(set(registry) - set(children)) == 1
    mismatched = [
        c
        for c, p in registry.items()
        if c in children and p.barcode != children[c].barcodes[0].value
    ]
    assert len(mismatched) == 1


def test_orders_use_only_skus_active_at_acs(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    active = {p.sku for p in manifest.acs_registry if p.status == AcsProductStatus.ACTIVE}
    assert all(ln.stock_code in active for o in manifest.orders for ln in o.lines)


def test_unit_status_mix_follows_the_documented_shares(
    small: tuple[ScenarioManifest, Path],
) -> None:
    manifest, folder = small
    rows = _rows(folder / manifest.files.stock_units)
    buckets = Counter(DEFAULT_STATUS_POLICY.bucket_for(r["status"]) for r in rows)
    total = len(rows)
    assert buckets[StockBucket.SELLABLE] / total == pytest.approx(0.70, abs=0.04)
    assert 0.02 <= buckets[StockBucket.ALLOCATED] / total <= 0.08
    assert buckets[StockBucket.NON_SELLABLE] / total == pytest.approx(0.10, abs=0.02)
    assert buckets[StockBucket.ON_HIRE] / total == pytest.approx(0.10, abs=0.02)
    assert buckets[StockBucket.RETIRED] / total == pytest.approx(0.05, abs=0.015)
    assert buckets[StockBucket.UNKNOWN] == manifest.counts["units_unknown_status"] == 2


def test_units_file_rows_are_well_formed(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = small
    rows = _rows(folder / manifest.files.stock_units)
    order_codes = {o.order_code for o in manifest.orders}
    hire = {s.stock_code for s in manifest.stock_items if s.is_hire}
    assert len({r["unique_sku"] for r in rows}) == len(rows)
    for row in rows:
        assert row["snapshot_at"] == "2026-03-02T07:00:00Z"
        assert len(row["rfid_epc"]) == 24 and int(row["rfid_epc"], 16) >= 0
        bucket = DEFAULT_STATUS_POLICY.bucket_for(row["status"])
        if bucket == StockBucket.ALLOCATED:
            assert row["order_number"] in order_codes
        if bucket == StockBucket.ON_HIRE:
            assert row["sku"] in hire and row["order_number"] and row["expected_return_date"]


def test_status_spelling_varies_across_rows(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = small
    rows = _rows(folder / manifest.files.stock_units)
    ready = {
        r["status"]
        for r in rows
        if normalise_status(r["status"]) == "in warehouse - ready for customer"
    }
    assert len(ready) > 1


def test_khaos_levels_agree_with_units_under_default_policy(
    small: tuple[ScenarioManifest, Path],
) -> None:
    manifest, folder = small
    items = {s.stock_code: s for s in manifest.stock_items}
    sites = KhaosSettings().sites
    expected: Counter[tuple[int, int]] = Counter()
    for row in _rows(folder / manifest.files.stock_units):
        item = items.get(row["sku"])
        if item is None:
            continue  # ACS holds a SKU Khaos does not know
        site = site_id_for(DEFAULT_STATUS_POLICY.rule_for(row["status"]), item.is_hire, sites)
        if site is not None:
            expected[(item.stock_id, site)] += 1
    assert {(lv.stock_id, lv.site_id): lv.level for lv in manifest.khaos_levels} == dict(expected)


def test_selling_level_covers_what_orders_allocate(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    levels = {(lv.stock_id, lv.site_id): lv.level for lv in manifest.khaos_levels}
    ordered: Counter[tuple[int, int]] = Counter()
    for order in manifest.orders:
        for line in order.lines:
            ordered[(line.stock_id, 2 if line.is_hire else 1)] += line.quantity
    assert all(levels.get(key, 0) >= qty for key, qty in ordered.items())


def test_fulfilment_plans_cover_every_line_once(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, _ = small
    plans = {p.order_code: p for p in manifest.fulfilment_plans}
    split = 0
    for order in manifest.orders:
        plan = plans[order.order_code]
        planned = [ln.order_item_id for s in plan.shipments for ln in s]
        planned += [ln.order_item_id for ln in plan.closed_short]
        assert sorted(planned) == [ln.order_item_id for ln in order.lines]
        assert all(plan.shipments) and len(plan.shipments) <= 3
        split += len(plan.shipments) > 1
    multi = sum(len(o.lines) > 1 for o in manifest.orders)
    assert 0.05 <= split / multi <= 0.3
    assert any(p.closed_short for p in manifest.fulfilment_plans)


def test_return_grades_and_actions_follow_policy(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = small
    rows = _rows(folder / manifest.files.returns)
    assert Counter(r["grade"] for r in rows) == {"A": 60, "B": 25, "C": 10, "BER": 5}
    allowed = {
        "A": {"RESTOCK"},
        "B": {"CLEAN", "REPAIR"},
        "C": {"REPAIR", "QUARANTINE", "RESALE"},
        "BER": {"DISPOSE", "EX_HIRE"},
    }
    for row in rows:
        assert row["action_taken"] in allowed[row["grade"]]


def test_returns_point_at_shipped_order_lines(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = small
    lines = {
        str(ln.order_item_id): (o.order_code, ln.stock_code)
        for o in manifest.orders
        for ln in o.lines
    }
    rows = _rows(folder / manifest.files.returns)
    unexpected = [r for r in rows if not r["order_number"]]
    assert 1 <= len(unexpected) == manifest.counts["unexpected_returns"]
    for row in rows:
        if row["order_number"]:
            assert lines[row["line_item_id"]] == (row["order_number"], row["sku"])


def test_generated_files_read_back_without_quarantine(small: tuple[ScenarioManifest, Path]) -> None:
    manifest, folder = small
    units = read_stock_units(folder / manifest.files.stock_units)
    returns = read_returns(folder / manifest.files.returns)
    assert units.quarantined == [] and returns.quarantined == []
    assert units.units.num_rows == manifest.counts["units"]
    assert returns.returns.num_rows == manifest.counts["returns"]
    assert units.duplicates_removed == 0 and units.conflicts == []


def test_progress_reports_each_stage(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    generate_scenario("tiny", 1, tmp_path, progress=lambda s, d, t: seen.append((s, d, t)))
    stages = [s for s, _, _ in seen]
    assert {"catalogue", "orders", "units", "returns", "manifest"} <= set(stages)
    assert all(done <= total for _, done, total in seen)


def test_a_mid_sized_scenario_streams_units_to_disk(tmp_path: Path) -> None:
    spec = ScenarioSpec(skus=2_000, units=60_000, orders=200, returns=50, unknown_status_units=3)
    manifest = generate_scenario("small", 3, tmp_path, spec=spec)
    lines = (tmp_path / manifest.files.stock_units).read_bytes().count(b"\n")
    assert lines - 1 == manifest.counts["units"] >= 60_000
