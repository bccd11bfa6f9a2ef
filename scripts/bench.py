"""The benchmark suite (issue 10): each figure next to a baseline measured in the same run.

    .venv/bin/python scripts/bench.py --size brand            # make bench: the headline sizes
    .venv/bin/python scripts/bench.py --size small            # quicker
    .venv/bin/python scripts/bench.py --size tiny --only snapshot   # CI smoke (one benchmark)

Benchmarks (``--only`` picks some; default all):

* ``snapshot``  1. stock_units file → push plan + stock reconciliation vs pyarrow read_csv;
  1b. the same file through Dagster's stock job in process (``scripts/bench_ingest.py``)
* ``release``   2. order release via the outbox (5% 429s) vs a bare loop honouring them
* ``despatch``  3. despatch latency p50/p95 (``scripts/bench_despatch_latency.py``, owned
  by the orders flow; a marked placeholder row when it is missing); with
  ``--despatch-daemon`` through ``dagster-daemon`` on ``make dev``'s instance
* ``cycle``     4. the daily cycle through Dagster: first full load and steady state
* ``growth``    5. figures 1 and 4 at 0.3M, 1M and 3M units (``--size brand`` only; at
  smaller sizes it runs 1 at the given size)
* ``days``      6. a cycle's order reads on day ``--days`` against day 10 of an
  installation's life (``scripts/bench_days.py``; at ``--size brand`` with the u300k
  size's 2,000 orders a day, to keep a 90-day store build within minutes)

``--cycle-size`` overrides the size of benchmark 4 (the brand-scale cycle takes long);
``--no-growth-cycle`` leaves the cycle out of the growth table.
``--write`` replaces the "Latest run" section of BENCHMARKS.md (or ``--benchmarks-file``)
with this run's figures, the date, the machine and the command; the rest of the file,
the curated analysis, is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common
import bench_cycle
import bench_days
import bench_ingest
import bench_release
import bench_snapshot

ALL = ("snapshot", "release", "despatch", "cycle", "growth", "days")
DESPATCH_SCRIPT = Path(__file__).with_name("bench_despatch_latency.py")


def run_despatch(size: str, daemon: bool = False) -> str:
    if not DESPATCH_SCRIPT.exists():
        return "despatch latency: PLACEHOLDER — scripts/bench_despatch_latency.py not there yet"
    args = [sys.executable, str(DESPATCH_SCRIPT), "--no-write"]
    if size == "tiny":
        args.append("--tiny")
    if daemon:
        args.append("--daemon")
    done = subprocess.run(args, cwd=common.ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"despatch latency: FAILED ({done.returncode})\n{done.stderr[-2000:]}"
    return "despatch latency (scripts/bench_despatch_latency.py):\n" + done.stdout.strip()


LATEST_START = "<!-- bench:latest:start -->"
LATEST_END = "<!-- bench:latest:end -->"


def write_latest(target: Path, command: str, facts: dict[str, str], lines: list[str]) -> None:
    """Replace the "Latest run" section of ``target`` (appended the first time)."""
    section = "\n".join(
        [
            LATEST_START,
            "## Latest run",
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- machine: {facts['cores']} cores, {facts['ram']}, {facts['cpu']}",
            f"- versions: Python {facts['python']}, Dagster {facts['dagster']}, "
            f"pyarrow {facts['pyarrow']}, pandas {facts['pandas']}",
            f"- command: `{command}`",
            "",
            "```",
            *lines,
            "```",
            LATEST_END,
        ]
    )
    text = target.read_text() if target.exists() else "# Benchmarks\n"
    if LATEST_START in text and LATEST_END in text:
        before, rest = text.split(LATEST_START, 1)
        after = rest.split(LATEST_END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    target.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small", "brand"])
    parser.add_argument("--seed", type=int, default=common.DEFAULT_SEED)
    parser.add_argument("--only", action="append", choices=ALL, help="repeatable")
    parser.add_argument("--cycle-size", choices=sorted(common.SIZES))
    parser.add_argument("--no-growth-cycle", action="store_true")
    parser.add_argument(
        "--despatch-daemon",
        action="store_true",
        help="benchmark 3 through dagster-daemon on make dev's instance",
    )
    parser.add_argument("--repeat", type=int, default=1, help="snapshot runs (best kept)")
    parser.add_argument("--days", type=int, help="simulated days of benchmark 6 (90; tiny 12)")
    parser.add_argument("--json", type=Path, help="also write every result as JSON here")
    parser.add_argument("--write", action="store_true", help="write the figures to the file")
    parser.add_argument("--benchmarks-file", type=Path, default=common.BENCHMARKS)
    args = parser.parse_args(argv)
    wanted = args.only or list(ALL)
    facts = common.machine()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.extend(text.splitlines())

    say(
        f"bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, size {args.size}, seed {args.seed}; "
        f"{facts['cores']} cores, {facts['ram']}, {facts['cpu']}; Python {facts['python']}, "
        f"Dagster {facts['dagster']}, pyarrow {facts['pyarrow']}, pandas {facts['pandas']}"
    )
    results: dict[str, object] = {"machine": facts, "size": args.size}
    started = time.perf_counter()
    if "snapshot" in wanted:
        for shuffled in (False, True):
            r = bench_snapshot.measure(args.size, args.repeat, args.seed, shuffled=shuffled)
            results["snapshot_shuffled" if shuffled else "snapshot"] = r
            say(bench_snapshot.report(r))
        r = bench_ingest.measure(args.size, args.repeat, args.seed)
        results["snapshot_through_dagster"] = r
        say(bench_ingest.report(r))
    if "release" in wanted:
        r = bench_release.measure(args.size, args.seed)
        results["release"] = r
        say(bench_release.report(r))
    if "despatch" in wanted:
        text = run_despatch(args.size, daemon=args.despatch_daemon)
        results["despatch"] = text
        say(text)
    if "cycle" in wanted:
        r = bench_cycle.measure(args.cycle_size or args.size, args.seed)
        results["cycle"] = r
        say(bench_cycle.report(r))
    if "growth" in wanted:
        sizes = common.GROWTH if args.size == "brand" else (args.size,)
        growth = [grow(size, args.seed, cycle=not args.no_growth_cycle, say=say) for size in sizes]
        results["growth"] = growth
        say(growth_table(growth))
    if "days" in wanted:
        days = args.days or (12 if args.size == "tiny" else 90)
        r = bench_days.measure("u300k" if args.size == "brand" else args.size, days)
        results["days"] = r
        say(bench_days.report(r))
    say(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.write:
        command = " ".join(["scripts/bench.py", *(argv if argv is not None else sys.argv[1:])])
        write_latest(args.benchmarks_file, command, facts, lines)
    return 0


def grow(size: str, seed: int, *, cycle: bool, say: Callable[[str], None]) -> dict[str, object]:
    """Figures 1 (and 4) at one growth size, with the cost per unit."""
    snap = bench_snapshot.measure(size, 1, seed)
    pipeline = snap["pipeline"]
    assert isinstance(pipeline, dict)
    row: dict[str, object] = {
        "size": size,
        "units": pipeline["units"],
        "snapshot_s": pipeline["seconds"],
        "snapshot_peak_mib": pipeline["peak_mib"],
        "baseline_s": snap["baseline"]["seconds"],  # type: ignore[index]
        "ratio": snap["ratio"],
        "snapshot_us_per_unit": pipeline["seconds"] / pipeline["units"] * 1e6,
    }
    say(bench_snapshot.report(snap))
    if cycle:
        result = bench_cycle.measure(size, seed)
        say(bench_cycle.report(result))
        for label in ("first_full_load", "steady_state"):
            figures = result[label]
            assert isinstance(figures, dict)
            row[f"{label}_s"] = figures["wall_s"]
            row[f"{label}_peak_mib"] = figures["peak_mib_so_far"]
            row[f"{label}_us_per_unit"] = figures["wall_s"] / pipeline["units"] * 1e6
    return row


def growth_table(rows: list[dict[str, object]]) -> str:
    lines = ["growth (cost per unit should stay flat):"]
    for row in rows:
        text = (
            f"  {row['size']:6} {row['units']:>9,} units: snapshot {row['snapshot_s']:.2f} s "
            f"({row['snapshot_us_per_unit']:.2f} µs/unit, {row['ratio']:.2f}x baseline, "
            f"peak {row['snapshot_peak_mib']:.0f} MiB)"
        )
        if "steady_state_s" in row:
            text += (
                f"; cycle first load {row['first_full_load_s']:.1f} s "
                f"({row['first_full_load_us_per_unit']:.1f} µs/unit), steady "
                f"{row['steady_state_s']:.1f} s ({row['steady_state_us_per_unit']:.1f} µs/unit)"
            )
        lines.append(text)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
