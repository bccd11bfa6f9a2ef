"""Reconciliation rules: what finance and operations see when the two systems disagree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.reconciliation import (
    AgeBucket,
    drift_findings,
    exceptions_table,
    in_flight_from_corrections,
    month_end_cutoff,
    order_status_reconciliation,
    order_to_cash,
    order_to_cash_ageing,
    owns_finding,
    returns_reconciliation,
    stock_reconciliation,
    workflow_latencies,
)
from acs_khaos_dagster.domain.stock_push import VarianceTolerance, plan_push, timing_corrections

DRESS, SELLING, REFURB = 101, 1, 5
COST = {DRESS: Decimal("20.00")}
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def units(*rows: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "site_id", "units"])


def levels(*rows: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "site_id", "level"])


def flights(*rows: tuple[int, int, int, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "site_id", "units", "reason", "ref"])


def pushes(*rows: tuple[int, int, int, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["stock_id", "site_id", "units", "ref"])


def one(frame: pd.DataFrame) -> pd.Series:
    assert len(frame) == 1, frame
    return frame.iloc[0]


# --- stock ---------------------------------------------------------------------------


def test_equal_units_and_level_are_in_step() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 9)), levels((DRESS, SELLING, 9)), cost_prices=COST
        )
    )
    assert row["classification"] == "in_step"
    assert row["difference"] == 0 and row["unexplained"] == 0


def test_units_allocated_to_orders_are_not_drift_because_level_is_compared_not_available() -> None:
    # 7 ready + 2 packed at ACS; Khaos Level 9 of which its open invoices allocate 2.
    khaos = pd.DataFrame(
        {"stock_id": [DRESS], "site_id": [SELLING], "level": [9], "available": [7]}
    )
    row = one(stock_reconciliation(units((DRESS, SELLING, 9)), khaos, cost_prices=COST))
    assert row["khaos_level"] == 9
    assert row["classification"] == "in_step"


def test_difference_is_acs_minus_khaos_valued_at_cost_price() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 9)), levels((DRESS, SELLING, 20)), cost_prices=COST
        )
    )
    assert row["difference"] == -11
    assert row["value"] == -220.00


@pytest.mark.parametrize(
    "reason",
    ["despatched_not_issued", "restocked_not_processed", "effect_pending", "after_cutoff"],
)
def test_a_difference_explained_by_timing_is_in_flight_with_each_reason(reason: str) -> None:
    sign = 1 if reason == "restocked_not_processed" else -1
    acs = 10 + sign
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, acs)),
            levels((DRESS, SELLING, 10)),
            in_flight=flights((DRESS, SELLING, sign, reason, "REF-1")),
            cost_prices=COST,
        )
    )
    assert row["classification"] == "in_flight"
    assert row["explained_in_flight"] == sign and row["unexplained"] == 0
    assert row["in_flight_items"] == f"{reason} REF-1 ({sign:+d})"


def test_each_in_flight_event_is_listed() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 8)),
            levels((DRESS, SELLING, 10)),
            in_flight=flights(
                (DRESS, SELLING, -1, "despatched_not_issued", "INV-2"),
                (DRESS, SELLING, -1, "despatched_not_issued", "INV-1"),
            ),
            cost_prices=COST,
        )
    )
    assert row["in_flight_items"] == (
        "despatched_not_issued INV-1 (-1); despatched_not_issued INV-2 (-1)"
    )


def test_a_difference_from_an_unconfirmed_push_is_push_missing() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 9)),
            levels((DRESS, SELLING, 15)),
            push_missing=pushes((DRESS, SELLING, -6, "SNAP-20250310T0800-S1-B001")),
            cost_prices=COST,
        )
    )
    assert row["classification"] == "push_missing"
    assert row["explained_push_missing"] == -6 and row["unexplained"] == 0
    assert row["push_missing_refs"] == "SNAP-20250310T0800-S1-B001"


def test_a_difference_beyond_tolerance_with_no_explanation_is_unexplained() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 9)), levels((DRESS, SELLING, 20)), cost_prices=COST
        )
    )
    assert row["classification"] == "unexplained"
    assert row["unexplained"] == -11 and row["unexplained_value"] == -220.00


def test_what_timing_does_not_explain_is_unexplained() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 5)),
            levels((DRESS, SELLING, 10)),
            in_flight=flights((DRESS, SELLING, -1, "despatched_not_issued", "INV-1")),
            cost_prices=COST,
        )
    )
    assert row["classification"] == "unexplained"
    assert row["explained_in_flight"] == -1 and row["unexplained"] == -4


def test_a_small_unexplained_difference_is_within_tolerance_never_in_step() -> None:
    """Issue 16 point 8: a difference within tolerance is not hidden as in_step."""
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 11)), levels((DRESS, SELLING, 10)), cost_prices=COST
        )
    )
    assert row["classification"] == "within_tolerance"
    assert row["unexplained"] == 1 and row["unexplained_value"] == 20.00
    assert drift_findings(stock=pd.DataFrame([row])) == []


def test_tolerance_is_judged_on_the_stock_items_net_difference_as_the_push_judges_it() -> None:
    """Issue 17 point 11: +2 on two sites is 4 units net, beyond 2 units: the push holds
    it, so the reconciliation calls both rows unexplained (not "within tolerance")."""
    acs = units((DRESS, SELLING, 12), (DRESS, REFURB, 2))
    khaos = levels((DRESS, SELLING, 10), (DRESS, REFURB, 0))

    table = stock_reconciliation(acs, khaos, cost_prices=COST)
    plan = plan_push(acs, khaos, None, snapshot_id="S", cost_prices=COST)

    assert set(table["classification"]) == {"unexplained"}
    assert not plan.targets["within_tolerance"].any() and plan.held


@settings(max_examples=60, deadline=None)
@given(
    acs=st.lists(st.integers(0, 12), min_size=3, max_size=3),
    khaos=st.lists(st.integers(0, 12), min_size=3, max_size=3),
)
def test_the_reconciliation_and_the_push_agree_on_what_is_within_tolerance(
    acs: list[int], khaos: list[int]
) -> None:
    sites = (SELLING, 4, REFURB)
    a = units(*((DRESS, site, n) for site, n in zip(sites, acs, strict=True)))
    k = levels(*((DRESS, site, n) for site, n in zip(sites, khaos, strict=True)))

    table = stock_reconciliation(a, k, cost_prices=COST)
    plan = plan_push(a, k, None, snapshot_id="S", cost_prices=COST)

    beyond = not plan.targets["within_tolerance"].all()
    assert (table["classification"] == "unexplained").any() == beyond


def test_tolerance_is_configurable_in_value() -> None:
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 11)),
            levels((DRESS, SELLING, 10)),
            cost_prices=COST,
            tolerance=VarianceTolerance(units=5, value=Decimal("10.00")),
        )
    )
    assert row["classification"] == "unexplained"


def test_push_corrections_convert_to_in_flight_rows_that_explain_the_difference() -> None:
    corrections = timing_corrections(
        snapshot_at=datetime(2025, 3, 10, 10, tzinfo=UTC),
        push_at=datetime(2025, 3, 10, 10, 30, tzinfo=UTC),
        despatches=pd.DataFrame(
            {
                "stock_id": [DRESS],
                "site_id": [SELLING],
                "units": [1],
                "despatched_at": [datetime(2025, 3, 10, 9, 40, tzinfo=UTC)],
                "issued_at": [None],
                "ref": ["INV-9"],
            }
        ),
    )
    row = one(
        stock_reconciliation(
            units((DRESS, SELLING, 9)),
            levels((DRESS, SELLING, 10)),
            in_flight=in_flight_from_corrections(corrections),
            cost_prices=COST,
        )
    )
    assert row["classification"] == "in_flight"
    assert row["in_flight_items"] == "despatched_not_issued INV-9 (-1)"


def test_a_day_with_only_timing_differences_shows_nothing_unexplained() -> None:
    table = stock_reconciliation(
        units((DRESS, SELLING, 7), (DRESS, REFURB, 1), (202, SELLING, 4)),
        levels((DRESS, SELLING, 9), (DRESS, REFURB, 1), (202, SELLING, 3)),
        in_flight=flights(
            (DRESS, SELLING, -1, "despatched_not_issued", "INV-1"),
            (DRESS, SELLING, -1, "after_cutoff", "RET-1"),
            (202, SELLING, 1, "restocked_not_processed", "RET-2"),
        ),
        cost_prices={DRESS: Decimal("20"), 202: Decimal("5")},
        tolerance=VarianceTolerance(units=0, value=Decimal("0")),
    )
    assert set(table["classification"]) == {"in_flight", "in_step"}
    assert (table["unexplained"] == 0).all()
    assert drift_findings(stock=table) == []


def test_unknown_in_flight_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reason"):
        stock_reconciliation(
            units((DRESS, SELLING, 9)),
            levels((DRESS, SELLING, 10)),
            in_flight=flights((DRESS, SELLING, -1, "probably_fine", "X")),
        )


# --- order status --------------------------------------------------------------------


def order_status(acs: dict, khaos: dict) -> pd.Series:
    return one(
        order_status_reconciliation(
            pd.DataFrame([{"order_number": "SO1", **acs}]),
            pd.DataFrame([{"order_number": "SO1", **khaos}]),
        )
    )


def test_orders_agreeing_are_in_step() -> None:
    row = order_status(
        {"acs_status": "DESPATCHED", "acs_shipment_ids": ["S1"]},
        {"khaos_cancelled": False, "received_shipment_ids": ["S1"]},
    )
    assert row["mismatch"] == "in_step"


def test_despatched_at_acs_without_a_despatch_event_is_found() -> None:
    row = order_status(
        {"acs_status": "PARTIALLY_DESPATCHED", "acs_shipment_ids": ["S1", "S2"]},
        {"khaos_cancelled": False, "received_shipment_ids": ["S1"]},
    )
    assert row["mismatch"] == "despatched_no_event"
    assert row["missing_shipment_ids"] == ("S2",)


def test_cancelled_at_acs_but_open_in_khaos_is_found() -> None:
    row = order_status({"acs_status": "CANCELLED"}, {"khaos_cancelled": False})
    assert row["mismatch"] == "cancelled_at_acs_open_in_khaos"


def test_cancelled_in_khaos_but_open_at_acs_is_found() -> None:
    row = order_status({"acs_status": "AWAITING_PICK"}, {"khaos_cancelled": True})
    assert row["mismatch"] == "cancelled_in_khaos_open_at_acs"


def test_held_at_acs_is_found() -> None:
    row = order_status({"acs_status": "HOLDING"}, {"khaos_cancelled": False})
    assert row["mismatch"] == "held_at_acs"


def test_an_order_acs_does_not_know_is_found() -> None:
    row = order_status({"acs_status": None}, {"khaos_cancelled": False})
    assert row["mismatch"] == "unknown_at_acs"


# --- order to cash -------------------------------------------------------------------

DESPATCHED = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)


def cash(
    posted: bool = True,
    stage: int | None = 71,
    despatched: datetime = DESPATCHED,
    as_at: datetime = NOW,
) -> pd.DataFrame:
    shipments = pd.DataFrame(
        {
            "shipment_id": ["S1", "S1"],
            "order_number": ["SO1", "SO1"],
            "despatched_at": [despatched, despatched],
            "units": [2, 1],
            "unit_net": [Decimal("25.00"), Decimal("9.99")],
        }
    )
    postings = pd.DataFrame(
        {"shipment_id": ["S1"] if posted else [], "invoice_id": [7] if posted else []}
    )
    invoices = pd.DataFrame(
        {"invoice_id": [7] if stage else [], "stage_id": [stage] if stage else []}
    )
    return order_to_cash(shipments, postings, invoices, as_at)


def test_a_shipment_never_posted_is_despatched_not_posted_with_its_value_waiting() -> None:
    row = one(cash(posted=False))
    assert row["status"] == "despatched_not_posted"
    assert row["units"] == 3 and row["value_waiting"] == 59.99


def test_a_posted_shipment_whose_invoice_is_not_issued_is_posted_not_invoiced() -> None:
    row = one(cash(stage=16))
    assert row["status"] == "posted_not_invoiced"
    assert row["value_waiting"] == 59.99


def test_an_invoice_cancelled_after_posting_is_never_invoiced() -> None:
    assert one(cash(stage=1))["status"] == "posted_not_invoiced"


def test_a_shipment_with_an_issued_invoice_is_invoiced_and_waits_for_nothing() -> None:
    row = one(cash(stage=71))
    assert row["status"] == "invoiced" and row["value_waiting"] == 0


def test_age_since_despatch_puts_a_shipment_in_its_bucket() -> None:
    row = one(cash(posted=False))  # despatched 3 days minus 0 h before NOW -> 3-7 d
    assert row["age_hours"] == 72.0 and row["age_bucket"] == "3-7 d"


def test_ageing_counts_waiting_shipments_per_bucket_with_every_bucket_present() -> None:
    table = cash(posted=False)
    ageing = order_to_cash_ageing(
        table, (AgeBucket("0-2 d", 0, 2), AgeBucket(">2 d", 2, float("inf")))
    )
    assert len(ageing) == 4
    hit = ageing.loc[
        (ageing["status"] == "despatched_not_posted") & (ageing["age_bucket"] == ">2 d")
    ]
    assert one(hit)["shipments"] == 1 and one(hit)["value_waiting"] == 59.99
    assert ageing["shipments"].sum() == 1


def test_month_end_cutoff_in_march_is_2359_59_british_summer_time() -> None:
    # 2024: the clocks went forward on Sunday 31 March itself.
    assert month_end_cutoff(2024, 3) == datetime(2024, 3, 31, 22, 59, 59, tzinfo=UTC)


def test_month_end_cutoff_in_october_is_2359_59_greenwich_time() -> None:
    assert month_end_cutoff(2024, 10) == datetime(2024, 10, 31, 23, 59, 59, tzinfo=UTC)


def test_month_end_cutoff_in_december_rolls_into_the_next_year() -> None:
    assert month_end_cutoff(2024, 12) == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_despatch_in_the_last_bst_hour_of_march_belongs_to_march() -> None:
    cutoff = month_end_cutoff(2024, 3)
    in_march = one(cash(despatched=datetime(2024, 3, 31, 22, 30, tzinfo=UTC), as_at=cutoff))
    assert in_march["period"] == "2024-03"
    assert str(in_march["despatch_date"]) == "2024-03-31"
    april = cash(despatched=datetime(2024, 3, 31, 23, 0, tzinfo=UTC), as_at=cutoff)
    assert april.empty


# --- returns -------------------------------------------------------------------------

RECEIVED = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)


def unit(**overrides: object) -> dict:
    base = {
        "return_ref": "R1",
        "unique_sku": "U1",
        "associated_ref": "R1-P1",
        "stock_id": DRESS,
        "is_hire": False,
        "grade": "A",
        "received_at": RECEIVED,
        "unit_net": Decimal("40.00"),
        "credit_mode": "auto",
        "written_off": False,
    }
    return base | overrides


def recon(
    units_: list[dict],
    khaos: list[dict] | None = None,
    write_offs: list[dict] | None = None,
    now: datetime = NOW,
) -> pd.DataFrame:
    return returns_reconciliation(
        pd.DataFrame(units_),
        pd.DataFrame(khaos or [], columns=["associated_ref", "credit_status", "write_off_units"]),
        pd.DataFrame(write_offs or [], columns=["unique_sku", "applied_at"]),
        now,
    )


def test_a_raised_credit_is_credited_and_nothing_is_pending() -> None:
    row = one(recon([unit()], [{"associated_ref": "R1-P1", "credit_status": "raised"}]))
    assert row["credit_status"] == "raised" and row["refund_state"] == "credited"
    assert row["credit_pending_value"] == 0


def test_a_pre_credit_awaiting_review_is_pending_with_its_value() -> None:
    row = one(recon([unit()], [{"associated_ref": "R1-P1", "credit_status": "review"}]))
    assert row["credit_status"] == "review" and row["credit_pending_value"] == 40.00


def test_a_return_khaos_does_not_have_has_no_credit() -> None:
    row = one(recon([unit()]))
    assert row["credit_status"] == "missing" and row["credit_pending_value"] == 40.00


def test_refund_deadline_is_the_end_of_the_14th_day_after_receipt() -> None:
    row = one(recon([unit()], now=datetime(2025, 3, 12, 0, 0, tzinfo=UTC)))
    assert row["refund_deadline"] == pd.Timestamp("2025-03-16T00:00:00Z")
    assert row["days_left"] == 4.0 and row["refund_state"] == "open"


def test_a_credit_near_its_deadline_is_due_soon_and_past_it_overdue() -> None:
    assert one(recon([unit()], now=datetime(2025, 3, 14, tzinfo=UTC)))["refund_state"] == (
        "due_soon"
    )
    assert one(recon([unit()], now=datetime(2025, 3, 16, 1, tzinfo=UTC)))["refund_state"] == (
        "overdue"
    )


def test_a_hire_return_owes_no_refund() -> None:
    row = one(recon([unit(is_hire=True, credit_mode="none")]))
    assert row["credit_status"] == "not_owed" and row["refund_state"] == "not_owed"


def test_a_ber_hire_unit_without_a_write_off_is_flagged() -> None:
    row = one(recon([unit(is_hire=True, grade="BER", written_off=True)]))
    assert row["write_off_status"] == "missing"
    assert [
        f.entity_ref
        for f in drift_findings(returns=recon([unit(is_hire=True, grade="BER", written_off=True)]))
    ] == ["recon:writeoff:U1"]


def test_a_ber_hire_unit_with_its_write_off_applied_is_written_off() -> None:
    row = one(
        recon(
            [unit(is_hire=True, grade="BER", written_off=True)],
            write_offs=[{"unique_sku": "U1", "applied_at": NOW - timedelta(days=1)}],
        )
    )
    assert row["write_off_status"] == "written_off"


def test_a_ber_hire_write_off_still_in_the_outbox_is_pending() -> None:
    row = one(
        recon(
            [unit(is_hire=True, grade="BER", written_off=True)],
            write_offs=[{"unique_sku": "U1", "applied_at": None}],
        )
    )
    assert row["write_off_status"] == "pending"


def test_a_ber_sale_unit_without_a_write_off_reason_in_khaos_is_flagged() -> None:
    khaos = [{"associated_ref": "R1-P1", "credit_status": "review", "write_off_units": 0}]
    row = one(recon([unit(grade="BER", written_off=True, credit_mode="review")], khaos))
    assert row["write_off_status"] == "missing_reason"


def test_a_ber_sale_unit_posted_with_a_write_off_reason_is_written_off() -> None:
    khaos = [{"associated_ref": "R1-P1", "credit_status": "review", "write_off_units": 1}]
    row = one(recon([unit(grade="BER", written_off=True, credit_mode="review")], khaos))
    assert row["write_off_status"] == "written_off"


def test_a_credit_never_raised_becomes_one_finding_per_return_part() -> None:
    table = recon([unit(), unit(unique_sku="U2")])
    found = drift_findings(returns=table, now=NOW)
    assert [f.entity_ref for f in found] == ["recon:credit:R1-P1"]
    assert found[0].details["credit_pending_value"] == 80.0


# --- exceptions table ----------------------------------------------------------------


def test_exceptions_table_counts_by_type_and_owner_with_the_oldest_age_and_over_target() -> None:
    rows = pd.DataFrame(
        {
            "type": ["drift", "drift", "order_sla_breach"],
            "owner": ["finance", "finance", "operations"],
            "status": ["open", "open", "open"],
            "opened_at": [
                NOW - timedelta(hours=30),
                NOW - timedelta(hours=2),
                NOW - timedelta(hours=1),
            ],
        }
    )
    table = exceptions_table(rows, NOW, {"finance": 24, "operations": 4})
    drift = one(table.loc[table["type"] == "drift"])
    assert drift["count"] == 2 and drift["oldest_age_hours"] == 30.0
    assert drift["over_target"] == 1
    assert one(table.loc[table["type"] == "order_sla_breach"])["over_target"] == 0


# --- findings ------------------------------------------------------------------------


def test_finding_keys_are_stable_from_one_night_to_the_next() -> None:
    def night(level: int, now: datetime) -> list[str]:
        stock = stock_reconciliation(
            units((DRESS, SELLING, 9)), levels((DRESS, SELLING, level)), cost_prices=COST
        )
        shipments = cash(posted=False, as_at=now)
        return [f.entity_ref for f in drift_findings(stock=stock, cash=shipments)]

    first = night(20, NOW)
    assert first == ["recon:cash:S1", "recon:stock:101:1"]
    assert night(25, NOW + timedelta(days=1)) == first
    assert all(owns_finding(ref) for ref in first)


def test_a_shipment_posted_but_never_invoiced_keeps_the_same_key_as_when_unposted() -> None:
    unposted = drift_findings(cash=cash(posted=False))
    uninvoiced = drift_findings(cash=cash(stage=16))
    assert [f.entity_ref for f in unposted] == [f.entity_ref for f in uninvoiced]


def test_a_shipment_younger_than_the_configured_age_is_not_a_finding() -> None:
    assert drift_findings(cash=cash(posted=False), not_invoiced_after_hours=96) == []


def test_every_finding_is_a_drift_exception() -> None:
    status = order_status_reconciliation(
        pd.DataFrame({"order_number": ["SO1"], "acs_status": ["CANCELLED"]}),
        pd.DataFrame({"order_number": ["SO1"], "khaos_cancelled": [False]}),
    )
    found = drift_findings(order_status=status)
    assert [(f.type, f.entity_ref) for f in found] == [
        ("drift", "recon:order:SO1:cancelled_at_acs_open_in_khaos")
    ]


# --- workflow audit ------------------------------------------------------------------


def test_workflow_latencies_give_p50_and_p95_per_leg_and_name_the_slowest() -> None:
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    events = []
    for i, post_delay in enumerate([1, 1, 1, 10]):
        order, ship = f"SO{i}", f"S{i}"
        events += [
            (order, "", "released", t0),
            (order, ship, "despatched", t0 + timedelta(hours=4)),
            (order, ship, "posted", t0 + timedelta(hours=4 + post_delay)),
            (order, ship, "invoiced", t0 + timedelta(hours=5 + post_delay)),
        ]
    audit = workflow_latencies(
        pd.DataFrame(events, columns=["order_number", "shipment_id", "step", "at"]),
        pd.DataFrame({"type": ["effect_failed"], "owner": ["integration"]}),
    )
    leg = one(audit.latencies.loc[audit.latencies["leg"] == "despatched → posted"])
    assert leg["p50_hours"] == 1.0 and leg["max_hours"] == 10.0 and leg["slowest"] == "S3"
    assert audit.delays[0].startswith("despatched → posted")
    assert one(audit.exception_rates)["per_100_shipments"] == 25.0
