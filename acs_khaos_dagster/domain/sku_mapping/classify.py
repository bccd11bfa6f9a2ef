"""Classifying every Khaos SKU against ACS's registry: ``classify_skus`` and its frames.

The registry as a frame (``acs_registry_frame``), the identity map applied to the Khaos
master, collisions between StockIDs, and the mapping's columns (``MAPPING_COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from acs_khaos_dagster.domain.models import AcsProduct
from acs_khaos_dagster.domain.sku_mapping.codes import PROBLEM_SEPARATOR, code_problems_series

REGISTRY_COLUMNS = ["sku", "barcode", "style", "colour", "size", "description", "is_hire", "status"]

COMPARED_FIELDS = ("barcode", "style", "colour", "size", "is_hire")
"""Fields whose difference makes an ``attribute_mismatch`` (the SKU is not ready)."""

PUSHED_FIELDS = ("barcode", "style", "colour", "size", "description", "is_hire")
"""Fields sent with the SKU; a difference in any of them makes the SKU worth a push."""

Classification = Literal[
    "matched",
    "missing_in_acs",
    "pending_in_acs",
    "inactive_in_acs",
    "attribute_mismatch",
    "unknown_to_khaos",
    "invalid_code",
    "renamed",
    "discontinued",
]
CLASSIFICATIONS: tuple[str, ...] = get_args(Classification)

MAPPING_COLUMNS = [
    "stock_id",  # Int64, null only for unknown_to_khaos
    "stock_code",  # Khaos's current code; "" for unknown_to_khaos
    "acs_sku",  # the SKU ACS knows (identity map, else the stock code)
    "classification",
    "ready_for_sale",
    "acs_status",  # active | inactive | pending | missing
    "renamed",
    "discontinued",
    "publish_on_web",
    "is_hire",  # Khaos's flag (ACS's for unknown_to_khaos)
    "cost_price",  # NaN for unknown_to_khaos
    "description",
    "barcode",
    "style",
    "colour",
    "size",
    "acs_barcode",  # ACS's values; "" (and NA for acs_is_hire) when missing at ACS
    "acs_style",
    "acs_colour",
    "acs_size",
    "acs_description",
    "acs_is_hire",
    "mismatch_fields",  # e.g. "barcode,size"; "" when none
    "mismatch_detail",  # e.g. "barcode: 501… (Khaos) ≠ 502… (ACS)"
    "differs_from_acs",  # missing at ACS, or any pushed field differs
    "code_problems",  # reasons joined by "; "; "" when valid
]

READY_COLUMNS = ["stock_id", "stock_code", "acs_sku", "is_hire", "cost_price"]

_TEXT_FIELDS = ("barcode", "style", "colour", "size", "description")


def acs_registry_frame(products: Iterable[AcsProduct]) -> pd.DataFrame:
    """ACS's registry as a table keyed by ``sku`` (the last listing of a SKU wins)."""
    rows = [
        {
            "sku": p.sku,
            "barcode": p.barcode,
            "style": p.style,
            "colour": p.colour,
            "size": p.size,
            "description": p.description,
            "is_hire": p.is_hire,
            "status": str(p.status),
        }
        for p in products
    ]
    frame = pd.DataFrame(rows, columns=REGISTRY_COLUMNS)
    frame["is_hire"] = frame["is_hire"].astype(bool)
    frame = frame.drop_duplicates("sku", keep="last")
    return frame.sort_values("sku", kind="stable").reset_index(drop=True)


IdentityInput = pd.DataFrame | Mapping[int, str] | None
RegistryInput = pd.DataFrame | Iterable[AcsProduct]


def _identity_dict(identity: IdentityInput) -> dict[int, str]:
    if identity is None:
        return {}
    if isinstance(identity, pd.DataFrame):
        return {
            int(s): str(k) for s, k in zip(identity["stock_id"], identity["acs_sku"], strict=True)
        }
    return {int(s): str(k) for s, k in identity.items()}


def _registry(registry: RegistryInput) -> pd.DataFrame:
    if isinstance(registry, pd.DataFrame):
        return registry.drop_duplicates("sku", keep="last")
    return acs_registry_frame(registry)


def _text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str)


