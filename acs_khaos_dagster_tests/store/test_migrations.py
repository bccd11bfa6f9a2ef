"""Migrations create every table, and the models and migrations agree."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.db import make_engine, normalise_url
from acs_khaos_dagster.store.schema import ALL_TABLES, Base

CORE_TABLES = {
    "outbox_effects",
    "outbox_attempts",
    "exceptions",
    "audit_log",
    "ingested_files",
    "quarantined_rows",
    "cursors",
}


def test_upgrade_to_head_on_an_empty_database_creates_every_table(tmp_path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'empty.sqlite'}") as store:
        tables = set(inspect(store.engine).get_table_names())
    assert set(ALL_TABLES) >= CORE_TABLES
    assert set(ALL_TABLES) | {"alembic_version"} == tables


def test_opening_twice_is_harmless(db_url: str) -> None:
    for _ in range(2):
        with Store.open(db_url) as store:
            assert store.outbox.status().counts == {}


def test_models_and_migrations_do_not_drift(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []


def test_plain_postgresql_urls_use_psycopg2() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalise_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    engine.dispose()
