"""Outbox: the state of many effects looked up by key at once."""

from __future__ import annotations

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store import Store

from .remote import ScriptedHandler

FAST = OutboxSettings(max_attempts=3, backoff_initial_s=0, backoff_max_s=0)


def test_states_by_key_give_each_known_effect_its_state_and_leave_unknown_keys_out(
    store: Store,
) -> None:
    store.outbox.enqueue("post", "khaos", "SO1", "post:SO1", {"ref": "SO1"})
    store.dispatcher({"post": ScriptedHandler()}, FAST).drain()
    store.outbox.enqueue("post", "khaos", "SO2", "post:SO2", {"ref": "SO2"}, hold=True)

    states = store.outbox.states(["post:SO1", "post:SO2", "post:NEVER"])

    assert states == {"post:SO1": "done", "post:SO2": "held"}


def test_states_by_key_answer_for_more_keys_than_one_query_takes(store: Store) -> None:
    keys = [f"post:SO{i}" for i in range(1200)]
    with store.transaction() as session:
        for key in keys:
            store.outbox.enqueue("post", "khaos", key, key, {"ref": key}, session=session)

    states = store.outbox.states([*keys, "post:NEVER"])

    assert len(states) == 1200 and set(states.values()) == {"pending"}
