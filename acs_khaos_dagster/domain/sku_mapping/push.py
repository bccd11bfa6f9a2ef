"""The pushes to ACS: which SKUs to send (``products_to_push``) and the content hash that
keeps the outbox from sending the same content twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from acs_khaos_dagster.domain.models import AcsProduct
from acs_khaos_dagster.domain.sku_mapping.classify import (
    PUSHED_FIELDS,
    IdentityInput,
    RegistryInput,
    classify_skus,
)
from acs_khaos_dagster.domain.sku_mapping.codes import PROBLEM_SEPARATOR
from acs_khaos_dagster.domain.sku_mapping.readiness import identity_updates


class SkuPush(BaseModel):
    """One ``PUT products`` to send: the product body and the hash of its content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stock_id: int
    stock_code: str
    product: AcsProduct
    content_hash: str
    reason: Literal["new", "changed"]

    @property
    def idempotency_key(self) -> str:
        """Same SKU, same content → same key: the outbox never sends it twice."""
        return f"acs-product:{self.product.sku}:{self.content_hash}"


class InvalidSku(BaseModel):
    """A SKU that will not be sent, with why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stock_id: int
    stock_code: str
    acs_sku: str
    reasons: tuple[str, ...]


class PushPlan(BaseModel):
    """What to send (``pushes``), what to record (``identity_updates``), what was refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pushes: tuple[SkuPush, ...]
    invalid: tuple[InvalidSku, ...]
    identity_updates: dict[int, str]


def content_hash(product: AcsProduct) -> str:
    """Deterministic hash of what a push sends (the SKU and ``PUSHED_FIELDS``, not status)."""
    body = {"sku": product.sku, **{name: getattr(product, name) for name in PUSHED_FIELDS}}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def products_to_push(
    master: pd.DataFrame,
    registry: RegistryInput,
    identity: IdentityInput,
    last_pushed_hashes: Mapping[int, str] | None = None,
) -> PushPlan:
    """Every valid, non-discontinued SKU that ACS lacks or holds differently, unless the
    very same content was already pushed for its StockID.

    A push goes to the SKU's ACS SKU (the first-registered one for a renamed StockID),
    so a rename never creates a second SKU at ACS. Invalid codes are never pushed; they
    come back in ``invalid`` with their reasons. Ordered by ``stock_id``.
    """
    last = {int(k): v for k, v in (last_pushed_hashes or {}).items()}
    mapping = classify_skus(master, registry, identity)
    khaos = mapping.loc[mapping["stock_id"].notna()]
    candidates = khaos.loc[
        (khaos["classification"] != "invalid_code")
        & ~khaos["discontinued"]
        & khaos["differs_from_acs"]
    ]
    pushes: list[SkuPush] = []
    for row in candidates.itertuples(index=False):
        product = AcsProduct(
            sku=row.acs_sku,
            barcode=row.barcode,
            style=row.style,
            colour=row.colour,
            size=row.size,
            description=row.description,
            is_hire=bool(row.is_hire),
        )
        digest = content_hash(product)
        stock_id = int(row.stock_id)
        if last.get(stock_id) == digest:
            continue
        pushes.append(
            SkuPush(
                stock_id=stock_id,
                stock_code=row.stock_code,
                product=product,
                content_hash=digest,
                reason="new" if row.acs_status == "missing" else "changed",
            )
        )
    invalid_rows = khaos.loc[khaos["classification"] == "invalid_code"]
    invalid = tuple(
        InvalidSku(
            stock_id=int(row.stock_id),
            stock_code=row.stock_code,
            acs_sku=row.acs_sku,
            reasons=tuple(row.code_problems.split(PROBLEM_SEPARATOR)),
        )
        for row in invalid_rows.itertuples(index=False)
    )
    return PushPlan(
        pushes=tuple(pushes),
        invalid=invalid,
        identity_updates=identity_updates(master, identity, registry),
    )
