"""Every asset check has an owner team, the exception queue's, shown in the UI.

Dagster 1.13's ``asset_check`` takes no ``owners`` and the UI shows no definition metadata
of a check, so the owner is both the check's metadata ``owner`` (for tools) and the last
sentence of its description (which the UI shows beside each result).
"""

from __future__ import annotations

from typing import Any

from dagster import AssetCheckSpec

from acs_khaos_dagster.dagster_kit.brand import branded
from acs_khaos_dagster.dagster_kit.checks import OWNER_KEY
from acs_khaos_dagster.store.exceptions import Owner

TEAMS = {f"team:{owner}" for owner in Owner}


def _specs(defs: Any) -> dict[str, AssetCheckSpec]:
    found = {}
    for definition in [*(defs.asset_checks or []), *(defs.assets or [])]:
        for spec in getattr(definition, "check_specs", []):
            found[spec.key.to_user_string()] = spec
    return found


def _location() -> Any:
    from acs_khaos_dagster.definitions import defs

    return defs


def test_every_check_names_an_owner_team_in_its_metadata_and_its_description() -> None:
    specs = _specs(_location())

    assert len(specs) >= 36
    for name, spec in specs.items():
        owner = spec.metadata.get(OWNER_KEY)
        assert owner in TEAMS, name
        assert (spec.description or "").endswith(f"Owner: {owner}."), name


def test_a_check_is_owned_by_the_team_that_acts_on_its_failure() -> None:
    owners = {name: spec.metadata[OWNER_KEY] for name, spec in _specs(_location()).items()}

    assert owners["stock_reconciliation:unexplained_stock_drift_within_tolerance"] == (
        "team:finance"
    )
    assert owners["integration_exceptions:no_exception_older_than_owner_target"] == (
        "team:integration"
    )
    assert owners["acs_stock_snapshot:snapshot_file_is_whole_and_known"] == "team:operations"
    # Not named by the check itself: its asset's owner, or the team of its exception type.
    assert owners["sku_mapping:pandera_model"] == "team:ecommerce"
    assert owners["returns_reconciliation:pandera_model"] == "team:finance"
    assert owners["return_refund_clock:no_refund_breached"] == "team:finance"
    assert owners["acs_outbox:oldest_due_effect_within_limit"] == "team:integration"


def test_the_owner_is_written_once_however_often_the_definitions_are_built() -> None:
    from acs_khaos_dagster.definitions import _definitions

    again = _specs(_definitions())

    for name, spec in again.items():
        assert (spec.description or "").count("Owner: ") == 1, name


def test_a_brands_location_keeps_every_checks_owner() -> None:
    specs = _specs(branded(_location(), "acme"))

    assert specs and all(spec.metadata.get(OWNER_KEY) in TEAMS for spec in specs.values())
    assert all(name.startswith("acme/") for name in specs)
