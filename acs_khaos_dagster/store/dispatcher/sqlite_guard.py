"""The guard's common case on SQLite: its one Core statement, compiled once, run on a
pooled connection's own ``sqlite3`` handle, the guards of several workers in one commit.

Why: on SQLite the dispatcher's writes queue on one thread lock (``Claiming._writing``),
and the guard runs on the workers before every send, so at eight sends in flight the
lock, not the target, set the pace (a guard waited ~6 ms for it, per send). Through an
engine transaction a guard held the lock across five calls into SQLite (the busy-timeout
switch around ``BEGIN IMMEDIATE``, the ``UPDATE``, the ``COMMIT``) and ~0.2 ms of Python,
each call giving the GIL up and taking it back, and every commit by another connection
empties the next one's page cache. Here:

- the parameters are made and the busy timeout switched outside the lock: inside it are
  ``BEGIN IMMEDIATE``, the ``UPDATE`` and the ``COMMIT``;
- the worker that gets the lock runs, in one transaction, every guard queued by the time
  it has it (its own included), each its own ``UPDATE`` with its own row count, and
  commits before any of them returns: each send still follows its own renewal, committed.
  A worker whose guard was run by another finds it done when it gets the lock, and goes.

A writer of another process holding SQLite's lock is waited for, and logged, as
``db.begin_immediate`` does for every other transaction. An error fails every guard of
its transaction (none of them renewed): each worker raises it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql.dml import Update

from acs_khaos_dagster.store.db import SQLITE_BUSY_TIMEOUT_MS, begin_immediate


class SqliteStatement:
    """``statement`` compiled for SQLite once: its SQL and how to order and convert values."""

    def __init__(self, statement: Update, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        order: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            process = bind.type.bind_processor(engine.dialect)
            if bind.required:  # given per call
                order.append((name, process, None))
            else:  # a constant of the statement (a state name)
                order.append(("", None, process(bind.value) if process else bind.value))
        self._order = order

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            const if not name else (process(values[name]) if process else values[name])
            for name, process, const in self._order
        )


class _Request:
    __slots__ = ("count", "done", "error", "parameters", "sql")

    def __init__(self, sql: str, parameters: tuple[Any, ...]) -> None:
        self.sql = sql
        self.parameters = parameters
        self.count = 0
        self.error: BaseException | None = None
        self.done = False


class SqliteWrites:
    """Single-statement write transactions of many threads, run together under ``writing``.

    While ``held`` (a dispatcher's drain), they run on one pooled connection kept for it,
    its busy timeout at 0 (``begin_immediate`` raises it only to wait for another
    process): no pool check-out and no busy-timeout switch per write, and its page cache
    stays warm from one commit to the next unless the dispatcher's own thread wrote
    between them. Otherwise each write checks a connection out.
    """

    def __init__(self, engine: Engine, writing: Callable[[], AbstractContextManager[object]]):
        self._engine = engine
        self._writing = writing
        self._database = engine.url.database or ":memory:"
        self._queued: list[_Request] = []
        self._queue_lock = threading.Lock()
        self._held: Any = None  # the connection kept while ``held``

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection for the writes made meanwhile (not re-entrant)."""
        conn = self._engine.raw_connection()
        try:
            raw = conn.dbapi_connection
            raw.execute("PRAGMA busy_timeout=0")
            with self._writing():
                self._held = raw
            try:
                yield
            finally:
                with self._writing():
                    self._held = None
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            conn.close()

    def run(self, statement: SqliteStatement, values: Mapping[str, Any]) -> int:
        """Run ``statement`` committed (with whatever else is queued then); its row count."""
        request = _Request(statement.sql, statement.parameters(values))
        with self._queue_lock:
            self._queued.append(request)
        with self._writing():
            if not request.done and self._held is not None:
                self._commit_queued(self._held)
        if not request.done:  # nothing held: a connection of its own
            # No engine transaction is begun on it, so none of the engine's begin events
            # run: BEGIN IMMEDIATE is issued here.
            with self._engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                raw.execute("PRAGMA busy_timeout=0")
                try:
                    with self._writing():
                        if not request.done:
                            self._commit_queued(raw)
                finally:
                    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if request.error is not None:
            raise request.error
        return request.count

    def _commit_queued(self, raw: Any) -> None:
        """Every queued write in one transaction (under ``writing``), committed."""
        with self._queue_lock:
            batch, self._queued = self._queued, []
        cur = None
        try:
            cur = raw.cursor()
            if begin_immediate(cur, self._database, SQLITE_BUSY_TIMEOUT_MS):
                cur.execute("PRAGMA busy_timeout=0")  # it waited: back to trying first
            try:
                for request in batch:
                    request.count = cur.execute(request.sql, request.parameters).rowcount
                cur.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        except BaseException as exc:
            for request in batch:
                request.error = exc
            raise
        finally:
            if cur is not None:
                cur.close()
            for request in batch:
                request.done = True
