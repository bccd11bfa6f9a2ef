"""The grade policy: grades and actions ACS reports, each grade's Khaos return reason,
credit mode and write-off verdict, and the problems a return can raise.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from acs_khaos_dagster.domain.layout import (
    DEFAULT_RETURN_REASONS,
    RETURN_TO_STOCK,
    WRITE_OFF,
    KhaosReasons,
    ReturnProcessing,
)
from acs_khaos_dagster.domain.models import (
    CreditMode,
    Record,
)

GRADES: tuple[str, ...] = ("A", "B", "C", "BER")
ACTIONS: tuple[str, ...] = (
    "RESTOCK",
    "CLEAN",
    "REPAIR",
    "QUARANTINE",
    "RESALE",
    "EX_HIRE",
    "DISPOSE",
)
# The modelled install's return reasons by processing type. A real install names its own
# (``khaos.reasons.return_reasons``); the settings hand them to the grade policy.
RETURN_TO_STOCK_REASONS = KhaosReasons().returned_to_stock
WRITE_OFF_REASONS = KhaosReasons().written_off
UK_TIME_ZONE = "Europe/London"

UnitKey = tuple[str, str]  # (return_ref, unique_sku)
LineKey = tuple[str, int]  # (order_number, order_item_id): line ids may restart in each order


# --- policy ---------------------------------------------------------------------------


class GradeRule(BaseModel):
    """What happens in Khaos to a returned sale unit: its return reason and credit mode.

    Whether the unit is written off follows from the reason's processing type in the
    install (``GradePolicy.writes_off``): a write-off reason leaves Khaos's Level alone
    (and, for a unit still in Level, asks for a write-off adjustment).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    return_reason: str
    credit_mode: CreditMode

    @field_validator("return_reason")
    @classmethod
    def _upper_reason(cls, value: str) -> str:
        return value.strip().upper()


def default_grade_rules() -> dict[str, GradeRule]:
    return {
        "A": GradeRule(return_reason="RESTOCK", credit_mode=CreditMode.AUTO),
        "B": GradeRule(return_reason="RESTOCK", credit_mode=CreditMode.AUTO),
        "C": GradeRule(return_reason="RESTOCK", credit_mode=CreditMode.REVIEW),
        "BER": GradeRule(return_reason="BER", credit_mode=CreditMode.REVIEW),
        "*:DISPOSE": GradeRule(return_reason="WRITEOFF", credit_mode=CreditMode.REVIEW),
    }


def _rule_key(grade: str, action: str = "") -> str:
    grade = grade.strip().upper()
    action = action.strip().upper().replace(" ", "_").replace("-", "_")
    return f"{grade}:{action}" if action else grade


