"""One brand at a glance, for the team that runs many: what needs attention now.

Application layer (no Dagster): ``acs-khaos overview`` calls ``take_overview`` once per
brand, each with that brand's own settings; each brand's code location materialises the
``brand_overview`` asset with the same function, and writes ``overview_report`` files.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from acs_khaos_dagster.clock import SIMULATED_CLOCK_CURSOR, integration_now
from acs_khaos_dagster.config import OwnerTargets, Settings
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.figures import Figures, file_link, table
from acs_khaos_dagster.flows.month_end_pack import PREVIEW_DIR, reconciliation_dir
from acs_khaos_dagster.flows.outbox import due_effects
from acs_khaos_dagster.private_files import private_partial
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.activity import Activity


@dataclass(frozen=True)
class BrandOverview:
    brand: str
    as_at: datetime
    open_by_owner: dict[str, int] = field(default_factory=dict)
    over_target_by_owner: dict[str, int] = field(default_factory=dict)
    oldest_due_age: timedelta | None = None
    snapshot_age: timedelta | None = None
    despatch_posted_age: timedelta | None = None
    # The newest reconciled day's gross unexplained stock drift, £ at cost.
    drift_day: date | None = None
    drift_value: float | None = None
    month_end: str = "-"

    @property
    def open_exceptions(self) -> int:
        return sum(self.open_by_owner.values())

    @property
    def over_target(self) -> int:
        return sum(self.over_target_by_owner.values())


def take_overview(settings: Settings) -> BrandOverview:
    """Brand ``settings.brand``'s overview, as at the integration's now.

    A store the demo filled lives on its simulated clock (no ``clock_url`` once the demo has
    ended, and a ``SIMULATED_CLOCK_CURSOR``): its ages and targets are then measured as at
    that world's last moment, as ``acs-khaos exceptions list`` measures them."""
    with Store.from_settings(settings) as store:
        simulated = None if settings.clock_url else store.cursors.get(SIMULATED_CLOCK_CURSOR)
        if simulated is None:
            return brand_overview(store, settings, integration_now(settings))
    now = datetime.fromisoformat(simulated)
    with Store.from_settings(settings, clock=lambda: now) as as_at:
        return brand_overview(as_at, settings, now)


def brand_overview(store: Store, settings: Settings, now: datetime) -> BrandOverview:
    """What brand ``settings.brand`` needs attention for, as at ``now``."""
    open_by_owner: Counter[str] = Counter()
    over_by_owner: Counter[str] = Counter()
    for item in store.exceptions.list(status="open"):
        open_by_owner[item.row.owner] += 1
        over_by_owner[item.row.owner] += int(item.over_target)
    activity = Activity(store.db)
    drift_day, drift_value = latest_drift(reconciliation_dir(settings) / "drift_by_day.parquet")
    return BrandOverview(
        brand=settings.brand or "(default)",
        as_at=now,
        open_by_owner=dict(open_by_owner),
        over_target_by_owner={owner: n for owner, n in over_by_owner.items() if n},
        oldest_due_age=due_effects(store, settings).oldest_due_age,
        snapshot_age=_age(now, activity.newest_snapshot_at()),
        despatch_posted_age=_age(now, activity.last_done(EffectKind.KHAOS_DESPATCH)),
        drift_day=drift_day,
        drift_value=drift_value,
        month_end=month_end_status(settings, now),
    )


def _age(now: datetime, then: datetime | None) -> timedelta | None:
    return None if then is None else max(now - then, timedelta(0))


def latest_drift(path: Path) -> tuple[date | None, float | None]:
    """The newest day of ``drift_by_day.parquet`` and its unexplained value (none yet: None)."""
    if not path.exists():
        return None, None
    frame = pd.read_parquet(path)
    if frame.empty:
        return None, None
    row = frame.sort_values("day").iloc[-1]
    return date.fromisoformat(str(row["day"])[:10]), float(row["unexplained_value"])


