"""Reconciliation through Dagster against the sandbox (issue 9; tiny scenario, seed 7).

Each test plants one kind of drift in the sandbox, runs the flows that would meet it,
then reconciles the sandbox's current day and asserts that it is found, classified,
owned (``drift`` belongs to finance) and raised once: a second night counts it again
instead of opening a second exception.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import AssetKey, materialize

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.defs.stock import partition_day
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")
SNAPSHOT = ("acs_stock_snapshot", "sellable_stock", "non_sellable_stock")
RETURNS = ("acs_returns", "khaos_return_postings", "khaos_write_offs", "return_refund_clock")
RECONCILIATION = (
    "stock_reconciliation",
    "order_status_reconciliation",
    "order_to_cash_reconciliation",
    "returns_reconciliation",
    "integration_exceptions",
)
SELLING = 1


def _all_defs() -> tuple[list, list]:
    from acs_khaos_dagster.definitions import defs

    return list(defs.assets or []), list(defs.asset_checks or [])


def _today(integration: IntegrationHarness) -> str:
    return integration.sandbox.clock.now().astimezone(ZoneInfo("Europe/London")).date().isoformat()


def _reconcile(integration: IntegrationHarness, *names: str, day: str | None = None):
    assets, checks = _all_defs()
    return materialize(
        [*assets, *checks],
        selection=[AssetKey(n) for n in (names or RECONCILIATION)],
        partition_key=day or _today(integration),
        resources=default_resources(),
        instance=integration.instance,
        raise_on_error=False,
    )


def _snapshot(integration: IntegrationHarness) -> None:
    from datetime import UTC, datetime

    path = next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)
    assets, checks = _all_defs()
    materialize(
        [*assets, *checks],
        selection=[AssetKey(n) for n in SNAPSHOT],
        partition_key=partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC)),
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
    )


def _table(result, name: str) -> pd.DataFrame:
    return result.output_for_node(name)


def _drift(integration: IntegrationHarness) -> dict[str, Any]:
    with integration.store() as store:
        return {e.row.entity_ref: e.row for e in store.exceptions.list(type="drift")}


def _check(result, name: str) -> Any:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def _stored(table: str, day: str) -> pd.DataFrame:
    return pd.read_parquet(load_settings().data_dir / "reconciliation" / table / f"{day}.parquet")


# --- stock ------------------------------------------------------------------------------------


@pytest.mark.variants
def test_a_day_with_only_timing_differences_shows_nothing_unexplained(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.run(*DESPATCH)  # posted, invoices not issued yet (the batch waits an hour)
    _snapshot(integration)

    result = _reconcile(integration, "stock_reconciliation")

    stock = _table(result, "stock_reconciliation")
    assert (stock["classification"] == "unexplained").sum() == 0
    timing = stock.loc[stock["classification"] == "in_flight"]
    assert len(timing) >= 1
    assert timing["in_flight_items"].str.contains("despatched_not_issued").all()
    assert _drift(integration) == {}
    assert _check(result, "unexplained_stock_drift_within_tolerance").passed
    day = _today(integration)
    assert len(_stored("stock", day)) == len(stock)
    drift = pd.read_parquet(load_settings().data_dir / "reconciliation" / "drift_by_day.parquet")
    assert list(drift.columns) == ["day", "unexplained_units", "unexplained_value"]
    assert drift["unexplained_units"].tolist() == [0]


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox gives up after one failed attempt: the effect is parked at once."""
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__MAX_ATTEMPTS", "1")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S", "0")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_MAX_S", "0")


def test_a_lost_push_is_push_missing_and_raised_once_as_its_parked_effect(
    integration: IntegrationHarness, one_attempt: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 units and £1,000: one unit of any garment is pushed, not held for finance.
    monkeypatch.setenv("ACS_KHAOS_STOCK__VARIANCE_TOLERANCE_VALUE", "1000")
    integration.run(*PRODUCTS)
    levels = {(r["stock_id"], r["site_id"]): r for r in integration.sandbox.khaos.truth()["stock"]}
    stock_id = next(s for (s, site), r in levels.items() if site == SELLING and r["level"] >= 3)
    level = levels[(stock_id, SELLING)]["level"]
    integration.sandbox.khaos.set_level(stock_id, SELLING, level - 1)
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportStockAdjustments", kind=FaultKind.ERROR_5XX, count=1)
    )
    integration.sandbox.advance(timedelta(minutes=30))
    _snapshot(integration)
    integration.run("khaos_stock_update")

    _reconcile(integration, "stock_reconciliation")
    result = _reconcile(integration, "stock_reconciliation")

    row = _table(result, "stock_reconciliation").set_index(["stock_id", "site_id"])
    lost = row.loc[(stock_id, SELLING)]
    assert lost["classification"] == "push_missing"
    assert lost["explained_push_missing"] == 1 and lost["unexplained"] == 0
    assert lost["push_missing_refs"].startswith("SNAP-")
    # Already raised as the parked push (owner integration): not raised again as drift.
    assert _drift(integration) == {}
    with integration.store() as store:
        [parked] = store.exceptions.list(type="effect_failed")
    assert parked.row.owner == "integration"


