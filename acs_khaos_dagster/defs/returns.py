"""Returns group: ACS graded returns to Khaos customer returns, credits and write-offs.

One mover per event (``shared/ARCHITECTURE.md``): a restocked sale return moves Khaos's
Level through its customer return's "return to stock" reason; a BER or disposed sale
return is posted with a write-off reason and never adjusted; only units still in Level
(hire units) are written off, or moved to resale, by adjustment. Every write to Khaos
goes through the outbox, recorded in the same transaction as the rows that planned it.
"""

import hashlib
import json
import warnings
from collections import Counter
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSelection,
    BetaWarning,
    Definitions,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)
from dagster_pandera import pandera_schema_to_dagster_type
from pandera.typing import Series

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.drop import AcsDrop, DropEntry, open_drop
from acs_khaos_dagster.connectors.acs.files import FileLayoutError, read_returns
from acs_khaos_dagster.connectors.acs.times import AcsTimeRules
from acs_khaos_dagster.connectors.errors import NotFoundError
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.defs.automation import SENSOR_STATUS
from acs_khaos_dagster.defs.brand import brand_tags
from acs_khaos_dagster.defs.common import (
    RUN_IN_PROGRESS,
    dispatch,
    dispatch_metadata,
    effect_states,
    markdown_table,
    sync_exceptions,
)
from acs_khaos_dagster.defs.resources import (
    AcsApiResource,
    KhaosApiResource,
    SettingsResource,
    StoreResource,
)
from acs_khaos_dagster.domain.ex_hire import ex_hire_unit_value
from acs_khaos_dagster.domain.hire import HireStage, hire_unit_lifecycle
from acs_khaos_dagster.domain.models import SalesOrder, StockItem
from acs_khaos_dagster.domain.returns import (
    GRADES,
    MATCHED_COLUMNS,
    StockMoveKind,
    apply_grade_policy,
    match_returns,
    plan_return_postings,
    plan_write_offs,
    refund_due,
    repair_costs,
)
from acs_khaos_dagster.effects import TARGET_OF, EffectKind
from acs_khaos_dagster.flows.hire import hire_write_off_value
from acs_khaos_dagster.store.ledger import UNFINISHED, FileLedger, file_sha256
from acs_khaos_dagster.store.products import SkuIdentities
from acs_khaos_dagster.store.returns import ReturnsRepository

RETURNS_FILE_GLOB = "returns_*.csv"
LEDGER_KIND = "returns"
# Where the stock flow keeps its unit snapshots as Parquet, under ``data_dir``
# (``stock/units/{snapshot_id}.parquet``; ``snapshots`` is the older layout). Every
# ``*.parquet`` below them with unit columns is read.
SNAPSHOT_FOLDERS = ("snapshots", "stock/units")
SNAPSHOT_COLUMNS = ("unique_sku", "sku", "status", "last_event_at", "snapshot_at")
# Problems raised by this group carry refs starting with these; other flows' exceptions of
# the same type are never closed here.
RETURN_REF_PREFIX = "return:"
REFUND_REF_PREFIX = "refund:"
PROBLEM_TYPES = ("return_unmatched", "unknown_grade")
# Mapping gaps of write-offs: a missing resale StockID, an unknown stock item.
MOVE_PROBLEM_TYPES = ("resale_unmapped", "stock_item_unknown")
CREDIT_MODES = ["auto", "review", "none"]


# --- pandera models of this group's tables ---------------------------------------------


class ReturnedUnitsSchema(pa.DataFrameModel):
    """Every returned unit ACS reported, keyed by (return ref, unique SKU)."""

    return_ref: Series[str] = pa.Field(str_length={"min_value": 1})
    unique_sku: Series[str] = pa.Field(str_length={"min_value": 1})
    batch_id: Series[int]
    sku: Series[str]
    grade: Series[str]
    action_taken: Series[str]
    repair_cost: Series[float] = pa.Field(ge=0)
    matched: Series[bool]
    posted: Series[bool]

    class Config:
        strict = False
        coerce = True
        unique = ["return_ref", "unique_sku"]  # noqa: RUF012 (pandera reads it as is)


