"""Overdue data alerts its owner: ``freshness_alerts`` raises an exception in the queue for
each day whose freshness deadline passed without its partition, and closes it once made."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetMaterialization, build_sensor_context

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.freshness import WATCHED, freshness_alerts
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.exceptions import DEFAULT_OWNERS

UK = ZoneInfo("Europe/London")
RECONCILIATIONS = [w.asset for w in WATCHED if w.exception_type == "reconciliation_overdue"]
NIGHTLY = [w.asset for w in WATCHED if w.days_before == 1]  # the reconciliations and the queue


@pytest.fixture
def midnight_deadlines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every deadline at UK midnight, so the days due are plain: the snapshot of each of the
    last seven days up to today, the reconciliation of each day before."""
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_FRESHNESS__SNAPSHOT_DUE", "0 0 * * *")
    monkeypatch.setenv("ACS_KHAOS_FRESHNESS__RECONCILIATION_DUE", "0 0 * * *")


def _today() -> date:
    return datetime.now(UK).date()


def _make(instance: Any, asset: str, days: list[date], brand: str | None = None) -> None:
    key = [brand, asset] if brand else [asset]
    for day in days:
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=key, partition=day.isoformat())
        )


def _tick(instance: Any) -> None:
    settings = SettingsResource()
    resources = {"settings": settings, "store": StoreResource(settings=settings)}
    with build_sensor_context(instance=instance, resources=resources) as context:
        freshness_alerts.evaluate_tick(context)


def _open(type_: str) -> dict[str, str]:
    with Store.from_settings(load_settings()) as store:
        return {i.row.entity_ref: i.row.owner for i in store.exceptions.list(type=type_)}


def _last_week() -> list[date]:
    return [_today() - timedelta(days=n) for n in range(7)]


def _all_made_but(instance: Any, missing: date) -> None:
    _make(instance, "acs_stock_snapshot", [d for d in _last_week() if d != missing])
    for asset in NIGHTLY:
        _make(instance, asset, [d - timedelta(days=1) for d in _last_week()])


@pytest.mark.usefixtures("midnight_deadlines")
def test_a_snapshot_day_missing_past_its_deadline_opens_one_exception_for_operations(
    dagster_instance: Any,
) -> None:
    yesterday = _today() - timedelta(days=1)
    _all_made_but(dagster_instance, missing=yesterday)

    _tick(dagster_instance)
    _tick(dagster_instance)  # seen again: the same exception, counted again

    assert _open("snapshot_overdue") == {f"acs_stock_snapshot:{yesterday}": "operations"}
    assert _open("reconciliation_overdue") == {}


@pytest.mark.usefixtures("midnight_deadlines")
def test_the_overdue_exception_closes_itself_once_its_day_is_made(dagster_instance: Any) -> None:
    yesterday = _today() - timedelta(days=1)
    _all_made_but(dagster_instance, missing=yesterday)
    _tick(dagster_instance)

    _make(dagster_instance, "acs_stock_snapshot", [yesterday])
    _tick(dagster_instance)

    assert _open("snapshot_overdue") == {}


@pytest.mark.usefixtures("midnight_deadlines")
def test_unreconciled_days_are_finances_one_per_reconciliation_and_day(
    dagster_instance: Any,
) -> None:
    _make(dagster_instance, "acs_stock_snapshot", _last_week())

    _tick(dagster_instance)

    opened = _open("reconciliation_overdue")
    assert set(opened.values()) == {"finance"}
    expected = {f"{a}:{d - timedelta(days=1)}" for a in RECONCILIATIONS for d in _last_week()}
    assert set(opened) == expected


@pytest.mark.usefixtures("midnight_deadlines")
def test_a_nights_exception_queue_missing_past_its_deadline_is_the_integration_teams(
    dagster_instance: Any,
) -> None:
    night = _today() - timedelta(days=2)
    _make(dagster_instance, "acs_stock_snapshot", _last_week())
    for asset in RECONCILIATIONS:
        _make(dagster_instance, asset, [d - timedelta(days=1) for d in _last_week()])
    made = [d - timedelta(days=1) for d in _last_week() if d - timedelta(days=1) != night]
    _make(dagster_instance, "integration_exceptions", made)

    _tick(dagster_instance)
    assert _open("exception_queue_overdue") == {f"integration_exceptions:{night}": "integration"}
    assert _open("reconciliation_overdue") == {}

    _make(dagster_instance, "integration_exceptions", [night])
    _tick(dagster_instance)
    assert _open("exception_queue_overdue") == {}


def test_each_overdue_exception_goes_to_the_team_that_owns_the_late_asset() -> None:
    from acs_khaos_dagster.definitions import defs

    owners = {s.key.to_user_string(): s.owners for s in defs.resolve_all_asset_specs()}
    for watched in WATCHED:
        team = f"team:{DEFAULT_OWNERS[watched.exception_type]}"
        assert owners[watched.asset] == [team], watched.asset


@pytest.mark.usefixtures("midnight_deadlines")
def test_in_a_brands_location_only_that_brands_days_count_as_made(
    dagster_instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_BRAND", "acme")
    week = _last_week()
    _make(dagster_instance, "acs_stock_snapshot", week, brand="acme")
    _make(dagster_instance, "acs_stock_snapshot", week, brand="bravo")
    for asset in NIGHTLY:
        # acme's nights all made but yesterday's; bravo's (and the unbranded) all made.
        _make(dagster_instance, asset, [d - timedelta(days=1) for d in week[1:]], brand="acme")
        _make(dagster_instance, asset, [d - timedelta(days=1) for d in week], brand="bravo")
        _make(dagster_instance, asset, [d - timedelta(days=1) for d in week])
    _tick(dagster_instance)
    assert _open("snapshot_overdue") == {}
    yesterday = (week[0] - timedelta(days=1)).isoformat()
    assert set(_open("reconciliation_overdue")) == {f"{a}:{yesterday}" for a in RECONCILIATIONS}
