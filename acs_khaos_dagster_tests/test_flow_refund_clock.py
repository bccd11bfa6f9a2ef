"""The 14-day refund clock as a flow (``flows.refund_clock.run_refund_clock``) without
Dagster: each sale return part's deadline and credit status read back from Khaos, and
the ``refund_due`` exceptions finance works from.

The simulators over real HTTP and a SQLite store. The clock starts on Monday 2 March 2026
at 07:00 UTC (GMT until 29 March, so UK midnight is 00:00 UTC). Line 700007 of SO0050004
(JKT-0002-BRG-S) is despatched, then returned that morning: the deadline is midnight at
the end of the 14th day after receipt, 17 March 00:00; the warning opens 3 days before,
14 March 00:00. A grade A restocked unit is credited at once (``raised``); a grade C unit
sent for repair waits for finance (``review``) until its credit is approved in Khaos.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from acs_khaos_dagster.flows.refund_clock import run_refund_clock
from acs_khaos_dagster.flows.return_postings import post_customer_returns
from acs_khaos_dagster_tests.flow_ports import Ports, ports
from acs_khaos_dagster_tests.test_flow_returns import (
    FILE,
    _customer_returns,
    _deliver,
    _ship,
    _take_in,
    _unit,
)

__all__ = ["ports"]

DEADLINE = datetime(2026, 3, 17, 0, 0, tzinfo=UTC)
WARNING_OPENS = datetime(2026, 3, 14, 0, 0, tzinfo=UTC)


def _return(p: Ports, grade: str = "C", action: str = "REPAIR") -> None:
    """SO0050004's line 700007 despatched, then returned now as RF1 and posted to Khaos."""
    _ship(p, 50004, [(700007, 1)])
    received = p.sandbox.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    unit = _unit("RF1", "SO0050004", 700007, "JKT-0002-BRG-S", "UF1", grade, action, received)
    _deliver(p, FILE, [unit])
    _take_in(p)
    post_customer_returns(p.store, p.khaos, p.settings)


def _clock(p: Ports) -> pd.DataFrame:
    return run_refund_clock(p.store, p.khaos, p.settings, p.now())


def _advance_to(p: Ports, when: datetime) -> None:
    p.sandbox.advance(when - p.now())


def _approve_in_khaos(p: Ports) -> None:
    [credit] = _customer_returns(p, "RF1")
    p.sandbox.khaos.approve_credit(credit["return_id"])


def _unit_net(p: Ports, order: str, line: int) -> float:
    found = next(o for o in p.khaos_truth()["orders"] if o["order_code"] == order)
    return float(next(ln["unit_net"] for ln in found["lines"] if ln["order_item_id"] == line))


def _only(frame: pd.DataFrame) -> dict[str, Any]:
    [row] = frame.to_dict("records")
    return row


def test_the_deadline_is_midnight_at_the_end_of_the_fourteenth_day_after_receipt(
    ports: Ports,
) -> None:
    _return(ports)

    row = _only(_clock(ports))

    assert row["deadline"] == DEADLINE
    assert row["days_left"] == 14.71  # 14 days and 17 hours


def test_a_part_waiting_for_finance_is_listed_with_its_khaos_credit_status(
    ports: Ports,
) -> None:
    _return(ports)

    row = _only(_clock(ports))

    assert row["associated_ref"] == "RF1-P1" and row["return_ref"] == "RF1"
    assert row["credit_status"] == "review"
    assert row["credit_value"] == _unit_net(ports, "SO0050004", 700007)


def test_no_refund_warning_before_three_days_ahead_of_the_deadline(ports: Ports) -> None:
    _return(ports)
    _advance_to(ports, WARNING_OPENS - timedelta(hours=1))

    row = _only(_clock(ports))

    assert not row["due"] and ports.open_exceptions("refund_due") == []


def test_a_refund_warning_opens_for_finance_three_days_ahead_of_the_deadline(
    ports: Ports,
) -> None:
    _return(ports)
    _advance_to(ports, WARNING_OPENS + timedelta(hours=1))

    row = _only(_clock(ports))

    assert row["due"] and not row["breached"]
    [problem] = ports.open_exceptions("refund_due")
    assert problem.row.entity_ref == "refund:RF1-P1" and problem.row.owner == "finance"


def test_a_part_not_credited_by_the_deadline_is_breached(ports: Ports) -> None:
    _return(ports)
    _advance_to(ports, DEADLINE + timedelta(hours=6))

    row = _only(_clock(ports))

    assert row["due"] and row["breached"]
    assert row["days_left"] == -0.25
    assert len(ports.open_exceptions("refund_due")) == 1


def test_a_credit_raised_when_the_return_was_posted_is_never_due(ports: Ports) -> None:
    _return(ports, grade="A", action="RESTOCK")
    _advance_to(ports, DEADLINE + timedelta(days=1))

    row = _only(_clock(ports))

    assert row["credit_status"] == "raised" and not row["due"] and not row["breached"]
    assert ports.open_exceptions("refund_due") == []


def test_a_credit_approved_in_khaos_closes_its_refund_warning(ports: Ports) -> None:
    _return(ports)
    _advance_to(ports, WARNING_OPENS + timedelta(hours=1))
    _clock(ports)
    _approve_in_khaos(ports)

    row = _only(_clock(ports))

    assert row["credit_status"] == "raised" and not row["due"]
    assert ports.open_exceptions("refund_due") == []


def test_a_credit_once_seen_raised_stays_raised_without_asking_khaos(ports: Ports) -> None:
    _return(ports)
    _clock(ports)
    _approve_in_khaos(ports)
    _clock(ports)
    calls: list[Any] = []
    read = ports.khaos.export_customer_returns
    ports.khaos.export_customer_returns = lambda **kw: calls.append(kw) or read(**kw)  # type: ignore[method-assign]

    row = _only(_clock(ports))

    assert row["credit_status"] == "raised" and calls == []
