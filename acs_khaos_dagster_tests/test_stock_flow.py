"""Stock through Dagster against the sandbox: ACS unit snapshots to Khaos Level.

The tiny scenario starts with Khaos's Levels equal to ACS's units under the default
status policy, so a correct first push changes nothing; each test then moves one thing.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetKey, build_sensor_context, materialize

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.defs.stock import acs_stock_file_sensor, partition_day
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping")
SNAPSHOT = ("acs_stock_snapshot", "sellable_stock", "non_sellable_stock")
PUSH = (*SNAPSHOT, "khaos_stock_update")
SELLING = 1


def _stock(integration: IntegrationHarness, path: Path, *names: str, **kw: Any):
    from acs_khaos_dagster.definitions import defs

    return materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[AssetKey(n) for n in (names or PUSH)],
        partition_key=partition_day(path.name, _mtime(path)),
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
        raise_on_error=kw.get("raise_on_error", True),
    )


def _mtime(path: Path):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _snapshot_file(integration: IntegrationHarness) -> Path:
    return next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)


def _levels(integration: IntegrationHarness) -> dict[tuple[int, int], dict[str, int]]:
    return {(r["stock_id"], r["site_id"]): r for r in integration.sandbox.khaos.truth()["stock"]}


def _groups(integration: IntegrationHarness) -> list[dict[str, Any]]:
    return integration.sandbox.khaos.truth()["adjustment_groups"]


def _rewrite(path: Path, new_name: str, transform) -> Path:
    text = path.read_bytes().decode("utf-8-sig")
    out = path.with_name(new_name)
    out.write_bytes(transform(text))
    return out


@pytest.mark.variants
def test_a_first_snapshot_that_agrees_with_khaos_pushes_nothing(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    path = _snapshot_file(integration)

    result = _stock(integration, path)

    counts = result.output_for_node("acs_stock_snapshot")
    policy = load_settings().status_policy
    # Every spelling in the file ("IN WAREHOUSE–READY…", no spaces round the dash) is known.
    assert {str(policy.bucket_for(s)) for s in counts["status"]} <= {
        "sellable",
        "allocated",
        "non_sellable",
        "on_hire",
        "retired",
    }
    meta = integration.metadata(result, "khaos_stock_update")
    assert meta["pushed"] == 1 and meta["lines"] == 0 and meta["held_lines"] == 0
    assert _groups(integration) == []
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "no_non_sellable_counted_as_sellable"
    ]
    assert check.passed


def test_an_unknown_status_is_never_sellable_and_is_raised_for_operations(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    path = _snapshot_file(integration)
    lines = path.read_text(encoding="utf-8").splitlines()
    header, first = lines[0], lines[1].split(",")
    status_at = header.split(",").index("status")
    unit_at = header.split(",").index("unique_sku")
    extra = []
    for n in range(2):
        row = list(first)
        row[status_at], row[unit_at] = "Lost In Space", f"ZZ{n:08d}"
        extra.append(",".join(row))
    odd = path.with_name(path.name.replace(".csv", "9.csv"))
    odd.write_text("\r\n".join([*lines, *extra]) + "\r\n", encoding="utf-8")
    path.unlink()

    result = _stock(integration, odd, *SNAPSHOT)

    sellable = result.output_for_node("sellable_stock")
    assert not sellable["statuses"].str.contains("lost in space").any()
    with integration.store() as store:
        [problem] = store.exceptions.list(type="unknown_stock_status")
    assert problem.row.owner == "operations"
    assert problem.row.details["status"] == "Lost In Space" and problem.row.details["units"] == 2


def test_a_file_with_a_byte_order_mark_and_crlf_reads_like_the_plain_one(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    path = _snapshot_file(integration)
    plain = _stock(integration, path, "acs_stock_snapshot").output_for_node("acs_stock_snapshot")
    bom = _rewrite(
        path,
        path.name.replace(".csv", "1.csv"),
        lambda t: (
            ("\ufeff" + t.replace("\r\n", "\n").replace("\n", "\r\n")).encode("utf-8") + b"\r\n"
        ),
    )

    again = _stock(integration, bom, "acs_stock_snapshot").output_for_node("acs_stock_snapshot")

    pd.testing.assert_frame_equal(plain, again)
    assert integration.metadata(
        _stock(integration, bom, "acs_stock_snapshot"), "acs_stock_snapshot"
    )["taken_in_before"]


def test_a_redelivered_file_under_another_name_is_not_taken_in_again(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    path = _snapshot_file(integration)
    resources = default_resources()
    with build_sensor_context(instance=integration.instance, resources=resources) as ctx:
        [request] = acs_stock_file_sensor(ctx).run_requests
    assert request.partition_key == partition_day(path.name, _mtime(path))
    _stock(integration, path)
    copy = path.with_name(path.name.replace(".csv", "7.csv"))
    shutil.copy2(path, copy)

    cursor = json.dumps({path.name: [path.stat().st_size, _mtime(path).isoformat(), "x"]})
    with build_sensor_context(
        instance=integration.instance, resources=resources, cursor=cursor
    ) as ctx:
        tick = acs_stock_file_sensor(ctx)
    assert tick.run_requests == []  # the ledger knows the content
    assert copy.name in json.loads(tick.cursor)
    result = _stock(integration, copy, "acs_stock_snapshot")
    assert integration.metadata(result, "acs_stock_snapshot")["same_content_as"] == path.name
    with integration.store() as store:
        states = sorted(f.state for f in store.ledger.find(kind="stock_units"))
    assert states == ["duplicate", "processed"]


def test_a_file_missing_40_percent_of_its_lines_is_refused_and_nothing_is_pushed(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    _stock(integration, _snapshot_file(integration))
    integration.sandbox.advance(timedelta(minutes=30))
    full = _snapshot_file(integration)
    data = full.read_bytes()
    # Cut at a line end: nothing in the file itself shows it, only its totals.
    full.write_bytes(data[: data.rfind(b"\n", 0, int(len(data) * 0.6)) + 1])

    result = _stock(integration, full)

    meta = integration.metadata(result, "khaos_stock_update")
    assert meta["refused"] == 1
    assert _groups(integration) == []
    with integration.store() as store:
        [problem] = store.exceptions.list(type="snapshot_refused")
    assert problem.row.owner == "integration" and "total units fell" in problem.row.message


def test_a_file_cut_mid_line_is_refused_for_operations_however_small_the_cut(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    _stock(integration, _snapshot_file(integration))
    integration.sandbox.advance(timedelta(minutes=30))
    full = _snapshot_file(integration)
    data = full.read_bytes()
    # One unit short, well inside the 10% guard: a SKU missing from it is not sold out.
    full.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 10])

    result = _stock(integration, full)

    assert integration.metadata(result, "khaos_stock_update")["pushed"] == 0
    assert _groups(integration) == []
    with integration.store() as store:
        [problem] = store.exceptions.list(type="stock_file_truncated")
        assert store.exceptions.list(type="snapshot_refused") == []
    assert problem.row.owner == "operations" and full.name in problem.row.message
    [quality] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "snapshot_file_is_whole_and_known"
    ]
    assert not quality.passed and "cut short" in (quality.description or "")


def test_a_whole_snapshot_passes_its_quality_check(integration: IntegrationHarness) -> None:
    integration.run(*PRODUCTS)
    result = _stock(integration, _snapshot_file(integration), "acs_stock_snapshot")
    [quality] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "snapshot_file_is_whole_and_known"
    ]
    assert quality.passed


def _stock_id_with_ready_units(integration: IntegrationHarness, result) -> tuple[int, str]:
    sellable = result.output_for_node("sellable_stock")
    row = sellable[sellable["sellable_units"] >= 3].iloc[0]
    return int(row["stock_id"]), str(row["stock_code"])


@pytest.mark.variants("khaos_without_level", "khaos_own_codes")
def test_a_variance_within_tolerance_is_pushed_and_above_is_held_until_approved(
    integration: IntegrationHarness, monkeypatch
) -> None:
    # 2 units and £1,000: one unit of any garment is within, twenty are not.
    monkeypatch.setenv("ACS_KHAOS_STOCK__VARIANCE_TOLERANCE_VALUE", "1000")
    integration.run(*PRODUCTS)
    first = _stock(integration, _snapshot_file(integration))
    stock_id, _ = _stock_id_with_ready_units(integration, first)
    other = next(
        int(s)
        for s in first.output_for_node("sellable_stock").query("sellable_units >= 3")["stock_id"]
        if int(s) != stock_id
    )
    khaos = integration.sandbox.khaos
    level = _levels(integration)[(stock_id, SELLING)]["level"]
    other_level = _levels(integration)[(other, SELLING)]["level"]
    khaos.set_level(stock_id, SELLING, level - 1)  # within 2 units
    khaos.set_level(other, SELLING, other_level + 20)  # far above
    integration.sandbox.advance(timedelta(minutes=30))

    result = _stock(integration, _snapshot_file(integration))

    meta = integration.metadata(result, "khaos_stock_update")
    assert meta["variance_lines"] == 1 and meta["held_lines"] == 1
    assert _levels(integration)[(stock_id, SELLING)]["level"] == level
    assert _levels(integration)[(other, SELLING)]["level"] == other_level + 20
    [line] = [ln for g in _groups(integration) for ln in g["lines"]]
    variance = load_settings().khaos.reasons.variance  # the install's code
    assert line["reason_code"] == variance and line["adjust_by"] == 1  # the planned change
    with integration.store() as store:
        [held] = store.exceptions.list(type="stock_variance_held")
        assert held.row.owner == "finance" and held.row.details["held_units"] == -20
        assert store.approve(actor="finance-lead", exception_id=held.row.id)

    integration.run("khaos_stock_update")  # the next push sends the approved adjustment

    assert _levels(integration)[(other, SELLING)]["level"] == other_level
    approved = [g for g in _groups(integration) if "-A" in g["group_ref"]]
    assert [ln["adjust_by"] for g in approved for ln in g["lines"]] == [-20]


def test_timeouts_before_and_after_the_adjustment_applies_apply_it_once(
    integration: IntegrationHarness, monkeypatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "1.0")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S", "0")
    # Neither timeout lands after the client gave up (one applies before its stall, the
    # other never applies), so the read-back need not wait.
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__READ_BACK_AFTER_S", "0")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_MAX_S", "0")
    monkeypatch.setenv("ACS_KHAOS_STOCK__VARIANCE_TOLERANCE_VALUE", "1000")
    integration.run(*PRODUCTS)
    first = _stock(integration, _snapshot_file(integration))
    sellable = first.output_for_node("sellable_stock").query("sellable_units >= 3")
    a, b = (int(s) for s in sellable["stock_id"].iloc[:2])
    khaos = integration.sandbox.khaos
    for stock_id in (a, b):
        khaos.set_level(stock_id, SELLING, _levels(integration)[(stock_id, SELLING)]["level"] - 1)
    for kind in (FaultKind.TIMEOUT_BEFORE, FaultKind.TIMEOUT_AFTER):
        integration.sandbox.khaos_faults.add(
            FaultRule(operation="ImportStockAdjustments", kind=kind, count=1, latency_s=2.5)
        )
    integration.sandbox.advance(timedelta(minutes=30))

    _stock(integration, _snapshot_file(integration))
    integration.run("khaos_stock_update")

    refs = [g["group_ref"] for g in _groups(integration)]
    assert len(refs) == len(set(refs)) == 1
    with integration.store() as store:
        [effect] = store.outbox.find(kind="khaos.import_stock_adjustments")
    assert effect.state == "done" and effect.attempts >= 2
