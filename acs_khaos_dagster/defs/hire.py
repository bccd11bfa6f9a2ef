"""Hire (group ``returns``): overdue hires as owned exceptions.

``hire_overdue`` reads the hire lifecycle (where each unit is now) and the newest ACS unit
snapshot's ``expected_return_date``; a unit with the customer past that date opens a
``hire_overdue`` exception for operations (docs/runbooks/hire_overdue.md), which closes
itself once the unit is seen back.
"""

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Definitions, asset

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.defs.common import markdown_table, sync_exceptions
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.defs.returns import SNAPSHOT_FOLDERS
from acs_khaos_dagster.flows.hire import (
    newest_expected_returns,
    overdue_from_snapshot,
    units_out,
)

HIRE_OVERDUE = "hire_overdue"


@asset(
    group_name="returns",
    kinds={"pandas"},
    ins={"lifecycle": AssetIn("hire_unit_lifecycle")},
    description="Hire units still with the customer after their expected return date (ACS "
    "unit snapshot): each an owned hire_overdue exception for operations, closed once the "
    "unit is back.",
)
def hire_overdue(
    context: AssetExecutionContext,
    lifecycle: pd.DataFrame,
    settings: SettingsResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    expected = newest_expected_returns(
        (conf.data_dir / f for f in SNAPSHOT_FOLDERS), units=units_out(lifecycle)
    )
    overdue = overdue_from_snapshot(conf, lifecycle, expected, integration_now(conf))
    with store.connect() as db:
        open_counts = sync_exceptions(db, overdue, [HIRE_OVERDUE])
    frame = pd.DataFrame(
        [o.details for o in overdue],
        columns=["unique_sku", "sku", "expected_return_date", "days_overdue"],
    )
    context.add_output_metadata(
        {
            "hires_overdue": len(frame),
            "open_hire_overdue": open_counts.get(HIRE_OVERDUE, 0),
            "sample": markdown_table(frame),
        }
    )
    return frame


defs = Definitions(assets=[hire_overdue])
