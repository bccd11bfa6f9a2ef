"""Benchmark 4: the daily cycle through Dagster — first full load, then a steady-state day.

The sandbox runs in a process of its own (``bench_sandbox_server.py``) so its CPU is
read apart from /proc. A cycle is three runs, as production starts them:
``integration_cycle``, ``stock_snapshot_job`` for the day's file (the file sensor's) and
``stock_push_job`` (the batch schedule's). Each run is a process of its own, as the
daemon's run launcher starts each run in a run worker: it imports the code location and
executes the job on a shared temporary Dagster instance and a fresh SQLite store, with the
``ACS_KHAOS_*`` environment pointing at the sandbox. (Until 2026-12-07 all six runs went in
one process, so the steady day's peak counted what the first load's runs had left behind.)

* cycle 1, first full load: ACS writes its daily files at the scenario's start; every
  product, every released order and the full snapshot go through.
* cycle 2, steady state: simulated time moves 24 h (ACS picks, despatches, receives
  returns; Khaos's finance batch runs), ACS writes the day's files, one cycle runs:
  only changed SKUs are pushed, the day's despatches and returns are posted.

Per cycle: wall time, the runs' step time (sum of step durations from Dagster's events)
and the rest (each run process's start and import, and Dagster's orchestration), the run
processes' CPU, the sandbox's CPU, the largest peak RSS of the three run processes (and
each one's) and the slowest steps. With ``BENCH_PROFILE=/tmp/cycle`` each run is profiled
with pyinstrument into ``/tmp/cycle.<job>.<run>.txt``.

    .venv/bin/python scripts/bench_cycle.py --size small
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
TARGET_STEADY_S = 120.0  # issue 23, target 3 (was 300 s)
TARGET_PEAK_MIB = 1536
# Khaos imports one dispatcher keeps in flight (``outbox.import_concurrency``).
IMPORT_CONCURRENCY_VAR = "ACS_KHAOS_OUTBOX__IMPORT_CONCURRENCY"


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _step_seconds(instance: object, run_id: str) -> float:
    """Sum of the run's step durations (Dagster's own step stats)."""
    stats = instance.get_run_step_stats(run_id)  # type: ignore[attr-defined]
    return sum((s.end_time or 0) - (s.start_time or 0) for s in stats if s.start_time)


def _slowest_steps(instance: object, run_ids: list[str], top: int = 6) -> list[tuple[str, float]]:
    """The run's longest steps (Dagster's step stats): where a cycle's time goes."""
    stats = [
        (s.step_key, (s.end_time or 0) - (s.start_time or 0))
        for run_id in run_ids
        for s in instance.get_run_step_stats(run_id)  # type: ignore[attr-defined]
        if s.start_time
    ]
    return sorted(stats, key=lambda kv: -kv[1])[:top]


class _MemorySampler:
    """Per-step memory: a thread reads ``VmHWM`` and ``VmRSS`` every ``interval`` s and
    resets the high-water mark (``/proc/self/clear_refs``), so each sample is the peak
    since the one before, even across a long call that holds the GIL. A step's peak is
    the highest sample overlapping its start..end (Dagster's step stats); ``peak_mib``
    is the process's peak so far (the sampler's resets would hide it from ``VmHWM``).
    Where ``clear_refs`` cannot be written, samples are plain ``VmRSS``.
    """

    def __init__(self, interval: float = 0.02) -> None:
        import threading

        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (time, peak since last, rss)
        self.base_peak = common.peak_rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _read() -> tuple[float, float]:
        hwm = rss = 0.0
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        return hwm, rss

    def _run(self) -> None:
        resettable = True
        while not self._stop.wait(self.interval):
            hwm, rss = self._read()
            if resettable:
                try:
                    Path("/proc/self/clear_refs").write_text("5")
                except OSError:
                    resettable = False
            self.samples.append((time.time(), hwm if resettable else rss, rss))

    def peak_mib(self) -> float:
        return max([self.base_peak, self._read()[0], *(s[1] for s in self.samples)])

    def steps(self, instance: object, run_ids: list[str]) -> list[dict[str, object]]:
        """Each step's peak RSS and its RSS at start and end (MiB), in run order."""
        rows = []
        for run_id in run_ids:
            for stat in instance.get_run_step_stats(run_id):  # type: ignore[attr-defined]
                if not stat.start_time:
                    continue
                start, end = stat.start_time, stat.end_time or time.time()
                inside = [s for s in self.samples if start <= s[0] and s[0] - self.interval <= end]
                before = [s for s in self.samples if s[0] <= start]
                after = [s for s in self.samples if s[0] >= end]
                rows.append(
                    {
                        "step": stat.step_key,
                        "seconds": round(end - start, 2),
                        "peak_mib": round(max((s[1] for s in inside), default=0.0)),
                        "rss_start_mib": round(before[-1][2]) if before else None,
                        "rss_end_mib": round(after[0][2]) if after else None,
                    }
                )
        return rows

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _profiler(label: str) -> object | None:
    """A started pyinstrument profiler when ``BENCH_PROFILE`` names an output file stem."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    profiler.start()
    return profiler


def _partition_day(http: object, acs: str) -> str:
    """The snapshot day (Europe/London) of the sandbox's "now": the stock assets' partition."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    now = datetime.fromisoformat(http.get(f"{acs}/_sandbox/clock").json()["now"])  # type: ignore[attr-defined]
    return now.astimezone(ZoneInfo("Europe/London")).date().isoformat()