# --- orders and cash -------------------------------------------------------------------------


def test_a_despatch_never_posted_and_an_invoice_never_issued_are_drift_for_finance_once(
    integration: IntegrationHarness, one_attempt: None
) -> None:
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportDespatch", kind=FaultKind.ERROR_5XX, count=1)
    )
    integration.run(*DESPATCH)  # the first shipment's posting is parked: never posted
    khaos = integration.sandbox.khaos
    [call, *_] = khaos.truth()["despatch_calls"]
    khaos.issue_policy.hold_invoice_ids.add(call["invoice_id"])  # never issued
    integration.sandbox.advance(timedelta(days=3))

    _reconcile(integration, "order_to_cash_reconciliation")
    result = _reconcile(integration, "order_to_cash_reconciliation")

    cash = _table(result, "order_to_cash_reconciliation").set_index("shipment_id")
    with integration.store() as store:
        [parked] = store.outbox.find(kind="khaos.import_despatch", state="parked")
    never_posted = parked.business_key
    never_issued = call["external_ref"]
    assert cash.loc[never_posted, "status"] == "despatched_not_posted"
    assert cash.loc[never_issued, "status"] == "posted_not_invoiced"
    assert cash.loc[never_issued, "value_waiting"] > 0
    drift = _drift(integration)
    for shipment in (never_posted, never_issued):
        row = drift[f"recon:cash:{shipment}"]
        assert row.owner == "finance" and row.count == 2 and row.status == "open"
    assert "never posted" in drift[f"recon:cash:{never_posted}"].message
    check = _check(result, "no_shipment_despatched_not_invoiced_too_long")
    assert not check.passed and check.severity.value == "ERROR"
    events = _stored("workflow_events", _today(integration))
    assert set(events.columns) == {"order_number", "shipment_id", "step", "at"}


def test_a_shipment_not_invoiced_too_long_still_lets_the_night_refresh_the_exception_queue(
    integration: IntegrationHarness,
) -> None:
    """The order-to-cash check fails on a late shipment, but the night's exception queue
    (downstream, so it counts that night's ``recon:cash`` findings) is still written:
    finance sees the late shipment in the queue, and the nightly run does not fail on an
    item that already has an owner."""
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.run(*DESPATCH)
    khaos = integration.sandbox.khaos
    [call, *_] = khaos.truth()["despatch_calls"]
    khaos.issue_policy.hold_invoice_ids.add(call["invoice_id"])  # never issued
    integration.sandbox.advance(timedelta(days=3))

    result = _reconcile(integration)

    assert result.success
    assert not _check(result, "no_shipment_despatched_not_invoiced_too_long").passed
    queue = _table(result, "integration_exceptions")
    finance = queue.loc[queue["owner"] == "finance"]
    assert finance["count"].sum() >= 1


def test_an_invoice_never_issued_stays_tracked_and_its_exception_open_whatever_its_age(
    integration: IntegrationHarness,
) -> None:
    """Issue 17 point 2: a shipment posted but never invoiced does not drop out of order
    to cash after 92 days, and its ``recon:cash`` exception is not closed as "no longer
    seen": it stays open until someone resolves it."""
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.run(*DESPATCH)
    khaos = integration.sandbox.khaos
    [call, *_] = khaos.truth()["despatch_calls"]
    khaos.issue_policy.hold_invoice_ids.add(call["invoice_id"])  # never issued
    integration.sandbox.advance(timedelta(days=3))
    _reconcile(integration, "order_to_cash_reconciliation")
    integration.sandbox.advance(timedelta(days=120))

    result = _reconcile(integration, "order_to_cash_reconciliation")

    cash = _table(result, "order_to_cash_reconciliation").set_index("shipment_id")
    shipment = call["external_ref"]
    assert cash.loc[shipment, "status"] == "posted_not_invoiced"
    assert cash.loc[shipment, "age_hours"] > 120 * 24
    row = _drift(integration)[f"recon:cash:{shipment}"]
    assert row.status == "open" and row.count == 2


