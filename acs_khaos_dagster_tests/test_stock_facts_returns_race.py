"""A returned unit is found exactly once by the push's return facts, even when the returns
flow takes its file in while the facts are being read.

The stock and returns files arrive together and their runs race. Read one after another,
a file's units could be missed at both of their places (not yet in the store's returned
units, already taken in when the drop was looked at): no "restocked, not processed"
correction, and Khaos's Level went one over once the return was processed (found by the
soak). On PostgreSQL each statement reads afresh, so this is where it can happen.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.drop import open_drop
from acs_khaos_dagster.connectors.acs.file_layouts import RETURNS_LAYOUT
from acs_khaos_dagster.flows import stock_facts
from acs_khaos_dagster.flows.returns_intake import take_in_returns
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.returns import ReturnsRepository

SKUS = pd.DataFrame({"sku": ["DRESS-S"], "stock_id": [101], "is_hire": [False]})
SINCE = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def pushed_while_taken_in(
    fresh_postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, Settings]]:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    settings.drop_folder.mkdir(parents=True)
    with (settings.drop_folder / "returns_BRAND01_20260302100000.csv").open("w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(RETURNS_LAYOUT.columns))
        writer.writeheader()
        writer.writerow(
            {
                **dict.fromkeys(RETURNS_LAYOUT.columns, ""),
                "return_ref": "ACSR1",
                "order_number": "SO1",
                "line_item_id": "11",
                "sku": "DRESS-S",
                "unique_sku": "U1",
                "received_at": "2026-03-02T09:00:00Z",
                "grade": "A",
                "action_taken": "RESTOCK",
            }
        )
    with Store.open(fresh_postgres_database) as store:
        read_units = ReturnsRepository.units

        raced: list[bool] = []

        def units_then_the_returns_run_commits(self, session=None):  # type: ignore[no-untyped-def]
            found = read_units(self, session)
            if not raced:  # the returns run, in its own transaction, right after this read
                raced.append(True)
                with open_drop(settings) as drop:
                    assert take_in_returns(store, drop, settings).files_processed == 1
            return found

        monkeypatch.setattr(ReturnsRepository, "units", units_then_the_returns_run_commits)
        yield store, settings


def test_a_unit_taken_in_while_the_facts_are_read_is_counted_once(
    pushed_while_taken_in: tuple[Store, Settings],
) -> None:
    store, settings = pushed_while_taken_in
    facts = stock_facts.return_facts(store, settings, {"DRESS-S": 101}, SINCE, acs_skus=SKUS)
    assert facts[["stock_id", "units", "ref"]].to_dict("records") == [
        {"stock_id": 101, "units": 1, "ref": "ACSR1"}
    ]
    assert facts["processed_at"].isna().all()
    assert facts["restocked_at"].iloc[0] - SINCE == timedelta(days=1, hours=9)
