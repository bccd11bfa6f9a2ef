"""One brand at a glance, for the team that runs many: what needs attention now.

Application layer (no Dagster): ``acs-khaos overview`` calls ``brand_overview`` once per
brand, each with that brand's own settings and store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.flows.month_end_pack import PREVIEW_DIR, reconciliation_dir
from acs_khaos_dagster.flows.outbox import due_effects
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