def test_a_despatch_never_put_on_the_feed_is_found_in_order_status_once(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.sandbox.acs_faults.add(
        FaultRule(operation="list_despatches", kind=FaultKind.SUPPRESS, count=1)
    )
    integration.run(*DESPATCH)
    [lost] = integration.sandbox.acs.state.feed_faults

    _reconcile(integration, "order_status_reconciliation", "order_to_cash_reconciliation")
    result = _reconcile(integration, "order_status_reconciliation", "order_to_cash_reconciliation")

    status = _table(result, "order_status_reconciliation")
    [row] = status.loc[status["mismatch"] == "despatched_no_event"].to_dict("records")
    shipment = row["missing_shipment_ids"]
    cash = _table(result, "order_to_cash_reconciliation").set_index("shipment_id")
    assert cash.loc[shipment, "status"] == "despatched_not_posted"
    drift = _drift(integration)
    found = drift[f"recon:order:{row['order_number']}:despatched_no_event"]
    assert found.owner == "finance" and found.count == 2
    assert lost["event_id"]  # the sandbox did suppress an event
    assert (
        _stored("order_status", _today(integration))["mismatch"] == "despatched_no_event"
    ).sum() == 1


# --- returns -----------------------------------------------------------------------------------


def _ship(order_id: int, lines: list[tuple[int, int]], integration: IntegrationHarness) -> None:
    from acs_khaos_dagster.connectors.khaos.client import KhaosClient
    from acs_khaos_dagster.domain.models import DespatchPosting

    with KhaosClient.from_settings(load_settings()) as client:
        invoice = client.import_despatch(
            DespatchPosting(order_id=order_id, external_ref=f"SHIP-{order_id}", lines=tuple(lines))
        )
    integration.sandbox.khaos.issue_invoice(invoice.invoice_id)


def _deliver_returns(rows: list[dict[str, str]]) -> Path:
    import csv

    from acs_khaos_dagster.connectors.acs.file_layouts import RETURNS_LAYOUT

    folder = load_settings().drop_folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "returns_BRAND01_20260302100000.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(RETURNS_LAYOUT.columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in RETURNS_LAYOUT.columns})
    return path


def _returned(ref: str, order: str, line: int, sku: str, unit: str, grade: str, action: str,
              received: str) -> dict[str, str]:  # fmt: skip
    return {
        "return_ref": ref, "order_number": order, "line_item_id": str(line), "sku": sku,
        "unique_sku": unit, "received_at": received, "grade": grade, "action_taken": action,
        "action_reason": "test", "defect_codes": "", "repair_cost": "",
    }  # fmt: skip


def test_a_ber_never_written_off_and_a_credit_never_raised_are_found_once(
    integration: IntegrationHarness, one_attempt: None
) -> None:
    _ship(50006, [(700011, 1)], integration)  # a hire dress goes out
    _ship(50004, [(700007, 1)], integration)  # a jacket is sold
    now = integration.sandbox.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    _deliver_returns(
        [
            _returned("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE", now),
            _returned("RF1", "SO0050004", 700007, "JKT-0002-BRG-S", "UF1", "C", "REPAIR", now),
        ]
    )
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportStockAdjustments", kind=FaultKind.ERROR_5XX, count=1)
    )
    integration.run(*RETURNS)  # the hire write-off is parked; the jacket's credit awaits review
    integration.sandbox.advance(timedelta(days=12))  # past the refund warning
    integration.run("return_refund_clock")

    _reconcile(integration, "returns_reconciliation")
    result = _reconcile(integration, "returns_reconciliation")

    units = _table(result, "returns_reconciliation").set_index("unique_sku")
    assert units.loc["UW1", "write_off_status"] == "missing"
    writeoff = _drift(integration)["recon:writeoff:UW1"]
    assert writeoff.owner == "finance" and writeoff.count == 2
    check = _check(result, "no_ber_unit_without_write_off")
    assert not check.passed and check.severity.value == "ERROR"
    jacket = units.loc["UF1"]
    assert jacket["credit_status"] == "review" and jacket["refund_state"] == "due_soon"
    assert jacket["credit_pending_value"] > 0
    with integration.store() as store:
        [due] = store.exceptions.list(type="refund_due")
    assert due.row.owner == "finance" and due.row.entity_ref == "refund:RF1-P1"
    assert (_stored("returns", _today(integration))["write_off_status"] == "missing").sum() == 1


# --- the whole night ------------------------------------------------------------------------


def test_the_nightly_job_writes_every_table_and_the_exception_queue(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=4))
    integration.run(*DESPATCH)
    _snapshot(integration)

    result = _reconcile(integration)

    day = _today(integration)
    for table in ("stock", "order_status", "order_to_cash", "returns", "exceptions"):
        assert _stored(table, day).shape[1] > 0
    queue = _table(result, "integration_exceptions")
    assert list(queue.columns) == [
        "type", "owner", "count", "oldest_age_hours", "target_hours", "over_target",
    ]  # fmt: skip
    assert _check(result, "no_exception_older_than_owner_target") is not None


def test_the_schedule_runs_yesterday_at_half_past_two_uk_time() -> None:
    from datetime import datetime

    from dagster import build_schedule_context

    from acs_khaos_dagster.defs.reconciliation import reconciliation_schedule

    tick = datetime(2026, 3, 30, 2, 30, tzinfo=ZoneInfo("Europe/London"))  # BST began 29th
    request = reconciliation_schedule(build_schedule_context(scheduled_execution_time=tick))
    assert request.partition_key == "2026-03-29"
    assert reconciliation_schedule.cron_schedule == "30 2 * * *"
    assert reconciliation_schedule.execution_timezone == "Europe/London"
