"""``sellable_stock.statuses``: each StockID × site lists the statuses its selling units are
in, once each and sorted, however many statuses an install has."""

from __future__ import annotations

import pandas as pd
import pytest

from acs_khaos_dagster.flows.stock_placement import _statuses


def _selling(statuses: list[tuple[int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(statuses, columns=["stock_id", "site_id", "status"])
    return frame.assign(stock_code="C" + frame["stock_id"].astype(str), units=1)


@pytest.mark.parametrize("extra", [0, 70], ids=["a-handful", "more-statuses-than-bits"])
def test_a_places_statuses_are_listed_once_each_and_sorted(extra: int) -> None:
    rows = [(1, 1, "picking"), (1, 1, "available"), (1, 1, "picking"), (1, 2, "packed")]
    rows += [(2, 1, "allocated")] + [(3, 1, f"s{i:02d}") for i in range(extra)]
    found = _statuses(_selling(rows)).set_index(["stock_id", "site_id"])["statuses"]
    assert found[(1, 1)] == "available|picking"
    assert found[(1, 2)] == "packed"
    assert found[(2, 1)] == "allocated"
    if extra:
        assert found[(3, 1)] == "|".join(f"s{i:02d}" for i in range(extra))
