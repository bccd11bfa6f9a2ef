"""Benchmark 2: order release throughput against the sandbox, 429s honoured.

What is measured: ``AcsOrderPush`` effects sent by the outbox dispatchers — the release
path of ``defs/orders.py`` — with ``THREADS`` dispatchers (one thread, one Store
connection and one pooled ``AcsClient`` each) draining one SQLite outbox. The sandbox
injects ``FaultRule(operation="put_order", kind=RATE_LIMIT, rate=0.05, retry_after=1)``;
the client does not retry writes, so a 429 becomes a ``TransientError`` and the outbox
reschedules the effect after ``max(backoff with jitter, Retry-After)``. A dispatcher that
finds nothing due while effects are still waiting sleeps 50 ms. Figure: orders accepted
by ACS per second, from the first claim to the last confirmation.

Baseline, same run, same concurrency, a fresh sandbox process, no faults: a bare
``httpx`` loop PUTting the same (already serialised) order bodies.

The sandbox runs in its own process (``bench_sandbox_server.py``), so it does not share
a GIL with the client threads.

    .venv/bin/python scripts/bench_release.py --size small
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common

THREADS = 8
MAX_ORDERS = 3000
TARGET_RATIO = 0.8


def _orders(folder: Path, limit: int) -> list[object]:
    from acs_khaos_dagster.domain.order_release import to_acs_order
    from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest

    manifest = ScenarioManifest.load(folder)
    skus = {item.stock_id: item.stock_code for item in manifest.stock_items}
    orders = []
    for order in manifest.orders:
        try:
            orders.append(to_acs_order(order, skus))
        except (KeyError, ValueError, Exception):
            continue
        if len(orders) >= limit:
            break
    return orders


class _Server:
    def __init__(self, folder: Path, work: Path) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("bench_sandbox_server.py")),
                str(folder),
                str(work / "acs_drop"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=common.ROOT,
        )
        self.env = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=60)


def _baseline(folder: Path, work: Path, orders: list[object]) -> dict[str, float]:
    import httpx

    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.connectors.acs import wire
    from acs_khaos_dagster.connectors.acs.client import API_PREFIX, KEY_HEADER

    server = _Server(folder, work)
    try:
        settings = load_settings()
        account = server.env["ACS_KHAOS_ACS__ACCOUNT_CODE"]
        requests = [
            (f"/orders/{o.order_number}.json", wire.order_to_wire(o, account))  # type: ignore[attr-defined]
            for o in orders
        ]
        headers = {KEY_HEADER: settings.acs.subscription_key.get_secret_value()}
        base = server.env["ACS_KHAOS_ACS__BASE_URL"] + API_PREFIX
        statuses: list[int] = []
        lock = threading.Lock()
        position = iter(range(len(requests)))

        def work_loop() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
                while True:
                    with lock:
                        index = next(position, None)
                    if index is None:
                        return
                    url, body = requests[index]
                    status = http.put(url, json=body).status_code
                    with lock:
                        statuses.append(status)

        started = time.perf_counter()
        threads = [threading.Thread(target=work_loop) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        ok = sum(1 for s in statuses if s < 300)
        return {
            "seconds": seconds,
            "requests": len(statuses),
            "ok": ok,
            "per_second": len(statuses) / seconds,
        }
    finally:
        server.close()


def _dispatched(folder: Path, work: Path, orders: list[object]) -> dict[str, float]:
    import httpx

    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.connectors.acs.client import AcsClient
    from acs_khaos_dagster.domain.order_release import release_outbox_key
    from acs_khaos_dagster.effects import TARGET_OF, EffectKind, effect_handlers
    from acs_khaos_dagster.store import Store

    server = _Server(folder, work)
    try:
        os.environ.update(server.env)
        # A wall-clock benchmark: Retry-After and outbox backoff wait in real time, so the
        # store runs on the system clock, not the sandbox's (which only moves when told).
        os.environ.pop("ACS_KHAOS_CLOCK_URL", None)
        settings = load_settings()
        kind = EffectKind.ACS_ORDER
        with Store.from_settings(settings) as store, store.transaction() as session:
            for order in orders:
                store.outbox.enqueue(
                    kind,
                    TARGET_OF[kind],
                    f"order:{order.order_number}",  # type: ignore[attr-defined]
                    release_outbox_key(order),
                    order.model_dump(mode="json"),  # type: ignore[attr-defined]
                    session=session,
                )
        acs = server.env["ACS_KHAOS_ACS__BASE_URL"]
        httpx.post(
            f"{acs}/_sandbox/bench/faults",
            params={"operation": "put_order", "kind": "rate_limit", "rate": 0.05, "retry_after": 1},
        ).raise_for_status()
        outcomes: dict[str, int] = {}
        lock = threading.Lock()

        def work_loop(number: int) -> None:
            with (
                Store.from_settings(settings) as store,
                AcsClient.from_settings(settings) as client,
            ):
                dispatcher = store.dispatcher(
                    effect_handlers(acs=client), settings.outbox, name=f"bench{number}"
                )
                while True:
                    report = dispatcher.drain()
                    with lock:
                        for outcome, count in report.outcomes.items():
                            outcomes[outcome] = outcomes.get(outcome, 0) + count
                    if report.claimed == 0:
                        status = store.outbox.status()
                        if status.pending + status.in_flight == 0:
                            return
                        time.sleep(0.05)

        started = time.perf_counter()
        threads = [threading.Thread(target=work_loop, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        sent = outcomes.get("sent", 0)
        return {
            "seconds": seconds,
            "orders": len(orders),
            "sent": sent,
            "per_second": sent / seconds,
            **{f"outcome_{k}": v for k, v in outcomes.items()},
        }
    finally:
        server.close()


def child(folder: Path, limit: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-release-"))
    os.environ["ACS_KHAOS_DATA_DIR"] = str(work / "data")
    orders = _orders(folder, limit)
    base = _baseline(folder, work, orders)
    measured = _dispatched(folder, work, orders)
    return {
        "baseline": base,
        "dispatched": measured,
        "ratio": measured["per_second"] / base["per_second"],
    }


def measure(size: str, seed: int = common.DEFAULT_SEED) -> dict[str, object]:
    folder = common.scenario_dir(size, seed)
    out, _, _ = common.run_child(
        [str(Path(__file__)), "--child", "--folder", str(folder), "--limit", str(MAX_ORDERS)]
    )
    return {"size": size, "threads": THREADS, **json.loads(out.strip().splitlines()[-1])}


def report(result: dict[str, object]) -> str:
    base, got = result["baseline"], result["dispatched"]
    assert isinstance(base, dict) and isinstance(got, dict)
    ratio = float(result["ratio"])  # type: ignore[arg-type]
    verdict = "pass" if ratio >= TARGET_RATIO else "MISS"
    outcomes = ", ".join(f"{k[8:]}: {v}" for k, v in got.items() if k.startswith("outcome_"))
    return "\n".join(
        [
            f"order release [{result['size']}] {got['orders']} orders, {result['threads']} threads",
            f"  baseline bare httpx PUT loop   {base['per_second']:7.1f} req/s "
            f"({base['seconds']:.1f} s)",
            f"  outbox dispatchers, 5% 429s    {got['per_second']:7.1f} orders/s "
            f"({got['seconds']:.1f} s) outcomes {{{outcomes}}}",
            f"  ratio {ratio:.2f} (target ≥{TARGET_RATIO}): {verdict}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=sorted(common.SIZES))
    parser.add_argument("--seed", type=int, default=common.DEFAULT_SEED)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=MAX_ORDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.folder, args.limit)))
        return 0
    result = measure(args.size, args.seed)
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
