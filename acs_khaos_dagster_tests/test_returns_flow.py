"""Returns and hire through Dagster against the sandbox (issue 8).

The tiny scenario's orders are released (stage 9) and not despatched; each test despatches
the lines it returns (ImportDespatch, then the invoice issued) so Khaos's Level has moved
the way it does in life before the return comes back.
"""

from __future__ import annotations

import csv
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, build_sensor_context

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.acs.file_layouts import RETURNS_LAYOUT
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.defs.returns import acs_returns_file_sensor
from acs_khaos_dagster.domain.models import DespatchPosting, StockItem
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster_tests.conftest import IntegrationHarness

FLOW = ("acs_returns", "khaos_return_postings", "khaos_write_offs", "return_refund_clock")
SELLING, HIRE_STOCK = 1, 2
# The client gives up after 1 s; a 2.5 s stall is a timeout it cannot see through.
STALL_S = 2.5


def _run(integration: IntegrationHarness, *names: str, raise_on_error: bool = True):
    """Materialise this group's assets (and checks) with the production resources.

    Only the returns group is loaded, so another group's work in progress cannot break
    these tests; the assets read nothing from other groups' outputs."""
    from dagster import AssetKey, materialize

    from acs_khaos_dagster.defs import returns
    from acs_khaos_dagster.defs.resources import default_resources

    return materialize(
        [*returns.defs.assets, *returns.defs.asset_checks],
        selection=[AssetKey(n) for n in names],
        resources=default_resources(),
        instance=integration.instance,
        raise_on_error=raise_on_error,
    )


def _despatch(order_id: int, lines: list[tuple[int, int]], ref: str) -> Any:
    with KhaosClient.from_settings(load_settings()) as client:
        invoice = client.import_despatch(
            DespatchPosting(order_id=order_id, external_ref=ref, lines=tuple(lines))
        )
    return invoice


def _issue(integration: IntegrationHarness, invoice_id: int) -> None:
    integration.sandbox.khaos.issue_invoice(invoice_id)


def _ship(integration: IntegrationHarness, order_id: int, lines: list[tuple[int, int]]) -> None:
    invoice = _despatch(order_id, lines, f"SHIP-{order_id}-{lines[0][0]}")
    _issue(integration, invoice.invoice_id)


def _deliver(name: str, rows: list[dict[str, Any]]) -> Path:
    folder = load_settings().drop_folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(RETURNS_LAYOUT.columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in RETURNS_LAYOUT.columns})
    return path


def _unit(
    ref: str,
    order: str,
    line: int | str,
    sku: str,
    unit: str,
    grade: str = "A",
    action: str = "RESTOCK",
    received: str = "2026-03-02T09:00:00Z",
    cost: str = "",
) -> dict[str, Any]:
    return {
        "return_ref": ref,
        "order_number": order,
        "line_item_id": str(line),
        "sku": sku,
        "unique_sku": unit,
        "received_at": received,
        "grade": grade,
        "action_taken": action,
        "action_reason": "test",
        "defect_codes": "",
        "repair_cost": cost,
    }


def _level(integration: IntegrationHarness, stock_id: int, site_id: int) -> int:
    for row in integration.sandbox.khaos.truth()["stock"]:
        if row["stock_id"] == stock_id and row["site_id"] == site_id:
            return int(row["level"])
    return 0


def _returns(integration: IntegrationHarness, ref: str) -> list[dict[str, Any]]:
    return [
        r
        for r in integration.sandbox.khaos.truth()["customer_returns"]
        if r["associated_ref"].startswith(f"{ref}-P")
    ]


def _groups(integration: IntegrationHarness, group_ref: str) -> list[dict[str, Any]]:
    return [
        g
        for g in integration.sandbox.khaos.truth()["adjustment_groups"]
        if g["group_ref"] == group_ref
    ]


def _open(integration: IntegrationHarness, type_: str) -> list[Any]:
    with integration.store() as store:
        return [e for e in store.exceptions.list(type=type_) if e.row.status == "open"]