def _khaos_skus(master: pd.DataFrame, identity: dict[int, str]) -> pd.DataFrame:
    """Stock-controlled items with their ACS SKU, rename flag and code problems."""
    skus = master.loc[master["stock_controlled"].astype(bool)].copy()
    skus["stock_id"] = skus["stock_id"].astype("int64")
    for name in (*_TEXT_FIELDS, "stock_code"):
        skus[name] = _text(skus[name])
    for name in ("is_hire", "discontinued", "publish_on_web"):
        skus[name] = skus[name].astype(bool)
    skus["cost_price"] = skus["cost_price"].astype(float)
    held = skus["stock_id"].map(pd.Series(identity, dtype=object))
    skus["registered"] = held.notna().to_numpy()
    skus["acs_sku"] = held.where(held.notna(), skus["stock_code"]).astype(str)
    skus["renamed"] = skus["registered"] & (skus["acs_sku"] != skus["stock_code"])
    skus["code_problems"] = code_problems_series(skus["acs_sku"])
    _add_collisions(skus, identity)
    return skus.sort_values("stock_id", kind="stable").reset_index(drop=True)


def _add_collisions(skus: pd.DataFrame, identity: dict[int, str]) -> None:
    """Mark as invalid every StockID that claims an ACS SKU another StockID owns or shares."""
    listed = set(skus["stock_id"].tolist())
    absent = {s: k for s, k in identity.items() if s not in listed}
    claims = pd.DataFrame(
        {
            "stock_id": np.concatenate(
                [skus["stock_id"].to_numpy(), np.fromiter(absent.keys(), dtype="int64")]
            ),
            "acs_sku": list(skus["acs_sku"]) + list(absent.values()),
            "registered": np.concatenate(
                [skus["registered"].to_numpy(dtype=bool), np.ones(len(absent), dtype=bool)]
            ),
        }
    )
    if claims.empty:
        return
    claims["key"] = claims["acs_sku"].astype(str).str.casefold()
    claimants = claims["key"].map(claims["key"].value_counts())
    holders = claims["key"].map(claims.loc[claims["registered"], "key"].value_counts()).fillna(0)
    loses = (claimants > 1) & (~claims["registered"] | (holders > 1))
    if not loses.any():
        return
    by_key = claims.groupby("key")["stock_id"].apply(lambda ids: sorted(ids.tolist()))
    position = pd.Series(np.arange(len(skus)), index=skus["stock_id"].to_numpy())
    for row in claims.loc[loses & claims["stock_id"].isin(listed)].itertuples():
        others = [s for s in by_key[row.key] if s != row.stock_id]
        owner = [s for s in others if identity.get(s, "").casefold() == row.key]
        if owner:
            reason = f"ACS SKU {row.acs_sku!r} is registered to StockID {owner[0]}"
        else:
            listing = ", ".join(str(s) for s in others)
            reason = f"ACS SKU {row.acs_sku!r} is also claimed by StockID {listing}"
        i = int(position[row.stock_id])
        current = skus["code_problems"].iat[i]
        skus.iloc[i, skus.columns.get_loc("code_problems")] = (
            f"{current}{PROBLEM_SEPARATOR}{reason}" if current else reason
        )


