"""The hire lifecycle, folded incrementally: each run reads only what is new.

Pure: no Dagster, no I/O. ``domain.hire.hire_unit_lifecycle`` reads every observation
from the first snapshot on; kept as it is, its cost grows with the age of the
installation. ``fold_hire_lifecycle`` instead starts from a ``HireFold`` (each unit's
history entries so far, when each unit was last listed, the newest snapshot time) and
folds in only the snapshots and events that are new since, giving the same lifecycle as
the full recompute over all of them.

Why that is exact: a run of repeated sightings of one stage keeps only its first
observation (its time and its first status), so the entries stand for every observation
before them. A later run's observations of a unit sort after the ones folded before, as
ACS writes its files: ``last_event_at`` (when ACS last moved the unit) never goes back and
is at or after the unit's moves before the snapshot (a return received, a write-off), and
without it the snapshot time stands for the observation. Rebuilding a unit's history from
its old entries (without the inferred ``back``, re-inferred here) and its new observations
therefore collapses and infers exactly as the full recompute does. An event folded twice
changes nothing (it collapses into the entry it opened or joined).

What the entries cannot reproduce: an observation that sorts *before* what was folded
for its unit (an event reported after a later snapshot of the unit was folded, or a
``last_event_at`` older than one folded before). It is placed among the entries by its
time, as the full recompute places it among the observations, but a run of sightings it
falls inside is not split around it (the run's later sightings are kept only by its
first). The flow folds no snapshot older than the newest folded (``flows.hire``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from acs_khaos_dagster.domain.hire import (
    _SOURCE_RANK,
    ENTRY_COLUMNS,
    HireStage,
    _history_rows,
    _observations,
    lifecycle_from_entries,
)
from acs_khaos_dagster.domain.stock_status import DEFAULT_STATUS_POLICY, StatusPolicy

_UTC = "datetime64[ns, UTC]"


@dataclass(frozen=True, eq=False)
class HireFold:
    """What the fold keeps between runs.

    ``entries``: ``ENTRY_COLUMNS``, each unit's history entries in order (inferred ``back``
    entries included: they are the lifecycle's history). ``last_seen``: unique SKU → the
    newest snapshot time that listed it. ``latest``: the newest snapshot time folded.
    """

    entries: pd.DataFrame
    last_seen: pd.Series
    latest: pd.Timestamp | None
    # The units whose entries the last fold rebuilt (None: not known, e.g. loaded).
    rebuilt: frozenset[str] | None = None

    @classmethod
    def empty(cls) -> HireFold:
        return cls(_empty_entries(), pd.Series(dtype=_UTC), None)

    def lifecycle(self) -> pd.DataFrame:
        """``domain.hire.LIFECYCLE_COLUMNS``: per unit where it is now and its history."""
        return lifecycle_from_entries(self.entries, self.last_seen, self.latest)


def _empty_entries() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ENTRY_COLUMNS})
    return frame.astype({"at": _UTC, "snapshot_at": _UTC})


def _as_observations(entries: pd.DataFrame) -> pd.DataFrame:
    """The kept entries as the observations that opened them (inferred ones are
    re-inferred by the fold)."""
    kept = entries.loc[entries["source"] != "inferred"].copy()
    for column in ("at", "snapshot_at"):
        kept[column] = pd.to_datetime(kept[column], utc=True).astype(_UTC)
    return kept[list(ENTRY_COLUMNS)]


def fold_hire_lifecycle(
    state: HireFold,
    snapshots: Iterable[tuple[datetime, pd.DataFrame]],
    events: pd.DataFrame | None = None,
    *,
    hire_skus: Collection[str] | None = None,
    policy: StatusPolicy = DEFAULT_STATUS_POLICY,
    stage_overrides: Mapping[str, HireStage] | None = None,
) -> HireFold:
    """``state`` with ``snapshots`` (newer than ``state.latest``) and ``events`` folded in.

    The arguments are those of ``domain.hire.hire_unit_lifecycle``; folding snapshots one
    run at a time gives the lifecycle that function gives for all of them at once.
    """
    obs, seen_now, latest_now = _observations(snapshots, events, hire_skus, policy, stage_overrides)
    if obs.empty and latest_now is None:
        return state
    touched: set[str] = set()
    if obs.empty:
        entries = state.entries
    else:
        fresh = obs.astype({"at": _UTC, "snapshot_at": _UTC})
        touched = _changing_units(state.entries, fresh)
        prior = _as_observations(state.entries.loc[state.entries["unique_sku"].isin(touched)])
        # Only the units with something new are rebuilt; the others keep their entries.
        rebuilt = _history_rows(
            pd.concat(
                [
                    prior,
                    fresh.loc[fresh["unique_sku"].isin(touched), list(ENTRY_COLUMNS)],
                ],
                ignore_index=True,
            )
        )
        untouched = state.entries.loc[~state.entries["unique_sku"].isin(touched)]
        entries = pd.concat(
            [f for f in (untouched, rebuilt) if not f.empty] or [_empty_entries()],
            ignore_index=True,
        )
        entries = entries.sort_values("unique_sku", kind="stable", ignore_index=True)
        entries = entries.astype({"at": _UTC, "snapshot_at": _UTC})
    parts = [s for s in (state.last_seen, seen_now) if not s.empty]
    last_seen = (
        pd.concat(parts).groupby(level=0).max().astype(_UTC) if parts else pd.Series(dtype=_UTC)
    )
    latest = max((t for t in (state.latest, latest_now) if t is not None), default=None)
    return HireFold(entries[list(ENTRY_COLUMNS)], last_seen, latest, frozenset(touched))


def _changing_units(entries: pd.DataFrame, fresh: pd.DataFrame) -> set[str]:
    """The units whose entries the new observations may change. An observation changes
    nothing when it continues its unit's last entry: the same stage, sorting after it, and
    bringing no status the entry lacks and no other SKU (most units, most days: a snapshot
    lists every unit, few of which moved)."""
    last = entries.groupby("unique_sku", sort=False).tail(1).set_index("unique_sku")
    joined = fresh.join(last, on="unique_sku", rsuffix="_last")
    rank = fresh["source"].map(_SOURCE_RANK)
    rank_last = joined["source_last"].map(_SOURCE_RANK)
    after = (joined["at"] > joined["at_last"]) | (
        (joined["at"] == joined["at_last"])
        & (
            (joined["snapshot_at"] > joined["snapshot_at_last"])
            | ((joined["snapshot_at"] == joined["snapshot_at_last"]) & (rank >= rank_last))
        )
    )
    continues = (
        joined["stage_last"].notna()
        & (joined["stage"] == joined["stage_last"])
        & after
        & ((joined["status"] == "") | (joined["status_last"] != ""))
        & ((joined["sku"] == "") | (joined["sku"] == joined["sku_last"]))
    )
    return set(fresh.loc[~continues.astype("boolean").fillna(False).astype(bool), "unique_sku"])
