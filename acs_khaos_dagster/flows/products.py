"""Products flow: Khaos's SKU master read incrementally, new and changed SKUs sent to ACS.

- ``sync_sku_master`` reads the stock items Khaos changed since the stored watermark
  (less ``WATERMARK_OVERLAP``), keeps ``invalid_sku_code`` exceptions for codes Khaos lists
  but cannot export, merges the changes into the master Parquet and moves the watermark.
- ``push_skus`` plans the SKUs to send (``domain.sku_mapping.products_to_push``), enqueues
  them with the identities they register in one transaction, dispatches and says what
  became of each.

No Dagster here: ``defs/products.py`` wires these in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.catalogue import SKU_MASTER_COLUMNS, sku_master_frame
from acs_khaos_dagster.domain.sku_mapping import ExceptionSpec, PushPlan, products_to_push
from acs_khaos_dagster.effects import TARGET_OF, EffectKind, versions_of
from acs_khaos_dagster.flows.common import dispatch, sync_exceptions, write_parquet_atomically
from acs_khaos_dagster.flows.figures import Figures, dispatch_figures, table
from acs_khaos_dagster.store import DispatchReport, Store
from acs_khaos_dagster.store.products import SkuIdentities

# GetStockList needs a "changed since" date; this one predates any Khaos install.
BEGINNING_OF_TIME = datetime(2000, 1, 1, tzinfo=UTC)
# Re-read a little before the last watermark: a change saved while we read is not missed.
WATERMARK_OVERLAP = timedelta(minutes=5)
WATERMARK_CURSOR = "khaos.stock_list.changed_since"
INVALID_CODE_TYPE = "invalid_sku_code"
PUSH_COLUMNS = ["stock_id", "acs_sku", "reason", "content_hash", "state"]


def is_code_ref(ref: str) -> bool:
    """Codes Khaos lists but cannot export have no StockID; they are keyed by code."""
    return ref.startswith("code:")


def sku_master_path(settings: Settings) -> Path:
    return settings.data_dir / "products" / "sku_master.parquet"


# --- the SKU master -------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuMasterSync:
    """One read of Khaos's SKU master: the full table (``SKU_MASTER_COLUMNS``) after merging."""

    frame: pd.DataFrame
    since: datetime  # the start of the window read (watermark less the overlap)
    fetched: int  # stock items Khaos returned as changed in the window
    refused: int  # codes Khaos listed but cannot export

    @property
    def style_parents(self) -> int:
        return int((~self.frame["stock_controlled"]).sum())

    @property
    def _children(self) -> pd.DataFrame:
        return self.frame[self.frame["stock_controlled"]]

    @property
    def hire_skus(self) -> int:
        return int(self._children["is_hire"].sum())

    @property
    def discontinued(self) -> int:
        return int(self._children["discontinued"].sum())

    @property
    def published_on_web(self) -> int:
        return int(self._children["publish_on_web"].sum())

    def figures(self) -> Figures:
        return {
            "changed_since": self.since.isoformat(),
            "stock_items_fetched": self.fetched,
            "stock_codes_refused": self.refused,
            "stock_items": len(self.frame),
            "style_parents": self.style_parents,
            "hire_skus": self.hire_skus,
            "discontinued": self.discontinued,
            "published_on_web": self.published_on_web,
            "sample": table(self.frame, 10),
        }


def merge_master(previous: pd.DataFrame | None, changed: pd.DataFrame) -> pd.DataFrame:
    """The full table keyed by StockID: changed rows replace their previous version."""
    if previous is None or previous.empty:
        return changed
    if changed.empty:
        return previous
    kept = previous[~previous["stock_id"].isin(changed["stock_id"])]
    merged = pd.concat([kept, changed], ignore_index=True)[SKU_MASTER_COLUMNS]
    merged = merged.astype(changed.dtypes.to_dict())
    return merged.sort_values("stock_id", kind="stable", ignore_index=True)


def refused_code_problems(refused: Mapping[str, str]) -> list[ExceptionSpec]:
    return [
        ExceptionSpec(
            type=INVALID_CODE_TYPE,
            entity_ref=f"code:{code}",
            message=f"Khaos stock code cannot be read: {reason}",
            details={"stock_code": code},
        )
        for code, reason in refused.items()
    ]


