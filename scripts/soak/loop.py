"""The soak's driver: simulated days of trading, the integration's own schedules and
sensors starting every run, kills, PostgreSQL restarts, then quiescence and the oracles.

No daemon process: each step evaluates the real sensor and schedule definitions
(``defs``) against the soak's Dagster instance on PostgreSQL, as the daemon's tick would
(cursors kept, a run key launched once per sensor, a schedule ticking at each cron time the
simulated clock passed), and launches every run request as a run worker process of its own
(``chaos.py run``), which executes the job on the same instance. A SIGKILLed worker's run is
marked failed afterwards, as the daemon's run monitoring would. The soak itself never
writes into the outbox or the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "chaos.py"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
CRASH_POINTS = ("after_record", "after_claim", "after_send", "before_mark_done")
CALL_FAULTS = (
    "error_5xx",
    "rate_limit",
    "latency",
    "timeout_before",
    "timeout_after",
    "reset_before",
    "reset_after",
    "applied_then_5xx",
)
KHAOS_ONLY = ("late_apply",)
ACS_ONLY = ("quota_403",)
FEED_FAULTS = ("duplicate", "reorder", "replay", "republish")
WORKER_TAG = "soak/worker"
RETRY_TAG = "dagster/retry_number"
MAX_RETRIES = 2


def http(method: str, url: str, body: Any = None, timeout: float = 120) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    env: dict[str, str]

    @classmethod
    def start(
        cls, scenario: Path, drop: Path, seed: int, env: dict[str, str], log: Any
    ) -> SandboxProcess:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "serve", str(scenario), str(drop), "--seed", str(seed)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox process did not start")
        return cls(process, json.loads(line))

    @property
    def acs(self) -> str:
        return self.env["ACS_KHAOS_ACS__BASE_URL"]

    @property
    def khaos(self) -> str:
        return self.env["ACS_KHAOS_KHAOS__BASE_URL"]

    def truth(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return (
            http("GET", f"{self.acs}/_sandbox/truth"),
            http("GET", f"{self.khaos}/_sandbox/truth"),
            http("GET", f"{self.acs}/_sandbox/soak/units"),
        )

    def faults_on(self, rate: float, stall_s: float, late_apply_s: float) -> None:
        """Call faults on every operation of both systems; their union is ``rate``."""
        for kind in FEED_FAULTS:
            http(
                "POST",
                f"{self.acs}/_sandbox/faults",
                {"operation": "list_despatches", "kind": kind, "rate": 0.05},
            )
        per_rule = 1 - (1 - rate) ** (1 / (len(CALL_FAULTS) + 1))
        rules = [(b, k) for b in (self.acs, self.khaos) for k in CALL_FAULTS]
        rules += [(self.khaos, k) for k in KHAOS_ONLY] + [(self.acs, k) for k in ACS_ONLY]
        for base, kind in rules:
            stalls = kind in ("latency", "timeout_before", "timeout_after", "late_apply")
            http(
                "POST",
                f"{base}/_sandbox/faults",
                {
                    "operation": "*",
                    "kind": kind,
                    "rate": per_rule,
                    "latency_s": stall_s if stalls else 0,
                    "retry_after": 2,
                    "apply_after_s": late_apply_s,
                },
            )

    def faults_off(self) -> None:
        for base in (self.acs, self.khaos):
            http("DELETE", f"{base}/_sandbox/faults")

    def fault_stats(self) -> dict[str, Any]:
        return {
            "acs": http("GET", f"{self.acs}/_sandbox/faults/stats"),
            "khaos": http("GET", f"{self.khaos}/_sandbox/faults/stats"),
        }

    def now(self) -> datetime:
        return datetime.fromisoformat(http("GET", f"{self.acs}/_sandbox/clock")["now"])

    def advance(self, minutes: float) -> datetime:
        answer = http("POST", f"{self.acs}/_sandbox/clock/advance?minutes={minutes}")
        return datetime.fromisoformat(answer["now"])

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Worker:
    pid: int
    number: int
    job: str
    kill_at: float | None
    log: Path
    request: dict[str, Any]


@dataclass
class Figures:
    seed: int
    started: float = field(default_factory=time.monotonic)
    runs: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    pg_restarts: int = 0
    ticks: Counter[str] = field(default_factory=Counter)
    tick_errors: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    cancelled: int = 0
    returns: int = 0
    days: float = 0.0
    first_failure_s: float | None = None
    stock_events: Counter[str] = field(default_factory=Counter)  # brand side (soakbrand)


class Launcher:
    """Starts run requests as run worker processes; kills some of them.

    The workers are forked from a warm process (``chaos.py forkserver``) that has already
    imported Dagster and the definitions, as a daemon's run launcher starts each run in a
    process of its own; without it every run pays seconds of imports on a shared machine.
    """

    def __init__(
        self,
        env: dict[str, str],
        work: Path,
        rng: random.Random,
        figures: Figures,
        kill_share: float,
        max_running: int,
    ) -> None:
        self.env, self.work, self.rng, self.figures = env, work, rng, figures
        self.kill_share, self.max_running = kill_share, max_running
        self.running: list[Worker] = []
        self.count = 0
        (work / "runs").mkdir(exist_ok=True)
        self.server = subprocess.Popen(
            [sys.executable, str(SCRIPT), "forkserver"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(work / "forkserver.log").open("wb"),
            text=True,
        )
        self.exits: dict[int, int] = {}
        self.pids: dict[int, int] = {}
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.server.stdout is not None
        for line in self.server.stdout:
            message = json.loads(line)
            with self._ready:
                if "started" in message:
                    self.pids[message["started"]] = message["pid"]
                else:
                    self.exits[message["pid"]] = message["status"]
                self._ready.notify_all()

    def launch(
        self, job: str, partition: str | None, tags: dict[str, str], run_config: dict
    ) -> None:
        self.count += 1
        extra: dict[str, str] = {}
        kill_at = None
        if self.rng.random() < self.kill_share:
            if self.rng.random() < 0.5:
                point = self.rng.choice(CRASH_POINTS)
                extra["ACS_KHAOS_CRASH_AT"] = f"{point}:{self.rng.randint(1, 4)}"
            else:
                kill_at = time.monotonic() + self.rng.uniform(0.5, 8.0)
        request = {
            "job": job,
            "partition": partition,
            "run_config": run_config,
            "tags": {**tags, WORKER_TAG: str(self.count)},
        }
        log = self.work / "runs" / f"{self.count:05d}-{job}.log"
        assert self.server.stdin is not None
        self.server.stdin.write(
            json.dumps({"n": self.count, "request": request, "env": extra, "log": str(log)}) + "\n"
        )
        self.server.stdin.flush()
        with self._ready:
            self._ready.wait_for(lambda: self.count in self.pids, timeout=60)
            pid = self.pids[self.count]
        self.running.append(Worker(pid, self.count, job, kill_at, log, request))
        self.figures.runs[job] += 1

    def poll(self, instance: Any) -> None:
        for worker in list(self.running):
            with self._lock:
                status = self.exits.get(worker.pid)
            if status is None and worker.kill_at is not None and time.monotonic() >= worker.kill_at:
                os.kill(worker.pid, signal.SIGKILL)
                worker.kill_at = None
            if status is None:
                continue
            self.running.remove(worker)
            text = worker.log.read_text(errors="replace") if worker.log.exists() else ""
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 137 and "crashpoint" in text:
                point = text.split("crashpoint ", 1)[1].split(" ", 1)[0]
                self.figures.kills[f"crash point {point}"] += 1
            elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                self.figures.kills["SIGKILL run worker"] += 1
            else:
                ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
                self.figures.outcomes[f"{worker.job}: {'ok' if ok else 'failed'}"] += 1
                if not ok:
                    self._retry(worker)
                continue
            _mark_dead_runs_failed(instance, worker.number)
            self._retry(worker)

    def _retry(self, worker: Worker) -> None:
        """deploy/dagster.yaml's ``run_retries`` (max 2): the daemon re-executes a failed run."""
        tries = int(worker.request["tags"].get(RETRY_TAG, "0"))
        if tries >= MAX_RETRIES:
            return
        tags = {**worker.request["tags"], RETRY_TAG: str(tries + 1)}
        self.figures.runs["retries (run_retries)"] += 1
        self.launch(worker.job, worker.request["partition"], tags, worker.request["run_config"])

    def wait_below(self, instance: Any, limit: int, budget_s: float) -> None:
        deadline = time.monotonic() + budget_s
        while True:
            self.poll(instance)
            if len(self.running) <= limit or time.monotonic() >= deadline:
                return
            time.sleep(0.1)

    def kill_all(self) -> None:
        for worker in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        if self.server.stdin:
            self.server.stdin.close()
        self.server.wait(30)


