"""Despatch latency through the Dagster daemon, on the instance ``make dev`` uses.

    .venv/bin/python scripts/bench_despatch_latency.py --daemon --tiny   # a minute or two
    .venv/bin/python scripts/bench_despatch_latency.py --daemon          # small scenario

What the in-process mode of ``bench_despatch_latency.py`` leaves out, measured here:

- the sandbox runs in a process of its own (``bench_sandbox_server.py``), the in-process
  mode's ``Watcher`` polling both simulators inside it (``/_sandbox/bench/watch``);
- a fresh ``DAGSTER_HOME`` holding the repository's ``dagster.yaml``, the file ``make``
  copies for ``make dev`` (SQLite, the run queue with one run at a time, pools of one);
- ``dagster-daemon run -w workspace.yaml`` as ``make dev`` starts it, with
  ``ACS_KHAOS_AUTOMATION=running``: every sensor and schedule on, as production has them,
  so the others' runs compete for the single run slot as they would;
- a fresh store (``ACS_KHAOS_DATA_DIR``) and the default settings, pointed at the sandbox.

Orders are released first (a child process materializes the products and the release on
the same instance), the daemon starts and the bench waits for ``acs_despatch_sensor``'s
first tick; then simulated time moves as in the in-process mode. Each despatch run's
timeline comes from the instance's event log: created (the sensor's tick), enqueued,
starting (the queue daemon took it and the launcher spawns the run worker), started (the
run worker has imported the code location), first step, end.

``BENCH_DAEMON_YAML=path`` replaces the repository's ``dagster.yaml`` (to try a setting,
such as the run queue's ``dequeue_interval_seconds``); ``BENCH_DAEMON_SENSOR_INTERVAL_S=n``
sets the despatch sensor's interval instead of the default; ``BENCH_DAEMON_KEEP=dir`` keeps
the instance, the store and the daemon's log there.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_despatch_latency import drive_clock, percentile, release_orders

ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(__file__).with_name("bench_sandbox_server.py")
DESPATCH_JOB = "despatch_posting_job"
SENSOR = "acs_despatch_sensor"


class RemoteBox:
    """What ``drive_clock`` needs of a sandbox, over the sandbox process's control route."""

    def __init__(self, http: object, acs_url: str) -> None:
        self.http = http
        self.acs_url = acs_url

    def advance(self, delta: timedelta) -> None:
        minutes = delta.total_seconds() / 60
        self.http.post(f"{self.acs_url}/_sandbox/clock/advance", params={"minutes": minutes})  # type: ignore[attr-defined]


def _sensor_ticks(instance: object) -> list[object]:
    from dagster._core.scheduler.instigation import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):  # type: ignore[attr-defined]
        if state.instigator_name == SENSOR:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000)  # type: ignore[attr-defined]
            return sorted(ticks, key=lambda t: t.timestamp)
    return []


def _in_progress(instance: object) -> set[str]:
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    return {r.run_id for r in instance.get_runs(filters=RunsFilter(statuses=statuses))}  # type: ignore[attr-defined]


def _timelines(instance: object) -> list[dict[str, object]]:
    """Each run's job, status and the wall time of each stage, from the event log."""
    from dagster import DagsterEventType

    wanted = {
        DagsterEventType.RUN_ENQUEUED: "enqueued",
        DagsterEventType.RUN_STARTING: "starting",
        DagsterEventType.RUN_START: "started",
        DagsterEventType.STEP_START: "first_step",
        DagsterEventType.STEP_FAILURE: "error",
        DagsterEventType.RUN_FAILURE: "error",
    }
    rows = []
    for record in instance.get_run_records():  # type: ignore[attr-defined]
        run = record.dagster_run
        row: dict[str, object] = {
            "id": run.run_id,
            "job": run.job_name,
            "status": run.status.value,
            "created": record.create_timestamp.timestamp(),
            "ended": record.end_time,
        }
        for entry in instance.all_logs(run.run_id, of_type=set(wanted)):  # type: ignore[attr-defined]
            key = wanted[entry.dagster_event.event_type]
            if key == "error":
                error = getattr(entry.dagster_event.event_specific_data, "error", None)
                text = error.message if error else entry.dagster_event.message
                row.setdefault(key, f"{run.job_name}: {str(text).strip()[:300]}")
            else:
                row.setdefault(key, entry.timestamp)
        rows.append(row)
    return sorted(rows, key=lambda r: r["created"])  # type: ignore[arg-type,return-value]


