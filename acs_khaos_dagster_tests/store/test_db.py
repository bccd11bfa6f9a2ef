"""SQLite writers queue up, and a writer that waits says so."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from acs_khaos_dagster.store.db import make_engine


def test_a_waiting_sqlite_writer_logs_that_it_waits(
    tmp_path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    holder = engine.connect()
    holder.begin()
    holder.exec_driver_sql("INSERT INTO t VALUES (1)")

    def second_writer() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")

    with caplog.at_level(logging.INFO, logger="acs_khaos_dagster.store.db"):
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.3)
        holder.commit()
        holder.close()
        thread.join(timeout=10)
    assert "another writer holds the lock" in caplog.text
    assert "got the write lock" in caplog.text
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    engine.dispose()
