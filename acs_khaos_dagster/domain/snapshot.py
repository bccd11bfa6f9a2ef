"""Aggregation of an ACS unit snapshot: pure, Arrow-native, no I/O.

Only the reader touches every unit; everything after works on counts per SKU
and status, with each distinct status classified once.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from acs_khaos_dagster.domain.stock_status import DEFAULT_STATUS_POLICY, StatusPolicy


def status_counts(units: pa.Table, policy: StatusPolicy = DEFAULT_STATUS_POLICY) -> pd.DataFrame:
    """Units per (sku, normalised status), each with its stock bucket under ``policy``.

    ``units`` needs the columns ``sku`` and ``status`` (already normalised). A status
    the policy does not know lands in the ``unknown`` bucket, never ``sellable``.
    """
    grouped = (
        units.select(["sku", "status"]).group_by(["sku", "status"]).aggregate([([], "count_all")])
    )
    # Readers dictionary-encode status; plain strings keep pandas from treating it as
    # a categorical (whose groupbys would list every unseen combination).
    frame = grouped.to_pandas().rename(columns={"count_all": "units"})
    frame["sku"] = frame["sku"].astype(str)
    frame["status"] = frame["status"].astype(str)
    buckets = {status: str(policy.bucket_for(status)) for status in frame["status"].unique()}
    frame["bucket"] = frame["status"].map(buckets)
    frame["units"] = frame["units"].astype("int64")
    return frame[["sku", "status", "bucket", "units"]].sort_values(
        ["sku", "status"], kind="stable", ignore_index=True
    )


def units_per_status(counts: pd.DataFrame) -> pd.DataFrame:
    """Totals per normalised status and bucket, largest first (the demo's summary)."""
    totals = counts.groupby(["status", "bucket"], as_index=False, observed=True)["units"].sum()
    return totals.sort_values(["units", "status"], ascending=[False, True], ignore_index=True)
