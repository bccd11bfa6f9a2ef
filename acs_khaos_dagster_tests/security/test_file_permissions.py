"""What the integration writes is not readable by other users (issue 20, point 7).

The SQLite store and its WAL, the data folder, Parquet files and SFTP/drop inbox copies
are ``0600`` in ``0700`` folders; the month-end pack is ``0640``. Each test runs under
the common default umask ``022``, under which the old code made everything world-readable.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from acs_khaos_dagster.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_the_sqlite_store_its_wal_and_its_folder_are_private(
    tmp_path: Path, loose_umask: None
) -> None:
    database = tmp_path / "data" / "integration.sqlite"

    with Store.open(f"sqlite:///{database}") as store:
        store.audit.record_action(actor="ops", action="note", subject="x")
        wal = Path(f"{database}-wal")
        shm = Path(f"{database}-shm")
        assert wal.exists() and shm.exists()
        assert {p.name: _mode(p) for p in (database, wal, shm)} == {
            database.name: 0o600,
            wal.name: 0o600,
            shm.name: 0o600,
        }
    assert _mode(database.parent) == 0o700


def test_an_existing_world_readable_sqlite_store_is_narrowed_when_opened(
    tmp_path: Path, loose_umask: None
) -> None:
    database = tmp_path / "integration.sqlite"
    with Store.open(f"sqlite:///{database}"):
        pass
    os.chmod(database, 0o644)

    with Store.open(f"sqlite:///{database}"):
        assert _mode(database) == 0o600


def test_parquet_files_under_the_data_folder_are_private(tmp_path: Path, loose_umask: None) -> None:
    from acs_khaos_dagster.flows.common import write_parquet_atomically

    path = tmp_path / "data" / "stock" / "units" / "snap.parquet"
    write_parquet_atomically(pd.DataFrame({"unique_sku": ["U1"]}), path)

    assert _mode(path) == 0o600
    assert {_mode(p) for p in (path.parent, path.parent.parent, tmp_path / "data")} == {0o700}
    assert pd.read_parquet(path)["unique_sku"].tolist() == ["U1"]


def test_the_month_end_pack_is_readable_by_the_group_and_no_one_else(
    tmp_path: Path, loose_umask: None
) -> None:
    from acs_khaos_dagster.reports import render_month_end_pack
    from acs_khaos_dagster_tests.test_month_end_pack import inputs

    pack = render_month_end_pack(inputs(), tmp_path / "month_end" / "2025-01")

    for path in (pack.workbook, pack.html, *pack.csvs.values()):
        assert _mode(path) == 0o640, path.name
    assert _mode(pack.workbook.parent) == 0o750
