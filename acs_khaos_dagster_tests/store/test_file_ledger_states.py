"""The inbound file ledger's states (``store/ledger.py``), on SQLite and PostgreSQL: a file
interrupted while processing is processed again, a content already taken in is known
whatever its name, files are found by state and kind, a closed file says how many rows it
kept and quarantined, and its quarantined rows come back in line order."""

from __future__ import annotations

from pathlib import Path

import pytest

from acs_khaos_dagster.store import Quarantine, Store
from acs_khaos_dagster.store.ledger import file_sha256

from .conftest import FakeClock


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_file_a_crash_interrupted_while_processing_is_processed_again(
    store: Store, tmp_path: Path
) -> None:
    path = write(tmp_path / "stock.csv", "a\n1\n")
    row, _ = store.ledger.record_file(path, "stock")
    assert store.ledger.mark_processing(row.id).state == "processing"
    again, process = store.ledger.record_file(path, "stock")
    assert (again.id, process) == (row.id, True)


def test_a_failed_file_is_not_processed_again_by_itself(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "stock.csv", "garbage")
    row, _ = store.ledger.record_file(path, "stock")
    store.ledger.mark_failed(row.id, "no header row")
    _, process = store.ledger.record_file(path, "stock")
    assert process is False


def test_content_taken_in_is_known_by_its_hash_and_kind(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "returns_1.csv", "r\n1\n")
    digest = file_sha256(path)
    row, _ = store.ledger.record_file(path, "returns")
    assert not store.ledger.taken_in(digest, "returns")  # recorded, not yet processed
    store.ledger.mark_processed(row.id, rows_accepted=1)
    assert store.ledger.taken_in(digest, "returns")
    assert not store.ledger.taken_in(digest, "stock")


def test_a_renamed_copy_counts_as_taken_in_even_before_its_original_is_closed(
    store: Store, tmp_path: Path
) -> None:
    first, _ = store.ledger.record_file(write(tmp_path / "a.csv", "x\n"), "returns")
    copy, process = store.ledger.record_file(write(tmp_path / "b.csv", "x\n"), "returns")
    assert (copy.state, copy.duplicate_of, process) == ("duplicate", first.id, False)
    assert store.ledger.taken_in(file_sha256(tmp_path / "b.csv"), "returns")


def test_files_are_found_by_state_and_kind_in_the_order_recorded(
    store: Store, tmp_path: Path
) -> None:
    a, _ = store.ledger.record_file(write(tmp_path / "a.csv", "a"), "stock")
    b, _ = store.ledger.record_file(write(tmp_path / "b.csv", "b"), "returns")
    c, _ = store.ledger.record_file(write(tmp_path / "c.csv", "c"), "stock")
    store.ledger.mark_processed(a.id, rows_accepted=1)
    assert [f.id for f in store.ledger.find(kind="stock")] == [a.id, c.id]
    assert [f.id for f in store.ledger.find(state="new")] == [b.id, c.id]
    assert [f.id for f in store.ledger.find(state="new", kind="stock")] == [c.id]
    assert [f.id for f in store.ledger.find()] == [a.id, b.id, c.id]


def test_a_closed_file_counts_its_quarantined_rows_unless_told(
    store: Store, tmp_path: Path
) -> None:
    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "h\n1\n2\n3\n"), "stock")
    store.ledger.add_quarantined_rows(row.id, [(3, "2", "bad"), (4, "3", "bad")])
    assert store.ledger.mark_processed(row.id, rows_accepted=1).rows_quarantined == 2
    assert store.ledger.mark_processed(row.id, 1, rows_quarantined=5).rows_quarantined == 5


def test_closing_a_file_clears_an_earlier_error(store: Store, tmp_path: Path) -> None:
    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "h\n1\n"), "stock")
    store.ledger.mark_failed(row.id, "disk full")
    done = store.ledger.mark_processed(row.id, rows_accepted=1)
    assert (done.state, done.error, done.rows_accepted) == ("processed", None, 1)


def test_each_change_of_state_is_timed(store: Store, tmp_path: Path, clock: FakeClock) -> None:
    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "h\n"), "stock")
    clock.advance(minutes=7)
    assert store.ledger.mark_processing(row.id).updated_at == clock.now


def test_an_unknown_file_is_none_and_cannot_change_state(store: Store) -> None:
    assert store.ledger.get(999) is None
    with pytest.raises(KeyError, match="no ingested file 999"):
        store.ledger.mark_failed(999, "x")


def test_quarantined_rows_come_back_in_line_order(store: Store, tmp_path: Path) -> None:
    row, _ = store.ledger.record_file(write(tmp_path / "a.csv", "h\n"), "stock")
    store.ledger.add_quarantined_rows(row.id, [Quarantine(9, "z", "late"), Quarantine(2, "a", "x")])
    store.ledger.add_quarantined_rows(row.id, [(5, "m", "mid")])
    assert [(q.line_number, q.raw, q.reason) for q in store.ledger.quarantined(row.id)] == [
        (2, "a", "x"),
        (5, "m", "mid"),
        (9, "z", "late"),
    ]


def test_quarantined_rows_of_another_file_are_not_mixed_in(store: Store, tmp_path: Path) -> None:
    a, _ = store.ledger.record_file(write(tmp_path / "a.csv", "a"), "stock")
    b, _ = store.ledger.record_file(write(tmp_path / "b.csv", "b"), "stock")
    store.ledger.add_quarantined_rows(a.id, [(2, "x", "bad")])
    assert store.ledger.quarantined(b.id) == []
    assert store.ledger.add_quarantined_rows(b.id, []) == 0
