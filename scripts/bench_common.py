"""Shared helpers of the benchmark scripts: cached scenarios, machine facts, peak memory.

Scenarios are generated once per size and seed under ``data/bench/<size>-<seed>/`` and
reused (the 3M-unit one takes minutes to write). A folder is only used once its
``manifest.json`` exists: the generator writes it last.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATA = ROOT / "data" / "bench"
BENCHMARKS = ROOT / "BENCHMARKS.md"
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Size:
    """A benchmark size: the generator's size name and, for growth sizes, its figures."""

    name: str
    generator_size: str
    skus: int
    units: int
    orders: int
    returns: int
    unknown_status_units: int


# Growth sizes keep the brand's shape (60 units per SKU, 150 units per order) so the
# cost per unit is comparable across them.
SIZES: dict[str, Size] = {
    "tiny": Size("tiny", "tiny", 20, 300, 10, 5, 0),
    "small": Size("small", "small", 500, 20_000, 300, 100, 2),
    "u300k": Size("u300k", "brand", 5_000, 300_000, 2_000, 500, 3),
    "u1m": Size("u1m", "brand", 16_667, 1_000_000, 6_667, 1_667, 8),
    "brand": Size("brand", "brand", 50_000, 3_000_000, 20_000, 5_000, 25),
}
GROWTH = ("u300k", "u1m", "brand")


def scenario_dir(size: str, seed: int = DEFAULT_SEED) -> Path:
    """The cached scenario folder of ``size``/``seed``, generated on first use."""
    from acs_khaos_dagster.sandbox.scenario.generator import ScenarioSpec, generate_scenario

    spec = SIZES[size]
    folder = BENCH_DATA / f"{size}-{seed}"
    if (folder / "manifest.json").exists():
        return folder
    started = time.perf_counter()
    print(f"generating scenario {size} (seed {seed}) into {folder} ...", flush=True)
    custom = None
    if spec.name not in ("tiny", "small", "brand"):
        custom = ScenarioSpec(
            skus=spec.skus,
            units=spec.units,
            orders=spec.orders,
            returns=spec.returns,
            unknown_status_units=spec.unknown_status_units,
        )
    generate_scenario(spec.generator_size, seed, folder, spec=custom)  # type: ignore[arg-type]
    print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def stock_file(folder: Path) -> Path:
    from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest

    manifest = ScenarioManifest.load(folder)
    return folder / manifest.files.stock_units


def machine() -> dict[str, str]:
    """Cores, RAM, CPU model and library versions, for the report's header."""
    import dagster
    import pandas
    import pyarrow

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": str(os.cpu_count()),
        "ram": f"{ram:.1f} GiB",
        "cpu": model,
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "pyarrow": pyarrow.__version__,
        "pandas": pandas.__version__,
        "os": platform.platform(),
    }


def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[str, float, int]:
    """Run ``python args`` in a fresh child: (stdout, wall seconds, exit code 0).

    Children report their own peak RSS (``peak_rss_mib``), so each measurement runs in a
    process of its own and nothing else is counted.
    """
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout, wall, done.returncode


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB, since it started its program.

    ``VmHWM`` from ``/proc/self/status``, not ``getrusage().ru_maxrss``: Linux carries
    ``ru_maxrss`` over an exec, so a child started by a big parent would report the
    parent's peak (the suite's parent grows while it generates scenarios).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_alternated(
    repeat: int, baseline: Callable[[], dict[str, float]], measured: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Run the baseline and the measured child alternately ``repeat`` times (the machine's
    noise falls on both alike); the fastest of each."""
    bases, runs = [], []
    for _ in range(repeat):
        bases.append(baseline())
        runs.append(measured())
    return min(bases, key=lambda r: r["seconds"]), min(runs, key=lambda r: r["seconds"])


def file_figures(size: str, path: Path, repeat: int) -> dict[str, object]:
    """What a file benchmark's result says of its input."""
    return {
        "size": size,
        "file": path.name,
        "file_mib": path.stat().st_size / 2**20,
        "runs": repeat,
    }
