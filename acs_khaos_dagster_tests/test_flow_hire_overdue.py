"""Overdue hires without Dagster (``flows.hire.raise_overdue_hires``): a unit out past the
expected return date of the newest unit snapshot keeps an exception open and shows in the
run's figures; a unit seen back closes its own.

A SQLite store and a data folder of the test's own, holding one hand-written snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.domain.hire import HireStage
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.flows.hire import OVERDUE_COLUMNS, raise_overdue_hires
from acs_khaos_dagster.store import Store

NOW = datetime(2026, 3, 12, 9, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    yield opened
    opened.close()


@pytest.fixture
def conf(tmp_path: Path) -> Settings:
    conf = load_settings().model_copy(update={"data_dir": tmp_path / "data"})
    snapshot = pd.DataFrame(
        {
            "unique_sku": ["U1", "U2"],
            "expected_return_date": ["2026-03-10", "2026-03-20"],
            "snapshot_at": [pd.Timestamp(NOW)] * 2,
        }
    )
    write_parquet_atomically(snapshot, conf.data_dir / "stock" / "units" / "S1.parquet")
    return conf


def _lifecycle(u1_stage: HireStage) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_sku": ["U1", "U2"],
            "sku": ["HIRE-DRESS", "HIRE-DRESS"],
            "stage": [u1_stage.value, HireStage.OUT.value],
        }
    )


def test_a_unit_out_past_its_expected_return_is_raised_and_counted(
    store: Store, conf: Settings
) -> None:
    result = raise_overdue_hires(store, conf, _lifecycle(HireStage.OUT), NOW)

    assert result.frame.columns.tolist() == OVERDUE_COLUMNS
    assert result.frame[["unique_sku", "days_overdue"]].values.tolist() == [["U1", 2]]
    figures = result.figures()
    assert (figures["hires_overdue"], figures["open_hire_overdue"]) == (1, 1)
    assert "| U1 " in figures["sample"].text
    [open_one] = store.exceptions.list(type="hire_overdue")
    assert open_one.row.entity_ref == "hire:U1:2026-03-10"


def test_a_unit_seen_back_closes_its_overdue_exception(store: Store, conf: Settings) -> None:
    raise_overdue_hires(store, conf, _lifecycle(HireStage.OUT), NOW)

    result = raise_overdue_hires(store, conf, _lifecycle(HireStage.BACK), NOW)

    assert result.frame.empty and result.figures()["open_hire_overdue"] == 0
    assert store.exceptions.list(type="hire_overdue") == []