class ReturnPostingsSchema(pa.DataFrameModel):
    """Khaos customer return parts, one outbox effect each."""

    associated_ref: Series[str] = pa.Field(unique=True)
    return_ref: Series[str]
    part: Series[int] = pa.Field(ge=1)
    credit_mode: Series[str] = pa.Field(isin=CREDIT_MODES)
    is_hire: Series[bool]
    units: Series[int] = pa.Field(ge=1)
    credit_value: Series[float] = pa.Field(ge=0)
    state: Series[str]

    class Config:
        strict = False
        coerce = True


class ReturnStockMovesSchema(pa.DataFrameModel):
    """Adjustment groups for returned units still in Level (write-off, ex-hire)."""

    group_ref: Series[str] = pa.Field(unique=True)
    kind: Series[str] = pa.Field(isin=[k.value for k in StockMoveKind])
    unique_sku: Series[str]
    stock_id: Series[int]
    adjust_by: Series[int] = pa.Field(isin=[-1, 1])
    value: Series[float] = pa.Field(ge=0)
    state: Series[str]

    class Config:
        strict = False
        coerce = True


class RefundClockSchema(pa.DataFrameModel):
    """Sale return parts and their 14-day refund deadline."""

    associated_ref: Series[str] = pa.Field(unique=True)
    credit_status: Series[str]
    days_left: Series[float]
    due: Series[bool]
    breached: Series[bool]

    class Config:
        strict = False
        coerce = True


class HireLifecycleSchema(pa.DataFrameModel):
    """Per hire unit: where it is now and since when."""

    unique_sku: Series[str] = pa.Field(unique=True)
    stage: Series[str] = pa.Field(isin=[s.value for s in HireStage])
    times_out: Series[int] = pa.Field(ge=0)

    class Config:
        strict = False
        coerce = True


warnings.filterwarnings("ignore", category=BetaWarning, module=__name__)
ReturnedUnitsType = pandera_schema_to_dagster_type(ReturnedUnitsSchema)
ReturnPostingsType = pandera_schema_to_dagster_type(ReturnPostingsSchema)
ReturnStockMovesType = pandera_schema_to_dagster_type(ReturnStockMovesSchema)
RefundClockType = pandera_schema_to_dagster_type(RefundClockSchema)
HireLifecycleType = pandera_schema_to_dagster_type(HireLifecycleSchema)


# --- helpers ---------------------------------------------------------------------------


def _returns_entries(drop: AcsDrop) -> list[DropEntry]:
    """``returns_*.csv`` in the ACS drop (local folder or SFTP; never a link or a path
    outside it), oldest first: names carry the timestamp."""
    return sorted(drop.list(RETURNS_FILE_GLOB), key=lambda entry: entry.name)


def _money(value: Any) -> Decimal:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return Decimal("0")
    return Decimal(str(value))


def _owned_by_returns(ref: str) -> bool:
    return ref.startswith(RETURN_REF_PREFIX)


def _domain_units(units: pd.DataFrame) -> pd.DataFrame:
    """Stored units as the domain's returns table (batch id as text, money as Decimal)."""
    frame = units.copy()
    frame["batch_id"] = frame["batch_id"].astype(str)
    frame["repair_cost"] = frame["repair_cost"].map(_money)
    frame["defect_codes"] = frame["defect_codes"].map(
        lambda s: [c for c in str(s or "").split("|") if c]
    )
    return frame


def _stored_matches(units: pd.DataFrame) -> pd.DataFrame:
    """Units already linked to their order line, in ``match_returns``' shape."""
    matched = _domain_units(units[units["order_item_id"].notna()])
    if matched.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
    matched["order_item_id"] = matched["order_item_id"].astype(int)
    matched["stock_id"] = matched["stock_id"].astype(int)
    matched["unit_net"] = matched["unit_net"].map(_money)
    matched["is_hire"] = matched["is_hire"].astype(bool)
    return matched[list(MATCHED_COLUMNS)].reset_index(drop=True)


