"""Run workers, standalone dispatchers and the daemon, each a process of its own, and the
faults the soak does to them: SIGKILL at a random moment, death at an outbox crash point,
and SIGSTOP while holding claims (frozen past the lease in simulated time, then SIGCONT).

Every process is forked from a warm process (``chaos.py forkserver``) that has already
imported Dagster and the definitions, as a daemon's run launcher starts each run in a
process of its own; without it every run pays seconds of imports on a shared machine.
The launcher also does what Dagster's run monitoring and run retries do for a worker that
died: its run is marked failed and re-executed up to twice (deploy/dagster.yaml).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soak.loop import SCRIPT, Figures

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
CRASH_POINTS = ("after_record", "after_claim", "after_send", "before_mark_done")
WORKER_TAG = "soak/worker"
RETRY_TAG = "dagster/retry_number"
MAX_RETRIES = 2
FREEZE_ENV = "SOAK_FREEZE_AT"
# A frozen run of these jobs would hold back the sensor that starts the dispatch runs which
# recover its claims ("a dispatch run is already on its way"): they are killed, not frozen.
NOT_FROZEN = ("outbox_dispatch_job",)


@dataclass
class Worker:
    pid: int
    number: int
    job: str
    kill_at: float | None
    log: Path
    request: dict[str, Any]
    freeze: bool = False
    frozen_at_step: int | None = None
    standalone: bool = False


@dataclass
class Faults:
    """How often the launcher hurts what it starts."""

    kill_share: float = 0.2  # run workers SIGKILLed or killed at a crash point
    freeze_share: float = 0.1  # run workers frozen with claims (SIGSTOP), then thawed
    freeze_steps: int = 3  # steps of simulated time frozen: several leases
    dispatcher_kill_share: float = 0.5  # standalone dispatchers SIGKILLed / frozen
    # Runs whose claims are the ones a second send would show in Khaos's truth (a customer
    # return twice is two credit notes; a despatch twice is refused, "nothing left to
    # ship"): their first attempt is frozen at this share before any other fault is rolled
    # (a run retry is not), so the pre-send claim check is tested where the oracles can see
    # it fail, even in a soak with one returns file.
    freeze_first: tuple[tuple[str, float], ...] = (("returns_flow", 1.0),)


class Launcher:
    def __init__(
        self, env: dict[str, str], work: Path, rng: random.Random, figures: Figures, faults: Faults
    ) -> None:
        self.env, self.work, self.rng, self.figures, self.faults = env, work, rng, figures, faults
        self.running: list[Worker] = []
        self.count = 0
        self.step = 0
        self.quiescent = False  # from quiescence on, a process that froze is thawed at once
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
        self.cpu: dict[int, float] = {}  # CPU seconds of each process that ended
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
                    self.cpu[message["pid"]] = message["cpu"]
                self._ready.notify_all()

    def fork(self, what: str, payload: Any, env: dict[str, str], log: Path) -> int:
        """One process forked from the warm server; its pid."""
        self.count += 1
        number = self.count
        message = {"n": number, "what": what, "payload": payload, "env": env, "log": str(log)}
        assert self.server.stdin is not None
        self.server.stdin.write(json.dumps(message) + "\n")
        self.server.stdin.flush()
        # The first fork waits for the server's imports: minutes on a crowded machine.
        with self._ready:
            if not self._ready.wait_for(lambda: number in self.pids, timeout=900):
                raise RuntimeError(f"the fork server started no process in 900 s ({what})")
            return self.pids[number]

    def exit_status(self, pid: int) -> int | None:
        with self._lock:
            return self.exits.get(pid)

    def launch(
        self, job: str, partition: str | None, tags: dict[str, str], run_config: dict
    ) -> None:
        extra: dict[str, str] = {}
        kill_at = None
        freeze = False
        roll = self.rng.random()
        first = dict(self.faults.freeze_first).get(job, 0.0) if RETRY_TAG not in tags else 0.0
        if first and self.rng.random() < first:
            extra[FREEZE_ENV] = "after_claim:1"
            freeze = True
        elif roll < self.faults.kill_share:
            if self.rng.random() < 0.5:
                point = self.rng.choice(CRASH_POINTS)
                extra["ACS_KHAOS_CRASH_AT"] = f"{point}:{self.rng.randint(1, 4)}"
            else:
                kill_at = time.monotonic() + self.rng.uniform(0.5, 8.0)
        elif roll < self.faults.kill_share + self.faults.freeze_share and job not in NOT_FROZEN:
            extra[FREEZE_ENV] = "after_claim:1"
            freeze = True
        request = {
            "job": job,
            "partition": partition,
            "run_config": run_config,
            "tags": {**tags, WORKER_TAG: str(self.count + 1)},
        }
        log = self.work / "runs" / f"{self.count + 1:05d}-{job}.log"
        pid = self.fork("run", request, extra, log)
        self.running.append(Worker(pid, self.count, job, kill_at, log, request, freeze))
        self.figures.runs[job] += 1

    def dispatcher(self) -> None:
        """``acs-khaos outbox dispatch``, as an operator or a cron job would run it."""
        extra: dict[str, str] = {}
        kill_at = None
        freeze = False
        if self.rng.random() < self.faults.dispatcher_kill_share:
            if self.rng.random() < 0.5:
                kill_at = time.monotonic() + self.rng.uniform(0.2, 4.0)
            else:
                extra[FREEZE_ENV] = "after_claim:1"
                freeze = True
        log = self.work / "runs" / f"{self.count + 1:05d}-dispatcher.log"
        pid = self.fork("dispatch", None, extra, log)
        worker = Worker(pid, self.count, "standalone dispatcher", kill_at, log, {}, freeze)
        worker.standalone = True
        self.running.append(worker)
        self.figures.runs["standalone dispatcher (acs-khaos outbox dispatch)"] += 1

    def busy(self) -> int:
        """Processes at work: a frozen one holds no slot (the clock goes on without it)."""
        return sum(1 for w in self.running if w.frozen_at_step is None)

    def poll(self, instance: Any) -> None:
        for worker in list(self.running):
            status = self.exit_status(worker.pid)
            if status is None and worker.kill_at is not None and time.monotonic() >= worker.kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                worker.kill_at = None
            if status is None and worker.freeze:
                self._freeze_or_thaw(worker)
            if status is None:
                continue
            self.running.remove(worker)
            with self._lock:
                self.figures.cpu[worker.job] += self.cpu.get(worker.pid, 0.0)
            text = worker.log.read_text(errors="replace") if worker.log.exists() else ""
            what = "standalone dispatcher" if worker.standalone else "run worker"
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 137 and "crashpoint" in text:
                point = text.split("crashpoint ", 1)[1].split(" ", 1)[0]
                self.figures.kills[f"crash point {point} ({what})"] += 1
            elif os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                self.figures.kills[f"SIGKILL {what}"] += 1
            else:
                ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
                self.figures.outcomes[f"{worker.job}: {'ok' if ok else 'failed'}"] += 1
                if not ok and not worker.standalone:
                    self._retry(worker)
                continue
            if not worker.standalone:
                _mark_dead_runs_failed(instance, worker.number)
                self._retry(worker)

    def _freeze_or_thaw(self, worker: Worker) -> None:
        if worker.frozen_at_step is None and _stopped(worker.pid):
            worker.frozen_at_step = self.step
        if worker.frozen_at_step is not None and (
            self.quiescent or self.step >= worker.frozen_at_step + self.faults.freeze_steps
        ):
            self.thaw(worker)

    def thaw(self, worker: Worker) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGCONT)
        kind = "standalone dispatcher" if worker.standalone else f"run worker ({worker.job})"
        self.figures.freezes[f"SIGSTOP {kind} holding claims, SIGCONT after the lease"] += 1
        worker.freeze = False
        worker.frozen_at_step = None

    def thaw_all(self) -> None:
        self.quiescent = True
        for worker in self.running:
            if worker.freeze:
                self._freeze_or_thaw(worker)

    def _retry(self, worker: Worker) -> None:
        """deploy/dagster.yaml's ``run_retries`` (max 2): a failed run is re-executed."""
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
            if self.busy() <= limit or time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def kill_all(self) -> None:
        for worker in self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        if self.server.stdin:
            self.server.stdin.close()
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def fork_server() -> int:
    """``chaos.py forkserver``: imports once, then forks one process per request."""
    import logging

    from dagster import DagsterInstance  # noqa: F401  (imported before forking)

    from acs_khaos_dagster.definitions import defs  # noqa: F401

    logging.disable(logging.NOTSET)
    out_lock = threading.Lock()
    protocol = os.fdopen(os.dup(1), "w")

    def say(message: dict[str, Any]) -> None:
        with out_lock:
            protocol.write(json.dumps(message) + "\n")
            protocol.flush()

    def reap() -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            say({"pid": pid, "status": status, "cpu": usage.ru_utime + usage.ru_stime})

    threading.Thread(target=reap, daemon=True).start()
    for line in sys.stdin:
        message = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(message)
        say({"started": message["n"], "pid": pid})
    return 0