def fork_server() -> int:
    """``chaos.py forkserver``: imports once, then forks one run worker per request."""
    import logging

    from dagster import DagsterInstance  # noqa: F401  (imported before forking)

    from acs_khaos_dagster.definitions import defs  # noqa: F401

    logging.disable(logging.NOTSET)
    out_lock = threading.Lock()

    def say(message: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            say({"pid": pid, "status": status})

    threading.Thread(target=reap, daemon=True).start()
    for line in sys.stdin:
        message = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                fd = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, 2)
                os.environ.update(message["env"])
                code = run_worker(json.dumps(message["request"]))
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        say({"started": message["n"], "pid": pid})
    return 0


def _mark_dead_runs_failed(instance: Any, number: int) -> None:
    """What run monitoring does for a run whose worker died."""
    from dagster import DagsterRunStatus, RunsFilter

    try:
        runs = instance.get_runs(filters=RunsFilter(tags={WORKER_TAG: str(number)}))
        for run in runs:
            if run.status in (
                DagsterRunStatus.STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.NOT_STARTED,
            ):
                instance.report_run_failed(run, "run worker killed (soak)")
    except Exception:  # PostgreSQL may be down: the next kill's clean-up retries nothing
        pass


def run_worker(raw: str) -> int:
    """``chaos.py run``: one Dagster run of a request, in this process (the one killed)."""
    from dagster import DagsterInstance

    from acs_khaos_dagster.definitions import defs

    request = json.loads(raw)
    job = defs.resolve_job_def(request["job"])
    config = {**QUIET, **(request["run_config"] or {})}
    result = job.execute_in_process(
        instance=DagsterInstance.get(),
        partition_key=request["partition"],
        tags=request["tags"],
        run_config=config,
        raise_on_error=False,
    )
    return 0 if result.success else 1


