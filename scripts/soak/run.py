"""The soak end to end: set-up, simulated trading days under faults, quiescence, oracles."""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from soak.finance import Finance
from soak.loop import (
    Figures,
    Launcher,
    SandboxProcess,
    Ticker,
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
        launcher = Launcher(env, work, rng, figures, args.kill_share, args.max_running)
        ticker = Ticker(launcher, figures)
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
                made = http("POST", f"{sandbox.khaos}/_sandbox/soak/trade?orders={per_step}")
                figures.orders += made["orders"]
                figures.cancelled += made["cancelled"]
                # brand side (soakbrand): stock changes no order explains
                for kind, n in http("POST", f"{sandbox.acs}/_sandbox/soak/stock").items():
                    figures.stock_events[kind] += n
            finance.visit(now)  # brand side (soakbrand)
            if local.minute < args.step_min and local.hour % 4 == 0:
                got = http("POST", f"{sandbox.acs}/_sandbox/soak/returns?share=0.06")
                figures.returns += got["received"]
            if local.hour == 5 and local.minute < args.step_min:
                http("POST", f"{sandbox.acs}/_sandbox/daily-files")
            if step in restarts:
                cluster.restart()
                figures.pg_restarts += 1
                print(f"  PostgreSQL restarted at step {step}", flush=True)
            now = sandbox.advance(args.step_min)
            _tick(ticker, launcher, now, args.max_running, args.step_wall_s)
            if step % max(1, steps // 20) == 0:
                print(
                    f"  {now:%a %d %b %H:%M} step {step}/{steps}: {dict(outbox_counts(store_url))}"
                    f" runs {sum(figures.runs.values())} kills {sum(figures.kills.values())}",
                    flush=True,
                )
        stats = sandbox.fault_stats()
        sandbox.faults_off()
        settle(sandbox, ticker, launcher, store_url, args, finance)
        figures.days = (sandbox.now() - start).total_seconds() / 86400
        acs, khaos, units = sandbox.truth()
    finally:
        if launcher is not None:
            launcher.kill_all()
        if sandbox is not None:
            sandbox.stop()
    from soak.oracles import check

    verdict = check(acs, khaos, units, store_url)
    report(args, figures, verdict, stats, store_url, finance)
    cluster.stop("fast")
    return 0 if verdict.ok else 1


def _tick(
    ticker: Ticker, launcher: Launcher, now: datetime, max_running: int, budget: float
) -> None:
    ticker.tick(now)
    launcher.wait_below(ticker.instance, max_running - 1, budget)


def settle(
    sandbox: SandboxProcess,
    ticker: Ticker,
    launcher: Launcher,
    store_url: str,
    args: argparse.Namespace,
    finance: Finance,
) -> None:
    """Faults off, no more trading: ACS finishes its work (hire units back and cleaned) in
    day-long jumps, as over a closed weekend; then its last files are dropped and the
    integration's schedules and sensors run hour by hour until the outbox and the runs are
    quiet for three hours and a full day has passed (the stock push of the last snapshot,
    the finance batch and a night's reconciliation all had their turn)."""
    launcher.wait_below(ticker.instance, 0, 600)
    for _ in range(14):
        if not http("GET", f"{sandbox.acs}/_sandbox/soak/units")["busy"]:
            break
        sandbox.advance(24 * 60)
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
        for step in range(8 * 7):
            now = sandbox.advance(180)
            finance.visit(now)
            _tick(ticker, launcher, now, args.max_running, args.step_wall_s)
            launcher.wait_below(ticker.instance, 0, 600)
            counts = outbox_counts(store_url)
            quiet = quiet + 1 if not counts["pending"] + counts["in_flight"] else 0
            if quiet >= 2 and (step >= 9 or drop == 2):  # drop 2: approvals sent (soakbrand)
                break
        else:
            print("  the outbox did not settle in a simulated week", flush=True)


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
    print(
        f"brand: {figures.orders} orders, {figures.cancelled} cancelled, "
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
    print(f"PostgreSQL restarts: {figures.pg_restarts}")
    print(f"brand stock events: {dict(sorted(figures.stock_events.items()))}")
    print(f"finance on held variances: {dict(sorted(finance.figures.items()))}")
    print(f"attempts by outcome: {dict(sorted(attempts.items()))}")
    print("oracles (checked):", dict(sorted(verdict.checked.items())))
    for oracle, entities in sorted(verdict.broken.items()):
        print(f"BROKEN {oracle}: {len(entities)}")
        for entity in entities[:10]:
            print(f"    {entity}")
    for entity in verdict.advisory[:10]:  # brand side (soakbrand): not failed on
        print(f"ADVISORY push changes != physical changes: {entity}")
    print("RESULT: " + ("PASS" if verdict.ok else "FAIL"))
