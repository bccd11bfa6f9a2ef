"""The benchmark scripts keep working: each runs at the tiny size (times are never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "scripts" / "bench.py"


def _bench(only: str, *extra: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--size", "tiny", "--only", only, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_snapshot_benchmark_prints_the_pipeline_next_to_its_baseline() -> None:
    out = _bench("snapshot")
    assert "baseline pyarrow.csv.read_csv" in out
    assert re.search(
        r"ratio [\d.]+x \(target ≤1\.5\): (pass|MISS); peak ≤1024 MiB: (pass|MISS)", out
    )


def test_snapshot_benchmark_also_measures_the_stock_job_through_dagster() -> None:
    out = _bench("snapshot")
    assert "stock_snapshot_job in process" in out
    assert re.search(r"ratio [\d.]+x \(target ≤2\.5\): (pass|MISS)", out)


def test_snapshot_benchmark_also_measures_the_file_with_its_rows_shuffled() -> None:
    out = _bench("snapshot")
    assert "rows in unit order" in out and "rows shuffled" in out


def test_the_suite_writes_its_figures_into_the_benchmarks_file_keeping_the_rest(
    tmp_path: Path,
) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\nAnalysis written by hand.\n")

    _bench("snapshot", "--write", "--benchmarks-file", str(target))
    _bench("snapshot", "--write", "--benchmarks-file", str(target))

    text = target.read_text()
    assert text.startswith("# Benchmarks\n\nAnalysis written by hand.\n")
    assert text.count("## Latest run") == 1
    assert "baseline pyarrow.csv.read_csv" in text and "command: `scripts/bench.py" in text


def test_release_benchmark_prints_dispatched_orders_next_to_the_bare_loop() -> None:
    out = _bench("release")
    assert "baseline bare httpx PUT loop" in out
    assert "sent: " in out
    assert re.search(r"\(target ≥0\.8\): (pass|MISS)", out)


def test_despatch_benchmark_calls_the_orders_script() -> None:
    out = _bench("despatch")
    assert "despatch latency" in out
    assert re.search(r"\(target ≤10 s, 0 duplicates\): (pass|MISS)", out)


@pytest.mark.slow
def test_despatch_benchmark_runs_through_the_daemon_on_make_devs_instance() -> None:
    # 4.5-5.5 min at load 15-18 on 2 cores (idle: not measured yet): the daemon, its code
    # server and a run worker per run, each importing the code location.
    out = _bench("despatch", "--despatch-daemon", timeout=480)
    assert "through dagster-daemon" in out
    assert re.search(r"\| (\d+)/\1 \|", out), out  # every event posted
    assert "duplicate postings in Khaos: 0" in out
    assert re.search(r"despatch_posting_job [1-9]", out), out  # runs the daemon launched
    assert re.search(r"\(target ≤10 s, 0 duplicates\): (pass|MISS)", out)


def test_cycle_benchmark_runs_a_first_load_and_a_steady_day_through_dagster() -> None:
    out = _bench("cycle")
    assert "first_full_load  ok" in out
    assert "steady_state     ok" in out
    assert re.search(r"\(target ≤120 s, peak ≤1536 MiB: (pass|MISS)\)", out)


def test_days_benchmark_compares_a_late_day_of_order_reads_with_day_ten() -> None:
    out = _bench("days")
    assert "order reads over time" in out
    assert "day 12 / day 10" in out
    assert re.search(r"\(target ≤1\.2\): (pass|MISS)", out)
