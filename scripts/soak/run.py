"""The soak end to end: set-up, simulated trading days under faults, quiescence, oracles."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from soak.daemon import Daemon
from soak.finance import Finance
from soak.launcher import Faults, Launcher
from soak.loop import (
    Figures,
    SandboxProcess,
    dagster_yaml,
    http,
    integration_env,
    outbox_counts,
)
from soak.pg import Cluster

LONDON = ZoneInfo("Europe/London")
READ_TIMEOUT_S = 2.0  # the client's wall-clock read timeout; see RELIABILITY.md
STALL_S = 2.5  # injected stalls outlast it: the client gives up, the server goes on
LATE_APPLY_S = 20  # simulated seconds: a late apply lands before the 30 s read-back


def soak(args: argparse.Namespace) -> int:
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    rng = random.Random(args.seed)
    figures = Figures(seed=args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="acs-khaos-soak-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"soak: seed {args.seed}, work folder {work}", flush=True)
    cluster = Cluster(work / "pg").init()
    cluster.start()
    sandbox = None
    launcher = None
    daemon = None
    try:
        store_url = cluster.create_database("store")
        cluster.create_database("dagster")
        dagster_yaml(work / "dagster_home", cluster.port)
        generate_scenario(args.size, args.seed, work / "scenario")
        base = {k: v for k, v in os.environ.items() if not k.startswith("ACS_KHAOS_")}
        base["ACS_KHAOS_DATA_DIR"] = str(work / "data")
        sandbox = SandboxProcess.start(
            work / "scenario", work / "acs_drop", args.seed, base, (work / "sandbox.log").open("w")
        )
        env = integration_env(sandbox.env, work, store_url, READ_TIMEOUT_S)
        os.environ.update(env)  # the ticks' sensors read the same settings as the runs
        from acs_khaos_dagster.store import Store

        with Store.open(store_url):
            pass  # migrations, as a deployment runs them before starting the daemon
        from dagster import DagsterInstance

        instance = DagsterInstance.get()
        faults = Faults(args.kill_share, args.freeze_share, dispatcher_kill_share=0.6)
        launcher = Launcher(env, work, rng, figures, faults)
        daemon = Daemon(
            launcher, instance, rng, args.daemon_kill_rate, f"{sandbox.acs}/_sandbox/clock"
        )
        driver = Driver(launcher, daemon, instance, args)
        figures.wall["set-up"] += time.monotonic() - figures.started
        finance = Finance(args.seed)  # brand side (soakbrand): works held variances
        sandbox.faults_on(args.fault_rate, STALL_S, LATE_APPLY_S)
        steps = int(args.days * 24 * 60 / args.step_min)
        restarts = {int(steps * (n + 1) / (args.pg_restarts + 1)) for n in range(args.pg_restarts)}
        trading_steps = sum(
            1 for h in range(24 * 60 // args.step_min) if 8 <= (h * args.step_min) // 60 < 22
        )
        per_step = max(1, round(args.orders_per_day / max(trading_steps, 1)))
        start = sandbox.now()
        for step in range(steps):
            now = sandbox.now()
            local = now.astimezone(LONDON)
            if 8 <= local.hour < 22:
                made = http(
                    "POST",
                    f"{sandbox.khaos}/_sandbox/soak/trade?orders={per_step}"
                    f"&edit_share={args.edit_share}",
                )
                figures.orders += made["orders"]
                figures.cancelled += made["cancelled"]
                figures.edited += made["edited"]
                # brand side (soakbrand): stock changes no order explains
                for kind, n in http("POST", f"{sandbox.acs}/_sandbox/soak/stock").items():
                    figures.stock_events[kind] += n
            finance.visit(now)  # brand side (soakbrand)
            if local.minute < args.step_min and local.hour % 4 == 0:
                share = args.returns_share
                got = http("POST", f"{sandbox.acs}/_sandbox/soak/returns?share={share}")
                figures.returns += got["received"]
            if local.hour == 5 and local.minute < args.step_min:
                http("POST", f"{sandbox.acs}/_sandbox/daily-files")
            if step in restarts:
                cluster.restart()
                figures.pg_restarts += 1
                print(f"  PostgreSQL restarted at step {step}", flush=True)
            now = sandbox.advance(args.step_min)
            if rng.random() < args.dispatcher_rate:
                launcher.dispatcher()
            driver.step(now)
            if step % max(1, steps // 20) == 0:
                print(
                    f"  {now:%a %d %b %H:%M} step {step}/{steps}: {dict(outbox_counts(store_url))}"
                    f" runs {sum(figures.runs.values())} kills {sum(figures.kills.values())}",
                    flush=True,
                )
        stats = sandbox.fault_stats()
        sandbox.faults_off()
        settling = time.monotonic()
        settle(sandbox, driver, store_url, finance, args.settle_step_min, args.settle_jump_days)
        figures.wall["quiescence (all of it)"] += time.monotonic() - settling
        figures.ticks.update(daemon.state.get("ticks", {}))
        figures.tick_errors.update(daemon.state.get("tick_errors", {}))
        figures.days = (sandbox.now() - start).total_seconds() / 86400
        acs, khaos, units = sandbox.truth()
        # Kept beside the store so that a failed oracle can be traced after the soak.
        (work / "truth.json").write_text(json.dumps({"acs": acs, "khaos": khaos, "units": units}))
    finally:
        if daemon is not None:
            daemon.stop()
        if launcher is not None:
            launcher.kill_all()
        if sandbox is not None:
            figures.cpu["sandbox (both simulators)"] += _cpu_of(sandbox.process.pid)
            sandbox.stop()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        figures.cpu["controller"] += usage.ru_utime + usage.ru_stime
    from soak.oracles import check

    checking = time.monotonic()
    verdict = check(acs, khaos, units, store_url)
    figures.wall["oracles"] += time.monotonic() - checking
    report(args, figures, verdict, stats, store_url, finance)
    cluster.stop("fast")
    return 0 if verdict.ok else 1


def _cpu_of(pid: int) -> float:
    """CPU seconds a live process has used (``/proc``: utime + stime, in clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Driver:
    """One step of the integration: the daemon ticks at the new time and the runs it
    started work, until all but one are done or the step's wall-clock budget is spent."""

    def __init__(
        self, launcher: Launcher, daemon: Daemon, instance: Any, args: argparse.Namespace
    ) -> None:
        self.launcher, self.daemon, self.instance = launcher, daemon, instance
        self.max_running, self.budget = args.max_running, args.step_wall_s

    def step(self, now: datetime) -> None:
        self.launcher.step += 1
        wall = self.launcher.figures.wall
        started = time.monotonic()
        self.daemon.await_tick(now)
        ticked = time.monotonic()
        wall["waiting for the daemon's tick"] += ticked - started
        self.launcher.wait_below(self.instance, self.max_running - 1, self.budget)
        # Runs may straddle steps, but never pile up beyond the machine: a run slower than
        # the step's budget holds the clock back rather than crowd the next step's runs.
        self.launcher.wait_below(self.instance, self.max_running, 600)
        wall["waiting for runs"] += time.monotonic() - ticked

    def drain(self) -> None:
        started = time.monotonic()
        self.daemon.pump()
        self.launcher.wait_below(self.instance, 0, 600)
        self.launcher.figures.wall["waiting for runs"] += time.monotonic() - started


def settle(
    sandbox: SandboxProcess,
    driver: Driver,
    store_url: str,
    finance: Finance,
    step_min: int,
    jump_days: int = 1,
) -> None:
    """Faults off, no more trading: ACS finishes its work (hire units back and cleaned) in
    jumps of ``jump_days``, as over a closed weekend; then its last files are dropped and the
    integration's schedules and sensors run in steps of ``step_min`` (three hours by
    default) until the outbox and the runs are quiet for two steps and 30 hours have passed
    (the stock push of the last snapshot, the finance batch and a night's reconciliation
    all had their turn)."""
    driver.drain()
    for jump in range(-(-14 // jump_days)):
        if not http("GET", f"{sandbox.acs}/_sandbox/soak/units")["busy"]:
            break
        driver.step(sandbox.advance(jump_days * 24 * 60))
        print(f"  quiescence: ACS still at work, day {(jump + 1) * jump_days}", flush=True)
    at_least = -(-30 * 60 // step_min) - 1  # steps before "quiet" may end a drop's wait
    week = 7 * 24 * 60 // step_min
    # Two of ACS's nightly drops: the second one is taken after everything the first one
    # brought (returns posted, invoices issued) has landed, as the next morning's would be.
    # Then (brand side, soakbrand) finance decides every hold still open, and the
    # approved variances are sent.
    for drop in range(3):
        if drop < 2:
            http("POST", f"{sandbox.acs}/_sandbox/daily-files")
        else:
            finance.visit(sandbox.now(), everything=True)
        quiet = 0
        for step in range(week):
            now = sandbox.advance(step_min)
            finance.visit(now)
            driver.step(now)
            driver.drain()
            counts = outbox_counts(store_url)
            quiet = quiet + 1 if not counts["pending"] + counts["in_flight"] else 0
            if quiet >= 2 and (step >= at_least or drop == 2):  # drop 2: approvals sent
                break
        else:
            print("  the outbox did not settle in a simulated week", flush=True)
        print(f"  quiescence, drop {drop + 1}: {now:%a %d %b %H:%M} {dict(counts)}", flush=True)
    # A process still frozen carries on now: what it holds was recovered long ago (or not
    # claimed by anyone else), and it must find that out before it sends.
    driver.launcher.thaw_all()
    driver.drain()


def report(
    args: argparse.Namespace,
    figures: Figures,
    verdict: Any,
    stats: dict[str, Any],
    store_url: str,
    finance: Finance,
) -> None:
    from sqlalchemy import func, select

    from acs_khaos_dagster.store import Store
    from acs_khaos_dagster.store.schema import Effect, EffectAttempt

    calls = sum(sum(s["calls"].values()) for s in stats.values())
    injected: Counter[str] = Counter()
    for system, s in stats.items():
        for name, n in s["injected"].items():
            injected[f"{system} {name.split(':', 1)[1]}"] += n
    faults = sum(injected.values())
    with Store.open(store_url, migrate=False) as store, store.transaction() as s:
        kinds = dict(s.execute(select(Effect.kind, func.count()).group_by(Effect.kind)).all())
        attempts = dict(
            s.execute(
                select(EffectAttempt.outcome, func.count()).group_by(EffectAttempt.outcome)
            ).all()
        )
    print()
    print(f"seed {args.seed}  (replay: scripts/chaos.py {' '.join(sys.argv[1:])})")
    print(f"duration {time.monotonic() - figures.started:.0f} s; simulated days {figures.days:.1f}")
    print("wall time by phase (s):", {k: round(v) for k, v in sorted(figures.wall.items())})
    print(
        "CPU seconds by process (ended ones; the share a shared machine gave the soak):",
        {k: round(v) for k, v in sorted(figures.cpu.items(), key=lambda kv: -kv[1])},
    )
    print(
        f"brand: {figures.orders} orders, {figures.cancelled} cancelled, "
        f"{figures.edited} edited before ACS had them, "
        f"{figures.returns} units returned"
    )
    print(f"effects: {sum(kinds.values())}  (all made by the flows)  by kind: {kinds}")
    print(
        f"calls to the simulators: {calls}; faults injected: {faults} "
        f"({100 * faults / max(calls, 1):.1f}%)"
    )
    for name, n in sorted(injected.items()):
        print(f"  {name}: {n}")
    print(
        f"runs launched by sensors and schedules: {sum(figures.runs.values())} "
        f"{dict(sorted(figures.runs.items()))}"
    )
    print(f"run outcomes: {dict(sorted(figures.outcomes.items()))}")
    print(
        f"ticks: {dict(sorted(figures.ticks.items()))}; failed ticks: "
        f"{dict(sorted(figures.tick_errors.items()))}"
    )
    print(f"kills: {sum(figures.kills.values())}")
    for name, n in sorted(figures.kills.items()):
        print(f"  {name}: {n}")
    print(f"freezes: {sum(figures.freezes.values())}")
    for name, n in sorted(figures.freezes.items()):
        print(f"  {name}: {n}")
    print(f"PostgreSQL restarts: {figures.pg_restarts}")
    print(f"brand stock events: {dict(sorted(figures.stock_events.items()))}")
    print(f"finance on held variances: {dict(sorted(finance.figures.items()))}")
    print(f"attempts by outcome: {dict(sorted(attempts.items()))}")
    print("oracles (checked):", dict(sorted(verdict.checked.items())))
    for oracle, entities in sorted(verdict.broken.items()):
        print(f"BROKEN {oracle}: {len(entities)}")
        for entity in entities[:10]:
            print(f"    {entity}")
    for line in verdict.traces:
        print(line)
    for entity in verdict.advisory[:10]:  # brand side (soakbrand): not failed on
        print(f"ADVISORY push changes != physical changes: {entity}")
    print("RESULT: " + ("PASS" if verdict.ok else "FAIL"))
