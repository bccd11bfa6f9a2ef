"""The Dagster type of every table asset, built from its pandera model (``flows/tables``).

A pandera Dagster type fails the step *before* the IO manager stores the value, so a
table that breaks its schema never reaches a downstream push; it also gives the asset
its column schema in the UI.
"""

import warnings
from functools import cache

import dagster as dg
from dagster_pandera import pandera_schema_to_dagster_type

# dagster-pandera is marked beta; the pinned versions are tested together.
warnings.filterwarnings("ignore", category=dg.BetaWarning, module=__name__)


@cache
def table_type(schema: type) -> dg.DagsterType:
    """The Dagster type of a table asset, from its pandera model in ``flows/tables``."""
    return pandera_schema_to_dagster_type(schema)
