"""How a Khaos Control install is laid out: its stock sites, invoice stages and codes.

Pure models, used by the rules and nested in the settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator


class KhaosSites(BaseModel):
    """Khaos Control site ids. Each ACS stock bucket lands on exactly one site."""

    selling: int = 1
    hire_stock: int = 2
    on_hire: int = 3
    inspection: int = 4
    refurbishment: int = 5
    quarantine: int = 6

    @model_validator(mode="after")
    def _distinct(self) -> KhaosSites:
        ids = list(self.model_dump().values())
        if len(set(ids)) != len(ids):
            raise ValueError(f"khaos site ids must be distinct, got {self.model_dump()}")
        return self


class KhaosStages(BaseModel):
    """Sales Invoice Manager stage ids."""

    cancelled: int = 1
    released: int = 9
    acknowledged: int = 12
    issue: int = 16
    awaiting_stock: int = 18
    issued: tuple[int, ...] = (70, 71, 72, 73)


RETURN_TO_STOCK = "return_to_stock"
WRITE_OFF = "write_off"
ReturnProcessing = Literal["return_to_stock", "write_off"]

# The modelled install's return reasons and their processing types.
DEFAULT_RETURN_REASONS: dict[str, ReturnProcessing] = {
    "RESTOCK": RETURN_TO_STOCK,
    "UNWANTED": RETURN_TO_STOCK,
    "WRONG_SIZE": RETURN_TO_STOCK,
    "NOT_AS_DESCRIBED": RETURN_TO_STOCK,
    "WRITEOFF": WRITE_OFF,
    "BER": WRITE_OFF,
    "FAULTY": WRITE_OFF,
    "MISSING": WRITE_OFF,
}


def _code(value: str) -> str:
    code = value.strip().upper()
    if not code:
        raise ValueError("a reason code cannot be empty")
    return code


class KhaosReasons(BaseModel):
    """The codes one Khaos install uses: each install names its own.

    Adjustment reason codes the integration sends (``ImportStockAdjustments``), and the
    install's customer-return reasons with the processing type each is set up with in
    Khaos: ``return_to_stock`` raises Level at the return's site, ``write_off`` does not.
    """

    write_off: str = "WRITEOFF"
    ex_hire: str = "EXHIRE"
    transfer: str = "TRANSFER"
    refurbish: str = "REFURBISH"
    variance: str = "VARIANCE"
    return_reasons: dict[str, ReturnProcessing] = Field(
        default_factory=lambda: dict(DEFAULT_RETURN_REASONS)
    )

    @field_validator("write_off", "ex_hire", "transfer", "refurbish", "variance")
    @classmethod
    def _upper(cls, value: str) -> str:
        return _code(value)

    @field_validator("return_reasons")
    @classmethod
    def _upper_reasons(cls, value: dict[str, ReturnProcessing]) -> dict[str, ReturnProcessing]:
        reasons = {_code(reason): kind for reason, kind in value.items()}
        if WRITE_OFF not in reasons.values() or RETURN_TO_STOCK not in reasons.values():
            raise ValueError("the install needs a return-to-stock and a write-off return reason")
        return reasons

    @property
    def returned_to_stock(self) -> frozenset[str]:
        return frozenset(r for r, kind in self.return_reasons.items() if kind == RETURN_TO_STOCK)

    @property
    def written_off(self) -> frozenset[str]:
        return frozenset(r for r, kind in self.return_reasons.items() if kind == WRITE_OFF)
