"""Returns files taken in: each ``returns_*.csv`` in the ACS drop read once (the store's
file ledger, by content), its units stored with their corrections, its bad rows
quarantined with their reasons, and the file closed — all in one transaction.

``returns_files_news`` is what the returns sensor asks before it starts a run: which files
in the drop the ledger has not taken in, and which a dead run left unfinished;
``files_sensor_answer`` decides from it (and the instance's runs) what the sensor does.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.drop import AcsDrop, DropEntry
from acs_khaos_dagster.connectors.acs.files import FileLayoutError, read_returns
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.domain.returns import GRADES
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.ledger import UNFINISHED, FileLedger, file_sha256
from acs_khaos_dagster.store.returns import ReturnsRepository

RETURNS_FILE_GLOB = "returns_*.csv"
LEDGER_KIND = "returns"
UNFINISHED_TAG = "acs_returns_unfinished"
UNFINISHED_RETRIES = 3


@dataclass(frozen=True)
class IntakeResult:
    """Every returned unit stored (one row per (return ref, unique SKU)) and what this
    pass took in."""

    table: pd.DataFrame
    files_processed: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    units_new: int = 0
    units_corrected: int = 0
    corrections_not_applied: int = 0
    rows_quarantined: int = 0
    problems: list[str] = field(default_factory=list)

    def figures(self) -> Figures:
        """This pass's files and units, and every stored unit by grade, for the run's metadata."""
        units = self.table
        grades = Counter(units["grade"])
        return {
            "files_processed": self.files_processed,
            "files_skipped": self.files_skipped,
            "files_failed": self.files_failed,
            "units_new": self.units_new,
            "units_corrected": self.units_corrected,
            "corrections_not_applied": self.corrections_not_applied,
            "rows_quarantined": self.rows_quarantined,
            "returned_units": len(units),
            **{f"units_grade_{g}": int(grades.get(g, 0)) for g in GRADES},
            "units_grade_unknown": int(sum(n for g, n in grades.items() if g not in GRADES)),
            "unexpected_returns": int(units["order_number"].isna().sum()),
            "repair_cost_total": round(float(units["repair_cost"].sum()), 2),
            "file_problems": table(pd.DataFrame({"problem": self.problems})),
        }


@dataclass(frozen=True)
class FilesNews:
    """The drop's returns files (by fingerprint), those the ledger has not taken in, and
    those a dead run left unfinished in the ledger."""

    fingerprints: list[str]
    new: list[str]
    stuck: list[str]
    # Seen before (a run was asked for) yet never recorded by the ledger: stuck only once a
    # run for them has ended, which the caller knows (the instance's runs).
    never_recorded: list[str] = field(default_factory=list)


def returns_entries(drop: AcsDrop) -> list[DropEntry]:
    """``returns_*.csv`` in the ACS drop (local folder or SFTP; never a link or a path
    outside it), oldest first: names carry the timestamp."""
    return sorted(drop.list(RETURNS_FILE_GLOB), key=lambda entry: entry.name)


def money(value: Any) -> Decimal:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return Decimal("0")
    return Decimal(str(value))


def unit_table(units: pd.DataFrame) -> pd.DataFrame:
    out = units.copy()
    out["repair_cost"] = out["repair_cost"].map(lambda v: float(money(v)))
    out["matched"] = out["order_item_id"].notna()
    out["posted"] = out["associated_ref"].notna()
    return out.reset_index(drop=True)


def take_in_returns(db: Store, drop: AcsDrop, conf: Settings) -> IntakeResult:
    """Take in every returns file of the drop the ledger has not taken in yet."""
    taken = skipped = failed = new_units = quarantined = corrected = not_applied = 0
    problems: list[str] = []
    repo = ReturnsRepository(db.db)
    # Before any correction is taken in: a unit settled by hand keeps its story.
    repo.settle_units_closed_by_hand()
    for entry in returns_entries(drop):
        path = drop.fetch(entry.name)
        file_row, process = db.ledger.record_file(path, kind=LEDGER_KIND)
        if not process:
            skipped += 1
            continue
        try:
            read = read_returns(path, AcsTimeRules.from_settings(conf))
        except FileLayoutError as exc:
            db.ledger.mark_failed(file_row.id, str(exc))
            failed += 1
            problems.append(str(exc))
            continue
        units = read.returns.to_pandas()
        # The units, their quarantined rows and the file's closing land together.
        with db.transaction() as session:
            stored = repo.store_units(file_row.id, units, session)
            new_units += stored.new
            corrected += stored.corrected
            not_applied += stored.correction_not_applied
            db.ledger.add_quarantined_rows(file_row.id, read.quarantined, session)
            db.ledger.mark_processed(
                file_row.id,
                rows_accepted=len(units),
                rows_quarantined=len(read.quarantined),
                session=session,
            )
        taken += 1
        quarantined += len(read.quarantined)
        problems.extend(f"{path.name}: {p}" for p in read.problems)
    return IntakeResult(
        unit_table(repo.units()),
        files_processed=taken,
        files_skipped=skipped,
        files_failed=failed,
        units_new=new_units,
        units_corrected=corrected,
        corrections_not_applied=not_applied,
        rows_quarantined=quarantined,
        problems=problems,
    )


def fingerprint(entry: DropEntry) -> str:
    return f"{entry.name}|{entry.size}|{entry.mtime.isoformat()}"


def returns_files_news(db: Store, drop: AcsDrop, seen: set[str]) -> FilesNews:
    """Files of the drop not in ``seen`` (fingerprints) nor taken in by the ledger, and
    files the ledger holds unfinished."""
    new: list[str] = []
    ledger = FileLedger(db.db)
    recorded = ledger.find(kind=LEDGER_KIND)
    recorded_names = {f.name for f in recorded}
    never_recorded: list[str] = []
    entries = {fingerprint(entry): entry for entry in returns_entries(drop)}
    for print_, entry in sorted(entries.items()):
        # An empty cursor (a new sensor, a reset instance) must not re-take files the
        # store already took in: the ledger, by content, decides.
        if ledger.taken_in(file_sha256(drop.fetch(entry.name)), LEDGER_KIND):
            continue
        if print_ not in seen:
            new.append(print_)
        elif entry.name not in recorded_names:
            # Seen, so a run was started for it, but no run ever recorded it: every run
            # died before the ledger heard of the file (found by the soak).
            never_recorded.append(entry.name)
    # A run that died while taking files in leaves them unfinished in the ledger, and no
    # new file may ever come to start another: those are retried (a few times).
    unfinished = [f.name for f in recorded if f.state in UNFINISHED]
    return FilesNews(sorted(entries), new, sorted(unfinished), sorted(never_recorded))


class ReturnsRuns(Protocol):
    """The returns job's runs on the Dagster instance, as the sensor's decision asks."""

    def one_has_ended(self) -> bool:
        """A run for the files seen has come to an end (the daemon creates the run at the
        tick that asks for it, so none at all means it was never launched here)."""
        ...

    def one_in_progress(self) -> bool: ...

    def tagged(self, tags: Mapping[str, str]) -> int:
        """How many runs carry ``tags`` (those that retried some unfinished files so far)."""
        ...


@dataclass(frozen=True)
class SensorAnswer:
    """A run to ask for (``run_key`` and its ``tags``), or why none (``skip``)."""

    run_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    skip: str = ""


def files_key(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:24]


def files_sensor_answer(news: FilesNews, runs: ReturnsRuns) -> SensorAnswer:
    """A run for new files; else a retry of files left unfinished, a few times at most."""
    if news.new:
        return SensorAnswer(files_key(news.new), {"acs_returns_files": str(len(news.new))})
    stuck = list(news.stuck)
    if news.never_recorded and runs.one_has_ended():
        stuck = sorted({*stuck, *news.never_recorded})
    if not stuck:
        return SensorAnswer(skip=f"no {RETURNS_FILE_GLOB} in the ACS drop that is not taken in")
    names = ", ".join(stuck)
    # Any returns run still on its way (the first for a file, or a retry of it) may yet
    # record the files: wait for it rather than start a second.
    if runs.one_in_progress():
        return SensorAnswer(skip=f"a run is taking in {names}")
    key = files_key(stuck)
    tried = runs.tagged({UNFINISHED_TAG: key})
    if tried >= UNFINISHED_RETRIES:
        return SensorAnswer(skip=f"{names} still unfinished after {tried} runs: see their failures")
    return SensorAnswer(f"unfinished:{key}:{tried}", {UNFINISHED_TAG: key})
