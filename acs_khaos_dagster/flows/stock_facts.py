"""The facts the stock push reads at its own moment: Khaos's Levels, and the movements each
system has booked that the other has not yet (ARCHITECTURE "Stock arithmetic").

- **Despatches**: every sale unit ACS despatched — from ACS's own despatch events, whatever
  became of their posting (queued, a posting problem, fixed later) — with whether Khaos
  has issued its invoice. No fixed window: a shipment is read until its invoice is seen
  issued (remembered in the store), then only if it left after the snapshot.
- **Returns** restocked at ACS and processed "return to stock" in Khaos (or not yet).
- **Adjustments** booked by other paths (write-offs, ex-hire legs).

Each function returns the columns ``domain.stock_push.timing_corrections`` takes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.drop import DropEntry, open_drop
from acs_khaos_dagster.connectors.acs.files import FileLayoutError, read_returns
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.ex_hire import ex_hired_units_held_under_hire_sku
from acs_khaos_dagster.domain.models import CustomerReturn, StockAdjustmentGroup
from acs_khaos_dagster.domain.returns import StockMoveKind
from acs_khaos_dagster.domain.stock_push import ADJUSTMENT_COLUMNS, DESPATCH_COLUMNS, RETURN_COLUMNS
from acs_khaos_dagster.domain.stock_push.round_trips import (
    NEVER_INVOICED,
    ORDER_COLUMN,
    RESTOCKS,
    ROUND_TRIP,
    invoices_nothing_more,
    settle_round_trips,
)
from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.ledger import FileLedger, file_sha256
from acs_khaos_dagster.store.orders import OrderBook
from acs_khaos_dagster.store.returns import ReturnsRepository
from acs_khaos_dagster.store.schema import Effect

# ExportOrderStatusEx in batches of this many orders.
ORDER_BATCH = 100
RETURNS_FILE_GLOB = "returns_*.csv"
RETURNS_FILE_KIND = "returns"
# The push's own adjustments carry these refs; every other adjustment is another path's.
PUSH_REF_PREFIX = "SNAP-"
# What ``timing_corrections`` takes, and what ties a unit to its order (round trips).
DESPATCH_FACT_COLUMNS = [*DESPATCH_COLUMNS, "is_hire", "ref", ORDER_COLUMN, NEVER_INVOICED]
RETURN_FACT_COLUMNS = [*RETURN_COLUMNS, "ref", ORDER_COLUMN, ROUND_TRIP, RESTOCKS]


def khaos_levels(client: KhaosClient, codes: list[str], managed: set[int]) -> pd.DataFrame:
    """Level of every managed StockID on every site (``SiteID`` empty = all sites)."""
    levels = client.export_stock_status(codes, None)
    frame = pd.DataFrame(
        [(lv.stock_id, lv.site_id, lv.level) for lv in levels if lv.stock_id in managed],
        columns=["stock_id", "site_id", "level"],
    )
    return frame.astype("int64")


def despatch_facts(
    store: Store,
    client: KhaosClient,
    settings: Settings,
    sku_map: pd.DataFrame,
    snapshot_at: datetime,
) -> pd.DataFrame:
    """Sale units ACS despatched whose invoice Khaos had not issued when last asked, and
    those despatched after the snapshot: ``DESPATCH_COLUMNS`` + ``is_hire``, ``ref``.

    Read from ACS's despatch events, not the outbox: a shipment held as a posting problem
    (an unmapped courier, more units than ordered) has left ACS all the same, and Khaos
    keeps the units in its Level until an invoice is issued — whenever that happens.
    """
    book = OrderBook(store.db)
    shipments = book.shipments_to_correct(snapshot_at)
    known = book.issued_invoices(event.shipment_id for event, _ in shipments)
    to_ask = sorted(
        {order_id for e, order_id in shipments if order_id and e.shipment_id not in known}
    )
    issued_stages = set(settings.khaos.stages.issued)
    seen_issued: dict[str, datetime] = {}
    closed: set[str] = set()  # orders Khaos will invoice nothing more of (cancelled)
    for start in range(0, len(to_ask), ORDER_BATCH):
        for order in client.export_order_status(
            to_ask[start : start + ORDER_BATCH], include_tracking=False
        ):
            if invoices_nothing_more((i.stage_id for i in order.invoices), settings.khaos.stages):
                closed.add(order.order_code)
            for invoice in order.invoices:
                is_issued = invoice.stage_id in issued_stages and invoice.issue_date is not None
                if invoice.external_ref and is_issued:
                    seen_issued[invoice.external_ref] = invoice.issue_date
    book.record_issued(
        {
            e.shipment_id: seen_issued[e.shipment_id]
            for e, _ in shipments
            if e.shipment_id in seen_issued
        }
    )
    issued = {**known, **seen_issued}
    by_sku = sku_map.drop_duplicates("sku").set_index(
        sku_map.drop_duplicates("sku")["sku"].astype(str)
    )
    rows = []
    for event, _ in shipments:
        for line in event.lines:
            if line.sku not in by_sku.index:
                continue  # not a Khaos stock item: never in any Level
            rows.append(
                {
                    "stock_id": int(by_sku.at[line.sku, "stock_id"]),
                    "site_id": settings.khaos.sites.selling,
                    "units": int(line.quantity),
                    "despatched_at": event.despatched_at,
                    "issued_at": issued.get(event.shipment_id),
                    "is_hire": bool(by_sku.at[line.sku, "is_hire"]),
                    "ref": event.shipment_id,
                    ORDER_COLUMN: event.order_number,
                    NEVER_INVOICED: event.shipment_id not in issued
                    and event.order_number in closed,
                }
            )
    return pd.DataFrame(rows, columns=DESPATCH_FACT_COLUMNS)


def movement_facts(
    store: Store,
    client: KhaosClient,
    settings: Settings,
    sku_map: pd.DataFrame,
    snapshot_at: datetime,
    since: datetime,
    *,
    returns_not_posted: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The despatch and return facts (``despatch_facts``, ``return_facts``) with the round
    trips Khaos never saw settled (``domain/stock_push/round_trips.py``): a unit of a
    shipment Khaos will never invoice that ACS had back by the snapshot is in flight no
    more. ``returns_not_posted``: also count the restocked units whose return is not posted
    yet (the push does; the reconciliation shows them as drift)."""
    despatches = despatch_facts(store, client, settings, sku_map, snapshot_at)
    never_invoiced = frozenset(despatches.loc[despatches[NEVER_INVOICED], ORDER_COLUMN])
    returns = return_facts(
        store,
        settings,
        stock_ids_by_code(sku_map),
        since,
        acs_skus=sku_map,
        never_invoiced=never_invoiced,
        returns_not_posted=returns_not_posted,
    )
    return settle_round_trips(despatches, returns, snapshot_at)


