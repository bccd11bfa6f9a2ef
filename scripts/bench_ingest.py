"""Figure 1b (issue 23): the stock ingestion as Dagster runs it, against the bare parse.

    .venv/bin/python scripts/bench_ingest.py --size brand --repeat 3

What the file sensor's run does for one ACS stock file, in process on a temporary Dagster
instance: ``stock_snapshot_job`` as the definitions hold it — its assets
(``acs_stock_snapshot``, ``sellable_stock``, ``non_sellable_stock``) and every check on them,
the pandera models' included — for the file's day, with the store on SQLite and
the IO manager writing every output — Parquet of the units and counts, the snapshot's rows
in the store, the placement the push reads. The product catalogue the stock assets take
(``khaos_sku_master``, ``sku_mapping``) is materialised first from the scenario's manifest,
outside the timing. Baseline: ``pyarrow.csv.read_csv`` of the same file in a child of its
own (``bench_snapshot.child_baseline``). Each is run ``--repeat`` times alternately and the
best kept; peaks are each child's ``VmHWM``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common
import bench_snapshot
import pandas as pd

TARGET_RATIO = 2.5
TARGET_PEAK_MIB = 1024
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def child_dagster(path: Path, folder: Path) -> dict[str, float]:
    """One stock file through Dagster in process; seconds of the stock job only."""
    sku_path, _ = bench_snapshot._inputs(folder)
    catalogue = pd.read_parquet(sku_path)
    # Beside the scenario, so the drop can hold a hard link to the file (the drop refuses
    # a symbolic link).
    work = Path(tempfile.mkdtemp(prefix="ingest_", dir=folder.parent))
    drop = work / "data" / "acs_drop"
    drop.mkdir(parents=True)
    os.link(path, drop / path.name)
    os.environ["ACS_KHAOS_DATA_DIR"] = str(work / "data")
    # The bench's own folders and store, whatever the calling shell points at.
    os.environ["ACS_KHAOS_ACS__DROP_FOLDER"] = str(drop)
    os.environ.pop("ACS_KHAOS_DATABASE_URL", None)
    (work / "dagster_home").mkdir()
    (work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    from dagster import asset

    @asset(name="khaos_sku_master")
    def sku_master() -> pd.DataFrame:
        frame = catalogue[["stock_id", "stock_code", "is_hire", "cost_price"]].copy()
        frame["stock_controlled"] = True
        return frame

    @asset(name="sku_mapping")
    def mapping() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "stock_id": catalogue["stock_id"],
                "acs_sku": catalogue["sku"],
                "acs_status": "matched",
                "classification": "matched",
            }
        )

    try:
        return _run_stock_job(path, work, sku_master, mapping)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_stock_job(path: Path, work: Path, *catalogue_assets: object) -> dict[str, float]:
    from dagster import DagsterInstance, materialize

    from acs_khaos_dagster.definitions import defs
    from acs_khaos_dagster.defs.resources import default_resources
    from acs_khaos_dagster.defs.stock import partition_day

    instance = DagsterInstance.local_temp(str(work / "dagster_home"))
    resources = default_resources()
    materialize(list(catalogue_assets), resources=resources, instance=instance, run_config=QUIET)
    # The job the file sensor starts, as defined: its three assets and every check on them
    # (the pandera models' included, which load each stored table and validate it again).
    job = defs.resolve_job_def("stock_snapshot_job")
    day = partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))
    started, cpu = time.perf_counter(), time.process_time()
    result = job.execute_in_process(
        instance=instance,
        partition_key=day,
        run_config={**QUIET, "ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    if not result.success:
        raise SystemExit("the stock job failed")
    checks = len(result.get_asset_check_evaluations())
    units = result.asset_materializations_for_node("acs_stock_snapshot")[0].metadata["units"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "units": int(units.value),
        "checks": checks,
        "peak_mib": common.peak_rss_mib(),
        "steps": _step_seconds(instance, result.run_id),
    }


def _step_seconds(instance: object, run_id: str) -> dict[str, float]:
    """Each step's wall time (Dagster's own step stats, as ``bench_cycle`` reads them)."""
    stats = instance.get_run_step_stats(run_id)  # type: ignore[attr-defined]
    return {s.step_key: round(s.end_time - s.start_time, 3) for s in stats if s.end_time}


def _child(mode: str, path: Path, folder: Path) -> dict[str, float]:
    args = [str(Path(__file__)), "--child", mode, "--file", str(path), "--folder", str(folder)]
    out, _, _ = common.run_child(args)
    return json.loads(out.strip().splitlines()[-1])


def measure(size: str, repeat: int = 1, seed: int = common.DEFAULT_SEED) -> dict[str, object]:
    folder = common.scenario_dir(size, seed)
    path = common.stock_file(folder)
    bench_snapshot._inputs(folder)
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "dagster": []}
    base, run = common.best_alternated(
        repeat,
        lambda: bench_snapshot._kept(runs["baseline"], _child("baseline", path, folder)),
        lambda: bench_snapshot._kept(runs["dagster"], _child("dagster", path, folder)),
    )
    return {
        **common.file_figures(size, path, repeat),
        "baseline": base,
        "dagster": run,
        "ratio": run["seconds"] / base["seconds"],
        **bench_snapshot.cpu_figures(runs["baseline"], runs["dagster"]),
    }


def report(result: dict[str, object]) -> str:
    base, run = result["baseline"], result["dagster"]
    assert isinstance(base, dict) and isinstance(run, dict)
    ratio = float(result["ratio"])  # type: ignore[arg-type]
    verdict = "pass" if ratio <= TARGET_RATIO else "MISS"
    memory = "pass" if run["peak_mib"] <= TARGET_PEAK_MIB else "MISS"
    text = "\n".join(
        [
            f"stock ingestion through Dagster [{result['size']}] {result['file']} "
            f"({result['file_mib']:.0f} MiB), {run['units']:,} units, best of {result['runs']}",
            f"  baseline pyarrow.csv.read_csv {base['seconds']:7.2f} s "
            f"peak {base['peak_mib']:6.0f} MiB",
            f"  stock_snapshot_job in process {run['seconds']:7.2f} s "
            f"peak {run['peak_mib']:6.0f} MiB ({run['checks']:.0f} checks)",
            f"  ratio {ratio:.2f}x (target ≤{TARGET_RATIO}): {verdict}; "
            f"peak ≤{TARGET_PEAK_MIB} MiB: {memory}",
            "  steps (best run): "
            + ", ".join(f"{step} {sec:.2f}s" for step, sec in run.get("steps", {}).items()),
        ]
    )
    return text + "\n" + bench_snapshot.cpu_line(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="brand", choices=sorted(common.SIZES))
    parser.add_argument("--seed", type=int, default=common.DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--child", choices=["baseline", "dagster"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "baseline":
        print(json.dumps(bench_snapshot.child_baseline(args.file)))
        return 0
    if args.child == "dagster":
        print(json.dumps(child_dagster(args.file, args.folder)))
        return 0
    result = measure(args.size, args.repeat, args.seed)
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
