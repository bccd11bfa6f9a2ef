"""Where the daily reconciliation keeps its tables, the day's window, and the findings'
sync (``settings.data_dir / "reconciliation"``), each file written atomically:

* ``<table>/<YYYY-MM-DD>.parquet`` for ``stock``, ``order_status``, ``order_to_cash``,
  ``returns``, ``exceptions``: the domain functions' columns (``stock`` adds
  ``stock_code`` and ``site_name``; id lists are comma-separated text);
* ``drift_by_day.parquet``: ``day``, ``unexplained_units`` and ``unexplained_value``
  (gross), one row per reconciled day;
* ``workflow_events/<YYYY-MM-DD>.parquet``: ``order_number, shipment_id, step, at`` (UTC),
  the steps released / despatched / posted / invoiced that happened that day.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from acs_khaos_dagster.config import UK_TIME_ZONE, Settings
from acs_khaos_dagster.domain.reconciliation import StockClass
from acs_khaos_dagster.flows.common import sync_exceptions, write_parquet_atomically
from acs_khaos_dagster.store import Store

DRIFT = "drift"
# The store cursor per finding source: the newest day whose findings were synced, so
# re-running a past day from the UI never reopens or closes today's exceptions.
_SYNCED_DAY = "reconciliation.findings_day.{source}"
_ID_LIST_COLUMNS = ("khaos_stage_ids", "acs_shipment_ids", "missing_shipment_ids")


def reconciliation_folder(conf: Settings) -> Path:
    return conf.data_dir / "reconciliation"


def table_path(conf: Settings, table: str, day: str) -> Path:
    """``data_dir/reconciliation/<table>/<YYYY-MM-DD>.parquet``."""
    return reconciliation_folder(conf) / table / f"{day}.parquet"


def drift_by_day_path(conf: Settings) -> Path:
    return reconciliation_folder(conf) / "drift_by_day.parquet"


def read_day(conf: Settings, table: str, day: str) -> pd.DataFrame | None:
    """The day's stored table, or None when the day has none."""
    path = table_path(conf, table, day)
    return pd.read_parquet(path) if path.exists() else None


def record_drift_day(conf: Settings, day: str, frame: pd.DataFrame) -> None:
    """Replace the day's row of ``drift_by_day.parquet``: the gross unexplained units and £
    of the rows classified ``unexplained`` (beyond tolerance; a residual within tolerance
    is booked by the next push as VARIANCE, not drift)."""
    frame = frame.loc[frame["classification"] == str(StockClass.UNEXPLAINED)]
    row = pd.DataFrame(
        {
            "day": [date.fromisoformat(day)],
            "unexplained_units": [int(frame["unexplained"].abs().sum()) if len(frame) else 0],
            "unexplained_value": [
                round(float(frame["unexplained_value"].abs().fillna(0).sum()), 2)
                if len(frame)
                else 0.0
            ],
        }
    )
    path = drift_by_day_path(conf)
    if path.exists():
        old = pd.read_parquet(path)
        old = old.loc[old["day"] != row["day"].iloc[0]]
        row = pd.concat([old, row], ignore_index=True)
    row = row.sort_values("day", ignore_index=True).astype(
        {"unexplained_units": "int64", "unexplained_value": "float64"}
    )
    write_parquet_atomically(row, path)


def day_window(day: str, tz: str = UK_TIME_ZONE) -> tuple[datetime, datetime]:
    """The UK day as UTC: its first instant and 23:59:59 on its last second."""
    zone = ZoneInfo(tz)
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=zone)
    following = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), following.astimezone(UTC) - timedelta(seconds=1)


def as_at(conf: Settings, day: str, now: datetime) -> datetime:
    """The end of the day, or now while the day is still running."""
    return min(day_window(day, conf.time_zone)[1], now)


def sync_findings(
    db: Store, source: str, prefixes: Iterable[str], findings: list, day: str
) -> int | None:
    """Raise this source's findings and close its own that are gone, unless a newer day
    was synced already (re-running a past partition changes no open exception)."""
    name = _SYNCED_DAY.format(source=source)
    newest = db.cursors.get(name)
    if newest is not None and str(newest) > day:
        return None
    wanted = tuple(prefixes)
    counts = sync_exceptions(
        db,
        [f for f in findings if f.entity_ref.startswith(wanted)],
        [DRIFT],
        owns=lambda ref: ref.startswith(wanted),
    )
    with db.transaction() as session:
        db.cursors.set(name, day, session)
    return counts.get(DRIFT, 0)


def opened(**counts: int | None) -> dict[str, int]:
    """The open exceptions this run synced, per kind. A kind whose exceptions a newer day
    had synced already (this run changed none) is left out: the UI plots every number, so a
    stand-in such as -1 would read as a measurement."""
    return {name: int(count) for name, count in counts.items() if count is not None}


def id_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Id tuples as comma-separated text (Parquet-friendly; the domain reads both)."""
    out = frame.copy()
    for column in _ID_LIST_COLUMNS:
        if column in out.columns:
            out[column] = out[column].map(lambda ids: ",".join(str(i) for i in ids))
    return out


def empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
