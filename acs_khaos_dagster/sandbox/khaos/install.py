"""How one simulated Khaos Control install is set up: the variance real installs show.

Every Khaos install names its own adjustment reason codes and return reasons, and not
every one exposes the same stock figures. The simulator takes one of these; the
integration is configured with the same values through its settings
(``khaos.reasons``, ``khaos.stock_level_source``), and a test that sets the two apart
sees what a real mismatch would do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RETURN_TO_STOCK = "return_to_stock"
WRITE_OFF = "write_off"

# The modelled contract's examples plus the codes the integration sends by default.
STANDARD_ADJUSTMENT_REASONS = frozenset(
    {
        "DAMAGED",
        "EXPIRED",
        "FAULTY",
        "OBSOLETE",
        "REFURBISH",
        "VARIANCE",
        "EXHIRE",
        "WRITEOFF",
        "TRANSFER",
    }
)
# Return reason -> processing type ("Return to Stock", "Stock Missing / Write off").
STANDARD_RETURN_REASONS: Mapping[str, str] = {
    "RESTOCK": RETURN_TO_STOCK,
    "UNWANTED": RETURN_TO_STOCK,
    "WRONG_SIZE": RETURN_TO_STOCK,
    "NOT_AS_DESCRIBED": RETURN_TO_STOCK,
    "WRITEOFF": WRITE_OFF,
    "BER": WRITE_OFF,
    "FAULTY": WRITE_OFF,
    "MISSING": WRITE_OFF,
}
# References (ExternalRef, GroupRef, AssociatedRef, URN, ConsignmentRef, CourierCode,
# ReasonCode, ReturnReason) and stock codes: what Khaos stores, longer is refused.
REFERENCE_MAX = 50


@dataclass(frozen=True)
class KhaosInstall:
    """``reports_level``: ``ExportStockStatus`` carries ``Level`` (the modelled contract);
    without it an install exposes per site only ``Available`` and ``OnOrder`` (what public
    material shows). ``decimal_quantities``: quantities are written ``10.0000``.
    """

    reports_level: bool = True
    decimal_quantities: bool = False
    adjustment_reasons: frozenset[str] = STANDARD_ADJUSTMENT_REASONS
    return_reasons: Mapping[str, str] = field(default_factory=lambda: dict(STANDARD_RETURN_REASONS))
    reference_max: int = REFERENCE_MAX

    def __post_init__(self) -> None:
        unknown = {p for p in self.return_reasons.values()} - {RETURN_TO_STOCK, WRITE_OFF}
        if unknown:
            raise ValueError(f"unknown return processing types {sorted(unknown)}")


MODELLED = KhaosInstall()
