"""A SKU's journey: identity, pushes, mapping exceptions, snapshot units, adjustments."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster.store import Store
from acs_khaos_dagster.store.schema import Effect
from acs_khaos_dagster.store.stock import StockSnapshots
from acs_khaos_dagster.store.tables.products import SkuIdentity
from acs_khaos_dagster.trace.model import Section, Trace, _when
from acs_khaos_dagster.trace.shared import _effects, _effects_where, _tail


def trace_sku(store: Store, ref: str) -> Trace:
    """Identity (StockID ↔ ACS SKU), pushes, mapping exceptions, the newest snapshot's
    units per status and the stock adjustments of one SKU (by StockID, ACS SKU or the
    stock code it was registered with)."""
    with store.db.transaction() as s:
        identity = s.scalars(
            select(SkuIdentity).where(
                (SkuIdentity.acs_sku == ref)
                | (SkuIdentity.first_stock_code == ref)
                | (SkuIdentity.stock_id == (int(ref) if ref.isdigit() else -1))
            )
        ).first()
    sections: list[Section] = []
    columns = ("StockID", "ACS SKU", "first stock code", "registered", "last pushed")
    if identity is None:
        sections.append(
            Section("Identity", columns, note="not registered at ACS by the integration")
        )
        stock_id, sku = (int(ref) if ref.isdigit() else None), ref
    else:
        stock_id, sku = identity.stock_id, identity.acs_sku
        row = (
            str(identity.stock_id),
            identity.acs_sku,
            identity.first_stock_code,
            _when(identity.registered_at),
            _when(identity.last_pushed_at),
        )
        sections.append(Section("Identity", columns, [row]))
    names = {sku, ref} | ({str(stock_id)} if stock_id is not None else set())
    pushes = _effects_where(
        store, lambda e: e.kind == EffectKind.ACS_PRODUCT and e.business_key in names
    )
    sections.append(_effects(store, pushes, "Pushes to ACS"))
    sections.append(_snapshot_units(store, sku))

    def adjusts(effect: Effect) -> bool:
        lines = (effect.payload or {}).get("lines", [])
        return effect.kind == EffectKind.KHAOS_STOCK_ADJUSTMENT and any(
            line.get("stock_id") == stock_id for line in lines
        )

    adjustments = _effects_where(store, adjusts) if stock_id is not None else []
    rows = []
    for effect in adjustments:
        payload = effect.payload or {}
        for line in payload.get("lines", []):
            if line.get("stock_id") == stock_id:
                change = (
                    f"to {line['adjust_to']}"
                    if line.get("adjust_to") is not None
                    else f"by {line.get('adjust_by')}"
                )
                rows.append(
                    (
                        payload.get("group_ref", ""),
                        str(payload.get("site_id", "")),
                        change,
                        line.get("reason_code", ""),
                        effect.state,
                        _when(effect.updated_at),
                    )
                )
    sections.append(
        Section(
            "Stock adjustments in Khaos",
            ("group", "site", "adjust", "reason", "state", "updated"),
            rows,
            "" if rows else "no stock adjustment",
        )
    )
    refs = sorted(names | {f"code:{ref}"})
    sections.extend(_tail(store, refs, [*pushes, *adjustments]))
    return Trace("sku", ref, identity is not None or bool(pushes), sections)


def _snapshot_units(store: Store, sku: str) -> Section:
    columns = ("status", "bucket", "units")
    newest = StockSnapshots(store.db).newest()
    title = "Newest ACS snapshot: units per status"
    if newest is None:
        return Section(title, columns, note="no ACS stock snapshot taken in yet")
    try:
        counts = pd.read_parquet(newest.counts_path)
    except (OSError, ValueError) as exc:
        return Section(title, columns, note=f"snapshot {newest.snapshot_id} unreadable: {exc}")
    mine = counts.loc[counts["sku"].astype(str) == sku]
    rows = [(str(r.status), str(r.bucket), str(int(r.units))) for r in mine.itertuples()]
    note = f"snapshot {newest.snapshot_id} at {_when(newest.snapshot_at)} ({newest.state})"
    return Section(title, columns, rows, note if rows else note + ": no unit of this SKU")
