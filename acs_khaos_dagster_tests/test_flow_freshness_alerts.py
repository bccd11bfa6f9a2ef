"""Which deadlines the freshness sensor looks at, and what it watches, without Dagster
(``flows/freshness_alerts.py``). The overdue days themselves are ``domain/freshness.py``'s;
the sensor end to end is ``test_freshness_alerts.py``'s."""

from __future__ import annotations

from datetime import datetime, timedelta

from acs_khaos_dagster.flows.freshness_alerts import MAX_DEADLINES, deadlines_since, watched

NOW = datetime(2026, 3, 12, 9)


def _hourly(count: int) -> list[datetime]:
    return [NOW - timedelta(hours=n) for n in range(count)]


def test_only_deadlines_after_since_are_looked_at() -> None:
    found = deadlines_since(_hourly(10), since=NOW - timedelta(hours=3))

    assert found == [NOW, NOW - timedelta(hours=1), NOW - timedelta(hours=2)]


def test_the_deadlines_looked_at_are_bounded() -> None:
    found = deadlines_since(_hourly(MAX_DEADLINES + 5), since=NOW - timedelta(days=9999))

    assert len(found) == MAX_DEADLINES


def test_the_snapshot_is_due_the_same_day_and_the_nightly_tables_the_day_after() -> None:
    found = {w.asset: (w.days_before, w.first_day) for w in watched("2026-02-01", "2026-01-01")}

    assert found == {
        "acs_stock_snapshot": (0, "2026-02-01"),
        "stock_reconciliation": (1, "2026-01-01"),
        "order_status_reconciliation": (1, "2026-01-01"),
        "order_to_cash_reconciliation": (1, "2026-01-01"),
        "returns_reconciliation": (1, "2026-01-01"),
        "integration_exceptions": (1, "2026-01-01"),
    }