# The daily cycle as production runs it: the main job, then the snapshot ingestion for its
# day (what the file sensor starts), then the stock push (what the batch schedule starts).
CYCLE_JOBS = ("integration_cycle", "stock_snapshot_job", "stock_push_job")


def child_run(job_name: str, home: Path, partition: str | None) -> dict[str, object]:
    """One run in a process of its own, as the daemon's run launcher starts each run: the
    code location imported, the job executed on the shared instance; what it cost."""
    sampler = _MemorySampler()
    from dagster import DagsterInstance

    from acs_khaos_dagster.definitions import defs

    with DagsterInstance.local_temp(str(home)) as instance:
        profiler = _profiler(job_name)
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET, partition_key=partition
        )
        if profiler is not None:
            profiler.stop()
            name = f".{job_name}.{result.run_id[:8]}.txt"
            Path(os.environ["BENCH_PROFILE"]).with_suffix(name).write_text(
                profiler.output_text(unicode=False, color=False)
            )
        failures = [
            str(
                e.event_specific_data.error.message
                if getattr(e.event_specific_data, "error", None)
                else e.message
            )[:500]
            for e in result.all_events
            if e.is_failure
        ][:3]
        done = {
            "job": job_name,
            "success": result.success,
            "failures": failures,
            "steps_s": _step_seconds(instance, result.run_id),
            # The whole process: importing the code location is part of every run.
            "cpu_s": _self_cpu(),
            "peak_mib": sampler.peak_mib(),
            "slowest_steps": _slowest_steps(instance, [result.run_id]),
            "step_memory": sampler.steps(instance, [result.run_id]),
        }
    sampler.stop()
    return done


def _run_in_own_process(job_name: str, home: Path, partition: str | None) -> dict[str, object]:
    args = [str(Path(__file__)), "--run-job", job_name, "--home", str(home)]
    out, wall, _ = common.run_child([*args, *(["--partition", partition] if partition else [])])
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall}


def child_cycles(folder: Path) -> dict[str, object]:
    import httpx

    work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    os.environ["ACS_KHAOS_DATA_DIR"] = str(work / "data")
    os.environ["ACS_KHAOS_ACS__DROP_FOLDER"] = str(work / "data" / "acs_drop")
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("bench_sandbox_server.py")),
            str(folder),
            str(work / "data" / "acs_drop"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=common.ROOT,
    )
    try:
        env = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        os.environ.update(env)  # the run processes inherit it
        acs = env["ACS_KHAOS_ACS__BASE_URL"]
        home = work / "dagster_home"
        home.mkdir()
        results: dict[str, object] = {}
        with httpx.Client(timeout=3600) as http:
            for label, advance_minutes in (("first_full_load", 0), ("steady_state", 24 * 60)):
                sim_started = time.perf_counter()
                if advance_minutes:
                    http.post(f"{acs}/_sandbox/clock/advance", params={"minutes": advance_minutes})
                files = http.post(f"{acs}/_sandbox/bench/daily").json()["files"]
                simulated_day = time.perf_counter() - sim_started
                sandbox_cpu = _proc_cpu(server.pid)
                started = time.perf_counter()
                day = _partition_day(http, acs)
                runs = [
                    _run_in_own_process(job, home, day if job == "stock_snapshot_job" else None)
                    for job in CYCLE_JOBS
                ]
                wall = time.perf_counter() - started
                steps = sum(float(run["steps_s"]) for run in runs)  # type: ignore[arg-type]
                slowest = [step for run in runs for step in run["slowest_steps"]]  # type: ignore[union-attr]
                results[label] = {
                    "success": all(run["success"] for run in runs),
                    "failures": [f for run in runs for f in run["failures"]][:3],  # type: ignore[union-attr]
                    "files": files,
                    "wall_s": wall,
                    "steps_s": steps,
                    # Each run's process start and import of the code location included.
                    "orchestration_s": max(wall - steps, 0.0),
                    "integration_cpu_s": sum(float(run["cpu_s"]) for run in runs),  # type: ignore[arg-type]
                    "sandbox_cpu_s": _proc_cpu(server.pid) - sandbox_cpu,
                    # The largest of the runs' own peaks: each run is a process of its own.
                    "peak_mib_so_far": max(float(run["peak_mib"]) for run in runs),  # type: ignore[arg-type]
                    "run_peaks_mib": {
                        str(run["job"]): round(float(run["peak_mib"])) for run in runs
                    },  # type: ignore[arg-type]
                    "sandbox_day_s": simulated_day,
                    "slowest_steps": sorted(slowest, key=lambda kv: -kv[1])[:6],
                    "step_memory": [m for run in runs for m in run["step_memory"]],  # type: ignore[union-attr]
                }
        return results
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=60)


