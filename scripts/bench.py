"""The benchmark suite (issue 10): each figure next to a baseline measured in the same run.

    .venv/bin/python scripts/bench.py --size brand            # make bench: the headline sizes
    .venv/bin/python scripts/bench.py --size small            # quicker
    .venv/bin/python scripts/bench.py --size tiny --only snapshot   # CI smoke (one benchmark)

Benchmarks (``--only`` picks some; default all):

* ``snapshot``  1. stock_units file → push plan + stock reconciliation vs pyarrow read_csv
* ``release``   2. order release via the outbox dispatchers (5% 429s) vs a bare httpx loop
* ``despatch``  3. despatch latency p50/p95 (``scripts/bench_despatch_latency.py``, owned
  by the orders flow; a marked placeholder row when it is missing)
* ``cycle``     4. the daily cycle through Dagster: first full load and steady state
* ``growth``    5. figures 1 and 4 at 0.3M, 1M and 3M units (``--size brand`` only; at
  smaller sizes it runs 1 at the given size)

``--cycle-size`` overrides the size of benchmark 4 (the brand-scale cycle takes long).
``--write`` replaces the "Latest run" section of BENCHMARKS.md with this run's figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common
import bench_cycle
import bench_release
import bench_snapshot

ALL = ("snapshot", "release", "despatch", "cycle", "growth")
DESPATCH_SCRIPT = Path(__file__).with_name("bench_despatch_latency.py")


def run_despatch(size: str) -> str:
    if not DESPATCH_SCRIPT.exists():
        return "despatch latency: PLACEHOLDER — scripts/bench_despatch_latency.py not there yet"
    args = [sys.executable, str(DESPATCH_SCRIPT), "--no-write"]
    if size == "tiny":
        args.append("--tiny")
    done = subprocess.run(args, cwd=common.ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"despatch latency: FAILED ({done.returncode})\n{done.stderr[-2000:]}"
    return "despatch latency (scripts/bench_despatch_latency.py):\n" + done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small", "brand"])
    parser.add_argument("--seed", type=int, default=common.DEFAULT_SEED)
    parser.add_argument("--only", action="append", choices=ALL, help="repeatable")
    parser.add_argument("--cycle-size", choices=sorted(common.SIZES))
    parser.add_argument("--repeat", type=int, default=1, help="snapshot runs (best kept)")
    parser.add_argument("--json", type=Path, help="also write every result as JSON here")
    args = parser.parse_args(argv)
    wanted = args.only or list(ALL)
    facts = common.machine()
    print(
        f"bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, size {args.size}, seed {args.seed}; "
        f"{facts['cores']} cores, {facts['ram']}, {facts['cpu']}; Python {facts['python']}, "
        f"Dagster {facts['dagster']}, pyarrow {facts['pyarrow']}, pandas {facts['pandas']}",
        flush=True,
    )
    results: dict[str, object] = {"machine": facts, "size": args.size}
    started = time.perf_counter()
    if "snapshot" in wanted:
        r = bench_snapshot.measure(args.size, args.repeat, args.seed)
        results["snapshot"] = r
        print(bench_snapshot.report(r), flush=True)
    if "release" in wanted:
        r = bench_release.measure(args.size, args.seed)
        results["release"] = r
        print(bench_release.report(r), flush=True)
    if "despatch" in wanted:
        text = run_despatch(args.size)
        results["despatch"] = text
        print(text, flush=True)
    if "cycle" in wanted:
        r = bench_cycle.measure(args.cycle_size or args.size, args.seed)
        results["cycle"] = r
        print(bench_cycle.report(r), flush=True)
    if "growth" in wanted:
        sizes = common.GROWTH if args.size == "brand" else (args.size,)
        growth = []
        for size in sizes:
            snap = bench_snapshot.measure(size, 1, args.seed)
            per_unit = snap["pipeline"]["seconds"] / snap["pipeline"]["units"] * 1e6  # type: ignore[index]
            row = {
                "size": size,
                "snapshot_s": snap["pipeline"]["seconds"],  # type: ignore[index]
                "baseline_s": snap["baseline"]["seconds"],
                "ratio": snap["ratio"],  # type: ignore[index]
                "snapshot_us_per_unit": per_unit,
            }
            growth.append(row)
            print(
                f"growth [{size}] snapshot {row['snapshot_s']:.2f} s ({per_unit:.2f} µs/unit), "
                f"baseline {row['baseline_s']:.2f} s, ratio {row['ratio']:.2f}",
                flush=True,
            )
        results["growth"] = growth
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