class Ticker:
    """The daemon's part: sensor and schedule ticks against the instance."""

    def __init__(self, launcher: Launcher, figures: Figures) -> None:
        import logging

        from dagster import DagsterInstance

        from acs_khaos_dagster.definitions import defs

        # The ticks' own log lines (alerts with no channel configured, skip reasons) would
        # drown the soak's progress; failed ticks are counted instead.
        logging.disable(logging.WARNING)
        self.defs = defs
        self.repo = defs.get_repository_def()
        self.instance = DagsterInstance.get()
        self.launcher = launcher
        self.figures = figures
        self.cursors: dict[str, str | None] = {}
        self.run_keys: dict[str, set[str]] = {}
        self.last_tick: datetime | None = None

    def tick(self, now: datetime) -> int:
        from dagster import build_schedule_context, build_sensor_context
        from dagster._utils.schedules import cron_string_iterator

        launched = 0
        for sensor in self.repo.sensor_defs:
            try:
                with build_sensor_context(
                    instance=self.instance,
                    cursor=self.cursors.get(sensor.name),
                    resources=self.defs.resources,
                    repository_def=self.repo,
                ) as ctx:
                    data = sensor.evaluate_tick(ctx)
            except Exception as exc:  # the daemon logs a failed tick and tries next time
                self.figures.tick_errors[f"{sensor.name}: {type(exc).__name__}"] += 1
                continue
            self.figures.ticks[sensor.name] += 1
            self.cursors[sensor.name] = data.cursor
            seen = self.run_keys.setdefault(sensor.name, set())
            for request in data.run_requests or []:
                if request.run_key and request.run_key in seen:
                    continue
                if request.run_key:
                    seen.add(request.run_key)
                job = request.job_name or sensor.targets[0].job_name
                self.launcher.launch(
                    job, request.partition_key, dict(request.tags), request.run_config or {}
                )
                launched += 1
        previous = self.last_tick or now - timedelta(minutes=1)
        self.last_tick = now
        for schedule in self.repo.schedule_defs:
            ticks = []
            for moment in cron_string_iterator(
                previous.timestamp(), schedule.cron_schedule, schedule.execution_timezone
            ):
                if moment.timestamp() > now.timestamp():
                    break
                if moment.timestamp() > previous.timestamp():
                    ticks.append(moment)
            # One run per schedule and step: several ticks passed in one step of simulated
            # time would start identical runs back to back.
            if not ticks:
                continue
            try:
                with build_schedule_context(
                    instance=self.instance,
                    scheduled_execution_time=ticks[-1],
                    resources=self.defs.resources,
                    repository_def=self.repo,
                ) as ctx:
                    data = schedule.evaluate_tick(ctx)
            except Exception as exc:
                self.figures.tick_errors[f"{schedule.name}: {type(exc).__name__}"] += 1
                continue
            self.figures.ticks[schedule.name] += 1
            for request in data.run_requests or []:
                self.launcher.launch(
                    schedule.job_name,
                    request.partition_key,
                    dict(request.tags),
                    request.run_config or {},
                )
                launched += 1
        return launched


def outbox_counts(store_url: str) -> Counter[str]:
    from acs_khaos_dagster.store import Store

    with Store.open(store_url, migrate=False) as store:
        status = store.outbox.status()
    counts: Counter[str] = Counter()
    for (_, state), n in status.counts.items():
        counts[state] += n
    return counts


def dagster_yaml(home: Path, port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "storage:\n  postgres:\n    postgres_db:\n      scheme: postgresql+psycopg2\n"
        f"      hostname: 127.0.0.1\n      port: {port}\n      username: postgres\n"
        "      password: ''\n      db_name: dagster\n",
        encoding="utf-8",
    )


def integration_env(
    sandbox_env: dict[str, str], work: Path, store_url: str, read_timeout_s: float
) -> dict[str, str]:
    """Production settings (defaults) except the client's wall-clock read timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
    env.update(sandbox_env)
    env.update(
        {
            "ACS_KHAOS_DATA_DIR": str(work / "data"),
            "ACS_KHAOS_DATABASE_URL": store_url,
            "ACS_KHAOS_HTTP__READ_TIMEOUT_S": str(read_timeout_s),
            "ACS_KHAOS_LOG_LEVEL": "WARNING",
            "DAGSTER_HOME": str(work / "dagster_home"),
        }
    )
    return env
