"""The hand-out rule: which claimed effects a dispatcher starts now (issue 23).

Khaos imports are not idempotent: up to ``outbox.import_concurrency`` of them go at once,
never two acting on one entity (order, stock item, invoice, return), and effects sharing a
business key or an entity start in the order they were claimed. The rule is pure
(``store/dispatcher/handout.py``); the last tests run it inside the real ``Dispatcher``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.dispatcher.handout import Lane, hand_out, overlap


@dataclass(frozen=True)
class Item:
    n: int  # claim order
    lane: Lane


def lane_of(item: Item) -> Lane:
    return item.lane


entity_sets = st.one_of(st.none(), st.frozensets(st.sampled_from("abcdef"), min_size=0, max_size=3))
lanes = st.builds(
    Lane,
    key=st.integers(0, 5),
    exclusive=st.booleans(),
    entities=entity_sets,
)


def conflict(a: Lane, b: Lane) -> bool:
    """The rule, said independently: one key, or two imports acting on one thing."""
    return a.key == b.key or (a.exclusive and b.exclusive and overlap(a.entities, b.entities))


@settings(max_examples=300, deadline=None)
@given(
    claimed=st.lists(lanes, min_size=1, max_size=25),
    width=st.integers(1, 6),
    exclusive_width=st.integers(1, 6),
    data=st.data(),
)
def test_never_two_conflicting_in_flight_never_above_the_limits_and_claim_order_kept(
    claimed: list[Lane], width: int, exclusive_width: int, data: st.DataObject
) -> None:
    waiting = [Item(n, lane) for n, lane in enumerate(claimed)]
    running: list[Item] = []
    started: list[int] = []
    most_exclusive = 0
    for _ in range(10 * len(claimed)):
        if not waiting and not running:
            break
        start, kept = hand_out(
            waiting,
            [i.lane for i in running],
            lane_of,
            width=width,
            exclusive_width=exclusive_width,
        )
        assert sorted(i.n for i in [*start, *kept]) == sorted(i.n for i in waiting)
        assert [i.n for i in kept] == sorted(i.n for i in kept)  # kept in claim order
        if not running:
            assert start, "nothing in flight, yet nothing started: the dispatcher would stall"
        running.extend(start)
        started.extend(i.n for i in start)
        waiting = kept
        assert len(running) <= width
        exclusive = sum(i.lane.exclusive for i in running)
        most_exclusive = max(most_exclusive, exclusive)
        assert exclusive <= exclusive_width
        for x, a in enumerate(running):
            for b in running[x + 1 :]:
                assert not conflict(a.lane, b.lane), (a, b)
        # Some of those in flight finish (at least one), in any order.
        done = data.draw(st.sets(st.sampled_from(range(len(running))), min_size=1))
        running = [i for x, i in enumerate(running) if x not in done]
    assert not waiting and not running
    # Whatever conflicts with an earlier claim starts after it.
    position = {n: p for p, n in enumerate(started)}
    for a in claimed_items(claimed):
        for b in claimed_items(claimed):
            if a.n < b.n and conflict(a.lane, b.lane):
                assert position[a.n] < position[b.n], (a, b)


def claimed_items(claimed: list[Lane]) -> list[Item]:
    return [Item(n, lane) for n, lane in enumerate(claimed)]


def test_imports_on_different_entities_go_together_up_to_the_limit() -> None:
    waiting = [Item(n, Lane(n, True, frozenset({f"order:{n}"}))) for n in range(6)]
    start, kept = hand_out(waiting, [], lane_of, width=8, exclusive_width=4)
    assert [i.n for i in start] == [0, 1, 2, 3] and [i.n for i in kept] == [4, 5]


def test_a_stock_item_shared_by_two_groups_keeps_the_second_back_and_later_ones_behind_it() -> None:
    a = Item(0, Lane("g1", True, frozenset({"stock:1", "stock:2"})))
    b = Item(1, Lane("g2", True, frozenset({"stock:2", "stock:3"})))  # shares stock:2 with a
    c = Item(2, Lane("g3", True, frozenset({"stock:3"})))  # shares only with b, still waiting
    d = Item(3, Lane("g4", True, frozenset({"stock:4"})))
    start, kept = hand_out([a, b, c, d], [], lane_of, width=8, exclusive_width=4)
    assert start == [a, d] and kept == [b, c]


def test_an_import_naming_no_entity_goes_alone() -> None:
    a = Item(0, Lane("k0", True, frozenset({"order:1"})))
    b = Item(1, Lane("k1", True, None))
    c = Item(2, Lane("k2", True, frozenset({"order:2"})))
    put = Item(3, Lane("k3", False))
    start, kept = hand_out([a, b, c, put], [], lane_of, width=8, exclusive_width=4)
    assert start == [a, put] and kept == [b, c]


def test_an_import_limit_of_one_sends_imports_one_at_a_time() -> None:
    waiting = [Item(n, Lane(n, True, frozenset({f"order:{n}"}))) for n in range(3)]
    start, _ = hand_out(waiting, [], lane_of, width=8, exclusive_width=1)
    assert [i.n for i in start] == [0]
    start, _ = hand_out(waiting[1:], [waiting[0].lane], lane_of, width=8, exclusive_width=1)
    assert start == []


# --- inside the dispatcher ---------------------------------------------------------------


class OrderImports:
    """A non-idempotent handler whose effects act on ``payload['order']``; it records how
    many sends were in flight at once, overall and per order."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.lock = threading.Lock()
        self.in_flight: list[str] = []
        self.most = 0
        self.overlapped: set[str] = set()
        self.sent: list[str] = []
        self.barrier = barrier

    def entities(self, payload: dict) -> frozenset[str]:
        return frozenset({f"order:{payload['order']}"})

    def send(self, payload: dict) -> dict:
        with self.lock:
            if payload["order"] in self.in_flight:
                self.overlapped.add(payload["order"])
            self.in_flight.append(payload["order"])
            self.most = max(self.most, len(self.in_flight))
        if self.barrier is not None:
            self.barrier.wait()
        time.sleep(0.003)  # room for another send to start, were it allowed
        with self.lock:
            self.in_flight.remove(payload["order"])
            self.sent.append(payload["ref"])
        return {"remote_id": payload["ref"]}

    def read_back(self, payload: dict) -> dict | None:
        return None


