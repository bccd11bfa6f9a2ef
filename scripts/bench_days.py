"""Benchmark 6 (issue 23, target 4): flat cost over time — a cycle's order reads on day N
against day 10 of an installation's life.

A SQLite store fills as an installation's would: each simulated day releases
``--orders-per-day`` orders (the size's order count) to ACS (effects done), observes them
at the release stage, records the despatch events and shipment postings of the orders
released the day before (95% shipped whole, 5% half and the rest two days later, 2% in
back order for a week). Each measured day times the order reads a cycle makes:

- **open-order reads** (what the release and SLA steps read since the switch):
  ``open_releases`` with ``releases_of`` the day's orders, the outbox states of their keys,
  ``unacknowledged_releases``, ``open_postings``, ``open_observations``,
  ``unposted_events`` and ``observe`` of the day's orders;
- **all-history reads** (same-run reference, what the steps read before): every release,
  the states of every release key, every posting, every observation, every event and
  every decided shipment.

Time is the best of ``--repeat`` runs; memory is the peak of Python allocations
(``tracemalloc``) during one run. The target is day N ≤ 1.2× day 10 for the open-order
reads, in time and memory.

    .venv/bin/python scripts/bench_days.py --size small --days 90
    .venv/bin/python scripts/bench_days.py --size tiny --days 12     # CI smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as common

TARGET = 1.2
BASE_DAY = 10
START = datetime(2026, 1, 5, 7, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _template() -> Any:
    from acs_khaos_dagster.domain.models import AcsOrder, AcsOrderLine, Address, Contact

    return AcsOrder(
        order_number="T",
        order_date=START,
        contact=Contact(first_name="A", last_name="B", email="a@example.test", phone="0"),
        delivery_address=Address(line1="1 High Street", city="Leeds", postcode="LS1 4AP"),
        lines=(
            AcsOrderLine(line_item_id="1", sku="SKU-1", quantity=2, price=Decimal("10")),
            AcsOrderLine(line_item_id="2", sku="SKU-2", quantity=1, price=Decimal("5")),
        ),
    )


class _Installation:
    """The store of an installation that has run ``day`` days."""

    def __init__(self, folder: Path, per_day: int) -> None:
        from acs_khaos_dagster.store import Store

        self.clock = _Clock()
        self.store = Store.open(f"sqlite:///{folder / 'store.sqlite'}", clock=self.clock)
        self.per_day = per_day
        self.day = 0
        self.template = _template()
        self.released: dict[int, list[str]] = {}

    def close(self) -> None:
        self.store.close()

    def next_day(self) -> None:
        from sqlalchemy import update

        from acs_khaos_dagster.domain.order_release import release_outbox_key, release_revision
        from acs_khaos_dagster.effects import EffectKind
        from acs_khaos_dagster.store.orders import OrderBook
        from acs_khaos_dagster.store.schema import Effect
        from acs_khaos_dagster.store.tables.orders import OrderRelease

        self.day += 1
        self.clock.now = START + timedelta(days=self.day)
        book = OrderBook(self.store.db)
        codes = [f"SO{self.day:04d}-{n:05d}" for n in range(self.per_day)]
        keys = []
        with self.store.transaction() as s:
            for code in codes:
                order = self.template.model_copy(update={"order_number": code})
                key = release_outbox_key(order)
                keys.append(key)
                self.store.outbox.enqueue(
                    EffectKind.ACS_ORDER,
                    "acs",
                    code,
                    key,
                    order.model_dump(mode="json"),
                    session=s,
                )
                book.record_release(order, 1, [1], release_revision(order), key, self.clock.now, s)
            s.execute(update(Effect).where(Effect.idempotency_key.in_(keys)).values(state="done"))
            # Acknowledged in Khaos the same cycle, as the release step does once ACS took it.
            s.execute(
                update(OrderRelease)
                .where(OrderRelease.order_code.in_(codes))
                .values(acknowledged_at=self.clock.now)
            )
        self.released[self.day] = codes
        self._ship()
        book.observe(self._seen(), self.clock.now, release_stage_complete=True)

    def _seen(self) -> dict[str, tuple[int, bool, bool]]:
        seen = {code: (1, True, False) for code in self.released[self.day]}
        for day in range(max(1, self.day - 7), self.day):  # 2% wait a week in back order
            for code in self.released[day][: max(1, self.per_day // 50)]:
                seen[code] = (1, False, True)
        return seen

    def _ship(self) -> None:
        from acs_khaos_dagster.domain.models import DespatchEvent
        from acs_khaos_dagster.store.orders import OrderBook, PostingRecord

        records, events = [], []
        partial = max(1, self.per_day // 20)
        yesterday = self.released.get(self.day - 1, [])
        for n, code in enumerate(yesterday):
            units = ((1, 1), (2, 1)) if n < partial else ((1, 2), (2, 1))
            records.append(PostingRecord(f"{code}-A", code, 1, f"E-{code}-A", "queued", units))
        for code in self.released.get(self.day - 3, [])[:partial]:  # the rest, later
            records.append(PostingRecord(f"{code}-B", code, 1, f"E-{code}-B", "queued", ((1, 1),)))
        for r in records:
            events.append(
                DespatchEvent(
                    event_id=r.event_id,
                    order_number=r.order_number,
                    shipment_id=r.shipment_id,
                    despatched_at=self.clock.now,
                )
            )
        book = OrderBook(self.store.db)
        with self.store.transaction() as s:
            book.record_events(events, s)
            book.record_postings(records, s)

    # -- the measured reads -------------------------------------------------------------

    def open_reads(self) -> int:
        from acs_khaos_dagster.store.orders import OrderBook

        book = OrderBook(self.store.db)
        # What the release step reads now: the day's waiting orders by key, the open
        # ones, their states, the releases not yet acknowledged.
        releases = {**book.open_releases(), **book.releases_of(self.released[self.day])}
        states = self.store.outbox.states(r.outbox_key for r in releases.values())
        unacknowledged = book.unacknowledged_releases()
        postings = book.open_postings()
        observations = book.open_observations()
        unposted = book.unposted_events()
        book.observe(self._seen(), self.clock.now, release_stage_complete=True)
        return (
            len(releases)
            + len(states)
            + len(unacknowledged)
            + len(postings)
            + len(observations)
            + len(unposted)
        )

    def all_reads(self) -> int:
        from sqlalchemy import select

        from acs_khaos_dagster.store.orders import OrderBook
        from acs_khaos_dagster.store.tables.orders import DespatchEventRow, ShipmentPosting

        book = OrderBook(self.store.db)
        releases = book.releases()
        states = self.store.outbox.states(r.outbox_key for r in releases.values())
        postings = book.postings()
        observations = book.observations()
        with self.store.transaction() as s:  # what unposted_events read before
            decided = set(s.scalars(select(ShipmentPosting.shipment_id)))
            events = [
                r for r in s.scalars(select(DespatchEventRow)) if r.shipment_id not in decided
            ]
        return len(releases) + len(states) + len(postings) + len(observations) + len(events)


def _measure(read: Callable[[], int], repeat: int) -> dict[str, float]:
    times = []
    rows = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = read()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    read()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": min(times), "peak_mib": peak / 2**20, "rows": rows}


def child(per_day: int, days: int, repeat: int, every: int) -> dict[str, Any]:
    checkpoints = sorted({BASE_DAY, days, *range(every, days + 1, every)} - {0})
    measured: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-days-") as folder:
        inst = _Installation(Path(folder), per_day)
        try:
            for _ in range(days):
                inst.next_day()
                if inst.day in checkpoints:
                    measured[inst.day] = {
                        "open": _measure(inst.open_reads, repeat),
                        "all": _measure(inst.all_reads, repeat),
                    }
        finally:
            inst.close()
    return {"per_day": per_day, "days": days, "repeat": repeat, "measured": measured}


def measure(
    size: str, days: int = 90, repeat: int = 3, per_day: int | None = None, every: int = 10
) -> dict[str, Any]:
    per_day = per_day or common.SIZES[size].orders
    out, _, _ = common.run_child(
        [
            str(Path(__file__)),
            "--child",
            "--orders-per-day",
            str(per_day),
            "--days",
            str(days),
            "--repeat",
            str(repeat),
            "--every",
            str(every),
        ]
    )
    result = json.loads(out.strip().splitlines()[-1])
    result["measured"] = {int(k): v for k, v in result["measured"].items()}
    return {"size": size, **result}


def report(result: dict[str, Any]) -> str:
    m = result["measured"]
    days = result["days"]
    base_day = BASE_DAY if BASE_DAY in m else min(m)
    base, last = m[base_day], m[days]
    t_ratio = last["open"]["seconds"] / base["open"]["seconds"]
    m_ratio = last["open"]["peak_mib"] / max(base["open"]["peak_mib"], 1e-9)
    verdict = "pass" if t_ratio <= TARGET and m_ratio <= TARGET else "MISS"
    lines = [
        f"order reads over time [{result['size']}] {result['per_day']} orders/day, "
        f"{days} days, best of {result['repeat']}",
        "  day   open-order reads: time    peak    rows | all-history reads: time    peak    rows",
    ]
    for day in sorted(m):
        o, a = m[day]["open"], m[day]["all"]
        lines.append(
            f"  {day:3d}   {o['seconds'] * 1000:19.1f} ms {o['peak_mib']:5.1f} MiB {o['rows']:7.0f}"
            f" | {a['seconds'] * 1000:16.1f} ms {a['peak_mib']:5.1f} MiB {a['rows']:7.0f}"
        )
    all_ratio = last["all"]["seconds"] / base["all"]["seconds"]
    lines.append(
        f"  day {days} / day {base_day}: open-order reads time {t_ratio:.2f}x, memory "
        f"{m_ratio:.2f}x (target ≤{TARGET}): {verdict}; all-history reads time "
        f"{all_ratio:.2f}x (same-run reference)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=sorted(common.SIZES))
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--orders-per-day", type=int, help="default: the size's order count")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--every", type=int, default=10, help="measure every N days")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.child:
        print(json.dumps(child(args.orders_per_day, args.days, args.repeat, args.every)))
        return 0
    result = measure(args.size, args.days, args.repeat, args.orders_per_day, args.every)
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