def _orders_by_code(client: KhaosClient, conf: Settings, codes: set[str]) -> dict[str, SalesOrder]:
    """Khaos orders named by code (ACS order number = Khaos ``order_code``), with invoices.

    Khaos cannot be asked by order code: list orders at every live stage to learn their
    ids, then read those ids' status (invoices with their despatch ExternalRef)."""
    if not codes:
        return {}
    stages = conf.khaos.stages
    live = {stages.released, stages.acknowledged, stages.issue, stages.awaiting_stock}
    listed = client.export_orders(sorted(live | set(stages.issued)), None)
    ids = sorted({o.order_id for o in listed if o.order_code in codes})
    if not ids:
        return {}
    return {o.order_code: o for o in client.export_order_status(ids, include_tracking=False)}


def _unit_table(units: pd.DataFrame) -> pd.DataFrame:
    out = units.copy()
    out["repair_cost"] = out["repair_cost"].map(lambda v: float(_money(v)))
    out["matched"] = out["order_item_id"].notna()
    out["posted"] = out["associated_ref"].notna()
    return out.reset_index(drop=True)


# --- assets ----------------------------------------------------------------------------


@asset(
    group_name="returns",
    kinds={"acs", "csv", "pandas"},
    dagster_type=ReturnedUnitsType,
    description="Every returned unit ACS reported in returns_*.csv, keyed by (return_ref, "
    "unique_sku), with grade, action, reason, defects and repair cost. Each file is taken "
    "once (ledger); bad rows are quarantined in the store with their reasons.",
)
def acs_returns(
    context: AssetExecutionContext, settings: SettingsResource, store: StoreResource
) -> pd.DataFrame:
    conf = settings.load()
    taken = skipped = failed = new_units = quarantined = corrected = not_applied = 0
    problems: list[str] = []
    with store.connect() as db, open_drop(conf) as drop:
        repo = ReturnsRepository(db.db)
        # Before any correction is taken in: a unit settled by hand keeps its story.
        repo.settle_units_closed_by_hand()
        for entry in _returns_entries(drop):
            path = drop.fetch(entry.name)
            file_row, process = db.ledger.record_file(path, kind=LEDGER_KIND)
            if not process:
                skipped += 1
                continue
            try:
                read = read_returns(path, AcsTimeRules.from_settings(conf))
            except FileLayoutError as exc:
                db.ledger.mark_failed(file_row.id, str(exc))
                failed += 1
                problems.append(str(exc))
                continue
            units = read.returns.to_pandas()
            # The units, their quarantined rows and the file's closing land together.
            with db.transaction() as session:
                stored = repo.store_units(file_row.id, units, session)
                new_units += stored.new
                corrected += stored.corrected
                not_applied += stored.correction_not_applied
                db.ledger.add_quarantined_rows(file_row.id, read.quarantined, session)
                db.ledger.mark_processed(
                    file_row.id,
                    rows_accepted=len(units),
                    rows_quarantined=len(read.quarantined),
                    session=session,
                )
            taken += 1
            quarantined += len(read.quarantined)
            problems.extend(f"{path.name}: {p}" for p in read.problems)
        table = _unit_table(repo.units())
    grades = Counter(table["grade"])
    context.add_output_metadata(
        {
            "files_processed": taken,
            "files_skipped": skipped,
            "files_failed": failed,
            "units_new": new_units,
            "units_corrected": corrected,
            "corrections_not_applied": not_applied,
            "rows_quarantined": quarantined,
            "returned_units": len(table),
            **{f"units_grade_{g}": int(grades.get(g, 0)) for g in GRADES},
            "units_grade_unknown": int(sum(n for g, n in grades.items() if g not in GRADES)),
            "unexpected_returns": int(table["order_number"].isna().sum()),
            "repair_cost_total": round(float(table["repair_cost"].sum()), 2),
            "file_problems": markdown_table(pd.DataFrame({"problem": problems})),
        }
    )
    return table