def enqueue_import(store: Store, ref: str, order: str) -> None:
    store.outbox.enqueue("post", "khaos", ref, f"post:{ref}", {"ref": ref, "order": order})


def test_the_dispatcher_keeps_imports_of_different_orders_in_flight_together(
    store: Store,
) -> None:
    for i in range(4):
        enqueue_import(store, f"S{i}", f"O{i}")
    # Each send waits for the other three: only four in flight together get through.
    handler = OrderImports(barrier=threading.Barrier(4, timeout=10))
    settings = OutboxSettings(backoff_initial_s=0, concurrency=8, import_concurrency=4)
    report = store.dispatcher({"post": handler}, settings).drain()
    assert report.outcomes == {"sent": 4}


def test_the_dispatcher_never_sends_two_imports_of_one_order_at_once_and_keeps_their_order(
    store: Store,
) -> None:
    for i in range(24):
        enqueue_import(store, f"S{i}", f"O{i // 5}")  # an order's shipments claimed together
    handler = OrderImports()
    settings = OutboxSettings(backoff_initial_s=0, concurrency=8, import_concurrency=3)
    store.dispatcher({"post": handler}, settings).drain()
    assert store.outbox.status().counts == {("post", "done"): 24}
    assert handler.overlapped == set()
    assert 1 < handler.most <= 3
    for order in range(5):
        mine = [f"S{i}" for i in range(24) if i // 5 == order]
        assert [ref for ref in handler.sent if ref in mine] == mine


def test_an_import_concurrency_of_one_keeps_todays_one_at_a_time(store: Store) -> None:
    for i in range(8):
        enqueue_import(store, f"S{i}", f"O{i}")
    handler = OrderImports()
    settings = OutboxSettings(backoff_initial_s=0, concurrency=8, import_concurrency=1)
    store.dispatcher({"post": handler}, settings).drain()
    assert store.outbox.status().counts == {("post", "done"): 8}
    assert handler.most == 1


def test_an_import_whose_entities_cannot_be_told_goes_alone(store: Store) -> None:
    class Unknowable(OrderImports):
        def entities(self, payload: dict) -> frozenset[str]:
            raise KeyError("order")  # an effect stored before its payload named one

    for i in range(6):
        enqueue_import(store, f"S{i}", f"O{i}")
    handler = Unknowable()
    settings = OutboxSettings(backoff_initial_s=0, concurrency=8, import_concurrency=4)
    store.dispatcher({"post": handler}, settings).drain()
    assert store.outbox.status().counts == {("post", "done"): 6}
    assert handler.most == 1
