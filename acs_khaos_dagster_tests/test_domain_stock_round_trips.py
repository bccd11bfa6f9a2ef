"""The rule for round trips Khaos never saw (``domain/stock_push/round_trips.py``): a unit of
a shipment Khaos will never invoice is in flight until ACS has it back, then never again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain.layout import KhaosStages
from acs_khaos_dagster.domain.stock_push.round_trips import (
    invoices_nothing_more,
    settle_round_trips,
)
from acs_khaos_dagster.flows.stock_facts import (
    DESPATCH_FACT_COLUMNS,
    RETURN_FACT_COLUMNS,
    returns_not_posted_yet,
)

SNAP = datetime(2026, 3, 10, 12, tzinfo=UTC)
STAGES = KhaosStages()


def _despatch(units: int, *, never_invoiced: bool = True, at: datetime | None = None) -> dict:
    return {
        "stock_id": 7,
        "site_id": 1,
        "units": units,
        "despatched_at": at or SNAP - timedelta(days=2),
        "issued_at": None,
        "is_hire": False,
        "ref": "SO1-1",
        "order_number": "SO1",
        "never_invoiced": never_invoiced,
    }


def _back(unit: str, *, restocks: bool, at: datetime | None = None, trip: bool = True) -> dict:
    return {
        "stock_id": 7,
        "site_id": 1,
        "units": 1,
        "restocked_at": at or SNAP - timedelta(days=1),
        "processed_at": None,
        "ref": f"RMA-{unit}",
        "order_number": "SO1",
        "round_trip": trip,
        "restocks": restocks,
    }


def _settle(despatches: list[dict], returns: list[dict]) -> tuple[list[int], list[str]]:
    d, r = settle_round_trips(
        pd.DataFrame(despatches, columns=DESPATCH_FACT_COLUMNS),
        pd.DataFrame(returns, columns=RETURN_FACT_COLUMNS),
        SNAP,
    )
    return d["units"].tolist(), r["ref"].tolist()


@pytest.mark.parametrize("restocks", [True, False], ids=["restocked", "written-off"])
def test_a_unit_back_by_the_snapshot_settles_one_unit_of_its_never_invoiced_shipment(
    restocks: bool,
) -> None:
    assert _settle([_despatch(2)], [_back("1", restocks=restocks)]) == ([1], [])


def test_every_unit_back_settles_the_whole_shipment() -> None:
    back = [_back("1", restocks=True), _back("2", restocks=False)]
    assert _settle([_despatch(2)], back) == ([], [])


def test_a_unit_back_after_the_snapshot_leaves_its_shipment_in_flight() -> None:
    # Not in the snapshot and still in Khaos's Level: the despatch correction still holds.
    late = _back("1", restocks=True, at=SNAP + timedelta(minutes=5))
    assert _settle([_despatch(2)], [late]) == ([2], [])


def test_a_shipment_khaos_will_still_invoice_is_never_settled_by_a_return() -> None:
    # Finance holds the invoice: Khaos processes the return and still takes the unit out
    # of Level when it issues the invoice, so both stay in flight.
    ordinary = _back("1", restocks=True, trip=False)
    assert _settle([_despatch(2, never_invoiced=False)], [ordinary]) == ([2], ["RMA-1"])


def test_a_restocked_unit_back_with_no_shipment_to_settle_stays_a_return_not_posted() -> None:
    back = [_back("1", restocks=True), _back("2", restocks=False)]
    assert _settle([], back) == ([], ["RMA-1"])


def test_units_back_beyond_what_was_shipped_settle_the_shipment_once() -> None:
    back = [_back("1", restocks=True), _back("2", restocks=True)]
    assert _settle([_despatch(1)], back) == ([], ["RMA-2"])


@pytest.mark.parametrize(
    ("stages", "nothing_more"),
    [
        ((1,), True),  # cancelled before any shipment was posted
        ((70, 1), True),  # one shipment issued, the rest cancelled
        ((12, 1), False),  # an invoice still open (finance holds it)
        ((70,), False),  # fully invoiced: nothing cancelled
        ((), False),
    ],
)
def test_an_order_is_invoiced_no_more_once_cancelled_with_nothing_open(
    stages: tuple[int, ...], nothing_more: bool
) -> None:
    assert invoices_nothing_more(stages, STAGES) is nothing_more


def test_a_round_trip_unit_is_kept_whatever_its_age_and_grade() -> None:
    # An ordinary unit older than the look-back has settled; a round-trip one never does,
    # or its shipment would count in flight again once the unit's return is 30 days old.
    settings = load_settings()
    skus = pd.DataFrame({"sku": ["DRESS"], "stock_id": [7], "is_hire": [False]})
    long_ago = SNAP - timedelta(days=60)
    units = pd.DataFrame(
        [
            {
                "return_ref": ref,
                "unique_sku": ref,
                "sku": "DRESS",
                "grade": grade,
                "action_taken": action,
                "received_at": long_ago,
                "order_number": order,
                "associated_ref": None,
            }
            for ref, grade, action, order in (
                ("R1", "BER", "DISPOSE", "SO1"),
                ("R2", "A", "RESTOCK", "SO1"),
                ("R3", "A", "RESTOCK", "SO2"),
            )
        ]
    )
    rows = returns_not_posted_yet(
        settings, skus, SNAP - timedelta(days=30), units, [], frozenset({"SO1"})
    )
    assert [(r["ref"], r["round_trip"], r["restocks"]) for r in rows] == [
        ("R1", True, False),
        ("R2", True, True),
    ]
