"""The Khaos and ACS installs the integration must work against, each declared once.

A variant is how one real customer's systems differ from the modelled contract: the
simulators' set-up (``KhaosInstall``, ``AcsInstall``) and the settings the integration
is given for it (``ACS_KHAOS_*``, as an operator would set them at go-live). Both come
from the same declaration, so a test that sets them apart on purpose is the only way
they can disagree.

=========================  =====================================================  =========
variant                    what differs                                           settings
=========================  =====================================================  =========
``modelled``               nothing: the modelled contract                         –
``khaos_without_level``    ExportStockStatus gives Available and OnOrder only     level
``khaos_own_codes``        own adjustment codes and return reasons; quantities    reasons,
                           written ``10.0000``                                    grades
``acs_offset_times``       ACS writes times with a UTC offset (``+01:00``)        –
``acs_uk_local_times``     ACS writes UK wall-clock times without an offset       –
``acs_day_first_times``    ACS writes ``dd/mm/yyyy HH:MM:SS``, UK wall clock      day first
=========================  =====================================================  =========

The ACS time variants only tell UK time from UTC in summer: run them on a scenario
that starts in British Summer Time (``SUMMER_START``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from acs_khaos_dagster.sandbox.acs.install import AcsInstall
from acs_khaos_dagster.sandbox.khaos.install import RETURN_TO_STOCK, WRITE_OFF, KhaosInstall

SUMMER_START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # a Monday, 07:00 BST


@dataclass(frozen=True)
class Variant:
    name: str
    khaos: KhaosInstall = field(default_factory=KhaosInstall)
    acs: AcsInstall = field(default_factory=AcsInstall)
    settings: Mapping[str, str] = field(default_factory=dict)
    summer: bool = False  # needs a scenario in British Summer Time

    def __str__(self) -> str:
        return self.name


# An install that names everything its own way: adjustment codes, return reasons (with
# their processing types) and the grade policy that uses them.
_OWN_CODES = {"write_off": "WO", "ex_hire": "XHIRE", "transfer": "MOVE", "refurbish": "REFURB"}
_OWN_CODES["variance"] = "COUNT"
_EXAMPLE_REASONS = frozenset({"DAMAGED", "EXPIRED", "FAULTY", "OBSOLETE"})
_OWN_RETURN_REASONS = {"RTS": RETURN_TO_STOCK, "NOT_WANTED": RETURN_TO_STOCK}
_OWN_RETURN_REASONS |= {"SCRAP": WRITE_OFF, "DAMAGED_BEYOND": WRITE_OFF}
_OWN_GRADES = {
    "rules": {
        "A": {"return_reason": "RTS", "credit_mode": "auto"},
        "B": {"return_reason": "RTS", "credit_mode": "auto"},
        "C": {"return_reason": "NOT_WANTED", "credit_mode": "review"},
        "BER": {"return_reason": "DAMAGED_BEYOND", "credit_mode": "review"},
        "*:DISPOSE": {"return_reason": "SCRAP", "credit_mode": "review"},
    },
    "hire_return_reason": "SCRAP",
}

MODELLED = Variant("modelled")
KHAOS_WITHOUT_LEVEL = Variant(
    "khaos_without_level",
    khaos=KhaosInstall(reports_level=False),
    settings={"ACS_KHAOS_KHAOS__STOCK_LEVEL_SOURCE": "available_plus_allocated"},
)
KHAOS_OWN_CODES = Variant(
    "khaos_own_codes",
    khaos=KhaosInstall(
        decimal_quantities=True,
        # The install's own codes only, plus the contract's examples (DAMAGED, EXPIRED…).
        adjustment_reasons=frozenset(_OWN_CODES.values()) | _EXAMPLE_REASONS,
        return_reasons=dict(_OWN_RETURN_REASONS),
    ),
    settings={
        **{f"ACS_KHAOS_KHAOS__REASONS__{k.upper()}": v for k, v in _OWN_CODES.items()},
        "ACS_KHAOS_KHAOS__REASONS__RETURN_REASONS": json.dumps(_OWN_RETURN_REASONS),
        "ACS_KHAOS_GRADE_POLICY": json.dumps(_OWN_GRADES),
    },
)
ACS_OFFSET_TIMES = Variant("acs_offset_times", acs=AcsInstall(timestamps="offset"), summer=True)
ACS_UK_LOCAL_TIMES = Variant(
    "acs_uk_local_times", acs=AcsInstall(timestamps="uk_local"), summer=True
)
ACS_DAY_FIRST_TIMES = Variant(
    "acs_day_first_times",
    acs=AcsInstall(timestamps="uk_local_day_first"),
    settings={"ACS_KHAOS_ACS__DATES_DAY_FIRST": "true"},
    summer=True,
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        MODELLED,
        KHAOS_WITHOUT_LEVEL,
        KHAOS_OWN_CODES,
        ACS_OFFSET_TIMES,
        ACS_UK_LOCAL_TIMES,
        ACS_DAY_FIRST_TIMES,
    )
}