@asset(
    group_name="returns",
    kinds={"khaos", "pandas"},
    dagster_type=ReturnPostingsType,
    pool="khaos_api",
    deps=[acs_returns],
    description="Returned sale units matched to their Khaos order lines and posted as "
    "customer returns (ImportCustomerReturns) through the outbox: one part per return, "
    "arrival batch and credit mode, credited at the line's UnitNet. Unmatched units and "
    "unknown grades are exceptions, never guesses.",
)
def khaos_return_postings(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    policy = conf.grade_policy
    kind = EffectKind.KHAOS_CUSTOMER_RETURN
    with store.connect() as db, khaos.client() as client:
        repo = ReturnsRepository(db.db)
        identity = SkuIdentities(db.db).identity()
        repo.settle_units_closed_by_hand()
        every_unit = repo.units()
        # A unit settled by hand is never matched or credited here again (a second refund).
        units = every_unit[every_unit["settled_by_hand_at"].isna()]
        unmatched = units[units["order_item_id"].isna()]
        matched_before = {
            (r, u): (str(n), int(o))
            for r, u, n, o in units[units["order_item_id"].notna()][
                ["return_ref", "unique_sku", "order_number", "order_item_id"]
            ].itertuples(index=False)
        }
        problems: list[Any] = []
        newly = pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
        if not unmatched.empty:
            codes = set(unmatched["order_number"].dropna().astype(str))
            orders = _orders_by_code(client, conf, codes)
            newly, unmatched_problems = match_returns(
                _domain_units(unmatched), orders, identity, matched_before=matched_before
            )
            problems.extend(unmatched_problems)
        stored = _stored_matches(units)
        unposted = units[units["associated_ref"].isna()][["return_ref", "unique_sku"]]
        candidates = stored.merge(unposted, on=["return_ref", "unique_sku"])
        frames = [f for f in (candidates, newly) if not f.empty]
        everything = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame({c: pd.Series(dtype=object) for c in MATCHED_COLUMNS})
        )
        graded, grade_problems = apply_grade_policy(everything, policy)
        problems.extend(grade_problems)
        postings = plan_return_postings(
            graded,
            policy,
            already_posted_units=repo.posted_units(),
            part_numbers_used=repo.part_numbers_used(),
        )
        # Matches, parts and their effects land together or not at all.
        with db.transaction() as session:
            # A person may have closed a unit's exception while this run talked to Khaos:
            # claimed again here, in the transaction that would post it, it is never posted.
            repo.settle_units_closed_by_hand(session)
            settled = repo.settled_units(session)
            postings = [
                p for p in postings if not any((p.return_ref, u) in settled for u in p.unique_skus)
            ]
            keys = list(zip(newly["return_ref"], newly["unique_sku"], strict=True))
            newly = newly[[(str(r), str(u)) not in settled for r, u in keys]]
            repo.record_matches(newly, session)
            repo.record_postings(postings, session)
            for posting in postings:
                db.outbox.enqueue(
                    kind,
                    TARGET_OF[kind],
                    posting.return_ref,
                    posting.idempotency_key,
                    posting.customer_return.model_dump(mode="json"),
                    session=session,
                )
        report = dispatch(db, conf, [kind], khaos=client)
        open_counts = sync_exceptions(db, problems, PROBLEM_TYPES, owns=_owned_by_returns)
        table = repo.postings()
        table["state"] = effect_states(db, table["idempotency_key"], missing="missing")
    table["credit_value"] = table["credit_value"].map(lambda v: float(_money(v)))
    table["goods_value"] = table["goods_value"].map(lambda v: float(_money(v)))
    sale = table[~table["is_hire"].astype(bool)]
    # Not yet read back from Khaos: an auto credit is raised on import, else the mode says.
    assumed = sale["credit_mode"].map({"auto": "raised"}).fillna(sale["credit_mode"])
    status = sale["credit_status"].where(sale["credit_status"].notna(), assumed)
    raised, review = sale[status == "raised"], sale[status == "review"]
    context.add_output_metadata(
        {
            "parts_queued": len(postings),
            "units_posted": sum(len(p.unique_skus) for p in postings),
            "units_matched": len(newly),
            "units_unmatched": int(open_counts.get("return_unmatched", 0)),
            "units_unknown_grade": int(open_counts.get("unknown_grade", 0)),
            "return_parts": len(table),
            "credits_raised": len(raised),
            "credits_raised_value": round(float(raised["credit_value"].sum()), 2),
            "credits_pending_review": len(review),
            "credits_pending_review_value": round(float(review["credit_value"].sum()), 2),
            "sale_units_written_off": int(sale["written_off_units"].sum()),
            **dispatch_metadata(report),
            "parts": markdown_table(
                table[["associated_ref", "credit_mode", "units", "credit_value", "state"]]
            ),
        }
    )
    return table


