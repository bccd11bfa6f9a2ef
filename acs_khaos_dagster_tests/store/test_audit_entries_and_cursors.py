"""The audit log's entries and the cursors (``store/audit.py``, ``store/cursors.py``), on
SQLite and PostgreSQL: a write to another system is recorded with a hash of its payload
that does not depend on key order, a batch of writes in one go, entries are found by
category, subject, key and action, and a cursor holds any JSON value, read in or out of
a transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.audit import (
    EXTERNAL_WRITE,
    HUMAN_ACTION,
    SYSTEM_ACTOR,
    ExternalWrite,
    canonical_json,
    payload_sha256,
)

from .conftest import FakeClock

# --- payload hashes (pure) -----------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_spaces() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_values_json_cannot_hold_are_written_as_text() -> None:
    when = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert canonical_json({"at": when}) == '{"at":"2026-03-02 09:00:00+00:00"}'


def test_a_payload_hash_is_the_sha256_of_its_canonical_json() -> None:
    # sha256 of the two bytes "{}", as any sha256 tool prints it.
    assert payload_sha256({}) == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


@given(
    items=st.dictionaries(
        st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8)), max_size=8
    )
)
def test_the_hash_does_not_depend_on_the_order_keys_were_written_in(items: dict) -> None:
    reordered = dict(reversed(list(items.items())))
    assert payload_sha256(items) == payload_sha256(reordered)


# --- entries -------------------------------------------------------------------------------------


def test_a_write_is_recorded_by_the_integration_with_when_and_how_long(
    store: Store, clock: FakeClock
) -> None:
    entry = store.audit.record_write(
        system="khaos",
        operation="ImportDespatch",
        idempotency_key="despatch:SH1",
        payload={"ref": "SH1"},
        outcome="sent",
        duration_ms=412.7,  # type: ignore[arg-type]
        subject="shipment:SH1",
    )
    assert (entry.category, entry.actor, entry.at, entry.duration_ms) == (
        EXTERNAL_WRITE,
        SYSTEM_ACTOR,
        clock.now,
        412,
    )
    assert entry.payload_sha256 == payload_sha256({"ref": "SH1"})


def test_a_batch_of_writes_is_recorded_at_once_in_the_callers_transaction(
    store: Store, clock: FakeClock
) -> None:
    writes = [
        ExternalWrite("acs", "put_order", f"order:SO{n}", {"n": n}, "sent", 10 * n, f"order:SO{n}")
        for n in range(1, 4)
    ]
    with store.transaction() as s:
        store.audit.record_writes(writes, at=clock.now, session=s)
        store.audit.record_writes([], at=clock.now, session=s)
    entries = store.audit.list(category=EXTERNAL_WRITE)
    assert [(e.action, e.idempotency_key, e.duration_ms, e.note) for e in entries] == [
        ("put_order", "order:SO1", 10, None),
        ("put_order", "order:SO2", 20, None),
        ("put_order", "order:SO3", 30, None),
    ]
    assert entries[1].payload_sha256 == payload_sha256({"n": 2})


def test_a_batch_in_a_transaction_that_fails_leaves_no_entry(
    store: Store, clock: FakeClock
) -> None:
    write = ExternalWrite("acs", "put_order", "order:SO1", {}, "sent", 1)
    with pytest.raises(RuntimeError), store.transaction() as s:
        store.audit.record_writes([write], at=clock.now, session=s)
        raise RuntimeError("the outbox update failed")
    assert store.audit.list() == []


def test_entries_are_found_by_category_subject_key_and_action(store: Store) -> None:
    store.audit.record_action(actor="ops.anna", action="resolve", subject="exception:1")
    store.audit.record_action(actor="ops.anna", action="ignore", subject="exception:2")
    store.audit.record_write(
        system="acs",
        operation="put_order",
        idempotency_key="order:SO1",
        payload={},
        outcome="sent",
        duration_ms=5,
        subject="exception:1",
    )
    audit = store.audit
    assert [e.action for e in audit.list(category=HUMAN_ACTION)] == ["resolve", "ignore"]
    assert [e.action for e in audit.list(subject="exception:1")] == ["resolve", "put_order"]
    assert [e.action for e in audit.list(idempotency_key="order:SO1")] == ["put_order"]
    assert [e.subject for e in audit.list(action="ignore")] == ["exception:2"]
    assert [e.action for e in audit.list(limit=2)] == ["resolve", "ignore"]


def test_a_human_action_is_ok_unless_said_otherwise(store: Store) -> None:
    entry = store.audit.record_action(actor="fin.jo", action="approve", subject="effect:9")
    refused = store.audit.record_action(
        actor="fin.jo", action="approve", subject="effect:9", outcome="second_approval_needed"
    )
    assert (entry.outcome, refused.outcome) == ("ok", "second_approval_needed")


# --- cursors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2026-03-02T09:00:00Z", 42, {"file": "stock_1.csv", "line": 7}, ["a", "b"], None, True],
)
def test_a_cursor_holds_any_json_value(store: Store, value: object) -> None:
    with store.transaction() as s:
        store.cursors.set("acs:despatches", value, session=s)
    assert store.cursors.get("acs:despatches", default="unset") == value


def test_a_cursor_read_in_the_transaction_that_moved_it_sees_the_new_value(store: Store) -> None:
    with store.transaction() as s:
        store.cursors.set("c", 1, session=s)
    with store.transaction() as s:
        assert store.cursors.get("c", session=s) == 1
        store.cursors.set("c", 2, session=s)
        assert store.cursors.get("c", session=s) == 2


def test_a_cursor_is_only_written_inside_a_transaction(store: Store) -> None:
    with pytest.raises(ValueError, match="caller's transaction"):
        store.cursors.set("c", 1, session=None)  # type: ignore[arg-type]


def test_every_cursor_is_listed_by_name(store: Store, clock: FakeClock) -> None:
    with store.transaction() as s:
        store.cursors.set("khaos:orders", "2026-03-01", session=s)
        store.cursors.set("acs:despatches", 17, session=s)
    assert store.cursors.all() == {"acs:despatches": 17, "khaos:orders": "2026-03-01"}
