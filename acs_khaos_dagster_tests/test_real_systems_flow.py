"""The integration through Dagster against systems that behave as real ones do (issue 18).

Each test sets the sandbox up the way a real install or a real fault does — Khaos set
up differently from the integration's settings, ACS's gateway quota, a feed that replays
and re-publishes, files late or twice, SKUs ACS leaves pending — and checks that nothing
is lost, nothing is applied twice and anything wrong is owned by someone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, materialize

from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.defs.stock import partition_day
from acs_khaos_dagster.sandbox.acs.install import AcsInstall
from acs_khaos_dagster.sandbox.faults import FaultKind, FaultRule
from acs_khaos_dagster.sandbox.scenario.manifest import PlannedShipmentLine
from acs_khaos_dagster.sandbox.variants import KHAOS_OWN_CODES, KHAOS_WITHOUT_LEVEL, Variant
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_returns_flow import FLOW as RETURNS_FLOW
from acs_khaos_dagster_tests.test_returns_flow import _deliver, _run, _ship, _unit

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
SYNC = (*PRODUCTS, "acs_sku_push")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")
SNAPSHOT = ("acs_stock_snapshot", "sellable_stock", "non_sellable_stock")
PUSH = (*SNAPSHOT, "khaos_stock_update")
NEVER_SETS_UP = Variant("acs_never_sets_up_skus", acs=AcsInstall(sets_up_skus=False))


def _open(integration: IntegrationHarness, type_: str) -> list:
    with integration.store() as store:
        return store.exceptions.list(type=type_)


def _stock(integration: IntegrationHarness, path, *names: str, raise_on_error: bool = True):
    from acs_khaos_dagster.definitions import defs

    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[AssetKey(n) for n in (names or PUSH)],
        partition_key=partition_day(path.name, mtime),
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
        raise_on_error=raise_on_error,
    )


def _despatch_calls(integration: IntegrationHarness) -> list[str]:
    return [c["external_ref"] for c in integration.sandbox.khaos.truth()["despatch_calls"]]


# --- Khaos set up otherwise than the integration's settings say (points 3 and 5) ----------------


@pytest.mark.parametrize("variant", [KHAOS_WITHOUT_LEVEL], ids=str, indirect=True)
def test_a_khaos_without_level_read_as_if_it_had_one_stops_the_push_naming_the_setting(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACS_KHAOS_KHAOS__STOCK_LEVEL_SOURCE")  # the setting left out
    integration.run(*PRODUCTS)
    path = next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)

    result = _stock(integration, path, raise_on_error=False)

    assert not result.success
    failure = next(
        e for e in result.all_events if e.is_step_failure and e.step_key == "khaos_stock_update"
    )
    assert "stock_level_source" in str(failure.event_specific_data.error)
    assert integration.sandbox.khaos.truth()["adjustment_groups"] == []


@pytest.mark.parametrize("variant", [KHAOS_OWN_CODES], ids=str, indirect=True)
def test_codes_the_install_does_not_have_are_refused_and_parked_and_nothing_moves(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in KHAOS_OWN_CODES.settings:  # the integration left on the default codes
        monkeypatch.delenv(name)
    _ship(integration, 50006, [(700011, 1)])
    before = integration.sandbox.khaos.truth()["stock"]
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE")],
    )

    _run(integration, *RETURNS_FLOW)

    assert integration.sandbox.khaos.truth()["adjustment_groups"] == []
    assert integration.sandbox.khaos.truth()["stock"] == before
    [parked] = _open(integration, "effect_failed")
    assert parked.row.owner == "integration" and "WRITEOFF" in parked.row.message


# --- ACS's API gateway (point 7) ------------------------------------------------------------


def test_a_quota_answer_on_a_sku_push_is_retried_later_not_an_authentication_failure(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S", "0")
    integration.sandbox.acs_faults.add(
        FaultRule(operation="put_product", kind=FaultKind.QUOTA_403, count=1, retry_after=60)
    )

    first = integration.run(*SYNC)
    integration.sandbox.advance(timedelta(minutes=2))
    integration.run(*SYNC)

    pushed = first.output_for_node("acs_sku_push")
    assert len(pushed) >= 1
    with integration.store() as store:
        states = {e.state for e in store.outbox.find(kind="acs.put_product")}
        attempts = [
            a.outcome
            for e in store.outbox.find(kind="acs.put_product")
            for a in store.outbox.attempts(e.id)
        ]
    # A quota refusal is a rate limit (retried after Retry-After), never a failed attempt.
    assert states == {"done"} and "rate_limited" in attempts
    assert _open(integration, "effect_failed") == []


# --- the despatch feed (point 7) --------------------------------------------------------------


def test_a_feed_that_replays_resets_and_re_publishes_posts_each_shipment_once(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_ORDERS__DESPATCH_PAGE_SIZE", "4")  # three pages
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=12))
    faults = integration.sandbox.acs_faults
    # One fault per read, in this order: page 1 re-publishes a shipment, page 2 replays
    # page 1, page 3 meets a cursor reset (the feed again from its start), then a partial
    # re-publish.
    for kind in (
        FaultKind.REPUBLISH,
        FaultKind.REPLAY,
        FaultKind.CURSOR_RESET,
        FaultKind.REPUBLISH_PARTIAL,
    ):
        faults.add(FaultRule(operation="list_despatches", kind=kind, count=1))

    integration.run(*DESPATCH)
    integration.run(*DESPATCH)  # the re-published shipments arrive on a later read
    integration.run(*DESPATCH)

    kinds = {f["kind"] for f in integration.sandbox.acs.truth()["feed"]["faults"]}
    assert kinds == {"replay", "republish", "cursor_reset", "republish_partial"}
    calls = _despatch_calls(integration)
    assert len(calls) == len(set(calls)) == 12
    assert _open(integration, "shipment_unpostable") == []


def test_a_closure_that_arrives_in_a_later_run_is_raised_then_and_the_order_completes(
    integration: IntegrationHarness,
) -> None:
    order, short_item = "SO0050005", 700009
    plans = integration.sandbox.acs.state.plans
    plans[order] = plans[order].model_copy(
        update={
            "shipments": [
                [PlannedShipmentLine(order_item_id=700008, quantity=1)],
                [
                    PlannedShipmentLine(order_item_id=700009, quantity=1),
                    PlannedShipmentLine(order_item_id=700010, quantity=1),
                ],
            ],
            "closed_short": [PlannedShipmentLine(order_item_id=short_item, quantity=1)],
        }
    )
    integration.run(*PRODUCTS, *RELEASE)
    integration.sandbox.advance(timedelta(hours=12))
    integration.sandbox.acs_faults.add(
        FaultRule(operation="list_despatches", kind=FaultKind.DELAY, count=1)
    )

    first = integration.run(*DESPATCH).output_for_node("khaos_shipment_postings")
    assert f"{order}-2" not in set(first["shipment_id"])
    assert _open(integration, "despatch_closed_short") == []
    later = integration.run(*DESPATCH).output_for_node("khaos_shipment_postings")

    row = later.set_index("shipment_id").loc[f"{order}-2"]
    assert row["closed_short_units"] == 1 and row["order_completion"] == "shipped"
    [problem] = _open(integration, "despatch_closed_short")
    assert order in problem.row.message
    assert _despatch_calls(integration).count(f"{order}-2") == 1


# --- ACS's files (point 7) -----------------------------------------------------------------


def test_a_snapshot_delivered_after_a_newer_one_is_never_pushed_over_it(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    box = integration.sandbox
    box.acs_faults.add(FaultRule(operation="stock_units", kind=FaultKind.FILE_LATE, count=1))
    assert box.acs.write_daily_files() == []  # today's snapshot is held back
    box.advance(timedelta(days=1))
    late, newer = box.acs.write_daily_files()  # it arrives with (before) tomorrow's
    assert late.name < newer.name

    _stock(integration, newer)
    result = _stock(integration, late)

    from acs_khaos_dagster.store.stock import StockSnapshots

    assert integration.metadata(result, "khaos_stock_update")["pushed"] == 0
    with integration.store() as store:
        states = {s.file_name: s.state for s in StockSnapshots(store.db).all()}
    assert states[newer.name] == "pushed" and states[late.name] != "pushed"
    assert box.khaos.truth()["adjustment_groups"] == []


def test_a_snapshot_sent_again_days_later_under_a_new_name_is_taken_in_once(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    box = integration.sandbox
    box.acs_faults.add(
        FaultRule(operation="stock_units", kind=FaultKind.FILE_TWICE, count=1, later_by=2)
    )
    (first,) = box.acs.write_daily_files()
    _stock(integration, first, *SNAPSHOT)
    box.advance(timedelta(days=1))
    box.acs.write_daily_files()
    box.advance(timedelta(days=1))
    [again] = [p for p in box.acs.write_daily_files() if p.read_bytes() == first.read_bytes()]

    result = _stock(integration, again, "acs_stock_snapshot")

    assert again.name != first.name
    assert integration.metadata(result, "acs_stock_snapshot")["same_content_as"] == first.name


# --- SKUs ACS leaves pending or sends back to review (point 7) ----------------------------------


@pytest.mark.parametrize("variant", [NEVER_SETS_UP], ids=str, indirect=True)
def test_a_sku_acs_never_sets_up_stays_pending_and_never_becomes_ready(
    integration: IntegrationHarness,
) -> None:
    first = integration.run(*SYNC)
    missing = set(first.output_for_node("acs_sku_push").query("reason == 'new'")["acs_sku"])
    integration.sandbox.advance(timedelta(days=2))  # far past ACS's usual set-up time

    after = integration.run(*SYNC)

    mapping = after.output_for_node("sku_mapping").set_index("acs_sku")
    assert missing and set(mapping.loc[sorted(missing), "classification"]) == {"pending_in_acs"}
    assert not missing & set(after.output_for_node("ready_for_sale_skus")["acs_sku"])
    assert after.output_for_node("acs_sku_push").empty  # not pushed again and again


def test_a_sku_sent_back_to_review_stops_being_ready_and_new_orders_for_it_are_held(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    truth = integration.sandbox.khaos.truth()
    order = next(o for o in truth["orders"] if o["order_code"] == "SO0050002")
    sku = order["lines"][0]["stock_code"]
    integration.sandbox.acs.send_back_to_review(sku)

    after = integration.run(*PRODUCTS, *RELEASE)

    mapping = after.output_for_node("sku_mapping").set_index("acs_sku")
    assert mapping.loc[sku, "classification"] == "pending_in_acs"
    assert sku not in set(after.output_for_node("ready_for_sale_skus")["acs_sku"])
    released = after.output_for_node("acs_order_release").set_index("order_code")
    assert released.loc["SO0050002", "action"] == "held"
    [problem] = [p for p in _open(integration, "order_held") if "SO0050002" in p.row.message]
    assert sku in problem.row.message
