"""How a Khaos Control install is laid out: its stock sites and invoice stages.

Pure models, used by the rules and nested in the settings.
"""

from __future__ import annotations

from pydantic import BaseModel, model_validator


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
