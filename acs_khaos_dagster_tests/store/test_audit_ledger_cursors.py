"""Audit log, file ledger with quarantine, and cursors written with their data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from acs_khaos_dagster.config import OutboxSettings
from acs_khaos_dagster.store import Quarantine, Store
from acs_khaos_dagster.store.audit import payload_sha256

from .remote import ScriptedHandler

SECRET_ADDRESS = "12 Acacia Avenue, Leeds LS1 4AB"


def test_every_external_write_is_audited_with_a_payload_hash_only(store: Store) -> None:
    payload = {"ref": "SO1", "ship_to": SECRET_ADDRESS}
    store.outbox.enqueue("post", "khaos", "SO1", "post:SO1", payload)
    store.dispatcher({"post": ScriptedHandler()}, OutboxSettings(backoff_initial_s=0)).drain()
    [entry] = store.audit.list(category="external_write")
    assert (entry.system, entry.action, entry.idempotency_key, entry.outcome) == (
        "khaos",
        "post",
        "post:SO1",
        "sent",
    )
    assert entry.payload_sha256 == payload_sha256(payload)
    assert entry.duration_ms is not None
    with store.transaction() as s:
        dumped = json.dumps(
            [list(r) for r in s.execute(text("SELECT * FROM audit_log"))], default=str
        )
    assert "Acacia" not in dumped


def test_human_actions_are_audited_with_actor_and_note(store: Store) -> None:
    row = store.exceptions.raise_exception("order_held", "SO1", "held")
    store.exceptions.resolve(row.id, "ops.anna", "released")
    [entry] = store.audit.list(category="human_action")
    assert (entry.actor, entry.action, entry.subject, entry.note) == (
        "ops.anna",
        "resolve",
        f"exception:{row.id}",
        "released",
    )


def test_the_audit_log_refuses_edits(store: Store) -> None:
    store.audit.record_action(actor="a", action="resolve", subject="exception:1")
    with pytest.raises(DBAPIError, match="append-only"), store.transaction() as s:
        s.execute(text("UPDATE audit_log SET actor = 'someone else'"))
    with pytest.raises(DBAPIError, match="append-only"), store.transaction() as s:
        s.execute(text("DELETE FROM audit_log"))
    assert [e.actor for e in store.audit.list()] == ["a"]


def write(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def test_a_new_file_is_recorded_as_new(store: Store, tmp_path: Path) -> None:
    row, is_new = store.ledger.record_file(write(tmp_path / "stock.csv", "a,b\n1,2\n"), "stock")
    assert is_new
    assert (row.name, row.state, row.kind, row.size) == ("stock.csv", "new", "stock", 8)


def test_the_same_file_twice_is_not_processed_again(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "stock.csv", "a,b\n1,2\n")
    row, _ = store.ledger.record_file(path, "stock")
    store.ledger.mark_processed(row.id, rows_accepted=1)
    again, is_new = store.ledger.record_file(path, "stock")
    assert not is_new
    assert again.id == row.id
    assert again.state == "processed"


def test_the_same_content_under_another_name_is_a_duplicate(store: Store, tmp_path: Path) -> None:
    first, _ = store.ledger.record_file(write(tmp_path / "a.csv", "x\n1\n"), "stock")
    store.ledger.mark_processed(first.id, rows_accepted=1)
    copy, is_new = store.ledger.record_file(write(tmp_path / "a (1).csv", "x\n1\n"), "stock")
    assert not is_new
    assert copy.state == "duplicate"
    assert copy.duplicate_of == first.id


def test_a_file_recorded_but_never_finished_is_offered_again(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "x\n1\n")
    row, _ = store.ledger.record_file(path, "stock")
    again, is_new = store.ledger.record_file(path, "stock")
    assert is_new and again.id == row.id


def test_quarantined_rows_are_kept_with_their_reason(store: Store, tmp_path: Path) -> None:
    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "h\ngood\nbad\n"), "stock")
    store.ledger.add_quarantined_rows(row.id, [Quarantine(3, "bad", "unknown SKU")])
    done = store.ledger.mark_processed(row.id, rows_accepted=1)
    assert (done.rows_accepted, done.rows_quarantined) == (1, 1)
    [kept] = store.ledger.quarantined(row.id)
    assert (kept.line_number, kept.raw, kept.reason) == (3, "bad", "unknown SKU")


def test_quarantine_accepts_the_connectors_row_records(store: Store, tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class ParsedBadRow:  # the shape connectors/acs/files.py returns
        line_number: int
        raw_text: str
        reason: str

    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "h\nbad\n"), "stock")
    store.ledger.add_quarantined_rows(row.id, [ParsedBadRow(2, "bad", "no SKU"), (5, "x", "y")])
    assert [(q.line_number, q.raw) for q in store.ledger.quarantined(row.id)] == [
        (2, "bad"),
        (5, "x"),
    ]


def test_a_failed_file_keeps_its_error(store: Store, tmp_path: Path) -> None:
    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "garbage"), "stock")
    failed = store.ledger.mark_failed(row.id, "no header row")
    assert (failed.state, failed.error) == ("failed", "no header row")


def test_a_cursor_advances_with_the_data_it_covers(store: Store, tmp_path: Path) -> None:
    with store.transaction() as s:
        store.audit.record_action(actor="feed", action="ingest", subject="batch:1", session=s)
        store.cursors.set("acs.despatches", {"after_id": 10}, s)
    assert store.cursors.get("acs.despatches") == {"after_id": 10}


def test_a_cursor_rolls_back_with_the_data_it_covers(store: Store, tmp_path: Path) -> None:
    with store.transaction() as s:
        store.cursors.set("acs.despatches", {"after_id": 10}, s)
    path = write(tmp_path / "b.csv", "x\n")
    with pytest.raises(RuntimeError), store.transaction() as s:
        store.ledger.record_file(path, "despatch", session=s)
        store.cursors.set("acs.despatches", {"after_id": 20}, s)
        raise RuntimeError("crash while writing the batch")
    assert store.cursors.get("acs.despatches") == {"after_id": 10}
    assert store.ledger.find(kind="despatch") == []


def test_cursor_default_when_never_set(store: Store) -> None:
    assert store.cursors.get("never", default=0) == 0