def sync_sku_master(
    db: Store,
    khaos: KhaosClient,
    settings: Settings,
    now: datetime,
    *,
    full_refresh: bool = False,
) -> SkuMasterSync:
    """Read what Khaos changed since the watermark (everything on ``full_refresh`` or with
    no master yet), merge it into the master Parquet and move the watermark to ``now``.

    ``now`` is taken before reading, so anything saved while we read is inside the next
    window."""
    path = sku_master_path(settings)
    previous = None if full_refresh or not path.exists() else pd.read_parquet(path)
    watermark = db.cursors.get(WATERMARK_CURSOR)
    since = (
        BEGINNING_OF_TIME
        if previous is None or not watermark
        else datetime.fromisoformat(watermark) - WATERMARK_OVERLAP
    )
    codes, refused = khaos.requestable_codes(khaos.get_stock_list(since))
    changed = sku_master_frame(khaos.export_stock(codes))
    unreadable = dict(refused)
    if since != BEGINNING_OF_TIME and db.exceptions.list(type=INVALID_CODE_TYPE):
        # An unreadable code Khaos has not changed is outside the window: list every code
        # once more, so its exception stays open while Khaos still holds it and closes once
        # the code is gone (renamed or deleted). Only while some are open: a code list.
        _, still = khaos.requestable_codes(khaos.get_stock_list(BEGINNING_OF_TIME))
        unreadable = {**still, **refused}
    sync_exceptions(db, refused_code_problems(unreadable), [INVALID_CODE_TYPE], owns=is_code_ref)
    master = merge_master(previous, changed)
    write_parquet_atomically(master, path)
    with db.transaction() as session:
        db.cursors.set(WATERMARK_CURSOR, now.isoformat(), session)
    return SkuMasterSync(master, since=since, fetched=len(changed), refused=len(refused))


# --- the push to ACS ------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuPushResult:
    """One push pass: a row per SKU queued (``PUSH_COLUMNS``) with its outbox state."""

    frame: pd.DataFrame
    refused_invalid_code: int
    report: DispatchReport

    @property
    def queued(self) -> int:
        return len(self.frame)

    @property
    def new(self) -> int:
        return int((self.frame["reason"] == "new").sum())

    @property
    def changed(self) -> int:
        return int((self.frame["reason"] == "changed").sum())

    def figures(self) -> Figures:
        return {
            "queued": self.queued,
            "new": self.new,
            "changed": self.changed,
            "refused_invalid_code": self.refused_invalid_code,
            **dispatch_figures(self.report),
        }


def enqueue_pushes(db: Store, plan: PushPlan, stock_codes: Mapping[int, str]) -> None:
    """The pushes, the identities they register and their hashes land together or not at all."""
    kind = EffectKind.ACS_PRODUCT
    identities = SkuIdentities(db.db)
    with db.transaction() as session:
        for push in plan.pushes:
            payload = push.product.model_dump(mode="json", exclude={"status"})
            db.outbox.enqueue(
                kind,
                TARGET_OF[kind],
                push.product.sku,
                push.idempotency_key,
                payload,
                session=session,
                supersede_key=versions_of(kind, push.product.sku),
            )
        identities.record(
            plan.identity_updates,
            stock_codes,
            {push.stock_id: push.content_hash for push in plan.pushes},
            session,
        )


def push_skus(
    db: Store,
    acs: AcsClient,
    settings: Settings,
    khaos_sku_master: pd.DataFrame,
    acs_product_registry: pd.DataFrame,
) -> SkuPushResult:
    """Send ACS the SKUs that are new or whose content changed since last pushed (never an
    invalid code), then dispatch them."""
    identities = SkuIdentities(db.db)
    plan = products_to_push(
        khaos_sku_master,
        acs_product_registry,
        identities.identity(),
        identities.last_pushed_hashes(),
    )
    codes = dict(zip(khaos_sku_master["stock_id"], khaos_sku_master["stock_code"], strict=True))
    enqueue_pushes(db, plan, codes)
    report = dispatch(db, settings, [EffectKind.ACS_PRODUCT], acs=acs)
    rows = [
        {
            "stock_id": push.stock_id,
            "acs_sku": push.product.sku,
            "reason": push.reason,
            "content_hash": push.content_hash,
            "state": db.outbox.by_key(push.idempotency_key).state,
        }
        for push in plan.pushes
    ]
    return SkuPushResult(
        pd.DataFrame(rows, columns=PUSH_COLUMNS),
        refused_invalid_code=len(plan.invalid),
        report=report,
    )
