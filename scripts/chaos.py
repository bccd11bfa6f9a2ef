"""Soak of the product as it runs in production: `make chaos`, figures in RELIABILITY.md.

    .venv/bin/python scripts/chaos.py                  # the defaults: make chaos
    .venv/bin/python scripts/chaos.py --small          # the bounded version CI runs

A generated brand trades over simulated days (``scripts/soak/brand.py``): new orders,
cancellations and returns land in the Khaos and ACS simulators, which pick, despatch (split
and short-closed shipments too), move hire units, grade returns, drop their daily files and
issue invoices as simulated time passes. Every effect comes from the integration's flows,
in Dagster runs started by its own sensors and schedules, ticked by a daemon process
(``scripts/soak/daemon.py``) on the simulated clock against a Dagster instance on the soak's
own PostgreSQL; each run in a worker process of its own (``scripts/soak/launcher.py``). Production
settings throughout (lease, read-back delay, backoff, attempts, claim batch on the
simulated clock), except the client's wall-clock read timeout. Under way: faults from the
sandbox's menu on a quarter of all calls (5xx, 429, 403 quota, stalls beyond the client's
timeout, timeouts before and after applying, resets, gateway 502 after applying, Khaos
applying after the client gave up, feed duplicates/reorders/replays/republishes), run
workers, standalone dispatchers (``acs-khaos outbox dispatch``) and the daemon SIGKILLed at
random moments, run workers killed at each outbox crash point, run workers and dispatchers
frozen (SIGSTOP) holding claims while simulated time outruns the lease, then thawed, and
PostgreSQL stopped (immediate mode) and restarted. Then quiescence, and the oracles
(``scripts/soak/oracles.py``) from the simulators' ground truth. Exit status 0 only if
every oracle holds; otherwise it prints which entity broke which oracle.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        from soak.brand import serve

        parser = argparse.ArgumentParser()
        parser.add_argument("mode")
        parser.add_argument("scenario", type=Path)
        parser.add_argument("drop", type=Path)
        parser.add_argument("--seed", type=int, default=7)
        a = parser.parse_args()
        return serve(a.scenario, a.drop, a.seed)
    if len(sys.argv) > 1 and sys.argv[1] == "forkserver":
        from soak.launcher import fork_server

        return fork_server()
    from soak.run import soak

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--size", default="small", help="the generated brand (tiny, small)")
    parser.add_argument("--days", type=float, default=1.0, help="simulated days of trading")
    parser.add_argument("--orders-per-day", type=int, default=3100)
    parser.add_argument("--step-min", type=int, default=60, help="simulated minutes per step")
    parser.add_argument(
        "--step-wall-s",
        type=float,
        default=4.0,
        help="longest wall-clock wait for running runs per step",
    )
    parser.add_argument("--fault-rate", type=float, default=0.25)
    parser.add_argument(
        "--edit-share",
        type=float,
        default=0.03,
        help="chance an order of the last hours not yet at ACS has its address corrected",
    )
    parser.add_argument(
        "--kill-share",
        type=float,
        default=0.7,
        help="share of run workers killed (SIGKILL or a crash point)",
    )
    parser.add_argument(
        "--freeze-share",
        type=float,
        default=0.1,
        help="share of run workers frozen (SIGSTOP) holding claims, thawed after the lease",
    )
    parser.add_argument(
        "--daemon-kill-rate", type=float, default=0.5, help="chance a step kills the daemon"
    )
    parser.add_argument(
        "--dispatcher-rate",
        type=float,
        default=0.3,
        help="chance a step starts a standalone `acs-khaos outbox dispatch`",
    )
    parser.add_argument(
        "--returns-share",
        type=float,
        default=0.06,
        help="share of despatched units ACS receives back, every four simulated hours",
    )
    parser.add_argument(
        "--settle-step-min",
        type=int,
        default=360,
        help="simulated minutes per step once trading has stopped (quiescence)",
    )
    parser.add_argument(
        "--settle-jump-days",
        type=int,
        default=2,
        help="simulated days per step while ACS finishes its work (hire units back)",
    )
    parser.add_argument("--pg-restarts", type=int, default=2)
    parser.add_argument("--max-running", type=int, default=3, help="run workers at once")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--small", action="store_true", help="the bounded version CI runs")
    args = parser.parse_args()
    if args.small:
        args.size, args.days, args.orders_per_day = "tiny", 0.5, 40
        args.step_min, args.kill_share, args.pg_restarts = 60, 0.3, 1
        args.step_wall_s, args.freeze_share, args.daemon_kill_rate = 2.0, 0.5, 0.3
        args.returns_share = 0.25  # enough customer returns for a frozen returns run
        # Six-hour steps once trading stops: the same drops, pushes, finance batches and
        # nights, in half the daemon ticks and runs (a bounded soak in CI's time).
        args.settle_step_min, args.settle_jump_days = 360, 3
        args.edit_share = 0.15  # a few address corrections even in half a day of a tiny brand
    return soak(args)


if __name__ == "__main__":
    raise SystemExit(main())
