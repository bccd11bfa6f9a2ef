"""The push's table as Dagster checks it (``StockUpdateSchema``): Khaos's own Level may be
below zero, and a line held for finance leaves it there; the run must not fail on that."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pandera.errors
import pytest

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_push import VarianceTolerance, plan_push
from acs_khaos_dagster.flows.tables import StockUpdateSchema

SITES = KhaosSites()
SCARF = 301


def _plan_with_khaos_below_zero() -> pd.DataFrame:
    # Khaos invoiced one scarf more than it held (Level -1); ACS has none. The +1 that would
    # bring Level to 0 is a difference of unknown value: held for finance, not pushed.
    plan = plan_push(
        pd.DataFrame({"stock_id": [SCARF], "site_id": [SITES.selling], "units": [0]}),
        pd.DataFrame({"stock_id": [SCARF], "site_id": [SITES.selling], "level": [-1]}),
        None,
        snapshot_id="S1",
        sites=SITES,
        tolerance=VarianceTolerance(units=5, value=Decimal("100")),
        cost_prices={},
    )
    return plan.targets


def test_a_held_line_on_a_level_below_zero_passes_the_push_tables_check() -> None:
    table = _plan_with_khaos_below_zero()
    row = table.loc[table["site_id"] == SITES.selling].iloc[0]
    assert (row["level"], row["held_units"], row["pushed_to"]) == (-1, 1, -1)
    StockUpdateSchema.validate(table)


def test_a_target_below_zero_still_fails_the_push_tables_check() -> None:
    table = _plan_with_khaos_below_zero().assign(target=-1)
    with pytest.raises(pandera.errors.SchemaError):
        StockUpdateSchema.validate(table)