def month_end_status(settings: Settings, now: datetime) -> str:
    """The last closed month's pack: ``final``, ``preview only`` or ``not built``."""
    today = now.astimezone(settings.tz).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    folder = settings.data_dir / "month_end" / last_month
    final = folder.is_dir() and any(p.name != PREVIEW_DIR for p in folder.iterdir())
    if final:
        return f"{last_month}: final"
    if (folder / PREVIEW_DIR).is_dir():
        return f"{last_month}: preview only"
    return f"{last_month}: not built"


def overview_record(row: BrandOverview) -> dict[str, object]:
    """One brand's overview as plain values (``--json``, the report files, the asset)."""
    return {
        "brand": row.brand,
        "as_at": row.as_at.isoformat(),
        "open_exceptions": row.open_exceptions,
        "over_target": row.over_target,
        "open_by_owner": dict(sorted(row.open_by_owner.items())),
        "over_target_by_owner": dict(sorted(row.over_target_by_owner.items())),
        "oldest_due_s": _seconds(row.oldest_due_age),
        "snapshot_age_s": _seconds(row.snapshot_age),
        "despatch_posted_age_s": _seconds(row.despatch_posted_age),
        "drift_day": row.drift_day.isoformat() if row.drift_day else None,
        "drift_value": row.drift_value,
        "month_end": row.month_end,
    }


def _seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else round(delta.total_seconds(), 1)


def overview_frame(rows: list[BrandOverview]) -> pd.DataFrame:
    """One line per brand; owners' counts as ``owner: open (over target)`` text."""
    lines = []
    for row in rows:
        record = overview_record(row)
        over = row.over_target_by_owner
        record["open_by_owner"] = ", ".join(
            f"{owner}: {n}" + (f" ({over[owner]} over target)" if owner in over else "")
            for owner, n in sorted(row.open_by_owner.items())
        )
        del record["over_target_by_owner"]
        lines.append(record)
    return pd.DataFrame(lines, columns=list(_COLUMNS))


_COLUMNS = (
    "brand",
    "as_at",
    "open_exceptions",
    "over_target",
    "open_by_owner",
    "oldest_due_s",
    "snapshot_age_s",
    "despatch_posted_age_s",
    "drift_day",
    "drift_value",
    "month_end",
)


@dataclass(frozen=True)
class OverviewFiles:
    csv: Path
    html: Path


def write_overview_report(settings: Settings, rows: list[BrandOverview]) -> OverviewFiles:
    """``<data_dir>/overview/brand_overview.{csv,html}``: the overview as files a person opens
    (replaced whole at each writing, private to the service like the rest of the folder)."""
    frame = overview_frame(rows)
    folder = settings.data_dir / "overview"
    files = OverviewFiles(folder / "brand_overview.csv", folder / "brand_overview.html")
    with private_partial(files.csv) as partial:
        frame.to_csv(partial, index=False)
    title = "Brands: what needs attention"
    table = frame.to_html(index=False, na_rep="-", border=0, escape=True)
    page = (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>as at {html.escape(rows[0].as_at.isoformat()) if rows else '-'}"
        f"</p>{table}</body></html>\n"
    )
    with private_partial(files.html) as partial:
        partial.write_text(page, encoding="utf-8")
    return files


OWNERS = tuple(OwnerTargets.model_fields)


def overview_figures(settings: Settings, row: BrandOverview, files: OverviewFiles) -> Figures:
    """The ``brand_overview`` asset's metadata: the brand's row as a table, each figure on
    its own (plotted across materialisations; none yet: null), then the report files."""
    figures: Figures = {
        "overview": table(overview_frame([row])),
        "open_exceptions": row.open_exceptions,
        "over_target": row.over_target,
    }
    for owner in OWNERS:
        figures[f"open_{owner}"] = row.open_by_owner.get(owner, 0)
        figures[f"over_target_{owner}"] = row.over_target_by_owner.get(owner, 0)
    for name in ("oldest_due_age", "snapshot_age", "despatch_posted_age"):
        age = getattr(row, name)
        figures[f"{name}_h"] = None if age is None else round(age.total_seconds() / 3600, 2)
    drift = row.drift_value
    figures["unexplained_drift_value"] = None if drift is None else float(drift)
    figures["month_end"] = row.month_end
    figures["csv"] = file_link(settings, files.csv)
    figures["html"] = file_link(settings, files.html)
    return figures
