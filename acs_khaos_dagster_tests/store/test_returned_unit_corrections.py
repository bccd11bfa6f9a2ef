"""Corrected ACS return rows and units settled by hand (``store/return_corrections.py``,
through ``ReturnsRepository``), on SQLite and PostgreSQL.

A unit ACS sends again with different data is a correction: applied (and its match
cleared, so it is matched afresh) while the unit is neither posted nor settled by hand,
kept but not applied otherwise — recorded and audited either way. A unit whose
``return_unmatched`` exception a person closed is settled by hand and never credited by
the integration afterwards.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from acs_khaos_dagster.domain.models import CreditMode, CustomerReturn, ReturnItem
from acs_khaos_dagster.domain.returns import ReturnPosting
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.returns import ReturnsRepository, StoredUnits

from .conftest import FakeClock

RECEIVED = datetime(2026, 3, 1, 10, tzinfo=UTC)


def unit(ref: str = "R1", usku: str = "U1", line: int = 2, **changed: Any) -> dict[str, Any]:
    row = {
        "line_number": line,
        "return_ref": ref,
        "unique_sku": usku,
        "order_number": None,
        "line_item_id": None,
        "sku": "DRS-1",
        "received_at": RECEIVED,
        "grade": "A",
        "action_taken": "RESTOCK",
        "action_reason": None,
        "defect_codes": [],
        "repair_cost": None,
    }
    row.update(changed)
    return row


def take_in(store: Store, tmp_path: Path, name: str, *rows: dict[str, Any]) -> StoredUnits:
    path = tmp_path / name
    path.write_text(name)  # each file its own content
    file_row, _ = store.ledger.record_file(path, "acs_returns")
    with store.transaction() as s:
        return ReturnsRepository(store.db).store_units(file_row.id, pd.DataFrame(list(rows)), s)


def matched(store: Store, ref: str = "R1", usku: str = "U1") -> None:
    frame = pd.DataFrame(
        [
            {
                "return_ref": ref,
                "unique_sku": usku,
                "order_item_id": 700001,
                "stock_id": 40,
                "stock_code": "DRS-1",
                "customer_urn": "C1",
                "unit_net": "25.00",
                "is_hire": False,
            }
        ]
    )
    with store.transaction() as s:
        ReturnsRepository(store.db).record_matches(frame, s)


def posted(store: Store, ref: str = "R1", usku: str = "U1") -> None:
    posting = ReturnPosting(
        return_ref=ref,
        part=1,
        associated_ref=f"{ref}-P1",
        batch_id="1",
        credit_mode=CreditMode.AUTO,
        customer_return=CustomerReturn(
            associated_ref=f"{ref}-P1",
            customer_urn="C1",
            items=(ReturnItem(sku="DRS-1", quantity=1, return_reason="RTS"),),
        ),
        unique_skus=(usku,),
        credit_value=Decimal("25.00"),
        goods_value=Decimal("25.00"),
        received_at=RECEIVED,
        idempotency_key=f"return:{ref}-P1",
    )
    with store.transaction() as s:
        ReturnsRepository(store.db).record_postings([posting], s)


def the_unit(store: Store, usku: str = "U1") -> pd.Series:
    return ReturnsRepository(store.db).units().set_index("unique_sku").loc[usku]


def unmatched_exception(store: Store, ref: str = "R1", usku: str = "U1") -> int:
    row = store.exceptions.raise_exception(
        "return_unmatched", f"return:return_unmatched:{ref}:{usku}", "no order line found"
    )
    return row.id


# --- corrections ---------------------------------------------------------------------------------


def test_the_same_row_delivered_again_changes_nothing_and_records_nothing(
    store: Store, tmp_path: Path
) -> None:
    assert take_in(store, tmp_path, "a.csv", unit()) == StoredUnits(1, 0, 0)
    assert take_in(store, tmp_path, "b.csv", unit()) == StoredUnits(0, 0, 0)
    assert ReturnsRepository(store.db).corrections().empty
    assert store.audit.list(action="return_corrected") == []


def test_a_corrected_row_of_an_open_unit_replaces_its_data(store: Store, tmp_path: Path) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    stored = take_in(
        store, tmp_path, "b.csv", unit(order_number="SO1", line_item_id="700001", grade="B")
    )
    assert stored == StoredUnits(0, 1, 0)
    row = the_unit(store)
    assert (row["order_number"], row["line_item_id"], row["grade"]) == ("SO1", "700001", "B")


def test_a_corrected_row_clears_the_units_match_so_it_is_matched_afresh(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit(order_number="SO1"))
    matched(store)
    assert the_unit(store)["order_item_id"] == 700001
    take_in(store, tmp_path, "b.csv", unit(order_number="SO2"))
    row = the_unit(store)
    assert pd.isna(row["order_item_id"]) and pd.isna(row["stock_id"])


def test_a_correction_is_recorded_with_each_changed_field_before_and_after(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    take_in(store, tmp_path, "b.csv", unit(line=7, order_number="SO1", repair_cost="4.50"))
    [correction] = ReturnsRepository(store.db).corrections().itertuples()
    assert (correction.return_ref, correction.unique_sku, correction.line_number) == (
        "R1",
        "U1",
        7,
    )
    assert correction.outcome == "applied"
    assert json.loads(correction.changes) == {
        "order_number": ["", "SO1"],
        "repair_cost": ["0.00", "4.50"],
    }


def test_a_correction_is_audited_as_done_by_the_integration(store: Store, tmp_path: Path) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    take_in(store, tmp_path, "b.csv", unit(grade="C"))
    [entry] = store.audit.list(action="return_corrected")
    assert (entry.actor, entry.subject, entry.outcome) == ("integration", "return:R1:U1", "applied")
    assert json.loads(entry.note) == {"grade": ["A", "C"]}


def test_a_received_time_given_in_another_zone_for_the_same_moment_is_no_correction(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    same_moment = pd.Timestamp("2026-03-01T11:00:00+01:00")
    assert take_in(store, tmp_path, "b.csv", unit(received_at=same_moment)) == StoredUnits(0, 0, 0)


def test_a_correction_of_a_posted_unit_is_kept_but_not_applied(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit(order_number="SO1"))
    matched(store)
    posted(store)
    assert take_in(store, tmp_path, "b.csv", unit(order_number="SO9")) == StoredUnits(0, 0, 1)
    row = the_unit(store)
    assert (row["order_number"], row["order_item_id"]) == ("SO1", 700001)
    [correction] = ReturnsRepository(store.db).corrections().itertuples()
    assert correction.outcome == "not_applied_posted"
    [entry] = store.audit.list(action="return_corrected")
    assert entry.outcome == "not_applied_posted"


def test_a_correction_of_a_unit_settled_by_hand_is_kept_but_not_applied(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    store.exceptions.resolve(unmatched_exception(store), "finance.jo", "credit by hand")
    ReturnsRepository(store.db).settle_units_closed_by_hand()
    assert take_in(store, tmp_path, "b.csv", unit(order_number="SO1")) == StoredUnits(0, 0, 1)
    assert the_unit(store)["order_number"] is None
    [correction] = ReturnsRepository(store.db).corrections().itertuples()
    assert correction.outcome == "not_applied_settled_by_hand"


# --- settled by hand -----------------------------------------------------------------------------


@pytest.mark.parametrize("close", ["resolve", "ignore"])
def test_a_unit_whose_unmatched_exception_a_person_closed_is_settled_by_them(
    store: Store, tmp_path: Path, clock: FakeClock, close: str
) -> None:
    take_in(store, tmp_path, "a.csv", unit(), unit(usku="U2", line=3))
    exception_id = unmatched_exception(store)
    clock.advance(hours=3)
    getattr(store.exceptions, close)(exception_id, "finance.jo", "credit raised by hand")
    repo = ReturnsRepository(store.db)
    assert repo.settle_units_closed_by_hand() == 1
    assert repo.settled_units() == {("R1", "U1")}
    row = the_unit(store)
    assert row["settled_by_hand_by"] == "finance.jo"
    assert row["settled_by_hand_at"] == clock.now
    status = "resolved" if close == "resolve" else "ignored"
    assert row["settled_by_hand_note"] == f"{status}: credit raised by hand"


def test_settling_by_hand_is_audited_under_the_persons_name(store: Store, tmp_path: Path) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    store.exceptions.resolve(unmatched_exception(store), "finance.jo", "HAND-R1")
    ReturnsRepository(store.db).settle_units_closed_by_hand()
    [entry] = store.audit.list(action="return_settled_by_hand")
    assert (entry.actor, entry.subject, entry.note) == ("finance.jo", "return:R1:U1", "HAND-R1")


def test_a_unit_is_settled_by_hand_once_however_often_it_is_checked(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    store.exceptions.resolve(unmatched_exception(store), "finance.jo", "done")
    repo = ReturnsRepository(store.db)
    assert repo.settle_units_closed_by_hand() == 1
    assert repo.settle_units_closed_by_hand() == 0
    assert len(store.audit.list(action="return_settled_by_hand")) == 1


def test_an_exception_the_integration_closed_itself_settles_nothing(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    store.exceptions.resolve(unmatched_exception(store), "integration", "matched after all")
    repo = ReturnsRepository(store.db)
    assert repo.settle_units_closed_by_hand() == 0
    assert repo.settled_units() == set()


def test_an_open_unmatched_exception_settles_nothing(store: Store, tmp_path: Path) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    unmatched_exception(store)
    assert ReturnsRepository(store.db).settle_units_closed_by_hand() == 0


def test_a_unit_already_posted_is_not_marked_settled_by_hand(store: Store, tmp_path: Path) -> None:
    take_in(store, tmp_path, "a.csv", unit(order_number="SO1"))
    matched(store)
    posted(store)
    store.exceptions.resolve(unmatched_exception(store), "finance.jo", "late close")
    assert ReturnsRepository(store.db).settle_units_closed_by_hand() == 0


def test_a_return_ref_holding_colons_is_settled_on_the_right_unit(
    store: Store, tmp_path: Path
) -> None:
    take_in(store, tmp_path, "a.csv", unit(ref="RMA:2026:7", usku="U1"))
    store.exceptions.resolve(unmatched_exception(store, "RMA:2026:7", "U1"), "finance.jo", "x")
    repo = ReturnsRepository(store.db)
    assert repo.settle_units_closed_by_hand() == 1
    assert repo.settled_units() == {("RMA:2026:7", "U1")}


def test_a_unit_settled_by_hand_is_never_matched_afterwards(store: Store, tmp_path: Path) -> None:
    take_in(store, tmp_path, "a.csv", unit())
    store.exceptions.resolve(unmatched_exception(store), "finance.jo", "credit by hand")
    ReturnsRepository(store.db).settle_units_closed_by_hand()
    matched(store)
    assert pd.isna(the_unit(store)["order_item_id"])
