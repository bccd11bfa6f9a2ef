"""pandera's ``str`` check without a Python call per value.

pandera checks a ``Series[str]`` column by calling ``isinstance(x, str)`` on every value
(``pandas_engine.NpString.check``): ~0.5 s per 150k-row table over three columns, twice
per table asset in a run (the output's Dagster type and its ``pandera_model`` check),
~0.95 s of a brand's stock ingestion (BENCHMARKS.md §1b). Here the same question is
asked in C first: an object column whose every value is a ``str`` or missing
(``pandas._libs.lib.is_string_array``), or a pandas string column, passes at once. Any
other column goes to pandera's own per-value check, so what fails and the failure
cases it reports are exactly pandera's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas._libs import lib
from pandera.engines import pandas_engine

_per_value_check = pandas_engine.NpString.check


def all_strings(values: Any) -> bool:
    """Every value a ``str`` (``numpy.str_`` too) or missing, answered without Python
    per value; False whenever that cannot be said at once."""
    if not isinstance(values, pd.Series):
        return False
    if isinstance(values.dtype, pd.StringDtype):
        return True
    if values.dtype != np.dtype(object):
        return False
    return bool(lib.is_string_array(values.to_numpy(), skipna=True))


def _check(self: Any, pandera_dtype: Any, data_container: Any = None) -> Any:
    if data_container is not None and all_strings(data_container):
        return True
    return _per_value_check(self, pandera_dtype, data_container)


def install() -> None:
    """Once per process (``flows.tables`` does it on import)."""
    if pandas_engine.NpString.check is not _check:
        pandas_engine.NpString.check = _check  # type: ignore[method-assign]
