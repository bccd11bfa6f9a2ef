"""What each orders step shows about its run, without Dagster (``flows/orders_figures.py``):
counts taken from small hand-made results, every expected number counted by hand.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from acs_khaos_dagster.domain.shipments import SHIPMENT_COLUMNS
from acs_khaos_dagster.flows import orders_figures as figures
from acs_khaos_dagster.flows.despatch_postings import (
    POSTING_COLUMNS,
    DespatchIntake,
    PostingResult,
)
from acs_khaos_dagster.flows.figures import Markdown
from acs_khaos_dagster.flows.order_release import RELEASE_ACTIONS, RELEASE_COLUMNS, ReleaseResult
from acs_khaos_dagster.flows.order_sla import SLA_COLUMNS, SLA_KINDS, SlaResult
from acs_khaos_dagster.store import DispatchReport


def test_released_lines_count_orders_once_however_many_lines_they_have() -> None:
    lines = pd.DataFrame(
        {"order_id": [7, 7, 8], "quantity": [1, 2, 4], "is_hire": [False, True, False]}
    )

    assert figures.released_lines_figures(lines) == {
        "orders": 2,
        "lines": 3,
        "units": 7,
        "hire_lines": 1,
    }


def test_release_figures_count_every_action_and_name_each_systems_dispatch() -> None:
    frame = pd.DataFrame(
        [["SO1", 1, "sent", True, "k1", ""], ["SO2", 2, "held", False, "", "SKU B"]],
        columns=RELEASE_COLUMNS,
    )
    result = ReleaseResult(
        frame,
        acknowledged=1,
        open_holds=1,
        order_locked=0,
        acs_report=DispatchReport(1, Counter({"sent": 1})),
        khaos_report=DispatchReport(1, Counter({"transient_error": 1})),
    )

    shown = figures.release_figures(result)

    assert {a: shown[f"orders_{a}"] for a in RELEASE_ACTIONS} == {
        a: int(a in ("sent", "held")) for a in RELEASE_ACTIONS
    }
    assert shown["orders_acknowledged"] == 1 and shown["open_order_held"] == 1
    assert shown["acs_effects_sent"] == 1 and shown["khaos_effects_transient_error"] == 1
    assert "effects_sent" not in shown


def test_shipments_figures_tell_new_events_from_repeats_and_show_the_cursor_as_text() -> None:
    shipments = pd.DataFrame({c: ["", ""] for c in SHIPMENT_COLUMNS} | {"units": [3, 2]})
    intake = DespatchIntake(received=[object()] * 5, new=2, cursor="c-41")  # type: ignore[list-item]

    shown = figures.shipments_figures(intake, shipments)

    assert (shown["events_read"], shown["events_new"], shown["events_repeated"]) == (5, 2, 3)
    assert (shown["shipments"], shown["units"], shown["cursor"]) == (2, 5, "c-41")
    assert "event_id" not in shown["sample"].text


def test_shipments_figures_of_an_empty_read_are_zero_with_no_cursor() -> None:
    intake = DespatchIntake(received=[], new=0, cursor=None)

    shown = figures.shipments_figures(intake, pd.DataFrame(columns=SHIPMENT_COLUMNS))

    assert (shown["units"], shown["cursor"], shown["sample"]) == (0, "", Markdown("_none_"))


def test_postings_figures_count_states_and_completed_orders() -> None:
    rows = [
        ["S1", "SO1", "queued", "done", 2, 0, "shipped", ""],
        ["S2", "SO2", "queued", "pending", 1, 1, "partially_shipped", ""],
        ["S3", "SO3", "problem", "", 0, 0, "unknown", "no courier"],
    ]
    result = PostingResult(
        pd.DataFrame(rows, columns=POSTING_COLUMNS),
        closed_short_lines=1,
        completion={"SO1": "shipped", "SO2": "partially_shipped"},
        open_counts={"courier_unmapped": 1},
        report=DispatchReport(2, Counter({"sent": 2})),
    )

    shown = figures.postings_figures(result)

    assert (shown["shipments"], shown["queued"], shown["posted"], shown["problems"]) == (3, 2, 1, 1)
    assert (shown["orders_shipped"], shown["orders_partially_shipped"]) == (1, 1)
    assert shown["open_courier_unmapped"] == 1 and shown["effects_sent"] == 2


def test_sla_figures_count_breaches_of_every_kind() -> None:
    frame = pd.DataFrame(
        [["k1", "turnaround", "SO1", 9.0, 20.0, ""], ["k2", "turnaround", "SO2", 8.5, 19.0, ""]],
        columns=SLA_COLUMNS,
    )

    shown = figures.sla_figures(SlaResult(frame, orders_tracked=10, open_breaches=2))

    assert {k: shown[f"breach_{k}"] for k in SLA_KINDS} == {
        "turnaround": 2,
        "release_stage": 0,
        "back_order": 0,
    }
    assert (shown["orders_tracked"], shown["breaching"], shown["open_order_sla_breach"]) == (
        10,
        2,
        2,
    )
