"""What every asset check shares: its day and its owner.

* ``partitioned_check``: ``@asset_check`` with the checked asset's partitions, so each
  result is recorded against its day and a person can re-run the check for one day from
  the UI. (A check's ``partitions_def`` is "preview" in Dagster 1.13; only that warning is
  silenced.)
* ``OWNER_KEY``: Dagster 1.13's ``asset_check`` takes no ``owners`` and the UI shows no
  definition metadata of a check, so a check's owner team (the exception queue's teams) is
  its metadata ``owner: team:<x>`` *and* the last sentence of its description, which the UI
  shows beside every result. ``with_check_owners`` fills both on every check of a
  definitions object: the team a check names itself, else its asset's owner.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckSpec,
    AssetsDefinition,
    PartitionsDefinition,
    asset_check,
)
from dagster._utils.warnings import BetaWarning, PreviewWarning
from dagster_shared.record import replace

from acs_khaos_dagster.store.exceptions import Owner

OWNER_KEY = "owner"
# The exception queue's owner teams: a check's failure is one of theirs to act on.
TEAMS = tuple(str(owner) for owner in Owner)


def owned_by(team: str) -> dict[str, str]:
    """A check's metadata naming its owner team (one of the exception queue's)."""
    if team not in TEAMS:
        raise ValueError(f"owner team must be one of {TEAMS}, not {team!r}")
    return {OWNER_KEY: f"team:{team}"}


def partitioned_check(*, partitions_def: PartitionsDefinition | None, **kwargs: Any):
    """``@asset_check(partitions_def=..., **kwargs)``: one result per partition of the asset."""

    def decorate(fn: Callable[..., Any]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=PreviewWarning)
            return asset_check(partitions_def=partitions_def, **kwargs)(fn)

    return decorate


def owner_sentence(owner: str) -> str:
    return f"Owner: {owner}."


def _owned(spec: AssetCheckSpec, default: str) -> AssetCheckSpec:
    owner = str(spec.metadata.get(OWNER_KEY) or default)
    description = (spec.description or "").rstrip()
    if not description.endswith(owner_sentence(owner)):
        description = f"{description} {owner_sentence(owner)}".lstrip()
    return replace(spec, metadata={**spec.metadata, OWNER_KEY: owner}, description=description)


def with_check_owners(assets: Sequence[Any], owner_of: Callable[[AssetCheckKey], str]) -> list[Any]:
    """``assets`` (assets and checks) with every check spec owned: its own ``owner`` or
    ``owner_of(check key)``, written in its metadata and its description."""
    found = []
    for asset in assets:
        specs = getattr(asset, "node_check_specs_by_output_name", None)
        if not isinstance(asset, AssetsDefinition) or not specs:
            found.append(asset)
            continue
        owned = {name: _owned(spec, owner_of(spec.key)) for name, spec in specs.items()}
        attributes = {**asset.get_attributes_dict(), "check_specs_by_output_name": owned}
        with warnings.catch_warnings():
            # As Dagster copies a definition (its own `execution_type` is "beta"); the same
            # class, so a check stays an AssetChecksDefinition.
            warnings.simplefilter("ignore", category=BetaWarning)
            warnings.simplefilter("ignore", category=PreviewWarning)
            found.append(type(asset)(**attributes))
    return found