class GradePolicy(BaseModel):
    """Grade (and, where it matters, action taken) → Khaos return reason and credit mode.

    Keys: ``"GRADE"`` (the grade's rule), ``"GRADE:ACTION"`` (that grade with that action)
    or ``"*:ACTION"`` (any grade with that action). The most specific key wins:
    ``GRADE:ACTION``, then ``*:ACTION``, then ``GRADE``. A grade with no plain ``GRADE``
    rule is unknown. Defaults (sale returns):

    | grade / action | Khaos return reason | credit | written off |
    | --- | --- | --- | --- |
    | A (RESTOCK) | RESTOCK (return to stock) | auto | no |
    | B (after CLEAN or REPAIR) | RESTOCK (return to stock) | auto | no |
    | C (REPAIR, QUARANTINE, RESALE) | RESTOCK (return to stock) | review | no |
    | BER | BER (write off) | review | yes |
    | any grade, action DISPOSE | WRITEOFF (write off) | review | yes |
    | unknown grade | — not posted, ``unknown_grade`` problem | — | — |

    Why C in quarantine is returned to stock: the unit is physically at ACS, so it belongs
    in Khaos's Level; the stock status policy puts a quarantined unit on the non-sellable
    quarantine site (the snapshot push moves it there), never on the selling site. Only a
    unit that leaves for good (BER, DISPOSE) is written off.

    Hire returns never raise a credit (``none``) and are not posted unless
    ``post_hire_returns`` (then with ``hire_return_reason``, a write-off reason, so the
    customer return never moves Level). A hire unit with an action in
    ``ex_hire_to_resale_actions`` that is not written off is moved to its resale StockID.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: dict[str, GradeRule] = Field(default_factory=default_grade_rules, validate_default=True)
    post_hire_returns: bool = False
    hire_return_reason: str = "WRITEOFF"
    ex_hire_to_resale_actions: frozenset[str] = frozenset({"EX_HIRE", "RESALE"})
    # The install's return reasons and their processing types; the settings fill this from
    # ``khaos.reasons.return_reasons`` so the policy can only name reasons Khaos knows.
    return_reasons: dict[str, ReturnProcessing] = Field(
        default_factory=lambda: dict(DEFAULT_RETURN_REASONS)
    )

    @field_validator("rules")
    @classmethod
    def _normalise_keys(cls, rules: dict[str, GradeRule]) -> dict[str, GradeRule]:
        out: dict[str, GradeRule] = {}
        for raw, rule in rules.items():
            grade, _, action = raw.partition(":")
            if not grade.strip() or (":" in raw and not action.strip()):
                raise ValueError(
                    f"grade policy key {raw!r} must be GRADE, GRADE:ACTION or *:ACTION"
                )
            if grade.strip() == "*" and not action.strip():
                raise ValueError("a '*' key needs an action ('*:ACTION')")
            out[_rule_key(grade, action)] = rule
        return out

    @field_validator("hire_return_reason")
    @classmethod
    def _upper_hire_reason(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("return_reasons")
    @classmethod
    def _upper_return_reasons(
        cls, value: dict[str, ReturnProcessing]
    ) -> dict[str, ReturnProcessing]:
        return {reason.strip().upper(): kind for reason, kind in value.items()}

    @model_validator(mode="after")
    def _reasons_known_to_the_install(self) -> GradePolicy:
        known = sorted(self.return_reasons)
        for key, rule in self.rules.items():
            if rule.return_reason not in self.return_reasons:
                raise ValueError(
                    f"grade rule {key}: unknown Khaos return reason {rule.return_reason!r}; "
                    f"the install's reasons are {known}"
                )
        if self.return_reasons.get(self.hire_return_reason) != WRITE_OFF:
            raise ValueError(
                "hire_return_reason must be a write-off reason: a hire unit never left "
                "Level, so a 'return to stock' would count it twice"
            )
        return self

    def writes_off(self, rule: GradeRule) -> bool:
        """The rule's reason is processed "write off" in Khaos (Level not raised)."""
        return self.return_reasons.get(rule.return_reason) == WRITE_OFF

    def restocks(self, rule: GradeRule) -> bool:
        """The rule's reason is processed "return to stock" in Khaos (Level raised)."""
        return self.return_reasons.get(rule.return_reason) == RETURN_TO_STOCK

    @field_validator("ex_hire_to_resale_actions")
    @classmethod
    def _upper_actions(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(_rule_key("X", a).partition(":")[2] for a in value if a.strip())

    @model_validator(mode="after")
    def _grades_present(self) -> GradePolicy:
        if not any(":" not in key for key in self.rules):
            raise ValueError("the grade policy needs at least one plain GRADE rule")
        return self

    def knows_grade(self, grade: str) -> bool:
        return _rule_key(grade) in self.rules and ":" not in _rule_key(grade)

    def known_actions(self) -> frozenset[str]:
        named = {key.partition(":")[2] for key in self.rules if ":" in key}
        return frozenset(ACTIONS) | named | self.ex_hire_to_resale_actions

    def rule_for(self, grade: str, action: str | None = None) -> GradeRule | None:
        """The rule for ``grade`` with ``action``; ``None`` when the grade is unknown."""
        if not self.knows_grade(grade):
            return None
        act = _rule_key("X", action or "").partition(":")[2]
        if act:
            for key in (_rule_key(grade, act), _rule_key("*", act)):
                if key in self.rules:
                    return self.rules[key]
        return self.rules[_rule_key(grade)]


DEFAULT_GRADE_POLICY = GradePolicy()


# --- problems -------------------------------------------------------------------------


class ReturnProblemKind(StrEnum):
    RETURN_UNMATCHED = "return_unmatched"  # no order, unknown order/line, SKU not on it, excess
    UNKNOWN_GRADE = "unknown_grade"  # grade (or non-blank action) the policy does not know
    RESALE_UNMAPPED = "resale_unmapped"  # ex-hire to resale with no resale StockID
    STOCK_ITEM_UNKNOWN = "stock_item_unknown"  # a unit to adjust whose StockID is not known


_EXCEPTION_OWNER = {
    "return_unmatched": "operations",
    "unknown_grade": "integration",
    "resale_unmapped": "ecommerce",
    "stock_item_unknown": "ecommerce",
}


class ReturnProblem(Record):
    """Why a returned unit is not posted (or not adjusted) as it stands."""

    kind: ReturnProblemKind
    return_ref: str
    unique_sku: str
    message: str
    order_number: str = ""
    sku: str = ""

    @property
    def exception_type(self) -> str:
        """The ``store.exceptions.ExceptionType`` value, named like the problem kind."""
        return str(self.kind)

    @property
    def owner(self) -> str:
        """The store's default owner of ``exception_type`` (the store's map decides)."""
        return _EXCEPTION_OWNER[self.exception_type]

    @property
    def exception_ref(self) -> str:
        """One exception per unit and kind: the same unit seen again updates the same row."""
        return f"return:{self.kind}:{self.return_ref}:{self.unique_sku}"
