"""Aggregation of an ACS unit snapshot: pure, Arrow-native, no I/O.

Only the reader touches every unit; everything after works on counts per SKU
and status, with each distinct status classified once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from acs_khaos_dagster.domain.stock_status import DEFAULT_STATUS_POLICY, StatusPolicy


def status_counts(units: pa.Table, policy: StatusPolicy = DEFAULT_STATUS_POLICY) -> pd.DataFrame:
    """Units per (sku, normalised status), each with its stock bucket under ``policy``.

    ``units`` needs the columns ``sku`` and ``status`` (already normalised). A status
    the policy does not know lands in the ``unknown`` bucket, never ``sellable``.
    """
    sku = _dictionary(units["sku"])
    status = _dictionary(units["status"])
    # Counted on the dictionary codes with numpy: no hashing of every unit's strings again.
    width = max(len(status.dictionary), 1)
    codes = sku.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
    codes += status.indices.to_numpy(zero_copy_only=False)
    if len(sku.dictionary) * width <= 4 * len(codes) + 1024:
        per_code = np.bincount(codes, minlength=len(sku.dictionary) * width)
        seen = np.flatnonzero(per_code)
        units_seen = per_code[seen]
    else:  # many distinct spellings: a sparse count
        seen, units_seen = np.unique(codes, return_counts=True)
    # Sorted by (sku, status) on ranks of the small dictionaries, not on the strings: one
    # integer key per pair (the status's rank is below ``width``), often already in order.
    sku_codes, status_codes = seen // width, seen % width
    key = _ranks(sku.dictionary)[sku_codes] * width + _ranks(status.dictionary)[status_codes]
    if len(key) > 1 and not (key[1:] > key[:-1]).all():
        order = np.argsort(key, kind="stable")
        sku_codes, status_codes, units_seen = (
            sku_codes[order],
            status_codes[order],
            units_seen[order],
        )
    # Each status's bucket once, by its code.
    used = np.unique(status_codes)
    names = status.dictionary.take(pa.array(used)).to_pylist()
    bucket_of = np.empty(len(status.dictionary), dtype=object)
    bucket_of[used] = [str(policy.bucket_for(value)) for value in names]
    frame = pd.DataFrame(
        {
            "sku": sku.dictionary.take(pa.array(sku_codes)).to_pandas(),
            "status": status.dictionary.take(pa.array(status_codes)).to_pandas(),
            "units": units_seen,
        }
    )
    # (No rows: ``map`` as before, which types the empty column float64.)
    frame["bucket"] = bucket_of[status_codes] if len(frame) else frame["status"].map({})
    frame["units"] = frame["units"].astype("int64")
    return frame[["sku", "status", "bucket", "units"]]


def _ranks(values: pa.Array) -> np.ndarray:
    """Each value's position in sorted order (values are distinct)."""
    if values.null_count == 0 and (
        len(values) < 2
        or pc.all(pc.less(values.slice(0, len(values) - 1), values.slice(1))).as_py()
    ):
        return np.arange(len(values), dtype=np.int64)  # already sorted (byte order = str order)
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(values.to_numpy(zero_copy_only=False), kind="stable")] = np.arange(len(values))
    return ranks


def _dictionary(column: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """The column as one dictionary array (encoded here if the reader left it plain)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        if len(pc.unique(column.dictionary)) == len(column.dictionary):
            return _without_nulls(column)
        column = column.cast(column.type.value_type)  # a value listed twice: encode afresh
    return _without_nulls(pc.dictionary_encode(column))


def _without_nulls(column: pa.DictionaryArray) -> pa.DictionaryArray:
    if column.null_count:
        raise ValueError("units with no sku or status cannot be counted")
    return column


def units_per_status(counts: pd.DataFrame) -> pd.DataFrame:
    """Totals per normalised status and bucket, largest first (the demo's summary)."""
    totals = counts.groupby(["status", "bucket"], as_index=False, observed=True)["units"].sum()
    return totals.sort_values(["units", "status"], ascending=[False, True], ignore_index=True)