def measure(
    size: str, seed: int = common.DEFAULT_SEED, import_concurrency: int | None = None
) -> dict[str, object]:
    folder = common.scenario_dir(size, seed)
    env = {}
    if import_concurrency is not None:
        env[IMPORT_CONCURRENCY_VAR] = str(import_concurrency)
    args = [str(Path(__file__)), "--child", "--folder", str(folder)]
    out, wall, _ = common.run_child(args, env=env)
    spec = common.SIZES[size]
    return {
        "size": size,
        "import_concurrency": env.get(IMPORT_CONCURRENCY_VAR)
        or os.environ.get(IMPORT_CONCURRENCY_VAR, "default"),
        "units": spec.units,
        "skus": spec.skus,
        "orders": spec.orders,
        "returns": spec.returns,
        "process_wall_s": wall,
        **json.loads(out.strip().splitlines()[-1]),
    }


def report(result: dict[str, object]) -> str:
    lines = [
        f"daily cycle [{result['size']}] {result['skus']:,} SKUs, {result['units']:,} units, "
        f"{result['orders']:,} orders, {result['returns']:,} returns; "
        f"outbox.import_concurrency {result.get('import_concurrency', 'default')}"
    ]
    for label in ("first_full_load", "steady_state"):
        r = result[label]
        assert isinstance(r, dict)
        verdict = ""
        if label == "steady_state":
            met = r["wall_s"] <= TARGET_STEADY_S and r["peak_mib_so_far"] <= TARGET_PEAK_MIB
            verdict = (
                f" (target ≤{TARGET_STEADY_S:.0f} s, peak ≤{TARGET_PEAK_MIB} MiB: "
                f"{'pass' if met else 'MISS'})"
            )
        lines.append(
            f"  {label:16} {'ok' if r['success'] else 'FAILED'} "
            f"wall {r['wall_s']:7.1f} s{verdict}; "
            f"steps {r['steps_s']:.1f} s, orchestration {r['orchestration_s']:.1f} s; "
            f"CPU integration {r['integration_cpu_s']:.1f} s, sandbox {r['sandbox_cpu_s']:.1f} s; "
            f"peak {r['peak_mib_so_far']:.0f} MiB"
            + (
                " (per run: "
                + ", ".join(f"{job} {mib}" for job, mib in r["run_peaks_mib"].items())
                + ")"
                if r.get("run_peaks_mib")
                else ""
            )
        )
        lines.append(
            "    slowest steps: "
            + ", ".join(f"{key} {seconds:.1f}s" for key, seconds in r.get("slowest_steps", []))
        )
        lines.append(
            "    peak memory by step (MiB, peak / RSS at start -> end): "
            + ", ".join(
                f"{m['step']} {m['peak_mib']} / {m['rss_start_mib']}->{m['rss_end_mib']}"
                for m in sorted(r.get("step_memory", []), key=lambda m: -m["peak_mib"])[:8]
            )
        )
        if r["failures"]:
            lines.append(f"    failures: {r['failures']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=sorted(common.SIZES))
    parser.add_argument("--seed", type=int, default=common.DEFAULT_SEED)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--import-concurrency",
        type=int,
        help="outbox.import_concurrency for the run (default: the settings' default)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-job", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--partition", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_job:
        print(json.dumps(child_run(args.run_job, args.home, args.partition), default=str))
        return 0
    if args.child:
        print(json.dumps(child_cycles(args.folder), default=str))
        return 0
    result = measure(args.size, args.seed, args.import_concurrency)
    print(json.dumps(result, indent=1, default=str) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
