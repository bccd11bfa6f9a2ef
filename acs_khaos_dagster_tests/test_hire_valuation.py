"""Issue 17 point 7: the rental fleet valued apart from stock for sale, at a configurable
basis; hire write-offs at that basis; overdue hires an owned exception."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from dagster import AssetKey, materialize
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.domain import month_end as me
from acs_khaos_dagster.domain.hire_valuation import HireValuation, hire_fleet, overdue_hires
from acs_khaos_dagster.domain.models import DespatchEvent, ShipmentLine
from acs_khaos_dagster.flows.common import write_parquet_atomically
from acs_khaos_dagster.flows.month_end_extras import without_hire
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_returns_flow import FLOW, _deliver, _groups, _run, _ship, _unit

DEPRECIATED = HireValuation(
    basis="depreciated", depreciation_per_rental=Decimal("0.10"), floor=Decimal("0.30")
)
HIRE_DRESS, SALE_COAT = 201, 103
SELLING, HIRE_STOCK, ON_HIRE, QUARANTINE = 1, 2, 3, 6


@given(
    cost=st.decimals(min_value=0, max_value=5000, places=2),
    rentals=st.integers(min_value=0, max_value=40),
)
def test_a_hire_unit_loses_value_with_each_rental_and_never_falls_below_the_floor(
    cost: Decimal, rentals: int
) -> None:
    now, later = DEPRECIATED.unit_value(cost, rentals), DEPRECIATED.unit_value(cost, rentals + 1)
    assert later <= now <= cost
    assert now >= (cost * Decimal("0.30")).quantize(Decimal("0.01")) - Decimal("0.01")


def test_on_the_cost_basis_a_hire_unit_is_worth_its_cost_whatever_its_rentals() -> None:
    assert HireValuation().unit_value(Decimal("50.00"), 12) == Decimal("50.00")


def _stock() -> pd.DataFrame:
    rows = [
        (HIRE_DRESS, "HIRE-DRESS", HIRE_STOCK, "Hire stock", 6),
        (HIRE_DRESS, "HIRE-DRESS", ON_HIRE, "On hire", 4),
        (SALE_COAT, "COAT-L", QUARANTINE, "Quarantine", 2),
        (SALE_COAT, "COAT-L", SELLING, "Main", 9),
    ]
    frame = pd.DataFrame(rows, columns=["stock_id", "stock_code", "site_id", "site_name", "level"])
    return frame.assign(
        khaos_level=frame["level"], acs_units=frame["level"], difference=0, value=0.0
    )


def test_the_hire_fleet_is_reported_apart_from_stock_for_sale_at_the_hire_basis() -> None:
    costs = {HIRE_DRESS: 100.0, SALE_COAT: 45.5}
    # Ten dresses went out 20 times between them: 2 rentals each, 80 % of cost.
    fleet = hire_fleet(_stock(), {HIRE_DRESS}, costs, {HIRE_DRESS: 20}, DEPRECIATED, ON_HIRE)
    non_sellable = me.non_sellable_value(without_hire(_stock(), {HIRE_DRESS}), [SELLING], costs)

    assert list(non_sellable["site_name"]) == ["Quarantine"]  # no hire unit is stock for sale
    assert non_sellable["value_at_cost"].sum() == pytest.approx(91.0)
    by_site = fleet.set_index("site_name")
    assert by_site.loc["On hire", "on_hire"] == "yes"
    assert by_site["units"].sum() == 10
    assert by_site["value_at_cost"].sum() == pytest.approx(1000.0)
    assert by_site["book_value"].sum() == pytest.approx(800.0)


def test_a_hire_is_overdue_from_the_day_after_its_expected_return_date() -> None:
    out = pd.DataFrame(
        [("U1", "HIRE-DRESS", "2026-03-10"), ("U2", "HIRE-DRESS", "2026-03-11"), ("U3", "X", None)],
        columns=["unique_sku", "sku", "expected_return_date"],
    )
    now = datetime(2026, 3, 11, 22, tzinfo=UTC)  # 22:00 GMT on the 11th
    [late] = overdue_hires(out, now)
    assert (late.unique_sku, late.days_overdue, late.type) == ("U1", 1, "hire_overdue")
    assert late.entity_ref == "hire:U1:2026-03-10"
    assert overdue_hires(out, now, grace_days=1) == []


# --- through the real parts -------------------------------------------------------------------


def test_a_hire_write_off_is_valued_at_the_hire_basis_after_its_rentals(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACS_KHAOS_HIRE__BASIS", "depreciated")
    monkeypatch.setenv("ACS_KHAOS_HIRE__DEPRECIATION_PER_RENTAL", "0.25")
    _ship(integration, 50006, [(700011, 1)])
    # ACS despatched this hire unit twice before (two rentals).
    with integration.store() as store, store.db.transaction() as session:
        OrderBook(store.db).record_events(
            [
                DespatchEvent(
                    event_id=f"EV-{n}",
                    order_number="SO0050006",
                    shipment_id=f"SH-{n}",
                    despatched_at=datetime(2026, 2, n, 10, tzinfo=UTC),
                    lines=(ShipmentLine(line_item_id="700011", sku="TOP-0001-BRG-M", quantity=1,
                                        unique_skus=("UW1",)),),
                )
                for n in (1, 15)
            ],
            session,
        )  # fmt: skip
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RW1", "SO0050006", 700011, "TOP-0001-BRG-M", "UW1", "BER", "DISPOSE")],
    )
    _run(integration, *FLOW)

    [group] = _groups(integration, "WO-UW1")  # what Khaos saved
    assert Decimal(group["lines"][0]["value"]) == Decimal("4.48")  # £8.96 less 2 × 25 %


def _snapshot(integration: IntegrationHarness, name: str, status: str, at: datetime) -> None:
    folder = load_settings().data_dir / "stock" / "units"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "unique_sku": ["UH-OUT"],
            "sku": ["TOP-0001-BRG-M"],
            "status": [status],
            "last_event_at": [at],
            "expected_return_date": [pd.Timestamp("2026-02-20", tz="UTC")],
            "snapshot_at": [at],
        }
    )
    write_parquet_atomically(frame, folder / f"{name}.parquet")


def _overdue_run(integration: IntegrationHarness) -> list:
    from acs_khaos_dagster.defs import hire, returns
    from acs_khaos_dagster.defs.resources import default_resources

    materialize(
        [*returns.defs.assets, *hire.defs.assets],
        selection=[AssetKey("hire_unit_lifecycle"), AssetKey("hire_overdue")],
        resources=default_resources(),
        instance=integration.instance,
    )
    with integration.store() as store:
        return [e for e in store.exceptions.list(type="hire_overdue") if e.row.status == "open"]


def test_a_hire_past_its_return_date_is_an_operations_exception_until_it_is_back(
    integration: IntegrationHarness,
) -> None:
    now = integration.sandbox.clock.now()
    _snapshot(integration, "S1", "With Customer", now - timedelta(hours=2))

    [late] = _overdue_run(integration)
    assert late.row.owner == "operations"
    assert late.row.entity_ref == "hire:UH-OUT:2026-02-20"

    _snapshot(integration, "S2", "Awaiting Inspection", now - timedelta(hours=1))
    assert _overdue_run(integration) == []