def _child(message: dict[str, Any]) -> None:
    code = 70
    try:
        fd = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)  # the server's stdout is the protocol: never write there
        os.dup2(fd, 2)
        os.environ.update(message["env"])
        if os.environ.get(FREEZE_ENV):
            _freeze_at(os.environ[FREEZE_ENV])
        if message["what"] == "run":
            code = run_worker(message["payload"])
        elif message["what"] == "dispatch":
            code = _standalone_dispatcher()
        else:
            from soak.daemon import daemon_main

            code = daemon_main(message["payload"])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _freeze_at(spec: str) -> None:
    """SIGSTOP this process the N-th time the dispatcher hands out a claim of a kind that is
    not idempotent at its target (a despatch, a customer return, a stock move...).

    It then holds freshly claimed effects, with nothing sent, while the soak moves simulated
    time past their lease: another dispatcher recovers and sends them. When the soak sends
    SIGCONT, this one carries on exactly where it stopped, about to send, and only the
    pre-send claim check stands between it and a second send.
    """
    from acs_khaos_dagster.store.dispatcher import running

    name, _, nth = spec.partition(":")
    original = running.crashpoint
    hits = {"n": 0}

    def point(at: str) -> None:
        # Only where a second send would do harm: the claim being handed out is of a kind
        # the target does not take twice harmlessly (asked of the handing-out dispatcher).
        caller = sys._getframe(1).f_locals
        claim, dispatcher = caller.get("claim"), caller.get("self")
        harmful = (
            claim is not None and dispatcher is not None and not dispatcher._idempotent(claim.kind)
        )
        if at == name and harmful:
            hits["n"] += 1
            if hits["n"] == int(nth or 1):
                sys.stderr.write(f"soak: frozen at {at} (hit {hits['n']})\n")
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGSTOP)
                sys.stderr.write("soak: thawed\n")
                sys.stderr.flush()
        original(at)

    running.crashpoint = point


def _standalone_dispatcher() -> int:
    from acs_khaos_dagster.cli import app

    try:
        app(["outbox", "dispatch"], standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
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
    except Exception:  # PostgreSQL may be down: the run stays as it is, as after a real crash
        pass


def run_worker(request: dict[str, Any]) -> int:
    """One Dagster run of a request, in this process (the one killed)."""
    from dagster import DagsterInstance

    from acs_khaos_dagster.definitions import defs

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
