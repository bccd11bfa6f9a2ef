"""The daemon's part, in a process of its own that the soak SIGKILLs and restarts.

``chaos.py`` forks it from the warm server (``daemon_main``). It watches the integration
clock (the sandbox's simulated clock) and, each time it has moved, evaluates every sensor
and schedule of ``defs`` against the Dagster instance on PostgreSQL, as ``dagster-daemon``'s
tick would on the wall clock: sensor cursors kept, a run key launched once per sensor, a
schedule evaluated at the last cron time the clock passed (at most once per tick).

Its whole state — cursors, run keys seen, the last tick, tick counts and the run requests
not yet handed to the launcher — is one value in the instance's key-value store, written
in one statement at the end of each tick. A daemon killed mid-tick has written nothing:
its successor evaluates the same tick again from the same cursors, and the run requests of
a tick are queued in the same write that moves the cursors, so each is launched exactly
once. The soak's controller takes queued requests to the launcher (``Daemon.pump``) and
records how far it got under a key of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

STATE_KEY = "soak/daemon/state"
# Reports that only read the store and send nothing: no part of what the soak proves
# (exactly once, nothing lost), and a run per simulated step it cannot spare in CI.
READ_ONLY_SCHEDULES = ("brand_overview_schedule",)
LAUNCHED_KEY = "soak/daemon/launched"
KEEP_RUN_KEYS = 5000  # per sensor; the oldest are dropped (their cursors moved long ago)


def _load(instance: Any) -> tuple[dict[str, Any], int]:
    values = instance.run_storage.get_cursor_values({STATE_KEY, LAUNCHED_KEY})
    state = json.loads(values[STATE_KEY]) if STATE_KEY in values else {}
    state.setdefault("cursors", {})
    state.setdefault("run_keys", {})
    state.setdefault("last_tick", None)
    state.setdefault("queue", [])
    state.setdefault("next_id", 1)
    state.setdefault("ticks", {})
    state.setdefault("tick_errors", {})
    return state, int(values.get(LAUNCHED_KEY, "0"))


class Ticker:
    """One tick of every sensor and schedule, from and into the persisted state."""

    def __init__(self) -> None:
        import logging

        from dagster import DagsterInstance

        from acs_khaos_dagster.definitions import defs

        # The ticks' own log lines (alerts with no channel configured, skip reasons) would
        # drown the log; failed ticks are counted instead.
        logging.disable(logging.WARNING)
        self.defs = defs
        self.repo = defs.get_repository_def()
        self.instance = DagsterInstance.get()

    def tick(self, state: dict[str, Any], now: datetime) -> None:
        from dagster import build_sensor_context

        ticks: Counter[str] = Counter(state["ticks"])
        errors: Counter[str] = Counter(state["tick_errors"])
        for sensor in self.repo.sensor_defs:
            try:
                with build_sensor_context(
                    instance=self.instance,
                    cursor=state["cursors"].get(sensor.name),
                    resources=self.defs.resources,
                    repository_def=self.repo,
                ) as ctx:
                    data = sensor.evaluate_tick(ctx)
            except Exception as exc:  # the daemon logs a failed tick and tries next time
                errors[f"{sensor.name}: {type(exc).__name__}"] += 1
                continue
            ticks[sensor.name] += 1
            state["cursors"][sensor.name] = data.cursor
            seen = state["run_keys"].setdefault(sensor.name, [])
            for request in data.run_requests or []:
                if request.run_key and request.run_key in seen:
                    continue
                if request.run_key:
                    seen.append(request.run_key)
                job = request.job_name or sensor.targets[0].job_name
                self._queue(state, job, request)
            del seen[:-KEEP_RUN_KEYS]
        self._schedules(state, now, ticks, errors)
        state["last_tick"] = now.isoformat()
        state["ticks"], state["tick_errors"] = dict(ticks), dict(errors)

    def _schedules(
        self, state: dict[str, Any], now: datetime, ticks: Counter[str], errors: Counter[str]
    ) -> None:
        from dagster import build_schedule_context
        from dagster._utils.schedules import cron_string_iterator

        last = state["last_tick"]
        previous = datetime.fromisoformat(last) if last else now - timedelta(minutes=1)
        for schedule in self.repo.schedule_defs:
            if schedule.name in READ_ONLY_SCHEDULES:
                continue
            due = []
            for moment in cron_string_iterator(
                previous.timestamp(), schedule.cron_schedule, schedule.execution_timezone
            ):
                if moment.timestamp() > now.timestamp():
                    break
                if moment.timestamp() > previous.timestamp():
                    due.append(moment)
            # One run per schedule and tick: several cron times passed in one step of
            # simulated time would start identical runs back to back.
            if not due:
                continue
            try:
                with build_schedule_context(
                    instance=self.instance,
                    scheduled_execution_time=due[-1],
                    resources=self.defs.resources,
                    repository_def=self.repo,
                ) as ctx:
                    data = schedule.evaluate_tick(ctx)
            except Exception as exc:
                errors[f"{schedule.name}: {type(exc).__name__}"] += 1
                continue
            ticks[schedule.name] += 1
            for request in data.run_requests or []:
                self._queue(state, schedule.job_name, request)

    @staticmethod
    def _queue(state: dict[str, Any], job: str, request: Any) -> None:
        state["queue"].append(
            {
                "id": state["next_id"],
                "job": job,
                "partition": request.partition_key,
                "tags": dict(request.tags),
                "run_config": request.run_config or {},
            }
        )
        state["next_id"] += 1

    def save(self, state: dict[str, Any], launched: int) -> None:
        state["queue"] = [r for r in state["queue"] if r["id"] > launched]
        self.instance.run_storage.set_cursor_values({STATE_KEY: json.dumps(state)})


def daemon_main(clock_url: str) -> int:
    """The daemon process: tick whenever the integration clock has moved; never exit."""
    from soak.loop import http

    ticker = Ticker()
    state: dict[str, Any] | None = None  # this process is its only writer: read it once
    while True:
        try:
            now = datetime.fromisoformat(http("GET", clock_url, timeout=30)["now"])
            last = state and state["last_tick"]
            if last is not None and datetime.fromisoformat(last) >= now:
                time.sleep(0.1)
                continue
            fresh, launched = _load(ticker.instance)
            if state is None:
                state = fresh
            ticker.tick(state, now)
            ticker.save(state, launched)
        except Exception as exc:  # PostgreSQL restarting, the sandbox busy: try again
            state = None  # a tick half done is done again from what was saved
            sys.stderr.write(f"daemon: {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
            time.sleep(0.5)


class Daemon:
    """The controller's side: start the daemon, kill it at random moments, restart it, and
    take the run requests it queued to the launcher."""

    def __init__(
        self, launcher: Any, instance: Any, rng: random.Random, kill_rate: float, clock_url: str
    ) -> None:
        self.launcher, self.instance, self.rng = launcher, instance, rng
        self.kill_rate, self.clock_url = kill_rate, clock_url
        self.restarts = 0
        self.launched = 0  # the controller is never killed: its count is the true one
        self.pid = self._start()
        self.state: dict[str, Any] = {}

    def _start(self) -> int:
        self.restarts += 1
        log = self.launcher.work / f"daemon-{self.restarts:03d}.log"
        return self.launcher.fork("daemon", self.clock_url, {}, log)

    def await_tick(self, now: datetime, budget_s: float = 600) -> None:
        """Until the daemon has ticked at ``now`` (or later); maybe kill it on the way."""
        kill_at = None
        if self.rng.random() < self.kill_rate:
            kill_at = time.monotonic() + self.rng.uniform(0.0, 3.0)
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            if kill_at is not None and time.monotonic() >= kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                kill_at = None
            status = self.launcher.exit_status(self.pid)
            if status is not None:
                self.launcher.figures.cpu["daemon"] += self.launcher.cpu.get(self.pid, 0.0)
                killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
                name = "SIGKILL daemon" if killed else "daemon died on its own"
                self.launcher.figures.kills[name] += 1
                self.pid = self._start()
            ticked = self.pump()
            if ticked is not None and ticked >= now:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the daemon did not tick at {now} within {budget_s} s")

    def pump(self) -> datetime | None:
        """Launch what the daemon queued; the time of its last tick."""
        try:
            state, _ = _load(self.instance)
            fresh = [r for r in state["queue"] if r["id"] > self.launched]
            for request in fresh:
                self.launcher.launch(
                    request["job"], request["partition"], request["tags"], request["run_config"]
                )
                self.launched = request["id"]
            if fresh:
                self.instance.run_storage.set_cursor_values({LAUNCHED_KEY: str(self.launched)})
        except Exception:  # PostgreSQL restarting: the queue waits
            return None
        self.state = state
        last = state["last_tick"]
        return datetime.fromisoformat(last) if last else None

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
