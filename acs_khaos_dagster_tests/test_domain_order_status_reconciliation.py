"""Each open order's status at ACS against Khaos (``domain/reconciliation/order_status.py``):
one row per order, the first mismatch that applies, the shipments ACS despatched whose
event never arrived, and a sentence for a person. Rows are written by hand per case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from acs_khaos_dagster.domain.reconciliation.order_status import (
    ORDER_STATUS_COLUMNS,
    order_status_reconciliation,
)


def acs(*rows: tuple[str, str | None, object]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"order_number": o, "acs_status": s, "acs_shipment_ids": ids} for o, s, ids in rows]
    )


def khaos(*rows: tuple[str, bool, object], column: str = "received_shipment_ids") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"order_number": o, "khaos_cancelled": c, "khaos_stage_ids": [12], column: ids}
            for o, c, ids in rows
        ]
    )


def one(acs_rows: pd.DataFrame, khaos_rows: pd.DataFrame) -> dict:
    [row] = order_status_reconciliation(acs_rows, khaos_rows).to_dict("records")
    return row


# --- each mismatch -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["RECEIVED", "AWAITING_PICK", "PICKING", "PACKED"])
def test_an_open_order_open_at_both_is_in_step(status: str) -> None:
    row = one(acs(("SO1", status, None)), khaos(("SO1", False, None)))
    assert (row["mismatch"], row["message"]) == ("in_step", "")


def test_an_order_acs_does_not_know_is_unknown_at_acs() -> None:
    row = one(acs(("SO1", None, None)), khaos(("SO1", False, None)))
    assert row["mismatch"] == "unknown_at_acs"
    assert row["message"] == "Order SO1 was sent to ACS but ACS reports no status."


def test_a_status_acs_does_not_define_is_unknown_at_acs() -> None:
    row = one(acs(("SO1", "TELEPORTED", None)), khaos(("SO1", False, None)))
    assert row["mismatch"] == "unknown_at_acs"
    assert "ACS reports TELEPORTED" in row["message"]


def test_an_order_sent_to_acs_but_missing_from_the_acs_answers_is_unknown_at_acs() -> None:
    rows = order_status_reconciliation(acs(("SO2", "PICKING", None)), khaos(("SO1", False, None)))
    assert dict(zip(rows["order_number"], rows["mismatch"], strict=True)) == {
        "SO1": "unknown_at_acs",
        "SO2": "unknown_in_khaos",
    }


def test_an_acs_order_khaos_has_no_open_order_for_is_unknown_in_khaos() -> None:
    rows = order_status_reconciliation(acs(("SO9", "PICKING", None)), khaos(("SO1", False, None)))
    row = rows.set_index("order_number").loc["SO9"]
    assert row["message"] == "ACS has order SO9 (PICKING) but Khaos has no open order."
    assert not row["khaos_cancelled"]


@pytest.mark.parametrize("status", ["PARTIALLY_DESPATCHED", "DESPATCHED", "ON_HIRE", "RETURNED"])
def test_a_cancelled_order_acs_shipped_anyway_is_found(status: str) -> None:
    row = one(acs(("SO1", status, ["SH1"])), khaos(("SO1", True, ["SH1"])))
    assert row["mismatch"] == "cancelled_in_khaos_despatched_at_acs"
    assert (
        row["message"] == f"Order SO1 is cancelled in Khaos but ACS has despatched it ({status})."
    )


def test_a_cancelled_order_still_open_at_acs_is_found() -> None:
    row = one(acs(("SO1", "PICKING", None)), khaos(("SO1", True, None)))
    assert row["mismatch"] == "cancelled_in_khaos_open_at_acs"


def test_an_order_cancelled_at_both_is_in_step() -> None:
    assert one(acs(("SO1", "CANCELLED", None)), khaos(("SO1", True, None)))["mismatch"] == (
        "in_step"
    )


def test_an_order_acs_cancelled_that_khaos_still_has_open_is_found() -> None:
    row = one(acs(("SO1", "CANCELLED", None)), khaos(("SO1", False, None)))
    assert row["mismatch"] == "cancelled_at_acs_open_in_khaos"
    assert row["message"] == "ACS cancelled order SO1 but it is still open in Khaos."


def test_a_shipment_whose_despatch_event_never_arrived_is_named() -> None:
    row = one(acs(("SO1", "DESPATCHED", ["SH3", "SH1", "SH2"])), khaos(("SO1", False, ["SH2"])))
    assert row["mismatch"] == "despatched_no_event"
    assert row["missing_shipment_ids"] == ("SH1", "SH3")
    assert row["message"] == (
        "ACS despatched shipment(s) SH1, SH3 of order SO1 but no despatch event reached "
        "the integration: Khaos cannot invoice them."
    )


def test_every_shipment_received_is_in_step() -> None:
    row = one(acs(("SO1", "DESPATCHED", ["SH1", "SH2"])), khaos(("SO1", False, ["SH2", "SH1"])))
    assert (row["mismatch"], row["missing_shipment_ids"]) == ("in_step", ())


def test_an_order_on_hold_at_acs_is_found() -> None:
    row = one(acs(("SO1", "holding", None)), khaos(("SO1", False, None)))
    assert (row["acs_status"], row["mismatch"]) == ("HOLDING", "held_at_acs")
    assert row["message"] == "Order SO1 is on hold at ACS."


# --- precedence and input forms ------------------------------------------------------------------


def test_a_cancelled_order_shipped_with_a_lost_event_is_told_as_shipped_while_cancelled() -> None:
    row = one(acs(("SO1", "DESPATCHED", ["SH1"])), khaos(("SO1", True, None)))
    assert row["mismatch"] == "cancelled_in_khaos_despatched_at_acs"
    assert row["missing_shipment_ids"] == ("SH1",)


@pytest.mark.parametrize(
    "ids",
    [["SH1", "SH2"], ("SH2", "SH1"), "SH1, SH2", " SH2 ,SH1,", np.array(["SH1", "SH2"])],
)
def test_shipment_ids_may_be_a_list_a_tuple_an_array_or_comma_separated_text(ids: object) -> None:
    row = one(acs(("SO1", "DESPATCHED", ids)), khaos(("SO1", False, None)))
    assert row["acs_shipment_ids"] == ("SH1", "SH2")
    assert row["missing_shipment_ids"] == ("SH1", "SH2")


def test_without_received_ids_the_posted_ones_are_used() -> None:
    row = one(
        acs(("SO1", "DESPATCHED", ["SH1", "SH2"])),
        khaos(("SO1", False, ["SH1"]), column="posted_shipment_ids"),
    )
    assert row["missing_shipment_ids"] == ("SH2",)


def test_stage_ids_are_read_as_numbers() -> None:
    khaos_rows = khaos(("SO1", False, None))
    khaos_rows["khaos_stage_ids"] = ["12, 22"]
    assert one(acs(("SO1", "PICKING", None)), khaos_rows)["khaos_stage_ids"] == (12, 22)


def test_orders_are_listed_by_number_with_the_columns_in_order() -> None:
    table = order_status_reconciliation(
        acs(("SO3", "PICKING", None), ("SO1", "PICKING", None), ("SO2", "PICKING", None)),
        khaos(("SO1", False, None), ("SO2", False, None), ("SO3", False, None)),
    )
    assert list(table["order_number"]) == ["SO1", "SO2", "SO3"]
    assert list(table.columns) == list(ORDER_STATUS_COLUMNS)


def test_a_table_without_its_required_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="acs_status"):
        order_status_reconciliation(pd.DataFrame({"order_number": ["SO1"]}), khaos())