def _since(effects: list[Effect], since: datetime) -> list[Effect]:
    return [e for e in effects if e.created_at >= since]


def _returns_moments(store: Store) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """When ACS restocked each return part and handled each written-off unit."""
    return ReturnsRepository(store.db).restock_moments()


def return_facts(
    store: Store,
    settings: Settings,
    stock_ids: dict[str, int],
    since: datetime,
    acs_skus: pd.DataFrame | None = None,
    never_invoiced: frozenset[str] = frozenset(),
    returns_not_posted: bool = True,
) -> pd.DataFrame:
    """Sale returns posted "return to stock" (``RETURN_FACT_COLUMNS``). The ACS moment is
    the return's receipt at ACS or, failing that, when it was recorded; the Khaos moment is
    when the import was confirmed (``process_return`` processes at once).

    With ``acs_skus`` (``sku, stock_id, is_hire`` by ACS SKU), also the restocked sale units
    ACS reported whose return is not posted yet (``returns_not_posted_yet``; only those of
    ``never_invoiced`` orders unless ``returns_not_posted``).

    A returned unit moves from a file in the drop to the store's returned units, then to a
    customer return in the outbox, while these facts are read (the stock and returns files
    arrive together and their runs race). So the drop is read first and the store in one
    consistent read after it: each unit is found at exactly one of its places. Read one
    after another, a unit taken in (or posted) in between was found at none, and Khaos's
    Level went one over once its return was processed (found by the soak)."""
    waiting = _drop_returns_files(settings, since) if acs_skus is not None else []
    returns = ReturnsRepository(store.db)
    ledger = FileLedger(store.db)
    with store.db.consistent_read() as session:
        received, _ = returns.restock_moments(session)
        effects = store.outbox.find(kind=EffectKind.KHAOS_CUSTOMER_RETURN, session=session)
        units = returns.units(session)
        untaken = [
            path
            for path in waiting
            if not ledger.taken_in(file_sha256(path), RETURNS_FILE_KIND, session=session)
        ]
    returned_to_stock = settings.khaos.reasons.returned_to_stock
    rows = []
    for effect in _since(effects, since):
        ret = CustomerReturn.model_validate(effect.payload)
        if not ret.process_return:
            continue
        processed_at = effect.updated_at if effect.state == "done" else None
        for item in ret.items:
            stock_id = stock_ids.get(item.sku)
            if stock_id is None or item.return_reason not in returned_to_stock:
                continue
            rows.append(
                {
                    "stock_id": stock_id,
                    "site_id": ret.site_id or settings.khaos.sites.selling,
                    "units": item.quantity,
                    "restocked_at": received.get(ret.associated_ref, effect.created_at),
                    "processed_at": processed_at,
                    "ref": ret.associated_ref,
                    ORDER_COLUMN: None,
                    ROUND_TRIP: False,
                    RESTOCKS: True,
                }
            )
    if acs_skus is not None:
        found = returns_not_posted_yet(settings, acs_skus, since, units, untaken, never_invoiced)
        rows.extend(r for r in found if returns_not_posted or r[ROUND_TRIP])
    return pd.DataFrame(rows, columns=RETURN_FACT_COLUMNS)


