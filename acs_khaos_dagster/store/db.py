"""Engine and session factory for the integration's own database.

SQLite (the default, a file under the data folder) and PostgreSQL run the same code. On
SQLite every transaction starts with ``BEGIN IMMEDIATE``, so writers queue up instead of
failing half-way with "database is locked"; a writer that has to wait says so in the log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from acs_khaos_dagster.private_files import create_private, private_dir, tighten

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SQLITE_BUSY_TIMEOUT_MS = 30_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def normalise_url(url: str) -> str:
    """Pin PostgreSQL to psycopg2: SQLAlchemy 2.1 maps plain ``postgresql://`` to psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url[len(plain) :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _install_sqlite_events(engine: Engine, busy_timeout_ms: int) -> None:
    database = engine.url.database or ":memory:"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take over transaction control from pysqlite so BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            # First try without waiting, so a wait can be reported before it happens.
            cur.execute("PRAGMA busy_timeout=0")
            begin_immediate(cur, database, busy_timeout_ms)
        finally:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.close()


def begin_immediate(cur: Any, database: str, busy_timeout_ms: int) -> bool:
    """``BEGIN IMMEDIATE`` on a SQLite connection whose busy timeout is 0: at once if no
    other writer holds the lock; otherwise say so in the log, then wait up to
    ``busy_timeout_ms`` (the connection's busy timeout is left at that). Whether it waited."""
    try:
        cur.execute("BEGIN IMMEDIATE")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
    started = time.monotonic()
    log.info(
        "SQLite store %s: another writer holds the lock; waiting up to %.0f s",
        database,
        busy_timeout_ms / 1000,
    )
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("BEGIN IMMEDIATE")
    log.info(
        "SQLite store %s: got the write lock after %.2f s",
        database,
        time.monotonic() - started,
    )
    return True


def _private_sqlite_file(database: Path) -> None:
    """The SQLite file, created ``0600`` in a ``0700`` folder before SQLite opens it.

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file, so the
    whole store stays private. A database made by an older version is narrowed.
    """
    private_dir(database.parent)
    try:
        os.close(create_private(database))
    except FileExistsError:
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            tighten(path)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create the engine for ``url`` with the store's connection settings."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        _install_sqlite_events(engine, SQLITE_BUSY_TIMEOUT_MS)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, future=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows stay readable after commit: the API hands them back to callers.
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
_PG_MIGRATION_LOCK = 0x41434B48  # any constant; serialises concurrent upgrades on PostgreSQL


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade_to_head(engine: Engine) -> None:
    """Run every pending migration in one transaction (several processes may start at once)."""
    from alembic import command
    from sqlalchemy.exc import ProgrammingError

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            # Each flow's migrations branch from the core ones, so there may be several heads.
            command.upgrade(alembic_config(conn), "heads")
    except ProgrammingError as exc:
        # In production the integration runs as an application role that may not change
        # the schema (store/roles.py); a release whose migrations have not been run stops
        # here with what to do, rather than a bare "permission denied".
        if getattr(exc.orig, "pgcode", None) != "42501":
            raise
        raise PermissionError(
            "the store's schema is behind this release and this database user may not "
            "migrate it: run `acs-khaos db upgrade --app-role ROLE` as the migration role "
            "(deploy/README.md)"
        ) from exc


class Database:
    """Engine, sessions and the clock; every store component works through one of these."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.session_factory = make_session_factory(engine)
        self._clock = clock

    def now(self) -> datetime:
        value = self._clock()
        if value.tzinfo is None:
            raise ValueError("the store's clock must return an aware datetime")
        return value.astimezone(UTC)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, session: Session | None = None) -> Iterator[Session]:
        """A unit of work: commits at the end, rolls back on error.

        Given a caller's ``session``, joins it instead (the caller commits), so data, a
        cursor and a ledger row can be written in one transaction.
        """
        if session is not None:
            yield session
            return
        with self.session_factory() as new_session, new_session.begin():
            yield new_session

    def serialize(self, session: Session, name: str) -> None:
        """Make every transaction that serializes on ``name`` wait for this one to end.
        PostgreSQL: a transaction-scoped advisory lock on the name's hash. SQLite serialises
        all writers already (BEGIN IMMEDIATE)."""
        if self.dialect == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name}
            )

    @contextmanager
    def consistent_read(self) -> Iterator[Session]:
        """A transaction whose every statement sees the store as of its first one.

        PostgreSQL reads each statement afresh under READ COMMITTED: facts read one after
        another (a file's units, then the effects posting them) could each miss a row that
        moved from one to the other in between. REPEATABLE READ sees one moment. SQLite's
        transactions (BEGIN IMMEDIATE, the only writer) see one moment already.
        """
        with self.session_factory() as session:
            if self.dialect == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session
            session.commit()  # nothing written; rows stay readable (expire_on_commit off)

    def insert(self, table: Any) -> Any:
        """An INSERT that understands ``on_conflict_do_*`` on both backends."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