def _breakdown(
    appeared: dict[str, float], posted: dict[str, float], runs: list[dict[str, object]]
) -> list[dict[str, float]]:
    """Per posted event: where its wait went, stage by stage (wall seconds)."""
    despatch = [r for r in runs if r["job"] == DESPATCH_JOB and "started" in r]
    out = []
    for shipment, at in posted.items():
        if shipment not in appeared:
            continue
        # The run that posted it: the last one started before the posting was seen.
        owner = [r for r in despatch if r["started"] <= at]  # type: ignore[operator]
        if not owner:
            continue
        run = owner[-1]
        seen = appeared[shipment]
        created = max(float(run["created"]), seen)  # type: ignore[arg-type]
        starting = max(float(run.get("starting", created)), created)  # type: ignore[arg-type]
        out.append(
            {
                "total": at - seen,
                "to_tick": created - seen,
                "queue": starting - created,
                "launch": float(run["started"]) - starting,  # type: ignore[arg-type]
                "run_to_post": at - float(run["started"]),  # type: ignore[arg-type]
            }
        )
    return out


def _release(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "--release"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"order release failed:\n{done.stderr[-3000:]}")


def _stop(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM to the daemon's process group (its code server and run workers)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


def measure_daemon(
    scenario: Path, work: Path, steps: list[tuple[float, timedelta]], linger_s: float
) -> dict[str, object]:
    import httpx
    from dagster import DagsterInstance

    home = work / "dagster_home"
    home.mkdir(parents=True)
    # What `make setup` copies; BENCH_DAEMON_YAML tries another instance file (what-ifs).
    shutil.copy(os.environ.get("BENCH_DAEMON_YAML", ROOT / "dagster.yaml"), home / "dagster.yaml")
    server = subprocess.Popen(
        [sys.executable, str(SERVER), str(scenario), str(work / "acs_drop")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    daemon: subprocess.Popen | None = None
    try:
        sandbox_env = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
        env.update(sandbox_env)
        env["DAGSTER_HOME"] = str(home)
        env["ACS_KHAOS_DATA_DIR"] = str(work / "data")
        env["ACS_KHAOS_AUTOMATION"] = "running"
        if interval := os.environ.get("BENCH_DAEMON_SENSOR_INTERVAL_S"):  # a what-if
            env["ACS_KHAOS_ORDERS__DESPATCH_SENSOR_INTERVAL_S"] = interval
        # A developer's make dev caches bytecode: each run worker imports the code location
        # from .pyc, not from source (this sandbox's shell may say otherwise).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _release(env)
        acs = sandbox_env["ACS_KHAOS_ACS__BASE_URL"]
        log = (work / "daemon.log").open("w")
        daemon_started = time.monotonic()
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        instance = DagsterInstance.from_config(str(home))
        while not _sensor_ticks(instance):
            if daemon.poll() is not None or time.monotonic() - daemon_started > 300:
                raise RuntimeError("the daemon never ticked " + SENSOR)
            time.sleep(0.5)
        first_tick_s = time.monotonic() - daemon_started
        with httpx.Client(timeout=600) as http:
            http.post(f"{acs}/_sandbox/bench/watch").raise_for_status()
            done = threading.Event()
            driver = threading.Thread(
                target=drive_clock, args=(RemoteBox(http, acs), steps, done), daemon=True
            )
            started = time.monotonic()
            driver.start()
            deadline = started + sum(w for w, _ in steps) + linger_s
            while time.monotonic() < deadline:
                time.sleep(1.0)
                seen = http.get(f"{acs}/_sandbox/bench/watched").json()
                caught_up = seen["appeared"] and set(seen["appeared"]) <= set(seen["posted"])
                if caught_up and not driver.is_alive():
                    break
            done.set()
            driver.join()
            # Let the last runs end, so their end time is in the instance.
            settle = time.monotonic() + 60
            while _in_progress(instance) and time.monotonic() < settle:
                time.sleep(0.5)
            seen = http.get(f"{acs}/_sandbox/bench/watched").json()
            wall_s = time.monotonic() - started
        cut = _in_progress(instance)  # ended (or left queued) by stopping the daemon
        _stop(daemon)
        if os.environ.get("BENCH_DAEMON_KEEP"):  # the instance and the daemon's log
            shutil.copytree(work, os.environ["BENCH_DAEMON_KEEP"], dirs_exist_ok=True)
        # Monotonic time is the machine's (Linux): the sandbox's and ours agree.
        offset = time.time() - time.monotonic()
        appeared = {k: v + offset for k, v in seen["appeared"].items()}
        posted = {k: v + offset for k, v in seen["posted"].items()}
        runs = [r for r in _timelines(instance) if r["id"] not in cut]
        ticks = _sensor_ticks(instance)
        instance.dispose()
    finally:
        if daemon is not None:
            _stop(daemon)
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=60)
    result = summarise(appeared, posted, seen["despatch_refs"], runs, ticks, first_tick_s, wall_s)
    return {**result, "cut_at_stop": len(cut)}


def summarise(
    appeared: dict[str, float],
    posted: dict[str, float],
    refs: list[str],
    runs: list[dict[str, object]],
    ticks: list[object],
    first_tick_s: float,
    wall_s: float,
) -> dict[str, object]:
    from acs_khaos_dagster.config import OrderSettings

    delays = [posted[s] - t for s, t in appeared.items() if s in posted]
    ended = [r for r in runs if r.get("ended") and r.get("started")]
    despatch = [r for r in ended if r["job"] == DESPATCH_JOB]

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def stages(rows: list[dict[str, object]]) -> dict[str, float]:
        keys = ("created", "enqueued", "starting", "started", "first_step", "ended")
        spans = {f"{a}->{b}": [] for a, b in itertools.pairwise(keys)}
        for row in rows:
            for a, b in itertools.pairwise(keys):
                if row.get(a) and row.get(b):
                    spans[f"{a}->{b}"].append(float(row[b]) - float(row[a]))  # type: ignore[arg-type]
        return {k: median(v) for k, v in spans.items()}

    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(ticks)]  # type: ignore[attr-defined]
    evals = [t.end_timestamp - t.timestamp for t in ticks if t.end_timestamp]  # type: ignore[attr-defined]
    parts = _breakdown(appeared, posted, runs)
    by_job: dict[str, int] = {}
    for row in runs:
        by_job[str(row["job"])] = by_job.get(str(row["job"]), 0) + 1
    return {
        "mode": "daemon",
        "interval_s": int(
            os.environ.get(
                "BENCH_DAEMON_SENSOR_INTERVAL_S", OrderSettings().despatch_sensor_interval_s
            )
        ),
        "events": len(appeared),
        "posted": len(delays),
        "duplicates_in_khaos": len(refs) - len(set(refs)),
        "runs": len([r for r in runs if r["job"] == DESPATCH_JOB]),
        "runs_by_job": by_job,
        "failed_runs": [
            r.get("error", f"{r['job']} {r['status']}") for r in runs if r["status"] != "SUCCESS"
        ],
        "run_s_p50": median([float(r["ended"]) - float(r["started"]) for r in despatch]),  # type: ignore[arg-type]
        "launch_s_p50": median([float(r["started"]) - float(r["created"]) for r in despatch]),  # type: ignore[arg-type]
        "stages_p50": stages(despatch),
        "tick_gap_p50": median(gaps),
        "tick_gap_max": max(gaps) if gaps else float("nan"),
        "tick_eval_p50": median(evals),
        "breakdown_p50": {k: median([p[k] for p in parts]) for k in (parts[0] if parts else {})},
        "breakdown_p95_event": max(parts, key=lambda p: p["total"]) if parts else {},
        "p50": percentile(delays, 0.50),
        "p95": percentile(delays, 0.95),
        "max": max(delays) if delays else float("nan"),
        "first_tick_s": first_tick_s,
        "wall_s": wall_s,
    }


def report_lines(result: dict[str, object]) -> list[str]:
    """The daemon-only lines of the report: where the time went."""

    def fmt(values: object) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in dict(values).items())  # type: ignore[call-overload]

    return [
        f"Runs on the instance: {fmt_counts(result['runs_by_job'])}; failed: "
        f"{result['failed_runs'] or 'none'}; {result['cut_at_stop']} queued or running when the "
        "bench stopped the daemon (not counted). Daemon start to the sensor's first tick "
        f"{result['first_tick_s']:.1f} s (not counted).",
        f"Despatch runs, median seconds per stage: {fmt(result['stages_p50'])}; "
        f"launch delay (created->started) {result['launch_s_p50']:.2f} s, run "
        f"(started->end) {result['run_s_p50']:.2f} s.",
        f"Sensor ticks: median gap {result['tick_gap_p50']:.2f} s (max "
        f"{result['tick_gap_max']:.2f} s), median evaluation {result['tick_eval_p50']:.2f} s.",
        f"Per event, median seconds: {fmt(result['breakdown_p50'])}; slowest event: "
        f"{fmt(result['breakdown_p95_event'])}.",
    ]


def fmt_counts(counts: object) -> str:
    return ", ".join(f"{job} {n}" for job, n in sorted(dict(counts).items())) or "none"  # type: ignore[call-overload]


if __name__ == "__main__" and sys.argv[1:] == ["--release"]:
    from dagster import DagsterInstance

    with DagsterInstance.get() as opened:
        release_orders(opened)
