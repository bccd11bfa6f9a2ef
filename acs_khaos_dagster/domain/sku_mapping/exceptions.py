"""The mapping's exceptions for the queue (``mapping_exceptions``), keyed by StockID."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from acs_khaos_dagster.domain.sku_mapping.codes import PROBLEM_SEPARATOR

ExceptionKind = Literal[
    "invalid_sku_code", "sku_missing_in_acs", "sku_mismatch", "sku_renamed", "sku_not_live"
]
_KIND_ORDER: tuple[str, ...] = (
    "invalid_sku_code",
    "sku_missing_in_acs",
    "sku_mismatch",
    "sku_renamed",
    "sku_not_live",
)


class ExceptionSpec(BaseModel):
    """A problem for the exception queue; the queue sets the owner and severity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ExceptionKind
    entity_ref: str
    message: str
    details: dict[str, Any]


def mapping_exceptions(mapping: pd.DataFrame) -> list[ExceptionSpec]:
    """The mapping's exceptions, ordered by type then StockID.

    ``entity_ref`` is the StockID (stable across renames, so a fixed problem closes
    itself). Discontinued SKUs raise only ``sku_not_live``; invalid codes raise only
    ``invalid_sku_code`` and ``sku_not_live``; ``unknown_to_khaos`` rows raise nothing.
    - ``invalid_sku_code``: every ``invalid_code`` row, with the reasons.
    - ``sku_missing_in_acs``: ACS lacks the (first-registered) SKU.
    - ``sku_mismatch``: ACS holds it with a different barcode/style/colour/size/hire flag,
      whatever its ACS status.
    - ``sku_renamed``: the Khaos code moved away from the first-registered ACS SKU.
    - ``sku_not_live``: published on web at Khaos but not ready for sale.
    """
    invalid_rows = mapping["classification"] == "invalid_code"
    concern = ~invalid_rows & ~mapping["discontinued"]
    raises = mapping["stock_id"].notna() & (
        invalid_rows
        | (mapping["publish_on_web"] & ~mapping["ready_for_sale"])
        | (
            concern
            & (
                (mapping["acs_status"] == "missing")
                | (mapping["mismatch_fields"] != "")
                | mapping["renamed"]
            )
        )
    )
    khaos = mapping.loc[raises]
    specs: list[ExceptionSpec] = []
    for row in khaos.itertuples(index=False):
        stock_id = int(row.stock_id)
        ref = str(stock_id)
        base: dict[str, Any] = {
            "stock_id": stock_id,
            "stock_code": row.stock_code,
            "acs_sku": row.acs_sku,
            "acs_status": row.acs_status,
            "classification": row.classification,
        }
        name = f"{row.stock_code!r} (StockID {stock_id})"
        invalid = row.classification == "invalid_code"
        live_concern = not invalid and not row.discontinued
        if invalid:
            reasons = row.code_problems.split(PROBLEM_SEPARATOR)
            specs.append(
                ExceptionSpec(
                    type="invalid_sku_code",
                    entity_ref=ref,
                    message=f"{name} cannot be sent to ACS: {row.code_problems}",
                    details={**base, "reasons": reasons},
                )
            )
        if live_concern and row.acs_status == "missing":
            specs.append(
                ExceptionSpec(
                    type="sku_missing_in_acs",
                    entity_ref=ref,
                    message=f"{name} is not in ACS's product registry as {row.acs_sku!r}",
                    details=base,
                )
            )
        if live_concern and row.mismatch_fields:
            fields = row.mismatch_fields.split(",")
            specs.append(
                ExceptionSpec(
                    type="sku_mismatch",
                    entity_ref=ref,
                    message=f"{name} differs at ACS: {row.mismatch_detail}",
                    details={
                        **base,
                        "fields": fields,
                        "khaos": {f: _plain(getattr(row, f)) for f in fields},
                        "acs": {f: _plain(getattr(row, f"acs_{f}")) for f in fields},
                    },
                )
            )
        if live_concern and row.renamed:
            specs.append(
                ExceptionSpec(
                    type="sku_renamed",
                    entity_ref=ref,
                    message=(
                        f"StockID {stock_id} is now {row.stock_code!r} in Khaos but was first "
                        f"registered at ACS as {row.acs_sku!r}; ACS keeps {row.acs_sku!r} and "
                        "orders and stock follow the StockID"
                    ),
                    details=base,
                )
            )
        if row.publish_on_web and not row.ready_for_sale:
            specs.append(
                ExceptionSpec(
                    type="sku_not_live",
                    entity_ref=ref,
                    message=(
                        f"{name} is published on the web but ACS cannot fulfil it yet "
                        f"({row.classification.replace('_', ' ')}, ACS status "
                        f"{row.acs_status})"
                    ),
                    details=base,
                )
            )
    specs.sort(key=lambda s: (_KIND_ORDER.index(s.type), int(s.entity_ref)))
    return specs


def _plain(value: Any) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value
