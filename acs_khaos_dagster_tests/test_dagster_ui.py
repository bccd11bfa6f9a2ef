"""The Dagster UI after ``make demo``, as ``make dev`` serves it: the real webserver
(``acs-khaos webserver --local``, Dagster's app with the report links at ``/files/``) on the
instance the demo filled, asked through its GraphQL API (what its pages show) and looked at
in headless Chromium."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from acs_khaos_dagster_tests.chromium import chromium, decode_png
from acs_khaos_dagster_tests.dagster_ui import (
    BIN,
    ROOT,
    _browse,
    dagster_process,
    demo_environment,
    graphql,
    run_demo,
    screenshot,
    view,
    webserver,
)

LOCATION = "acs_khaos_dagster.definitions"  # workspace.yaml's python_module: its name


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = demo_environment(tmp_path_factory.mktemp("demo"))
    run_demo(env)
    return env


@pytest.fixture(scope="module")
def ui(demo_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("webserver") / "webserver.log"
    with webserver(demo_env, log) as url:
        # What a person's first "Skip" does: the community dialog never covers a page.
        graphql(url, "mutation { setNuxSeen }")
        yield url


ASSETS = """{ assetNodes {
  assetKey { path } groupName dependencyKeys { path }
  dependencies { asset { assetKey { path } } partitionMapping { className } }
  owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
  metadataEntries { label ... on TableSchemaMetadataEntry { schema { columns { name } } } }
} }"""


@pytest.fixture(scope="module")
def assets(ui: str) -> dict[str, dict]:
    return {"/".join(n["assetKey"]["path"]): n for n in graphql(ui, ASSETS)["assetNodes"]}


def _upstream(node: dict) -> set[str]:
    return {"/".join(d["path"]) for d in node["dependencyKeys"]}


def test_the_ui_draws_the_stock_reconciliation_from_the_snapshot_and_the_push(
    assets: dict[str, dict],
) -> None:
    assert {"acs_stock_snapshot", "khaos_stock_update"} <= _upstream(assets["stock_reconciliation"])


def _days_of_the_month(node: dict) -> set[str]:
    """The upstreams a monthly asset reads every day of (the month -> days mapping)."""
    return {
        "/".join(d["asset"]["assetKey"]["path"])
        for d in node["dependencies"]
        if (d["partitionMapping"] or {}).get("className") == "TimeWindowPartitionMapping"
    }


DAILY_RECONCILIATIONS = {
    "stock_reconciliation",
    "order_status_reconciliation",
    "order_to_cash_reconciliation",
    "returns_reconciliation",
}


@pytest.mark.parametrize("pack", ["month_end_pack", "month_end_pack_preview"])
def test_the_ui_draws_the_month_end_pack_from_every_day_of_the_daily_reconciliations(
    assets: dict[str, dict], pack: str
) -> None:
    assert _days_of_the_month(assets[pack]) >= DAILY_RECONCILIATIONS


def test_the_ui_draws_the_audit_report_from_every_input_it_reads(
    assets: dict[str, dict],
) -> None:
    audit = assets["workflow_audit_report"]
    # The days' stock tables and drift, workflow events and exceptions, month -> days ...
    assert _days_of_the_month(audit) == {
        "stock_reconciliation",
        "order_status_reconciliation",
        "integration_exceptions",
    }
    # ... and the store's release, despatch and posting times, unpartitioned.
    assert {"acs_order_release", "acs_shipments", "khaos_shipment_postings"} <= _upstream(audit)


@pytest.mark.parametrize(
    ("reconciliation", "inputs"),
    [
        ("order_status_reconciliation", {"acs_order_release", "acs_shipments"}),
        ("order_to_cash_reconciliation", {"acs_shipments", "khaos_shipment_postings"}),
        ("returns_reconciliation", {"acs_returns", "khaos_return_postings"}),
    ],
)
def test_the_ui_draws_each_reconciliation_from_the_assets_it_reads(
    assets: dict[str, dict], reconciliation: str, inputs: set[str]
) -> None:
    assert inputs <= _upstream(assets[reconciliation])


def test_the_ui_shows_each_asset_owned_by_the_team_of_its_exceptions(
    assets: dict[str, dict],
) -> None:
    teams = {name: [o.get("team") for o in node["owners"]] for name, node in assets.items()}
    assert all(owners for owners in teams.values()), [n for n, o in teams.items() if not o]
    assert teams["month_end_pack"] == teams["month_end_pack_preview"] == ["finance"]
    assert teams["workflow_audit_report"] == ["finance"]
    assert teams["ready_for_sale_skus"] == ["ecommerce"]
    assert teams["acs_stock_snapshot"] == ["operations"]
    finance = {"month_end_pack", "month_end_pack_preview", "workflow_audit_report"}
    assert {assets[name]["groupName"] for name in finance} == {"finance"}


def test_the_ui_lists_each_table_assets_columns_from_its_pandera_model(
    assets: dict[str, dict],
) -> None:
    def columns(name: str) -> set[str]:
        for entry in assets[name]["metadataEntries"]:
            if entry["label"] == "dagster/column_schema":
                return {c["name"] for c in entry["schema"]["columns"]}
        return set()

    assert {"stock_id", "site_id"} <= columns("sellable_stock")
    assert columns("stock_reconciliation")
    tables = [name for name in assets if columns(name)]
    assert len(tables) >= 24, tables


JOB_RUNS = """query($job: PipelineSelector!) { pipelineOrError(params: $job) {
  __typename ... on Pipeline { runs { runId status } } } }"""


@pytest.mark.parametrize(
    ("job", "runs"),
    [("integration_cycle", 4), ("reconciliation_job", 4), ("month_end_preview_job", 1)],
)
def test_the_demo_runs_are_listed_under_their_jobs_in_the_ui(ui: str, job: str, runs: int) -> None:
    # The job page lists the runs whose origin is its code location (the repository label):
    # runs executed without one, as `execute_in_process` makes them, never show there.
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
    found = graphql(ui, JOB_RUNS, {"job": selector | {"pipelineName": job}})["pipelineOrError"]
    assert found["__typename"] == "Pipeline"
    assert [r["status"] for r in found["runs"]] == ["SUCCESS"] * runs


LATEST = """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { partition runId metadataEntries { label } } } } }"""


@pytest.mark.parametrize("asset", ["month_end_pack_preview", "workflow_audit_report"])
def test_the_demo_builds_the_months_preview_pack_and_audit_report(ui: str, asset: str) -> None:
    found = graphql(ui, LATEST, {"key": {"path": [asset]}})["assetOrError"]
    [latest] = found["assetMaterializations"]
    assert re.fullmatch(r"\d{4}-\d{2}", latest["partition"])
    assert "html" in {entry["label"] for entry in latest["metadataEntries"]}


def test_the_demos_preview_never_shows_as_the_months_final_pack(ui: str) -> None:
    found = graphql(ui, LATEST, {"key": {"path": ["month_end_pack"]}})["assetOrError"]
    assert found.get("assetMaterializations", []) == []


@pytest.mark.parametrize("asset", ["month_end_pack_preview", "workflow_audit_report"])
def test_the_report_links_on_an_asset_page_open_in_the_browser(
    ui: str, asset: str, tmp_path: Path
) -> None:
    chromium()  # skipped locally when the browser is absent, a failure in CI
    dom = _browse(["--dump-dom"], f"{ui}/assets/{asset}", tmp_path / "profile").stdout
    links = set(re.findall(r'href="(/files/[^"]+)"', dom))

    assert any(link.endswith(".html") for link in links), dom[-2000:]
    for link in links:
        answer = httpx.get(ui + link, timeout=30)
        assert answer.status_code == 200, link
        assert answer.headers["content-security-policy"].startswith("sandbox")


ERRORS = ("Error", "error", "went wrong", "Unexpected")


@pytest.mark.parametrize(
    ("page", "shows"),
    [
        ("asset-groups", ["Global asset lineage", "reconciliation", "finance"]),
        ("assets/month_end_pack_preview", ["Latest materialization", "finance", "PREVIEW"]),
        ("assets/workflow_audit_report", ["Latest materialization", "finance", "audit"]),
    ],
)
def test_the_page_renders_in_chromium_without_errors(
    ui: str, page: str, shows: list[str], tmp_path: Path
) -> None:
    chromium()  # skipped locally when the browser is absent, a failure in CI
    png = tmp_path / (page.replace("/", "_") + ".png")
    screenshot(f"{ui}/{page}", png, tmp_path / "profile")
    seen = view(f"{ui}/{page}", tmp_path / "profile")

    assert all(text in seen.text for text in shows), seen.text[:2000]
    assert not [word for word in ERRORS if word in seen.text], seen.text[:2000]
    assert not seen.console_errors, seen.console_errors
    pixels = decode_png(png)
    assert pixels.shape[:2] == (1000, 1600)
    # A page drawn, not a blank or a spinner: many shades, text and lines.
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 50


# `make dev` is the webserver and the daemon. The check is ten idle minutes after
# `make demo && make dev` with no run or tick failing; a test cannot wait ten minutes. What
# could fail in those minutes is a daemon loop: the sensor, scheduler, run-queue, backfill
# and freshness loops each come round every 30 s at most, and with every sensor and schedule
# stopped outside production (defs/automation.py) nothing else is due in ten minutes that
# is not due in one (the first schedule, every 5 min, is stopped too). So the test waits
# for every daemon's heartbeat and then lets them come round at least three more times.
# The ten real minutes are a manual check (README, "What runs in Dagster").
IDLE_S = 90


def test_after_the_demo_the_daemon_runs_idle_with_no_failed_run_tick_or_daemon_error(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.scheduler.instigation import TickStatus

    log = tmp_path / "daemon.log"
    args = [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")]
    with (
        DagsterInstance.from_config(demo_env["DAGSTER_HOME"]) as instance,
        dagster_process(args, demo_env, log) as daemon,
    ):
        required = set(instance.get_required_daemon_types())
        deadline = time.monotonic() + 240
        while set(instance.get_daemon_heartbeats()) < required:
            assert daemon.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(2)
        started = time.time()
        time.sleep(IDLE_S)
        assert daemon.poll() is None, log.read_text()[-3000:]
        beats = instance.get_daemon_heartbeats()

        assert all(beats[name].timestamp > started for name in required), log.read_text()[-3000:]
        assert {name: beat.errors for name, beat in beats.items() if beat.errors} == {}
        failed_runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
        assert [run.job_name for run in failed_runs] == []
        failed_ticks = [
            tick.instigator_name
            for state in instance.all_instigator_state()
            for tick in instance.get_ticks(
                state.instigator_origin_id, state.selector_id, statuses=[TickStatus.FAILURE]
            )
        ]
        assert failed_ticks == []
