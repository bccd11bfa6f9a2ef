"""Concurrent workers: never a double claim or a double effect, never a corrupt store.

PostgreSQL: two ``acs-khaos outbox dispatch`` processes and two Dagster runs of
``integration_cycle`` (which dispatch inside the run too) work the same outbox at once;
the sandbox's ground truth must show every effect applied exactly once.
SQLite: writers are serialised by ``BEGIN IMMEDIATE``; a writer that has to wait says so.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from acs_khaos_dagster.clock import clock_for
from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.models import AdjustmentLine, StockAdjustmentGroup
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.sandbox.runner import Sandbox
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.schema import EffectAttempt

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("acs-khaos")


def _adjustment(ref: str, stock_id: int) -> dict:
    return StockAdjustmentGroup(
        site_id=1,
        group_ref=ref,
        lines=(AdjustmentLine(stock_id=stock_id, adjust_by=1, reason_code="VARIANCE"),),
    ).model_dump(mode="json")


_INIT_INSTANCE = (
    "from dagster import DagsterInstance\n"
    "instance = DagsterInstance.get()\n"
    "instance.get_runs(limit=1)\n"
    "instance.all_instigator_state()\n"
)


# One Dagster run of the main job in its own process, as a run worker would execute it.
_RUN_CYCLE = (
    "import sys\n"
    "from dagster import DagsterInstance\n"
    "from acs_khaos_dagster.definitions import defs\n"
    "job = defs.resolve_job_def('integration_cycle')\n"
    "quiet = {'loggers': {'console': {'config': {'log_level': 'WARNING'}}}}\n"
    "result = job.execute_in_process(\n"
    "    instance=DagsterInstance.get(), raise_on_error=False, run_config=quiet\n"
    ")\n"
    "sys.exit(0 if result.success else 1)\n"
)


def test_two_dispatchers_and_two_dagster_runs_on_postgres_apply_each_effect_once(
    sandbox: Sandbox, fresh_postgres_database: str, tmp_path: Path
) -> None:
    stock_id = next(i.stock_id for i in sandbox.manifest.stock_items if i.stock_controlled)
    refs = [f"CONC-{n:03d}" for n in range(150)]
    with Store.open(fresh_postgres_database, clock=clock_for(load_settings())) as store:
        for ref in refs:
            kind = EffectKind.KHAOS_STOCK_ADJUSTMENT
            store.outbox.enqueue(kind, TARGET_OF[kind], ref, ref, _adjustment(ref, stock_id))
    (tmp_path / "dagster_home").mkdir()
    env = {
        **os.environ,
        "ACS_KHAOS_DATABASE_URL": fresh_postgres_database,
        "ACS_KHAOS_OUTBOX__BACKOFF_INITIAL_S": "0",
        "ACS_KHAOS_OUTBOX__BACKOFF_MAX_S": "0",
        "ACS_KHAOS_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    # The instance's storage is created once here: two runs creating it at the same moment
    # race on Dagster's own schema (a CREATE TABLE fails in one of them), not on ours.
    subprocess.run(
        [sys.executable, "-c", _INIT_INSTANCE], env=env, check=True, capture_output=True, text=True
    )
    commands = [[str(CLI), "outbox", "dispatch"]] * 2 + [[sys.executable, "-c", _RUN_CYCLE]] * 2
    workers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    # Whole, not a repr cut in the middle: a failed run's error is in the middle of stderr.
    told = "\n\n".join(
        f"worker {n} {cmd[-1][:40]!r} exit {w.returncode}\nstdout: {out[-4000:]}\n"
        f"stderr: {err[-8000:]}"
        for n, (cmd, w, (out, err)) in enumerate(zip(commands, workers, outputs, strict=True))
    )
    assert [w.returncode for w in workers] == [0, 0, 0, 0], told

    truth = sandbox.khaos.truth()
    applied = Counter(g["group_ref"] for g in truth["adjustment_groups"])
    with Store.open(fresh_postgres_database) as store:
        effects = store.outbox.find()
        with store.transaction() as s:
            sends = Counter(
                s.scalars(select(EffectAttempt.effect_id).where(EffectAttempt.outcome == "sent"))
            )
    assert all(e.state == "done" for e in effects), Counter(e.state for e in effects)
    assert [ref for ref in refs if applied[ref] != 1] == []
    assert [e.idempotency_key for e in effects if sends[e.id] > 1] == []  # no double claim
    for kind, key in (("khaos.import_despatch", "external_ref"),):
        calls = Counter(c[key] for c in truth["despatch_calls"])
        assert [ref for ref, n in calls.items() if n > 1] == [], kind


HOLDER = textwrap.dedent(
    """
    import sys, time
    from acs_khaos_dagster.store import Store
    with Store.open(sys.argv[1]) as store, store.transaction() as s:
        store.outbox.enqueue("acs.put_product", "acs", "A", "A", {"n": 1}, session=s)
        print("holding", flush=True)
        time.sleep(8.0)
    """
)
WAITER = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.INFO)
    from acs_khaos_dagster.store import Store
    with Store.open(sys.argv[1], migrate=False) as store:
        store.outbox.enqueue("acs.put_product", "acs", "B", "B", {"n": 2})
    """
)


def test_sqlite_serialises_a_second_writer_says_it_waits_and_stays_sound(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    url = f"sqlite:///{path}"
    Store.open(url).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    waiter = subprocess.run(
        [sys.executable, "-c", WAITER, url], capture_output=True, text=True, timeout=60
    )
    holder.wait(30)

    assert holder.returncode == 0 and waiter.returncode == 0, waiter.stderr
    assert "another writer holds the lock; waiting" in waiter.stderr
    assert "got the write lock after" in waiter.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        keys = [k for (k,) in conn.execute("SELECT idempotency_key FROM outbox_effects")]
    assert sorted(keys) == ["A", "B"]
