"""What the stock push's modules share: its reason codes, the cost scale, the column check.

Cost prices are carried as integer ten-thousandths of a pound (``_COST_SCALE``) so the
tolerance checks and line values are exact and vectorised.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

REASON_VARIANCE = "VARIANCE"
REASON_TRANSFER = "TRANSFER"
REASON_REFURBISH = "REFURBISH"

# Cost prices are carried as integer ten-thousandths of a pound so tolerance checks
# are exact and vectorised (Khaos costs can carry four decimal places).
_COST_SCALE = 10_000
_PENNY = Decimal("0.01")


def _require(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(frame.columns)}")
