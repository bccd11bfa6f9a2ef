"""How the dispatcher hands work to its threads (issue 23, target 2): the worker queue, the
guards of several workers committed together on SQLite, and stale claims looked for once a
heartbeat rather than before every claim.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.dispatcher import Claim, Talked
from acs_khaos_dagster.store.dispatcher.records import _EFFECTS
from acs_khaos_dagster.store.dispatcher.workers import Workers

from .remote import ScriptedHandler


def _enqueue(store: Store, n: int) -> None:
    for i in range(n):
        store.outbox.enqueue(
            "post", "khaos", f"SO{i}", f"post:SO{i}", {"ref": f"SO{i}"}, supersede_key=f"SO{i}"
        )


def _claim(i: int) -> Claim:
    return Claim(i, f"t{i}", "post", "khaos", f"SO{i}", f"post:SO{i}", {}, 1, False)


# --- the worker queue ----------------------------------------------------------------------------


def test_an_exception_raised_in_a_talk_reaches_the_dispatchers_thread() -> None:
    class Crash(BaseException):
        pass

    def talk(claim: Claim) -> Talked:
        raise Crash(claim.token)

    workers = Workers(talk, 2)
    try:
        workers.start(_claim(1))
        with pytest.raises(Crash):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                workers.collect(0.1)
    finally:
        workers.stop()


def test_after_stop_no_talk_starts_and_every_started_one_has_ended() -> None:
    release = threading.Event()
    started: list[str] = []
    ended: list[str] = []

    def talk(claim: Claim) -> Talked:
        started.append(claim.token)
        release.wait(5)
        time.sleep(0.05)
        ended.append(claim.token)
        return Talked(claim, "sent", 0, result={})

    workers = Workers(talk, 1)
    for i in range(3):  # one talks, two wait behind it
        workers.start(_claim(i))
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    threading.Timer(0.1, release.set).start()
    workers.stop()
    assert started == ["t0"]
    assert ended == ["t0"]


def test_never_more_sends_at_once_than_the_concurrency(store: Store) -> None:
    _enqueue(store, 30)
    lock = threading.Lock()
    now = Counter[str]()
    most = Counter[str]()

    class Slow(ScriptedHandler):
        idempotent = True

        def send(self, payload: dict[str, Any]) -> dict[str, Any]:
            with lock:
                now["sending"] += 1
                most["sending"] = max(most["sending"], now["sending"])
            time.sleep(0.01)
            with lock:
                now["sending"] -= 1
            return super().send(payload)

    handler = Slow()
    report = store.dispatcher({"post": handler}, OutboxSettings(concurrency=3)).drain()
    assert report.outcomes["sent"] == 30
    assert most["sending"] == 3


# --- recovery once a heartbeat -------------------------------------------------------------------


def test_a_drain_looks_for_stale_claims_first_and_then_once_a_heartbeat(store: Store) -> None:
    _enqueue(store, 6)
    seconds = [0.0]

    class Handler(ScriptedHandler):
        def send(self, payload: dict[str, Any]) -> dict[str, Any]:
            if payload["ref"] == "SO3":
                seconds[0] += 61  # past the 60 s heartbeat
            return super().send(payload)

    settings = OutboxSettings(claim_batch=1, concurrency=1)
    dispatcher = store.dispatcher({"post": Handler()}, settings, monotonic=lambda: seconds[0])
    calls: list[float] = []
    recover = dispatcher.recover

    def counted() -> int:
        calls.append(seconds[0])
        return recover()

    dispatcher.recover = counted  # type: ignore[method-assign]
    report = dispatcher.drain()
    assert report.outcomes["sent"] == 6
    assert report.claimed == 6
    assert calls == [0.0, 61.0]


# --- SQLite: guards committed together -----------------------------------------------------------


def _guards_together(store: Store, claims: list[Claim], dispatcher: Any) -> list[Any]:
    """Run the claims' guards on threads that queue behind the dispatcher's write lock."""
    writes = dispatcher._sqlite_guard[0]
    results: list[Any] = [None] * len(claims)
    errors: list[BaseException | None] = [None] * len(claims)

    def guard(i: int) -> None:
        try:
            results[i] = dispatcher.guard(claims[i])
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=guard, args=(i,)) for i in range(len(claims))]
    with dispatcher._writing():
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while len(writes._queued) < len(claims) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(writes._queued) == len(claims)
    for t in threads:
        t.join(5)
    return [e if e is not None else r for r, e in zip(results, errors, strict=True)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_guards_queued_together_commit_together_each_with_its_own_row_count(
    store: Store, clock: Any
) -> None:
    _enqueue(store, 3)
    dispatcher = store.dispatcher({"post": ScriptedHandler()}, OutboxSettings())
    claims = dispatcher.claim(3)
    with store.db.engine.begin() as conn:  # the second was taken over by another dispatcher
        conn.execute(
            update(_EFFECTS).where(_EFFECTS.c.id == claims[1].effect_id).values(claim_token="x")
        )
    writes = dispatcher._sqlite_guard[0]
    commits = []
    commit = writes._commit_queued

    def counted(raw: Any) -> None:
        commits.append(len(writes._queued))
        commit(raw)

    writes._commit_queued = counted
    clock.advance(seconds=30)
    with writes.held():
        outcomes = _guards_together(store, claims, dispatcher)
    assert outcomes == [None, "claim_lost", None]
    assert commits == [3]  # one transaction for the three guards
    with store.db.engine.connect() as conn:
        renewed = dict(conn.execute(select(_EFFECTS.c.id, _EFFECTS.c.renewed_at)).all())
    assert renewed[claims[0].effect_id].replace(tzinfo=None) == clock.now.replace(tzinfo=None)
    assert renewed[claims[2].effect_id].replace(tzinfo=None) == clock.now.replace(tzinfo=None)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_error_in_a_commit_of_guards_fails_each_and_renews_none(
    store: Store, clock: Any
) -> None:
    _enqueue(store, 2)
    dispatcher = store.dispatcher({"post": ScriptedHandler()}, OutboxSettings())
    claims = dispatcher.claim(2)
    writes = dispatcher._sqlite_guard[0]
    commit = writes._commit_queued

    def broken_second(raw: Any) -> None:
        writes._queued[1].parameters = (1,)  # a statement SQLite refuses
        commit(raw)

    writes._commit_queued = broken_second
    clock.advance(seconds=30)
    outcomes = _guards_together(store, claims, dispatcher)
    assert all(isinstance(o, Exception) for o in outcomes)
    with store.db.engine.connect() as conn:
        renewed = [r for (r,) in conn.execute(select(_EFFECTS.c.renewed_at))]
    assert all(r.replace(tzinfo=None) < clock.now.replace(tzinfo=None) for r in renewed)
