"""Delay from a despatch event appearing at ACS to its posting in Khaos (p50/p95).

    .venv/bin/python scripts/bench_despatch_latency.py --tiny     # under a minute
    .venv/bin/python scripts/bench_despatch_latency.py            # small scenario, longer

Runs the real loop on the wall clock: the sandbox (both simulators on loopback), a fresh
store and a temporary Dagster instance; orders are released through Dagster, then a
driver thread moves simulated time so ACS despatches while ``acs_despatch_sensor`` ticks
at its configured interval (default 5 s) and each run request executes
``despatch_posting_job`` in process. A watcher polls both simulators every 20 ms and
notes the wall time each event entered the ACS feed and each shipment reached Khaos.

Baseline, measured in the same run on a second fresh sandbox: one bare
``read_despatches`` + ``import_despatch`` round trip per event, no Dagster, no store.

The in-process run skips what the daemon adds in production (run queue and a run
worker process); ``--daemon`` measures it (``bench_despatch_daemon.py``). Results are
printed and written to the "Despatch latency ..., <size> scenario" section of
BENCHMARKS.md (replaced on each run; ``--daemon`` writes a section of its own).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Despatch latency (ACS event → Khaos ImportDespatch), {size} scenario"
DAEMON_SECTION = SECTION + ", through dagster-daemon"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


# Issue 23, target 5: a despatch on ACS's feed is posted in Khaos within this, at p95.
TARGET_P95_S = 10.0


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


class Watcher(threading.Thread):
    """Wall time each event appeared in the ACS feed and each shipment reached Khaos."""

    def __init__(self, box: object) -> None:
        super().__init__(daemon=True)
        self.box = box
        self.appeared: dict[str, float] = {}
        self.posted: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        acs_state = self.box.acs.state  # type: ignore[attr-defined]
        books = self.box.khaos.books  # type: ignore[attr-defined]
        while not self.stop.is_set():
            now = time.monotonic()
            with acs_state.lock:
                shipments = [e["shipment_id"] for e in acs_state.feed]
            for shipment in shipments:
                self.appeared.setdefault(shipment, now)
            for call in list(books.despatch_calls):
                self.posted.setdefault(call.external_ref, now)
            time.sleep(0.02)


def drive_clock(box: object, steps: list[tuple[float, timedelta]], done: threading.Event) -> None:
    """Advance simulated time by each step after waiting its wall-clock delay."""
    for wait_s, delta in steps:
        if done.wait(wait_s):
            return
        box.advance(delta)  # type: ignore[attr-defined]


def release_orders(instance: object) -> None:
    """The product assets, then the orders waiting at the release stage, sent to ACS."""
    from dagster import AssetKey, materialize

    from acs_khaos_dagster.definitions import defs
    from acs_khaos_dagster.defs.resources import default_resources

    products = ["khaos_sku_master", "acs_product_registry"]
    products += ["sku_mapping", "ready_for_sale_skus"]
    for names in (products, ["khaos_released_orders", "acs_order_release"]):
        materialize(
            [*defs.assets, *defs.asset_checks],
            selection=[AssetKey(n) for n in names],
            resources=default_resources(),
            instance=instance,  # type: ignore[arg-type]
            run_config=QUIET,
        )


def measure_dagster(
    scenario: Path, work: Path, steps: list[tuple[float, timedelta]], linger_s: float
) -> dict[str, object]:
    from dagster import DagsterInstance, build_sensor_context

    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.sandbox.runner import Sandbox

    box = Sandbox(scenario, work / "acs_drop", load_settings(), seed=7).start()
    try:
        os.environ.update(box.settings_env())
        os.environ["ACS_KHAOS_DATA_DIR"] = str(work / "data")
        from acs_khaos_dagster.definitions import defs
        from acs_khaos_dagster.defs.orders import acs_despatch_sensor
        from acs_khaos_dagster.defs.resources import default_resources

        settings = load_settings()
        interval = settings.orders.despatch_sensor_interval_s
        (work / "dagster_home").mkdir(parents=True, exist_ok=True)
        (work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        instance = DagsterInstance.local_temp(str(work / "dagster_home"))
        resources = default_resources()
        release_orders(instance)
        job = defs.resolve_job_def("despatch_posting_job")
        watcher = Watcher(box)
        watcher.start()
        done = threading.Event()
        driver = threading.Thread(target=drive_clock, args=(box, steps, done), daemon=True)
        started = time.monotonic()
        driver.start()
        runs = 0
        run_seconds: list[float] = []
        deadline = started + sum(w for w, _ in steps) + linger_s
        while time.monotonic() < deadline:
            tick_at = time.monotonic()
            with build_sensor_context(instance=instance, resources=resources) as context:
                result = acs_despatch_sensor(context)
            for request in getattr(result, "run_requests", None) or []:
                run_started = time.monotonic()
                job.execute_in_process(instance=instance, tags=request.tags, run_config=QUIET)
                run_seconds.append(time.monotonic() - run_started)
                runs += 1
            if (
                not driver.is_alive()
                and watcher.appeared
                and set(watcher.appeared) <= set(watcher.posted)
            ):
                break
            time.sleep(max(0.0, interval - (time.monotonic() - tick_at)))
        done.set()
        watcher.stop.set()
        watcher.join()
        delays = [watcher.posted[s] - t for s, t in watcher.appeared.items() if s in watcher.posted]
        calls = box.khaos.truth()["despatch_calls"]
        refs = [c["external_ref"] for c in calls]
        return {
            "interval_s": interval,
            "events": len(watcher.appeared),
            "posted": len(delays),
            "duplicates_in_khaos": len(refs) - len(set(refs)),
            "runs": runs,
            "run_s_p50": statistics.median(run_seconds) if run_seconds else float("nan"),
            "p50": percentile(delays, 0.50),
            "p95": percentile(delays, 0.95),
            "max": max(delays) if delays else float("nan"),
            "wall_s": time.monotonic() - started,
        }
    finally:
        box.stop()


def measure_baseline(scenario: Path, work: Path) -> dict[str, float | int]:
    """One bare read_despatches + import_despatch per event: the floor without Dagster."""
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.connectors.acs.client import AcsClient
    from acs_khaos_dagster.connectors.errors import PermanentError
    from acs_khaos_dagster.connectors.khaos.client import KhaosClient
    from acs_khaos_dagster.domain.order_release import to_acs_order
    from acs_khaos_dagster.domain.shipments import to_despatch_posting
    from acs_khaos_dagster.sandbox.runner import Sandbox

    box = Sandbox(scenario, work / "acs_drop_baseline", load_settings(), seed=7).start()
    try:
        os.environ.update(box.settings_env())
        settings = load_settings()
        with AcsClient.from_settings(settings) as acs, KhaosClient.from_settings(settings) as kc:
            orders = {o.order_code: o for o in kc.export_orders([9], settings.khaos.sites.selling)}
            for order in orders.values():
                skus = {line.stock_id: line.stock_code for line in order.lines}
                acs.put_order(to_acs_order(order, skus, couriers=settings.couriers))
            box.advance(timedelta(hours=12))
            cursor: str | None = None
            trips: list[float] = []
            refused = 0
            seen: set[str] = set()
            while True:
                started = time.monotonic()
                events, cursor = acs.read_despatches(cursor, 1)
                # Caught up, the feed repeats its last page: a page with nothing new ends it.
                fresh = [e for e in events if e.event_id not in seen]
                if not fresh:
                    break
                event = fresh[0]
                seen.add(event.event_id)
                order = kc.export_order_status([orders[event.order_number].order_id])[0]
                posting = to_despatch_posting(event, order, settings.carriers)
                if posting is not None and not hasattr(posting, "kind"):
                    try:
                        kc.import_despatch(posting)  # type: ignore[arg-type]
                    except PermanentError:
                        # Khaos refused it (a shipment the scenario's history already
                        # posted): still one full round trip, which is what is measured.
                        refused += 1
                trips.append(time.monotonic() - started)
        return {
            "trips": len(trips),
            "refused": refused,
            "p50": percentile(trips, 0.5),
            "p95": percentile(trips, 0.95),
        }
    finally:
        box.stop()


def write_benchmarks(text: str, section: str) -> None:
    existing = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    # The suite's "Latest run" block (bench.py --write) quotes this section's text too:
    # only the part before it is this script's to rewrite.
    existing, marker, latest = existing.partition("<!-- bench:latest:start -->")
    if section in existing:
        head, _, rest = existing.partition(section)
        following = rest.find("\n## ")
        tail = rest[following:] if following >= 0 else ""
        existing = head.rstrip() + "\n\n" + text.rstrip() + "\n" + tail
    else:
        existing = existing.rstrip() + "\n\n" + text.rstrip() + "\n"
    BENCHMARKS.write_text(existing.rstrip() + "\n\n" + marker + latest if marker else existing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny scenario, under a minute")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="through dagster-daemon on make dev's instance (scripts/bench_despatch_daemon.py)",
    )
    args = parser.parse_args(argv)

    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    with tempfile.TemporaryDirectory(prefix="bench-despatch-") as tmp:
        work = Path(tmp)
        for key in [k for k in os.environ if k.startswith("ACS_KHAOS_")]:
            del os.environ[key]
        os.environ["ACS_KHAOS_DATA_DIR"] = str(work / "data")
        size = "tiny" if args.tiny else "small"
        scenario = work / f"scenario-{size}"
        generate_scenario(size, 7, scenario)  # type: ignore[arg-type]
        # Seeded random wall-clock gaps, so events land at every phase of the sensor tick.
        rng = random.Random(7)
        if args.tiny:
            # Shipments at 10:00 (ten), 14:00 and 18:00 simulated: 30 min steps, 0.8-2 s apart.
            steps = [(rng.uniform(0.8, 2.0), timedelta(minutes=30)) for _ in range(22)]
            linger = 20.0
        else:
            # A day and a half of warehouse time, 30 min of it every 1-6 s.
            steps = [(rng.uniform(1.0, 6.0), timedelta(minutes=30)) for _ in range(72)]
            linger = 40.0
        started = time.monotonic()
        if args.daemon:
            from bench_despatch_daemon import measure_daemon

            # The daemon's queue and run launch can add seconds to the last events.
            result = measure_daemon(scenario, work, steps, linger + 30.0)
        else:
            result = measure_dagster(scenario, work, steps, linger)
        baseline = measure_baseline(scenario, work)
        total = time.monotonic() - started

    command = "scripts/bench_despatch_latency.py" + (" --tiny" if args.tiny else "")
    command += " --daemon" if args.daemon else ""
    section = (DAEMON_SECTION if args.daemon else SECTION).format(size=size)
    how = (
        "each run queued and launched by dagster-daemon on make dev's instance, every "
        "sensor and schedule on"
        if args.daemon
        else "runs in process (the daemon's run launch is measured by --daemon)"
    )
    from acs_khaos_dagster.config import OrderSettings

    default = OrderSettings().despatch_sensor_interval_s
    interval_source = "default" if result["interval_s"] == default else f"default {default}"
    text = "\n".join(
        [
            section,
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- machine: {platform.node()} · {platform.machine()} · "
            f"{os.cpu_count()} CPUs · Python {platform.python_version()}",
            f"- command: `.venv/bin/python {command}` (scenario {size}, seed 7)",
            f"- sensor interval: {result['interval_s']} s ({interval_source}); {how}",
            "",
            "| measure | events | p50 (s) | p95 (s) | max (s) |",
            "| --- | --- | --- | --- | --- |",
            f"| event in ACS feed → ImportDespatch applied in Khaos (sensor + job) | "
            f"{result['posted']}/{result['events']} | {result['p50']:.2f} | "
            f"{result['p95']:.2f} | {result['max']:.2f} |",
            f"| baseline: bare read_despatches + import_despatch round trip | "
            f"{baseline['trips']} | {baseline['p50']:.3f} | {baseline['p95']:.3f} | |",
            "",
            f"p95 {result['p95']:.2f} s (target ≤{TARGET_P95_S:.0f} s, 0 duplicates): "
            + (
                "pass"
                if result["p95"] <= TARGET_P95_S and not result["duplicates_in_khaos"]
                else "MISS"
            ),
            "",
            f"Runs started: {result['runs']} (median run {result['run_s_p50']:.2f} s); "
            f"duplicate postings in Khaos: {result['duplicates_in_khaos']}; "
            f"wall time {total:.0f} s.",
        ]
    )
    if args.daemon:
        from bench_despatch_daemon import report_lines

        text += "\n\n" + "\n".join(report_lines(result))
    print(text)
    if not args.no_write:
        write_benchmarks(text, section)
    ok = result["posted"] == result["events"] and result["duplicates_in_khaos"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