def _now_iso(integration: IntegrationHarness) -> str:
    return integration.sandbox.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client gives up after 1 s and the outbox resends within the same run."""
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_TIMEOUT_S", "1")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S", "0")
    # Neither timeout lands after the client gave up (one applies before its stall, the
    # other never applies), so the read-back need not wait.
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__READ_BACK_AFTER_S", "0")
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_MAX_S", "0")


# --- the scenario's returns -----------------------------------------------------------


@pytest.mark.variants
def test_the_scenarios_returns_are_credited_at_unit_net_and_restocked_once(
    integration: IntegrationHarness,
) -> None:
    _ship(integration, 50005, [(700008, 1), (700009, 2), (700010, 1)])
    _ship(integration, 50007, [(700012, 2), (700013, 1)])
    _ship(integration, 50003, [(700004, 2), (700006, 1)])
    before = {sid: _level(integration, sid, SELLING) for sid in (10015, 10017, 10005, 10004)}
    scenario = integration.sandbox.scenario_dir / integration.sandbox.manifest.files.returns
    shutil.copy(scenario, load_settings().drop_folder / scenario.name)

    result = _run(integration, *FLOW)

    returns = integration.metadata(result, "acs_returns")
    assert (returns["units_grade_A"], returns["units_grade_B"], returns["units_grade_C"]) == (
        3,
        1,
        1,
    )
    posted = integration.metadata(result, "khaos_return_postings")
    assert posted["credits_raised"] == 3 and posted["credits_pending_review"] == 1
    assert posted["credits_raised_value"] == pytest.approx(126.00 + 256.99 + 256.99)
    credits = {
        r["associated_ref"]: r for r in integration.sandbox.khaos.truth()["customer_returns"]
    }
    assert credits["ACSR100001-P1"]["credit_value"] == "126.00"
    assert credits["ACSR100004-P1"]["credit_status"] == "review"  # grade C: finance reviews
    after = {sid: _level(integration, sid, SELLING) for sid in before}
    assert after == {sid: level + 1 for sid, level in before.items()}
    [unexpected] = _open(integration, "return_unmatched")
    assert unexpected.row.owner == "operations" and "ACSR100005" in unexpected.row.entity_ref


@pytest.mark.variants("khaos_own_codes")
def test_each_grade_gets_its_return_reason_and_credit_mode_in_parts_per_mode(
    integration: IntegrationHarness,
) -> None:
    _ship(integration, 50005, [(700008, 1), (700009, 2), (700010, 1)])
    gry_s_before = _level(integration, 10020, SELLING)
    brg_l_before = _level(integration, 10017, SELLING)
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RG1", "SO0050005", 700008, "JKT-0002-BRG-S", "UG1", "A", "RESTOCK"),
            _unit("RG1", "SO0050005", 700009, "JKT-0002-BRG-L", "UG2", "B", "CLEAN"),
            _unit("RG1", "SO0050005", 700009, "JKT-0002-BRG-L", "UG3", "C", "REPAIR", cost="12.50"),
            _unit("RG1", "SO0050005", 700010, "JKT-0002-GRY-S", "UG4", "BER", ""),
        ],
    )

    result = _run(integration, *FLOW)

    parts = {r["associated_ref"]: r for r in _returns(integration, "RG1")}
    policy = load_settings().grade_policy  # the install's reasons (RESTOCK, BER by default)
    reason = {grade: policy.rule_for(grade).return_reason for grade in ("A", "C", "BER")}
    assert set(parts) == {"RG1-P1", "RG1-P2"}
    assert parts["RG1-P1"]["credit_mode"] == "auto"
    assert {i["return_reason"] for i in parts["RG1-P1"]["items"]} == {reason["A"]}
    assert parts["RG1-P2"]["credit_mode"] == "review"
    reasons = {i["sku"]: i["return_reason"] for i in parts["RG1-P2"]["items"]}
    assert reasons == {"JKT-0002-BRG-L": reason["C"], "JKT-0002-GRY-S": reason["BER"]}
    # The BER sale unit: credited per policy, posted with a write-off reason, no adjustment.
    assert Decimal(parts["RG1-P2"]["credit_value"]) == Decimal("252.00")
    assert _level(integration, 10020, SELLING) == gry_s_before
    assert _level(integration, 10017, SELLING) == brg_l_before + 2
    assert integration.sandbox.khaos.truth()["adjustment_groups"] == []
    offs = integration.metadata(result, "khaos_write_offs")
    assert offs["sale_units_written_off"] == 1 and offs["units_written_off_by_adjustment"] == 0
    assert offs["repair_cost_total"] == 12.5


def test_an_unknown_grade_is_never_restocked_and_raises_an_exception(
    integration: IntegrationHarness,
) -> None:
    _ship(integration, 50004, [(700007, 1)])
    before = _level(integration, 10015, SELLING)
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RZ1", "SO0050004", 700007, "JKT-0002-BRG-S", "UZ1", "Z", "RESTOCK"),
        ],
    )

    _run(integration, *FLOW)

    assert _returns(integration, "RZ1") == []
    assert _level(integration, 10015, SELLING) == before
    [problem] = _open(integration, "unknown_grade")
    assert "UZ1" in problem.row.entity_ref


def test_a_return_split_across_two_files_posts_each_unit_once_in_numbered_parts(
    integration: IntegrationHarness,
) -> None:
    _ship(integration, 50007, [(700012, 2), (700013, 1)])
    first = [_unit("RS1", "SO0050007", 700012, "JKT-0001-PNK-XS", "US1")]
    _deliver("returns_BRAND01_20260302100000.csv", first)
    _run(integration, *FLOW)
    # The second file repeats the first unit (ACS re-sent it) and adds two more.
    _deliver(
        "returns_BRAND01_20260302110000.csv",
        [
            *first,
            _unit("RS1", "SO0050007", 700012, "JKT-0001-PNK-XS", "US2"),
            _unit("RS1", "SO0050007", 700013, "JKT-0001-PNK-L", "US3"),
        ],
    )

    _run(integration, *FLOW)

    parts = {r["associated_ref"]: r for r in _returns(integration, "RS1")}
    assert set(parts) == {"RS1-P1", "RS1-P2"}
    assert sum(i["quantity"] for i in parts["RS1-P1"]["items"]) == 1
    assert sum(i["quantity"] for i in parts["RS1-P2"]["items"]) == 2


def test_a_re_delivered_returns_file_changes_nothing(integration: IntegrationHarness) -> None:
    _ship(integration, 50004, [(700007, 1)])
    path = _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RR1", "SO0050004", 700007, "JKT-0002-BRG-S", "UR1"),
        ],
    )
    _run(integration, *FLOW)
    level = _level(integration, 10015, SELLING)
    shutil.copy(path, path.with_name("returns_BRAND01_20260302120000.csv"))

    again = _run(integration, *FLOW)

    assert integration.metadata(again, "acs_returns")["files_skipped"] == 2
    assert integration.metadata(again, "khaos_return_postings")["parts_queued"] == 0
    assert len(_returns(integration, "RR1")) == 1
    assert _level(integration, 10015, SELLING) == level


def test_more_units_returned_than_despatched_are_unmatched_not_guessed(
    integration: IntegrationHarness,
) -> None:
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RN1", "SO0050002", 700003, "JKT-0002-BRG-L", "UN1"),  # never despatched
        ],
    )

    _run(integration, *FLOW)

    assert _returns(integration, "RN1") == []
    assert [p.row.owner for p in _open(integration, "return_unmatched")] == ["operations"]


# --- hire -------------------------------------------------------------------------------


def _snapshot(name: str, taken: str, rows: list[tuple[str, str, str]]) -> None:
    import pandas as pd

    from acs_khaos_dagster.defs.returns import SNAPSHOT_FOLDERS

    folder = load_settings().data_dir / SNAPSHOT_FOLDERS[0]
    folder.mkdir(parents=True, exist_ok=True)
    at = pd.Timestamp(taken)
    pd.DataFrame(
        {
            "unique_sku": [r[0] for r in rows],
            "sku": [r[1] for r in rows],
            "status": [r[2] for r in rows],
            "last_event_at": [at] * len(rows),
            "snapshot_at": [at] * len(rows),
        }
    ).to_parquet(folder / f"{name}.parquet")


def test_a_hire_round_trip_raises_no_credit_moves_no_level_and_shows_in_the_lifecycle(
    integration: IntegrationHarness,
) -> None:
    _ship(integration, 50001, [(700002, 1)])
    levels = {site: _level(integration, 10010, site) for site in range(1, 7)}
    _snapshot("stock_units_1", "2026-03-01T07:00:00Z", [("UH1", "TOP-0001-BRG-M", "with customer")])
    _snapshot("stock_units_2", "2026-03-02T08:00:00Z", [("UH1", "TOP-0001-BRG-M", "cleaning")])
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit(
                "RET-SO0050001-UH1",
                "SO0050001",
                700002,
                "TOP-0001-BRG-M",
                "UH1",
                "A",
                "CLEAN",
                received="2026-03-02T07:30:00Z",
            ),
        ],
    )

    result = _run(integration, *FLOW, "hire_unit_lifecycle")

    assert _returns(integration, "RET-SO0050001-UH1") == []  # a hire return is no credit
    assert {site: _level(integration, 10010, site) for site in levels} == levels
    assert integration.sandbox.khaos.truth()["adjustment_groups"] == []
    unit = result.output_for_node("hire_unit_lifecycle").set_index("unique_sku").loc["UH1"]
    assert unit["stage"] == "cleaned" and unit["times_out"] == 1
    assert [h.split()[0] for h in unit["history"].split(" > ")] == ["out", "back", "cleaned"]


def test_an_ex_hired_unit_moves_to_resale_once_its_resale_stock_id_is_mapped(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration.sandbox.khaos.add_stock_item(
        StockItem(stock_id=99010, stock_code="TOP-0001-BRG-M-EX", cost_price=Decimal("8.96")),
        levels={SELLING: 0},
    )
    _ship(integration, 50006, [(700011, 1)])
    hire_before = _level(integration, 10010, HIRE_STOCK)
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RX1", "SO0050006", 700011, "TOP-0001-BRG-M", "UX1", "B", "EX_HIRE"),
        ],
    )
    _run(integration, *FLOW)
    [gap] = _open(integration, "resale_unmapped")
    assert "resale" in gap.row.message and gap.row.owner == "ecommerce"

    monkeypatch.setenv("ACS_KHAOS_RETURNS__RESALE_STOCK_IDS", '{"10010": 99010}')
    result = _run(integration, *FLOW)

    [out] = _groups(integration, "EXH-UX1-OUT")
    [into] = _groups(integration, "EXH-UX1-IN")
    assert (out["site_id"], out["lines"][0]["adjust_by"]) == (HIRE_STOCK, -1)
    assert out["lines"][0]["reason_code"] == "EXHIRE" and out["lines"][0]["value"] == "8.96"
    assert (into["site_id"], into["lines"][0]["stock_id"]) == (SELLING, 99010)
    assert _level(integration, 10010, HIRE_STOCK) == hire_before - 1
    assert _level(integration, 99010, SELLING) == 1
    assert _open(integration, "resale_unmapped") == []
    assert integration.metadata(result, "khaos_write_offs")["ex_hired_to_resale"] == 1


# --- the refund clock -------------------------------------------------------------------


def test_a_refund_near_its_deadline_opens_for_finance_and_closes_when_credited(
    integration: IntegrationHarness,
) -> None:
    _ship(integration, 50004, [(700007, 1)])
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit(
                "RF1",
                "SO0050004",
                700007,
                "JKT-0002-BRG-S",
                "UF1",
                "C",
                "REPAIR",
                received=_now_iso(integration),
            ),
        ],
    )
    first = _run(integration, *FLOW)
    assert integration.metadata(first, "return_refund_clock")["refunds_due"] == 0

    integration.sandbox.advance(timedelta(days=12))
    due = _run(integration, "return_refund_clock")

    [problem] = _open(integration, "refund_due")
    assert problem.row.owner == "finance" and problem.row.entity_ref == "refund:RF1-P1"
    assert integration.metadata(due, "return_refund_clock")["refunds_breached"] == 0
    [ret] = _returns(integration, "RF1")
    integration.sandbox.khaos.approve_credit(ret["return_id"])

    _run(integration, "return_refund_clock")

    assert _open(integration, "refund_due") == []


# --- ambiguous failures ------------------------------------------------------------------


@pytest.mark.parametrize("fault", [FaultKind.TIMEOUT_BEFORE, FaultKind.TIMEOUT_AFTER])
def test_a_timeout_around_the_return_import_credits_and_restocks_exactly_once(
    integration: IntegrationHarness, fast_retries: None, fault: FaultKind
) -> None:
    _ship(integration, 50004, [(700007, 1)])
    before = _level(integration, 10015, SELLING)
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportCustomerReturns", kind=fault, count=1, latency_s=STALL_S)
    )
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RT1", "SO0050004", 700007, "JKT-0002-BRG-S", "UT1"),
        ],
    )

    _run(integration, *FLOW)

    assert len(_returns(integration, "RT1")) == 1
    assert _level(integration, 10015, SELLING) == before + 1
    with integration.store() as store:
        assert store.outbox.by_key("khaos-return:RT1-P1").state == "done"


@pytest.mark.parametrize("fault", [FaultKind.TIMEOUT_BEFORE, FaultKind.TIMEOUT_AFTER])
def test_a_timeout_around_a_hire_write_off_applies_it_exactly_once(
    integration: IntegrationHarness, fast_retries: None, fault: FaultKind
) -> None:
    _ship(integration, 50006, [(700011, 1)])
    before = _level(integration, 10010, HIRE_STOCK)
    integration.sandbox.khaos_faults.add(
        FaultRule(operation="ImportStockAdjustments", kind=fault, count=1, latency_s=STALL_S)
    )
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [
            _unit("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE"),
        ],
    )

    result = _run(integration, *FLOW)

    [group] = _groups(integration, "WO-UW1")
    assert group["site_id"] == HIRE_STOCK
    write_off = load_settings().khaos.reasons.write_off  # the install's code
    assert group["lines"][0]["reason_code"] == write_off and group["lines"][0]["value"] == "8.96"
    assert _level(integration, 10010, HIRE_STOCK) == before - 1
    offs = integration.metadata(result, "khaos_write_offs")
    assert offs["units_written_off_by_adjustment"] == 1 and offs["write_off_value"] == 8.96
    assert _returns(integration, "RW1") == []  # a hire return raises no credit


# --- the sensor ----------------------------------------------------------------------------


def test_the_sensor_starts_a_run_only_for_files_it_has_not_seen(
    integration: IntegrationHarness,
) -> None:
    resources = {
        "settings": SettingsResource(),
        "store": StoreResource(settings=SettingsResource()),
    }

    def tick(instance: DagsterInstance, cursor: str | None) -> tuple[int, str | None]:
        with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
            data = acs_returns_file_sensor.evaluate_tick(ctx)
        return len(data.run_requests or []), data.cursor

    with DagsterInstance.ephemeral() as instance:
        assert tick(instance, None)[0] == 0
        path = _deliver(
            "returns_BRAND01_20260302100000.csv",
            [
                _unit("RQ1", "SO0050004", 700007, "JKT-0002-BRG-S", "UQ1"),
            ],
        )
        runs, cursor = tick(instance, None)
        assert runs == 1
        assert tick(instance, cursor)[0] == 0  # seen: no second run
        # A symlink is never taken; a re-delivery under a new name starts a run, and the
        # run's ledger then skips it (see test_a_re_delivered_returns_file_changes_nothing).
        (path.parent / "returns_BRAND01_link.csv").symlink_to(path)
        assert tick(instance, cursor)[0] == 0
        shutil.copy(path, path.with_name("returns_BRAND01_20260302120000.csv"))
        assert tick(instance, cursor)[0] == 1


def test_a_sensor_with_an_empty_cursor_never_restarts_a_file_already_taken_in(
    integration: IntegrationHarness,
) -> None:
    # A new Dagster instance, or `make dev` after `make demo`: the sensor's cursor is empty
    # but the store took the file in already.
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RQ2", "SO0050004", 700007, "JKT-0002-BRG-S", "UQ2")],
    )
    _run(integration, *FLOW)
    resources = {
        "settings": SettingsResource(),
        "store": StoreResource(settings=SettingsResource()),
    }
    with build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources) as ctx:
        assert not acs_returns_file_sensor.evaluate_tick(ctx).run_requests


def test_a_file_a_dead_run_left_unfinished_is_taken_in_by_another_run(
    integration: IntegrationHarness,
) -> None:
    # Found by the soak: a returns_flow run killed while taking a file in, and no new file
    # to start another: the returns never reached Khaos.
    from acs_khaos_dagster.connectors.acs.drop import open_drop
    from acs_khaos_dagster.store.ledger import FileLedger

    path = _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RQ3", "SO0050004", 700007, "JKT-0002-BRG-S", "UQ3")],
    )
    resources = {
        "settings": SettingsResource(),
        "store": StoreResource(settings=SettingsResource()),
    }
    instance = integration.instance
    with build_sensor_context(instance=instance, resources=resources) as ctx:
        first = acs_returns_file_sensor.evaluate_tick(ctx)
    with integration.store() as store, open_drop(load_settings()) as drop:
        # The run fetched and recorded the file, then died.
        FileLedger(store.db).record_file(drop.fetch(path.name), kind="returns")

    with build_sensor_context(instance=instance, resources=resources, cursor=first.cursor) as ctx:
        [again] = acs_returns_file_sensor.evaluate_tick(ctx).run_requests
    assert again.tags.get("acs_returns_unfinished")

    _run(integration, *FLOW)
    with build_sensor_context(instance=instance, resources=resources, cursor=first.cursor) as ctx:
        assert not acs_returns_file_sensor.evaluate_tick(ctx).run_requests


def _tick_sensor(instance: DagsterInstance, cursor: str | None = None) -> Any:
    """One tick of the returns-file sensor with the production resources."""
    resources = {
        "settings": SettingsResource(),
        "store": StoreResource(settings=SettingsResource()),
    }
    with build_sensor_context(instance=instance, resources=resources, cursor=cursor) as ctx:
        return acs_returns_file_sensor.evaluate_tick(ctx)


def test_a_file_whose_runs_all_died_before_recording_it_is_taken_in_by_another_run(
    integration: IntegrationHarness,
) -> None:
    # Found by the soak: the sensor saw the file (its cursor moved on), and every run for it
    # was killed before the file ledger heard of it; no new file came to start another.
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RQ4", "SO0050004", 700007, "JKT-0002-BRG-S", "UQ4")],
    )
    instance = integration.instance
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    first = _tick_sensor(instance)
    assert first.run_requests
    # The run the first tick asked for was launched and killed before recording the file.
    create_run_for_test(instance, job_name="returns_flow", status=DagsterRunStatus.FAILURE)

    [again] = _tick_sensor(instance, first.cursor).run_requests
    assert again.tags.get("acs_returns_unfinished")

    _run(integration, *FLOW)
    assert not _tick_sensor(instance, first.cursor).run_requests


def test_a_seen_file_is_not_retried_while_a_returns_run_is_still_on_its_way(
    integration: IntegrationHarness,
) -> None:
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RQ5", "SO0050004", 700007, "JKT-0002-BRG-S", "UQ5")],
    )
    instance = integration.instance
    first = _tick_sensor(instance)
    # The run the first tick asked for has started but not yet recorded the file.
    create_run_for_test(instance, job_name="returns_flow", status=DagsterRunStatus.STARTED)
    assert not _tick_sensor(instance, first.cursor).run_requests