def _file_moment(entry: DropEntry) -> datetime:
    """When ACS wrote a drop file: the UTC stamp in its name, else its mtime."""
    stamp = entry.name.rsplit("_", 1)[-1].removesuffix(".csv")
    if len(stamp) == 14 and stamp.isdigit():
        return datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return entry.mtime


def _drop_returns_files(settings: Settings, since: datetime) -> list[Path]:
    """The drop's returns files written since ``since``, fetched (taken in or not)."""
    with open_drop(settings) as drop:
        return [
            drop.fetch(entry.name)
            for entry in drop.list(RETURNS_FILE_GLOB)
            if _file_moment(entry) >= since  # older ones settled long ago: never fetched
        ]


def returns_not_posted_yet(
    settings: Settings,
    acs_skus: pd.DataFrame,
    since: datetime,
    units: pd.DataFrame,
    untaken: list[Path],
    never_invoiced: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Sale units ACS reported back in stock whose customer return is not in the outbox yet:
    no Khaos moment, so ``timing_corrections`` keeps them out of the target until the
    returns path raises Level ("restocked, not processed"). Without this, a snapshot pushed
    before the returns flow posts the return adds the unit as VARIANCE (or holds it for
    finance), and the return then adds it a second time.

    Read from the returns flow's ``units`` (taken in; those covered by a posting are the
    outbox's) and from the ``untaken`` returns files still waiting in the ACS drop (the
    stock and returns files arrive together and their runs race). Hire SKUs are left out
    (hire units move through the snapshot, never a customer return), and so are units whose
    grade the policy writes off; a unit with an unknown grade is kept out of Level until
    someone decides. A unit of a ``never_invoiced`` order is a round trip: kept whatever
    its grade and age, for ``settle_round_trips`` (``restocks`` says which).
    """
    by_sku = acs_skus.drop_duplicates("sku").set_index("sku")
    policy = settings.grade_policy
    seen: set[tuple[str, str]] = set()
    rows: list[dict[str, Any]] = []

    def add(
        ref: str, unit: str, sku: str, grade: str, action: str, received: Any, order: str
    ) -> None:
        if (ref, unit) in seen:
            return
        seen.add((ref, unit))
        if sku not in by_sku.index or bool(by_sku.at[sku, "is_hire"]):
            return
        rule = policy.rule_for(grade or "", action or "")
        restocks = rule is None or policy.restocks(rule)
        round_trip = order in never_invoiced
        if not restocks and not round_trip:
            return
        received_at = pd.Timestamp(received)
        if pd.isna(received_at):
            return
        received_at = received_at.tz_localize(UTC) if received_at.tzinfo is None else received_at
        if received_at < pd.Timestamp(since) and not round_trip:
            return
        rows.append(
            {
                "stock_id": int(by_sku.at[sku, "stock_id"]),
                "site_id": settings.khaos.sites.selling,
                "units": 1,
                "restocked_at": received_at,
                "processed_at": None,
                "ref": ref,
                ORDER_COLUMN: order,
                ROUND_TRIP: round_trip,
                RESTOCKS: restocks,
            }
        )

    posted = units["associated_ref"].notna()
    # Posted units are the outbox's (above); a unit is counted from one source only.
    seen.update(zip(units.loc[posted, "return_ref"], units.loc[posted, "unique_sku"], strict=True))
    for row in units.loc[~posted].itertuples(index=False):
        add(
            str(row.return_ref),
            str(row.unique_sku),
            str(row.sku),
            str(row.grade),
            str(row.action_taken),
            row.received_at,
            row.order_number if isinstance(row.order_number, str) else "",
        )
    for path in untaken:
        try:
            read = read_returns(path, AcsTimeRules.from_settings(settings))
        except FileLayoutError:
            continue  # a broken file: the returns flow quarantines it and raises it
        for r in read.returns.to_pylist():
            add(
                r["return_ref"],
                r["unique_sku"],
                r["sku"],
                r["grade"] or "",
                r["action_taken"] or "",
                r["received_at"],
                r["order_number"] or "",
            )
    return rows


def adjustment_facts(store: Store, since: datetime) -> pd.DataFrame:
    """Level changes booked by other paths (write-offs, ex-hire legs): ``adjust_by`` lines of
    adjustment effects that are not the push's own (``SNAP-`` refs)."""
    _, happened = _returns_moments(store)
    rows = []
    for effect in _since(store.outbox.find(kind=EffectKind.KHAOS_STOCK_ADJUSTMENT), since):
        group = StockAdjustmentGroup.model_validate(effect.payload)
        if group.group_ref.startswith(PUSH_REF_PREFIX):
            continue
        applied_at = effect.updated_at if effect.state == "done" else None
        for line in group.lines:
            if line.adjust_by is None:
                continue
            rows.append(
                {
                    "stock_id": line.stock_id,
                    "site_id": group.site_id,
                    "change": line.adjust_by,
                    "happened_at": happened.get(group.group_ref, effect.created_at),
                    "applied_at": applied_at,
                    "ref": group.group_ref,
                }
            )
    return pd.DataFrame(rows, columns=[*ADJUSTMENT_COLUMNS, "ref"])


def stock_ids_by_code(sku_map: pd.DataFrame) -> dict[str, int]:
    """Khaos stock code -> StockID (customer returns name items by their code)."""
    return dict(zip(sku_map["stock_code"], sku_map["stock_id"].astype(int), strict=True))


def ex_hired_held_units(store: Store, settings: Settings, units_path: str) -> pd.DataFrame:
    """Units the integration moved to resale that ACS still holds under their hire SKU,
    to be counted on the resale StockID (``domain/ex_hire.py``)."""
    moves = ReturnsRepository(store.db).moves()
    legs = moves[(moves["kind"] == StockMoveKind.EX_HIRE.value) & (moves["adjust_by"] > 0)]
    if legs.empty:
        return ex_hired_units_held_under_hire_sku(pd.DataFrame(), legs, settings.status_policy)
    snapshot_units = pd.read_parquet(
        units_path,
        columns=["unique_sku", "status"],
        filters=[("unique_sku", "in", sorted(set(legs["unique_sku"])))],
    )
    return ex_hired_units_held_under_hire_sku(
        snapshot_units,
        legs.astype({"stock_id": "int64", "site_id": "int64"}),
        settings.status_policy,
    )
