"""Issue 17 points 4 and 8 through the real parts: the pack's Refund liability and
Write-offs sheets, built by the flow step from the store and Khaos (simulators over real
HTTP) and read back from the written workbook.

Oracles are what Khaos holds (the simulator's own state): which customer returns exist,
and the stock adjustments it saved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.flows.month_end_extras import refund_liability_sheet, write_off_rows
from acs_khaos_dagster.reports import MonthEndInputs, render_month_end_pack
from acs_khaos_dagster.reports.month_end import SHEETS
from acs_khaos_dagster.reports.pack_sheets import CORE_SHEETS
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_month_end_pack import sheet_rows, summary_from_workbook
from acs_khaos_dagster_tests.test_reconciliation_flow import _reconcile
from acs_khaos_dagster_tests.test_returns_flow import FLOW, _deliver, _run, _ship, _unit

UK = ZoneInfo("Europe/London")


def _pack(month: str, sheets: dict[str, pd.DataFrame], folder: Path) -> Path:
    empty = {sheet.key: pd.DataFrame(columns=sheet.spec.names) for sheet in SHEETS}
    core = {sheet.key: empty.pop(sheet.key) for sheet in CORE_SHEETS}
    inputs = MonthEndInputs(
        month=month,
        generated_at=datetime(2026, 4, 1, 6, tzinfo=UTC),
        account_name="BRAND01",
        sheets={**empty, **sheets},
        **core,
    )
    return render_month_end_pack(inputs, folder).workbook


def _rows(workbook: Path, title: str) -> list[dict[str, Any]]:
    return sheet_rows(workbook, title)


def _summary(workbook: Path) -> dict[str, Any]:
    return summary_from_workbook(workbook)


def test_the_refund_liability_sheet_shows_a_missing_credit_and_an_unmatched_return_with_its_clock(
    integration: IntegrationHarness, tmp_path: Path
) -> None:
    _ship(integration, 50004, [(700007, 1)])
    # Khaos never takes the jacket's customer return: the part is in the store, not in Khaos.
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportCustomerReturns", kind=FaultKind.ERROR_5XX, count=50)
    )
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RM1", "SO0050004", 700007, "JKT-0002-BRG-S", "UM1"),
            _unit("RN1", "", "", "JKT-0002-BRG-S", "UN1"),  # no paperwork: unmatched
        ],
    )
    _run(integration, *FLOW)
    cutoff = me.month_bounds("2026-03")[1]

    with integration.store() as store, KhaosClient.from_settings(load_settings()) as client:
        sheet = refund_liability_sheet(load_settings(), store, client, cutoff)
    workbook = _pack("2026-03", {"refund_liability": sheet}, tmp_path)

    khaos_refs = {
        r["associated_ref"] for r in integration.sandbox.khaos.truth()["customer_returns"]
    }
    rows = {r["Return"]: r for r in _rows(workbook, "Refund liability")}
    missing = rows["RM1"]
    assert missing["Khaos return part"] not in khaos_refs  # Khaos really holds none
    assert missing["Khaos credit"] == "missing" and missing["Khaos credit value (£, net)"] is None
    assert missing["Posted value (£, net)"] > 0
    unmatched = rows["RN1"]
    assert unmatched["Matched"] == "unmatched" and unmatched["Khaos credit"] == "missing"
    # Received 2 March 09:00 UTC: the clock ends at the end of 16 March, UK time.
    assert unmatched["Refund deadline (UK)"] == "2026-03-17 00:00"
    assert unmatched["Days left"] < 0  # overdue at the March cut-off
    summary = _summary(workbook)
    assert summary["refund-liability-missing-count"] == 2
    assert summary["refund-liability-overdue-count"] == 2


def _reconcile_returns(integration: IntegrationHarness, day: str) -> pd.DataFrame:
    _reconcile(integration, "returns_reconciliation", day=day)
    folder = load_settings().data_dir / "reconciliation" / "returns"
    return pd.read_parquet(folder / f"{day}.parquet")


def test_write_offs_by_adjustment_tie_to_khaos_adjustments_and_ber_sale_returns_are_apart(
    integration: IntegrationHarness, tmp_path: Path
) -> None:
    now = integration.sandbox.clock.now()
    received = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    month, day = now.astimezone(UK).strftime("%Y-%m"), now.astimezone(UK).date().isoformat()
    _ship(integration, 50006, [(700011, 1)])  # a hire dress, still in Level when back
    _ship(integration, 50005, [(700010, 1)])  # a sale jacket, left Level when invoiced
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE", received),
            _unit("RG1", "SO0050005", 700010, "JKT-0002-GRY-S", "UG1", "BER", "", received),
        ],
    )
    _run(integration, *FLOW)
    month_returns = me.month_returns({now.date(): _reconcile_returns(integration, day)}, month)
    with KhaosClient.from_settings(load_settings()) as client:
        costs = {i.stock_id: i.cost_price for i in client.export_stock(["JKT-0002-GRY-S"])}

    with integration.store() as store:
        rows = write_off_rows(store, month, month_returns, costs)
    workbook = _pack(month, {"write_offs": rows}, tmp_path)

    # Oracle: the write-off lines Khaos saved this month, from its own state.
    reason = load_settings().khaos.reasons.write_off
    saved = [
        abs(Decimal(line["value"]))
        for group in integration.sandbox.khaos.truth()["adjustment_groups"]
        if group["created_at"].startswith(month)
        for line in group["lines"]
        if line["reason_code"] == reason
    ]
    summary = _summary(workbook)
    assert summary["written-off-adjustment-units"] == len(saved) == 1
    assert Decimal(str(summary["written-off-adjustment-value"])) == sum(saved)
    assert summary["written-off-ber-returns-units"] == 1
    assert summary["written-off-ber-returns-value"] == float(costs[next(iter(costs))])
    routes = {r["Unit"]: r["Route"] for r in _rows(workbook, "Write-offs")}
    assert routes == {"UW1": "khaos_adjustment", "UG1": "ber_sale_return"}