def _stock_items(client: KhaosClient, codes: set[str]) -> dict[int, StockItem]:
    if not codes:
        return {}
    requestable, _ = client.requestable_codes(sorted(codes))
    return {item.stock_id: item for item in client.export_stock(requestable)}


@asset(
    group_name="returns",
    kinds={"khaos", "pandas"},
    dagster_type=ReturnStockMovesType,
    pool="khaos_api",
    deps=[khaos_return_postings],
    description="Write-offs (WRITEOFF, at CostPrice) of BER or disposed units still in "
    "Khaos's Level (hire units) and ex-hire to resale (paired EXHIRE adjustments), through "
    "the outbox. A sale return is never adjusted: its customer return is the only mover. "
    "ACS repair costs are reported for finance, never added to stock value.",
)
def khaos_write_offs(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    policy = conf.grade_policy
    kind = EffectKind.KHAOS_STOCK_ADJUSTMENT
    with store.connect() as db, khaos.client() as client:
        repo = ReturnsRepository(db.db)
        units = repo.units()
        graded, _ = apply_grade_policy(_stored_matches(units), policy)
        # Only hire units are still in Level; a sale unit left it when invoiced.
        in_level = graded[graded["is_hire"].astype(bool)] if not graded.empty else graded
        items = _stock_items(client, set(in_level["stock_code"].dropna().astype(str)))
        identity = {sku: sid for sid, sku in SkuIdentities(db.db).identity().items()}
        moves, move_problems = plan_write_offs(
            graded,
            items,
            identity,
            conf.khaos.sites,
            policy,
            conf.returns.resale_stock_ids,
            already_planned=repo.planned_group_refs(),
            reasons=conf.khaos.reasons,
            ex_hire_value=partial(
                ex_hire_unit_value,
                share_of_cost=conf.returns.ex_hire_value_share,
                unit_values=conf.returns.ex_hire_unit_values,
            ),
            hire_write_off_value=hire_write_off_value(conf, db),
        )
        with db.transaction() as session:
            repo.record_moves(moves, session)
            for move in moves:
                for group in move.groups:
                    db.outbox.enqueue(
                        kind,
                        TARGET_OF[kind],
                        move.unique_sku,
                        group.group_ref,
                        group.model_dump(mode="json"),
                        session=session,
                    )
        report = dispatch(db, conf, [kind], khaos=client)
        # Unknown grades belong to khaos_return_postings; the rest are mapping gaps.
        gaps = [p for p in move_problems if p.exception_type in MOVE_PROBLEM_TYPES]
        open_counts = sync_exceptions(db, gaps, MOVE_PROBLEM_TYPES, owns=_owned_by_returns)
        table = repo.moves()
        table["state"] = effect_states(db, table["group_ref"], missing="missing")
        postings = repo.postings()
    table["value"] = table["value"].map(lambda v: float(_money(v)))
    write_offs = table[table["kind"] == StockMoveKind.WRITE_OFF.value]
    ex_hire_out = table[(table["kind"] == StockMoveKind.EX_HIRE.value) & (table["adjust_by"] < 0)]
    sale_written_off = int(postings[~postings["is_hire"].astype(bool)]["written_off_units"].sum())
    costs = repair_costs(_domain_units(units), by="month")
    context.add_output_metadata(
        {
            "moves_queued": len(moves),
            "units_written_off": len(write_offs) + sale_written_off,
            "units_written_off_by_adjustment": len(write_offs),
            "sale_units_written_off": sale_written_off,
            "write_off_value": round(float(write_offs["value"].sum()), 2),
            "ex_hired_to_resale": len(ex_hire_out),
            "ex_hire_value": round(float(ex_hire_out["value"].sum()), 2),
            "mapping_gaps": int(sum(open_counts.get(t, 0) for t in MOVE_PROBLEM_TYPES)),
            "repair_cost_total": round(float(sum(costs["repair_cost"], Decimal("0"))), 2),
            "repair_costs_by_month": markdown_table(costs),
            **dispatch_metadata(report),
            "moves": markdown_table(table[["group_ref", "kind", "value", "state"]]),
        }
    )
    return table


def _read_credit_status(client: KhaosClient, refs: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for ref in refs:
        try:
            found = client.export_customer_returns(associated_ref=ref)
        except NotFoundError:
            continue
        if found:
            statuses[ref] = found[0].credit_status
    return statuses


@asset(
    group_name="returns",
    kinds={"khaos", "pandas"},
    dagster_type=RefundClockType,
    pool="khaos_api",
    deps=[khaos_return_postings],
    description="The 14-day refund clock of each sale return part, with its credit status "
    "read back from Khaos; a refund_due exception (owner finance) opens before the deadline "
    "and closes itself once the credit is raised.",
)
def return_refund_clock(
    context: AssetExecutionContext,
    settings: SettingsResource,
    khaos: KhaosApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    with store.connect() as db:
        repo = ReturnsRepository(db.db)
        postings = repo.postings()
        sale = postings[~postings["is_hire"].astype(bool)].copy()
        pending = sale[sale["credit_status"] != "raised"]
        with khaos.client() as client:
            fresh = _read_credit_status(client, list(pending["associated_ref"]))
        now = integration_now(conf)
        repo.set_credit_status(fresh, now)
        sale["credit_status"] = [
            fresh.get(ref, known or "none")
            for ref, known in zip(sale["associated_ref"], sale["credit_status"], strict=True)
        ]
        sale["credit_value"] = sale["goods_value"].map(_money)
        due = refund_due(
            sale,
            now,
            days=conf.returns.refund_days,
            warn_days=conf.returns.refund_warn_days,
            time_zone=conf.time_zone,
        )
        sync_exceptions(db, due, ["refund_due"], owns=lambda ref: ref.startswith(REFUND_REF_PREFIX))
    warned = {w.associated_ref: w for w in due}
    rows = []
    for row in sale.to_dict("records"):
        received = row["received_at"]
        warning = warned.get(row["associated_ref"])
        deadline = (
            warning.deadline
            if warning
            else _deadline(received, conf.returns.refund_days, conf.time_zone)
        )
        rows.append(
            {
                "associated_ref": row["associated_ref"],
                "return_ref": row["return_ref"],
                "received_at": received,
                "deadline": deadline,
                "credit_status": row["credit_status"],
                "credit_value": float(row["credit_value"]),
                "days_left": round((deadline - now).total_seconds() / 86400, 2)
                if deadline
                else 0.0,
                "due": warning is not None,
                "breached": bool(warning and warning.breached),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "associated_ref",
            "return_ref",
            "received_at",
            "deadline",
            "credit_status",
            "credit_value",
            "days_left",
            "due",
            "breached",
        ],
    )
    context.add_output_metadata(
        {
            "sale_return_parts": len(table),
            "credits_raised": int((table["credit_status"] == "raised").sum()),
            "credits_pending_review": int((table["credit_status"] == "review").sum()),
            "refunds_due": int(table["due"].sum()),
            "refunds_breached": int(table["breached"].sum()),
            "due": markdown_table(table[table["due"]]),
        }
    )
    return table


def _deadline(received: Any, days: int, time_zone: str) -> datetime | None:
    from acs_khaos_dagster.domain.returns import refund_deadline

    if received is None or pd.isna(received):
        return None
    return refund_deadline(pd.Timestamp(received).to_pydatetime(), days, time_zone)


def _snapshots(folder: Path, hire_skus: set[str]) -> list[tuple[datetime, pd.DataFrame]]:
    """Each kept unit snapshot's time and its hire units (only those rows are read: a
    brand's snapshot is millions of units, a tenth of them for hire at most)."""
    found = []
    for path in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
        names = pq.read_schema(path).names
        if {"unique_sku", "sku", "status", "snapshot_at"} - set(names):
            continue
        taken = pc.max(pq.read_table(path, columns=["snapshot_at"])["snapshot_at"]).as_py()
        if taken is None:
            continue
        units = pq.read_table(
            path,
            columns=[c for c in SNAPSHOT_COLUMNS if c in names],
            filters=[("sku", "in", sorted(hire_skus))] if hire_skus else [("sku", "==", "")],
        )
        found.append((pd.Timestamp(taken).to_pydatetime(), units.to_pandas()))
    return found


@asset(
    name="hire_unit_lifecycle",
    group_name="returns",
    kinds={"acs", "pandas"},
    dagster_type=HireLifecycleType,
    pool="acs_api",
    deps=[khaos_write_offs],
    description="Per hire unit: where it is now (out, back, inspected, cleaned, ready, "
    "retired), since when, and its history, from the ACS unit snapshots kept by the stock "
    "flow and the hire returns ACS reported.",
)
def hire_unit_lifecycle_table(
    context: AssetExecutionContext,
    settings: SettingsResource,
    acs: AcsApiResource,
    store: StoreResource,
) -> pd.DataFrame:
    conf = settings.load()
    with acs.client() as client:
        hire_skus = {p.sku for p in client.iter_products() if p.is_hire}
    with store.connect() as db:
        repo = ReturnsRepository(db.db)
        units = repo.units()
        moves = repo.moves()
    hire_units = units[units["is_hire"].eq(True) | units["sku"].isin(hire_skus)]
    hire_skus |= set(hire_units["sku"])
    snapshots = [s for f in SNAPSHOT_FOLDERS for s in _snapshots(conf.data_dir / f, hire_skus)]
    events = [
        {
            "unique_sku": r.unique_sku,
            "sku": r.sku,
            "stage": HireStage.BACK.value,
            "at": r.received_at,
        }
        for r in hire_units.itertuples(index=False)
    ]
    events += [
        {
            "unique_sku": m.unique_sku,
            "sku": "",
            "stage": HireStage.RETIRED.value,
            "at": m.happened_at,
        }
        for m in moves.itertuples(index=False)
        if m.adjust_by < 0 and m.happened_at is not None
    ]
    lifecycle = hire_unit_lifecycle(
        snapshots,
        pd.DataFrame(events, columns=["unique_sku", "sku", "stage", "at"]),
        hire_skus=hire_skus,
        policy=conf.status_policy,
    )
    stages = Counter(lifecycle["stage"])
    context.add_output_metadata(
        {
            "snapshots_read": len(snapshots),
            "hire_units": len(lifecycle),
            **{f"hire_units_{s.value}": int(stages.get(s.value, 0)) for s in HireStage},
            "hire_returns": len(hire_units),
            "sample": markdown_table(lifecycle, 10),
        }
    )
    return lifecycle


# --- checks ----------------------------------------------------------------------------


@asset_check(
    asset=khaos_write_offs,
    blocking=True,
    description="One mover per event: no returned sale unit is ever adjusted (its customer "
    "return moves Level), and no unit is written off twice.",
)
def no_sale_return_adjusted(
    khaos_write_offs: pd.DataFrame, store: StoreResource
) -> AssetCheckResult:
    with store.connect() as db:
        units = ReturnsRepository(db.db).units()
    sale_units = set(units[units["is_hire"].eq(False)]["unique_sku"])
    adjusted = khaos_write_offs[khaos_write_offs["unique_sku"].isin(sale_units)]
    doubled = khaos_write_offs[
        khaos_write_offs.duplicated(["unique_sku", "kind", "adjust_by"], keep=False)
    ]
    bad = pd.concat([adjusted, doubled]).drop_duplicates("group_ref")
    return AssetCheckResult(
        passed=bad.empty,
        metadata={"bad_moves": len(bad), "sample": markdown_table(bad)},
    )


@asset_check(
    asset=return_refund_clock,
    description="No sale return is past its 14-day refund deadline without a credit.",
)
def no_refund_breached(return_refund_clock: pd.DataFrame) -> AssetCheckResult:
    breached = return_refund_clock[return_refund_clock["breached"]]
    return AssetCheckResult(
        passed=breached.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={"breached": len(breached), "sample": markdown_table(breached)},
    )


# --- job and sensor --------------------------------------------------------------------

returns_job = define_asset_job(
    "returns_flow",
    selection=AssetSelection.groups("returns"),
    description="Take new ACS returns files, post customer returns and write-offs to Khaos, "
    "run the refund clock and the hire lifecycle.",
)


UNFINISHED_TAG = "acs_returns_unfinished"
UNFINISHED_RETRIES = 3


def _fingerprint(entry: DropEntry) -> str:
    return f"{entry.name}|{entry.size}|{entry.mtime.isoformat()}"


@sensor(
    job=returns_job,
    default_status=SENSOR_STATUS,
    minimum_interval_seconds=60,
    description="Starts the returns flow when a returns_*.csv the store's file ledger has not "
    "taken in is in the ACS drop. The cursor only remembers what was seen.",
)
def acs_returns_file_sensor(
    context: SensorEvaluationContext, settings: SettingsResource, store: StoreResource
) -> RunRequest | SkipReason:
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    new: list[str] = []
    with open_drop(settings.load()) as drop, store.connect() as db:
        entries = {_fingerprint(entry): entry for entry in _returns_entries(drop)}
        for print_, entry in sorted(entries.items()):
            # An empty cursor (a new sensor, a reset instance) must not re-take files the
            # store already took in: the ledger, by content, decides.
            if print_ not in seen and not FileLedger(db.db).taken_in(
                file_sha256(drop.fetch(entry.name)), LEDGER_KIND
            ):
                new.append(print_)
        # A run that died while taking files in leaves them unfinished in the ledger, and no
        # new file may ever come to start another: those are retried (a few times).
        stuck = sorted(
            f.name for f in FileLedger(db.db).find(kind=LEDGER_KIND) if f.state in UNFINISHED
        )
    # Remember only files still there, so the cursor stays small.
    context.update_cursor(json.dumps(sorted(entries)))
    if new:
        run_key = hashlib.sha256("\n".join(new).encode()).hexdigest()[:24]
        return RunRequest(run_key=run_key, tags={"acs_returns_files": str(len(new))})
    if not stuck:
        return SkipReason(f"no {RETURNS_FILE_GLOB} in the ACS drop that is not taken in")
    return _retry_unfinished(context, stuck)


def _retry_unfinished(
    context: SensorEvaluationContext, stuck: list[str]
) -> RunRequest | SkipReason:
    key = hashlib.sha256("\n".join(stuck).encode()).hexdigest()[:24]
    runs = context.instance.get_runs(
        filters=RunsFilter(job_name=returns_job.name, tags={UNFINISHED_TAG: key, **brand_tags()})
    )
    if any(run.status in RUN_IN_PROGRESS for run in runs):
        return SkipReason(f"a run is taking in {', '.join(stuck)}")
    if len(runs) >= UNFINISHED_RETRIES:
        return SkipReason(
            f"{', '.join(stuck)} still unfinished after {len(runs)} runs: see their failures"
        )
    return RunRequest(run_key=f"unfinished:{key}:{len(runs)}", tags={UNFINISHED_TAG: key})


defs = Definitions(
    assets=[
        acs_returns,
        khaos_return_postings,
        khaos_write_offs,
        return_refund_clock,
        hire_unit_lifecycle_table,
    ],
    asset_checks=[no_sale_return_adjusted, no_refund_breached],
    sensors=[acs_returns_file_sensor],
    jobs=[returns_job],
)
