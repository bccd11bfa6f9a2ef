"""A process killed at any crash point loses nothing and sends nothing twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.crashpoints import ENV_VAR, EXIT_CODE, SimulatedCrash, crash_at

from .conftest import FakeClock
from .remote import FileRemote

WORKER = Path(__file__).with_name("remote.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The file remote writes at once, inside the killed process: nothing can land late.
SETTINGS = OutboxSettings(backoff_initial_s=0, backoff_max_s=0, read_back_after_s=0)


def run_worker(
    *args: str, crash_at_point: str | None = None, background: bool = False
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    env.pop(ENV_VAR, None)
    if crash_at_point:
        env[ENV_VAR] = crash_at_point
    command = [sys.executable, str(WORKER), *args]
    if background:
        return subprocess.Popen(command, env=env, text=True, stderr=subprocess.PIPE)
    return subprocess.run(command, env=env, text=True, capture_output=True, timeout=60)


def test_kill_after_record_then_a_fresh_dispatcher_sends_once(
    store: Store, db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    sends = tmp_path / "sends.txt"
    killed = run_worker(db_url, str(sends), "enqueue", "1", crash_at_point="after_record")
    assert killed.returncode == EXIT_CODE, killed.stderr
    clock.now = datetime.now(UTC)  # the worker enqueued on the real clock
    assert store.outbox.by_key("post:SO0").state == "pending"
    store.dispatcher({"post": FileRemote(sends)}, SETTINGS).drain()
    assert len(FileRemote(sends).lines()) == 1
    assert store.outbox.by_key("post:SO0").state == "done"


@pytest.mark.parametrize("point", ["after_claim", "after_send", "before_mark_done"])
def test_kill_while_dispatching_then_a_fresh_dispatcher_recovers_with_one_send(
    store: Store, db_url: str, tmp_path: Path, point: str
) -> None:
    sends = tmp_path / "sends.txt"
    store.outbox.enqueue("post", "khaos", "SO0", "post:SO0", {"ref": "SO0"})
    killed = run_worker(db_url, str(sends), "drain", crash_at_point=point)
    assert killed.returncode == EXIT_CODE, killed.stderr
    assert store.outbox.by_key("post:SO0").state == "in_flight"

    report = store.dispatcher({"post": FileRemote(sends)}, SETTINGS).drain()

    assert report.outcomes["recovered"] == 1
    assert len(FileRemote(sends).lines()) == 1
    effect = store.outbox.by_key("post:SO0")
    assert effect.state == "done"
    assert effect.result == {"remote_id": "R-SO0"}


def test_in_process_crash_hook_stops_the_dispatcher_before_done(
    store: Store, clock: FakeClock
) -> None:
    remote_sends: list[str] = []

    class Handler:
        def send(self, payload: dict) -> dict:
            remote_sends.append(payload["ref"])
            return {"ok": True}

        def read_back(self, payload: dict) -> dict | None:
            return {"ok": True} if payload["ref"] in remote_sends else None

    store.outbox.enqueue("post", "khaos", "SO0", "post:SO0", {"ref": "SO0"})
    with crash_at("after_send"), pytest.raises(SimulatedCrash):
        store.dispatcher({"post": Handler()}, SETTINGS).drain()
    clock.advance(minutes=16)  # same process: only the lease reveals the dead claim
    store.dispatcher({"post": Handler()}, SETTINGS).drain()
    assert remote_sends == ["SO0"]
    assert store.outbox.by_key("post:SO0").state == "done"


@pytest.mark.postgres
def test_two_dispatcher_processes_on_postgres_never_send_twice(pg_url: str, tmp_path: Path) -> None:
    sends = tmp_path / "sends.txt"
    with Store.open(pg_url) as store:
        for i in range(300):
            store.outbox.enqueue("post", "khaos", f"SO{i}", f"post:SO{i}", {"ref": f"SO{i}"})
    start_at = f"{time.time() + 3:.3f}"
    workers = [
        run_worker(pg_url, str(sends), "drain-at", start_at, background=True) for _ in range(2)
    ]
    for worker in workers:
        assert isinstance(worker, subprocess.Popen)
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    lines = FileRemote(sends).lines()
    refs = Counter(line.split()[0] for line in lines)
    assert len(refs) == 300
    assert max(refs.values()) == 1
    per_process = Counter(line.split()[1] for line in lines)
    assert len(per_process) == 2, per_process  # both really took part
    with Store.open(pg_url) as store:
        assert store.outbox.status().counts == {("post", "done"): 300}