def classify_skus(
    master: pd.DataFrame, registry: RegistryInput, identity: IdentityInput = None
) -> pd.DataFrame:
    """One row per Khaos SKU and per ACS SKU unknown to Khaos (columns ``MAPPING_COLUMNS``).

    ``master`` is ``catalogue.sku_master_frame``; ``registry`` is ``acs_registry_frame``
    (or the ``AcsProduct`` records); ``identity`` maps StockID → first-registered ACS SKU
    (a dict, or a frame with ``stock_id`` and ``acs_sku``). Khaos rows come first by
    ``stock_id``, then unknown ACS SKUs by ``acs_sku``.
    """
    ident = _identity_dict(identity)
    reg = _registry(registry)
    skus = _khaos_skus(master, ident)

    acs = reg.rename(columns={f: f"acs_{f}" for f in PUSHED_FIELDS})
    acs = acs.rename(columns={"status": "acs_status"})
    # The registry is unique by SKU, so a hash lookup replaces a (much slower) merge.
    looked_up = acs.set_index("sku").reindex(skus["acs_sku"].to_numpy())
    merged = skus
    for name in looked_up.columns:
        merged[name] = looked_up[name].to_numpy()
    present = merged["acs_status"].notna().to_numpy()
    merged["acs_status"] = merged["acs_status"].fillna("missing").astype(str)
    for name in _TEXT_FIELDS:
        merged[f"acs_{name}"] = _text(merged[f"acs_{name}"])
    merged["acs_is_hire"] = merged["acs_is_hire"].astype("boolean")

    differs = {
        name: present & (merged[name] != merged[f"acs_{name}"]).to_numpy(dtype=bool)
        for name in _TEXT_FIELDS
    }
    differs["is_hire"] = present & (
        merged["is_hire"].to_numpy(dtype=bool)
        != merged["acs_is_hire"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    )
    mismatched = np.zeros(len(merged), dtype=bool)
    for name in COMPARED_FIELDS:
        mismatched |= differs[name]
    pushed_differs = ~present
    for name in PUSHED_FIELDS:
        pushed_differs = pushed_differs | differs[name]
    merged["differs_from_acs"] = pushed_differs
    merged["mismatch_fields"], merged["mismatch_detail"] = _mismatch_text(
        merged, differs, mismatched
    )

    invalid = (merged["code_problems"] != "").to_numpy()
    status = merged["acs_status"].to_numpy()
    merged["classification"] = np.select(
        [
            invalid,
            merged["discontinued"].to_numpy(dtype=bool),
            merged["renamed"].to_numpy(dtype=bool),
            status == "missing",
            status == "inactive",
            status == "pending",
            mismatched,
        ],
        [
            "invalid_code",
            "discontinued",
            "renamed",
            "missing_in_acs",
            "inactive_in_acs",
            "pending_in_acs",
            "attribute_mismatch",
        ],
        default="matched",
    )
    merged["ready_for_sale"] = ~invalid & (status == "active") & ~mismatched
    merged["stock_id"] = merged["stock_id"].astype("Int64")

    unknown = _unknown_to_khaos(reg, set(merged["acs_sku"]))
    frames = [merged[MAPPING_COLUMNS]]
    if len(unknown):
        frames.append(unknown[MAPPING_COLUMNS])
    mapping = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _typed(mapping.reset_index(drop=True))


def _mismatch_text(
    merged: pd.DataFrame, differs: dict[str, np.ndarray], mismatched: np.ndarray
) -> tuple[pd.Series, pd.Series]:
    fields = pd.Series("", index=merged.index, dtype=object)
    detail = pd.Series("", index=merged.index, dtype=object)
    for position in np.flatnonzero(mismatched):
        names = [name for name in COMPARED_FIELDS if differs[name][position]]
        fields.iat[position] = ",".join(names)
        detail.iat[position] = PROBLEM_SEPARATOR.join(
            f"{name}: {_shown(merged[name].iat[position])} (Khaos) ≠ "
            f"{_shown(merged[f'acs_{name}'].iat[position])} (ACS)"
            for name in names
        )
    return fields, detail


def _shown(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return repr(str(value)) if value == "" else str(value)


def _unknown_to_khaos(reg: pd.DataFrame, claimed: set[str]) -> pd.DataFrame:
    rows = reg.loc[~reg["sku"].isin(claimed)]
    if rows.empty:
        return pd.DataFrame(columns=MAPPING_COLUMNS)
    out = pd.DataFrame(
        {
            "stock_id": pd.array([pd.NA] * len(rows), dtype="Int64"),
            "stock_code": "",
            "acs_sku": rows["sku"].astype(str).to_numpy(),
            "classification": "unknown_to_khaos",
            "ready_for_sale": False,
            "acs_status": rows["status"].astype(str).to_numpy(),
            "renamed": False,
            "discontinued": False,
            "publish_on_web": False,
            "is_hire": rows["is_hire"].astype(bool).to_numpy(),
            "cost_price": np.nan,
            "mismatch_fields": "",
            "mismatch_detail": "",
            "differs_from_acs": False,
            "code_problems": "",
        }
    )
    for name in _TEXT_FIELDS:
        out[name] = ""
        out[f"acs_{name}"] = _text(rows[name]).to_numpy()
    out["acs_is_hire"] = pd.array(rows["is_hire"].astype(bool).to_numpy(), dtype="boolean")
    return out.sort_values("acs_sku", kind="stable")


def _typed(mapping: pd.DataFrame) -> pd.DataFrame:
    mapping["stock_id"] = mapping["stock_id"].astype("Int64")
    for name in (
        "ready_for_sale",
        "renamed",
        "discontinued",
        "publish_on_web",
        "is_hire",
        "differs_from_acs",
    ):
        mapping[name] = mapping[name].astype(bool)
    mapping["acs_is_hire"] = mapping["acs_is_hire"].astype("boolean")
    mapping["cost_price"] = mapping["cost_price"].astype(float)
    return mapping
