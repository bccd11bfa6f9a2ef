"""Round trips Khaos never saw: a unit shipped on an order Khaos will never invoice (the
order was cancelled in Khaos while ACS picked it), then returned to ACS.

Khaos removes a sold unit from Level only when it issues the shipment's invoice, so such a
unit never left Level. While it is out, ACS does not count it and the push adds it back
("despatched, not invoiced"). Once ACS has it back by the snapshot, that correction must
stop, whatever the unit's grade:

- restocked: ACS counts it again, and its return is never processed in Khaos (it cannot be
  matched to an invoice: operations own that exception), so it is not "restocked, not
  processed" either;
- written off (BER, disposed): it is gone, and Level must lose it.

Counted in flight instead, Khaos kept one unit more than ACS holds forever (found by the
soak: a BER unit of a cancelled order).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd

from acs_khaos_dagster.domain.layout import KhaosStages

# Extra columns of the despatch and return facts that tie a unit to its order.
ORDER_COLUMN = "order_number"
NEVER_INVOICED = "never_invoiced"  # despatch rows: Khaos will invoice nothing more of the order
ROUND_TRIP = "round_trip"  # return rows: a unit of a never-invoiced order, not posted
RESTOCKS = "restocks"  # return rows: ACS put the unit back in stock (else written off)


def invoices_nothing_more(stage_ids: Iterable[int], stages: KhaosStages) -> bool:
    """Whether Khaos will issue no further invoice for an order whose invoices are at
    ``stage_ids``: one was cancelled and none is still open (cancelling an order cancels
    every open invoice; an issued one stays issued)."""
    ids = list(stage_ids)
    return stages.cancelled in ids and all(s == stages.cancelled or s in stages.issued for s in ids)


def settle_round_trips(
    despatches: pd.DataFrame, returns: pd.DataFrame, snapshot_at: datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Take the units of never-invoiced shipments that ACS had back by the snapshot out of
    both facts.

    ``despatches`` has ``order_number`` and ``never_invoiced``; ``returns`` has
    ``order_number``, ``round_trip`` and ``restocks``. A round-trip unit received by the
    snapshot settles one unit of a never-invoiced despatch row of its order and StockID
    despatched by the snapshot, and leaves the returns. A round-trip unit received after
    the snapshot is not in the snapshot either, and its shipment stays in flight: it
    leaves the returns. One with no such shipment to settle stays an ordinary unit not
    posted yet if it restocks (kept out of Level until someone decides), else leaves.
    Returns the two frames for ``timing_corrections``."""
    snap = pd.Timestamp(snapshot_at)
    despatches = despatches.copy()
    if returns.empty or not returns[ROUND_TRIP].astype(bool).any():
        return despatches, returns.loc[returns[RESTOCKS].astype(bool)].reset_index(drop=True)
    trips = returns.loc[returns[ROUND_TRIP].astype(bool)]
    back = (
        trips.loc[pd.to_datetime(trips["restocked_at"], utc=True) <= snap]
        .groupby([ORDER_COLUMN, "stock_id"])["units"]
        .sum()
        .to_dict()
    )
    settled: dict[tuple[str, int], int] = {}
    open_rows = despatches[NEVER_INVOICED].astype(bool) & (
        pd.to_datetime(despatches["despatched_at"], utc=True) <= snap
    )
    for index in despatches.index[open_rows]:
        key = (str(despatches.at[index, ORDER_COLUMN]), int(despatches.at[index, "stock_id"]))
        take = min(int(despatches.at[index, "units"]), back.get(key, 0) - settled.get(key, 0))
        if take > 0:
            despatches.at[index, "units"] -= take
            settled[key] = settled.get(key, 0) + take
    despatches = despatches.loc[despatches["units"] > 0].reset_index(drop=True)
    # The earliest units back settle the shipments; any beyond what the store knows was
    # shipped are treated as any other unit back and not posted.
    spare: list[int] = []
    for index, row in trips.sort_values("restocked_at", kind="stable").iterrows():
        key = (str(row[ORDER_COLUMN]), int(row["stock_id"]))
        if pd.Timestamp(row["restocked_at"]) > snap:
            continue
        if settled.get(key, 0) > 0:
            settled[key] -= int(row["units"])
        elif bool(row[RESTOCKS]):
            spare.append(index)
    ordinary = ~returns[ROUND_TRIP].astype(bool) & returns[RESTOCKS].astype(bool)
    keep = ordinary | returns.index.isin(spare)
    return despatches, returns.loc[keep].reset_index(drop=True)
