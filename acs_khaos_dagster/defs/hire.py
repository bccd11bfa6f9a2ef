"""Hire (group ``returns``): overdue hires as owned exceptions.

``hire_overdue`` reads the hire lifecycle (where each unit is now) and the newest ACS unit
snapshot's ``expected_return_date``; a unit with the customer past that date opens a
``hire_overdue`` exception for operations (docs/runbooks/hire_overdue.md), which closes
itself once the unit is seen back.
"""

import dagster as dg
import pandas as pd

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.dagster_kit.results import metadata
from acs_khaos_dagster.defs.resources import SettingsResource, StoreResource
from acs_khaos_dagster.flows.hire import raise_overdue_hires


@dg.asset(
    group_name="returns",
    kinds={"pandas"},
    ins={"lifecycle": dg.AssetIn("hire_unit_lifecycle")},
    description="Hire units still with the customer after their expected return date (ACS "
    "unit snapshot): each an owned hire_overdue exception for operations, closed once the "
    "unit is back.",
)
def hire_overdue(
    lifecycle: pd.DataFrame, settings: SettingsResource, store: StoreResource
) -> dg.Output[pd.DataFrame]:
    conf = settings.load()
    with store.connect() as db:
        result = raise_overdue_hires(db, conf, lifecycle, integration_now(conf))
    return dg.Output(result.frame, metadata=metadata(result.figures()))


defs = dg.Definitions(assets=[hire_overdue])
