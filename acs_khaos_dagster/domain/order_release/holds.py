"""Hold or release: an order is released only when every SKU is ready for sale at ACS;
otherwise (or when ACS rejects a SKU) it is held with a message naming its SKUs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Literal

from acs_khaos_dagster.domain.models import (
    AcsOrder,
    Invoice,
    Record,
    SalesOrder,
)
from acs_khaos_dagster.domain.order_release.mapping import release_lines

ORDER_HELD_OWNER = "ecommerce"
"""Who fixes a held order: the SKU data is ecommerce's (issue 6).

Note: ``store.exceptions.DEFAULT_OWNERS`` maps ``order_held`` to operations; the issue
asks for ecommerce, so pass this owner (or change the default) when raising it.
"""


class SkuReadiness(StrEnum):
    """Where a StockID stands for selling through ACS (fed by the products flow)."""

    READY = "ready"
    UNKNOWN = "unknown"  # ACS does not know the SKU (never pushed, or ACS lost it)
    INACTIVE = "inactive"
    PENDING = "pending"  # pushed, ACS has not set it up yet
    MISMATCH = "mismatch"  # attributes differ between Khaos and ACS
    NOT_READY = "not_ready"  # any other reason (invalid code, discontinued...)


HoldReason = Literal["unknown", "inactive", "pending", "mismatch", "not_ready"]

_CLASSIFICATION_READINESS: dict[str, SkuReadiness] = {
    "matched": SkuReadiness.READY,
    # The ACS SKU stays as first registered and the StockID carries orders (issue 5).
    "renamed": SkuReadiness.READY,
    "missing_in_acs": SkuReadiness.UNKNOWN,
    "pending_in_acs": SkuReadiness.PENDING,
    "inactive_in_acs": SkuReadiness.INACTIVE,
    "attribute_mismatch": SkuReadiness.MISMATCH,
}


def readiness_from_classification(classification: str) -> SkuReadiness:
    """The readiness of a ``sku_mapping`` class (issue 5); any other class is ``not_ready``."""
    return _CLASSIFICATION_READINESS.get(classification.strip().lower(), SkuReadiness.NOT_READY)


class ReadySku(Record):
    """One StockID's ACS SKU and whether orders may use it (a ``ready_for_sale_skus`` row)."""

    stock_id: int
    sku: str
    state: SkuReadiness = SkuReadiness.READY
    detail: str = ""


class SkuProblem(Record):
    """Why one SKU of an order stops its release."""

    stock_id: int | None = None
    stock_code: str = ""
    sku: str = ""
    reason: HoldReason
    detail: str = ""

    def describe(self) -> str:
        name = self.sku or self.stock_code or str(self.stock_id)
        extra = f" ({self.detail})" if self.detail else ""
        return f"{name}: {self.reason}{extra}"


class ReleaseDecision(Record):
    """``release`` or ``hold`` for one order, with the SKUs that hold it."""

    order_number: str
    action: Literal["release", "hold"]
    problems: tuple[SkuProblem, ...] = ()

    @property
    def held(self) -> bool:
        return self.action == "hold"

    @property
    def exception_type(self) -> str:
        return "order_held"

    @property
    def owner(self) -> str:
        return ORDER_HELD_OWNER

    @property
    def exception_ref(self) -> str:
        """Entity reference of the ``order_held`` exception (one per order)."""
        return f"order:{self.order_number}"

    @property
    def message(self) -> str:
        if not self.held:
            return f"order {self.order_number} released"
        skus = "; ".join(p.describe() for p in self.problems)
        return f"order {self.order_number} held until its SKUs are ready at ACS: {skus}"


def validate_against_ready_skus(
    order: SalesOrder,
    ready: Mapping[int, ReadySku],
    *,
    sku_for_stock_id: Mapping[int, str] | None = None,
    invoice: Invoice | None = None,
    released_stage: int = 9,
) -> ReleaseDecision:
    """Release the order only if every line being released has a ready SKU.

    Per line (of the invoice being released, see ``release_lines``), keyed by StockID:
    - in ``ready`` with state ``ready`` -> fine, unless ``sku_for_stock_id`` names a
      different ACS SKU for that StockID -> ``mismatch`` (the identity map and the
      readiness table disagree; sending either could order the wrong garment);
    - in ``ready`` with another state -> that state is the reason;
    - absent from ``ready`` -> ``not_ready`` if the identity map knows an ACS SKU for it
      (pushed, not yet confirmed), else ``unknown``.
    Each StockID is reported once, in line order. Any problem -> ``hold``.
    """
    problems: list[SkuProblem] = []
    seen: set[int] = set()
    for line, _quantity in release_lines(order, invoice, released_stage=released_stage):
        if line.stock_id in seen:
            continue
        seen.add(line.stock_id)
        mapped = (sku_for_stock_id or {}).get(line.stock_id, "")
        entry = ready.get(line.stock_id)
        reason: HoldReason | None
        detail = ""
        if entry is None:
            reason = "not_ready" if mapped else "unknown"
        elif entry.state is not SkuReadiness.READY:
            reason = entry.state.value  # type: ignore[assignment]
            detail = entry.detail
        elif mapped and mapped != entry.sku:
            reason = "mismatch"
            detail = f"identity map says {mapped!r}, ready table says {entry.sku!r}"
        else:
            reason = None
        if reason is not None:
            problems.append(
                SkuProblem(
                    stock_id=line.stock_id,
                    stock_code=line.stock_code,
                    sku=entry.sku if entry is not None else mapped,
                    reason=reason,
                    detail=detail,
                )
            )
    return ReleaseDecision(
        order_number=order.order_code,
        action="hold" if problems else "release",
        problems=tuple(problems),
    )


_ACS_CODE_REASON: dict[str, HoldReason] = {"UNKNOWN_SKU": "unknown", "INACTIVE_SKU": "inactive"}
_INDEX_RE = re.compile(r"\[(\d+)\]")
_SKU_IN_MESSAGE_RE = re.compile(r"\bSKU\s+(\S+)")


def hold_from_acs_rejection(
    order_number: str,
    details: Sequence[Mapping[str, str]],
    order: AcsOrder | None = None,
) -> ReleaseDecision | None:
    """Turn ACS's 422 error list (``PermanentError.details``) into a hold, or ``None``.

    Only ``UNKNOWN_SKU`` (-> ``unknown``) and ``INACTIVE_SKU`` (-> ``inactive``) hold an
    order; any other 422 is not a SKU problem and returns ``None`` (park it as a failed
    effect). The SKU of each error is found from the line index in its ``field`` (the
    n in ``[n]``) against ``order.lines`` when the sent order is given, else from the
    message ("SKU X ..."), else the field itself is named.
    """
    problems: list[SkuProblem] = []
    for error in details:
        reason = _ACS_CODE_REASON.get(str(error.get("code", "")).upper())
        if reason is None:
            continue
        field = str(error.get("field", ""))
        message = str(error.get("message", ""))
        sku = ""
        index = _INDEX_RE.search(field)
        if order is not None and index and int(index.group(1)) < len(order.lines):
            sku = order.lines[int(index.group(1))].sku
        elif found := _SKU_IN_MESSAGE_RE.search(message):
            sku = found.group(1)
        problem = SkuProblem(sku=sku or field, reason=reason, detail=f"ACS: {message}")
        if problem not in problems:
            problems.append(problem)
    if not problems:
        return None
    return ReleaseDecision(order_number=order_number, action="hold", problems=tuple(problems))
