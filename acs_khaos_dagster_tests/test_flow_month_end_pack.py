"""The month-end pack flow without Dagster (``flows.month_end_pack``): the stored daily
reconciliation of a month in, the pack's files and figures out.

``test_month_end_flow.py`` runs the same flow through the assets (links, run tags, the
metadata finance reads); here only the flow's own promises.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.reconciliation import month_end_cutoff
from acs_khaos_dagster.flows.month_end_pack import build_month_end_pack
from acs_khaos_dagster.store import Store
from acs_khaos_dagster_tests.test_month_end_flow import MONTH, write_month

NOW = datetime(2026, 4, 1, 5, tzinfo=UTC)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    with Store.from_settings(load_settings()) as opened:
        yield opened


def test_a_reconciled_month_gives_the_final_pack_as_at_its_cut_off(
    data_dir: Path, store: Store
) -> None:
    write_month(data_dir)

    built = build_month_end_pack(load_settings(), store, MONTH, preview=False, now=NOW)

    folder = data_dir / "month_end" / MONTH
    assert built.files.workbook == folder / f"month_end_{MONTH}.xlsx"
    assert built.files.workbook.exists() and built.files.html.exists()
    assert all(path.exists() for path in built.files.csvs.values())
    assert built.tables.as_at == month_end_cutoff(2026, 3)
    assert built.days_not_reconciled == 0
    # SO2-1 posted nowhere, SO4-1 invoiced after the cut-off: both despatched, not invoiced.
    assert built.files.totals()["shipments-not-invoiced"] == 2


def test_a_final_pack_of_a_month_with_a_day_missing_is_refused_and_writes_nothing(
    data_dir: Path, store: Store
) -> None:
    write_month(data_dir, skip={date(2026, 3, 14)})

    with pytest.raises(me.MonthIncomplete) as refused:
        build_month_end_pack(load_settings(), store, MONTH, preview=False, now=NOW)

    assert list(refused.value.missing) == [date(2026, 3, 14)]
    assert not (data_dir / "month_end").exists()


def test_a_preview_of_an_open_month_is_as_at_its_newest_whole_day_in_its_own_files(
    data_dir: Path, store: Store
) -> None:
    write_month(data_dir, skip={date(2026, 3, d) for d in range(20, 32)})

    built = build_month_end_pack(load_settings(), store, MONTH, preview=True, now=NOW)

    assert built.days_not_reconciled == 12
    assert built.tables.as_at == datetime(2026, 3, 19, 23, 59, 59, tzinfo=UTC)
    assert built.files.workbook.parent == data_dir / "month_end" / MONTH / "preview"
    assert not (data_dir / "month_end" / MONTH / f"month_end_{MONTH}.xlsx").exists()


def test_a_preview_of_a_month_with_no_day_reconciled_is_refused(
    data_dir: Path, store: Store
) -> None:
    with pytest.raises(me.MonthIncomplete):
        build_month_end_pack(load_settings(), store, MONTH, preview=True, now=NOW)
