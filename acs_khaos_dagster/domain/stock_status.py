"""ACS unit statuses: one canonical spelling, and the policy that says where each one counts.

ACS's stock file carries a free-text status per unit whose case and dash style
vary between files ("In Warehouse - Ready For Customer", "in warehouse – ready
for customer", "IN WAREHOUSE-READY FOR CUSTOMER"). ``normalise_status`` turns
each spelling into one key; ``StatusPolicy`` maps keys to a ``StockBucket`` and
the Khaos site (a ``KhaosSites`` field name) the unit belongs on.

Only the ``sellable`` bucket may ever count as available stock. A status the
policy does not know is ``unknown``: never sellable, on no site, and reported.

Everything here is pure: classify each *distinct* status once
(``classify_statuses``) and join the result back onto the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from acs_khaos_dagster.domain.layout import KhaosSites

SiteRole = Literal["selling", "hire_stock", "on_hire", "inspection", "refurbishment", "quarantine"]

# Everything Unicode draws as a horizontal dash between words.
_DASHES = (
    "\u002d\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2e3a\u2e3b\ufe58\ufe63\uff0d"
)
_DASH_RE = re.compile(f"[{re.escape(_DASHES)}]")
_DASH_SPACING_RE = re.compile(r"\s*-\s*")
_SPACE_RE = re.compile(r"\s+")
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")

CONFLICT_STATUS = "<conflicting statuses>"
"""Status the file reader gives a unit whose latest rows disagree; never in a policy, so unknown."""


def normalise_status(raw: str) -> str:
    """The canonical key of an ACS status: case-folded, single-spaced, dashes as `` - ``.

    >>> normalise_status("IN WAREHOUSE–READY  FOR CUSTOMER ")
    'in warehouse - ready for customer'
    >>> normalise_status("Ex-Hired")
    'ex - hired'
    """
    text = _INVISIBLE_RE.sub("", raw)
    text = _DASH_RE.sub("-", text)
    text = _SPACE_RE.sub(" ", text).strip().casefold()
    text = _DASH_SPACING_RE.sub(" - ", text)
    return text.strip()


class StockBucket(StrEnum):
    SELLABLE = "sellable"  # on the shelf, ready for a customer
    ALLOCATED = "allocated"  # present but promised to an order (allocated/picking/packed)
    NON_SELLABLE = "non_sellable"  # in the building, not fit to sell yet (inspection, repair...)
    ON_HIRE = "on_hire"  # a hire unit out with a customer
    RETIRED = "retired"  # left the stock for good (ex-hired)
    IGNORE = "ignore"  # deliberately not counted anywhere (for configured statuses)
    UNKNOWN = "unknown"  # not in the policy: never sellable, raised as an exception


class StatusRule(BaseModel):
    """Where units in one status count.

    ``site_role`` is the Khaos site for sale units; ``hire_site_role`` the site for
    hire units (``None`` means the same as ``site_role``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: StockBucket
    site_role: SiteRole | None = None
    hire_site_role: SiteRole | None = None


UNKNOWN_RULE = StatusRule(bucket=StockBucket.UNKNOWN)


def site_role_for(rule: StatusRule, is_hire: bool) -> SiteRole | None:
    """The ``KhaosSites`` field a unit under ``rule`` belongs on, or None for no site."""
    if rule.bucket in (StockBucket.UNKNOWN, StockBucket.IGNORE, StockBucket.RETIRED):
        return None
    if is_hire and rule.hire_site_role is not None:
        return rule.hire_site_role
    return rule.site_role


def site_id_for(rule: StatusRule, is_hire: bool, sites: KhaosSites) -> int | None:
    """The Khaos site id a unit under ``rule`` belongs on, or None."""
    role = site_role_for(rule, is_hire)
    return None if role is None else int(getattr(sites, role))


def _sale_and_hire(bucket: StockBucket) -> StatusRule:
    return StatusRule(bucket=bucket, site_role="selling", hire_site_role="hire_stock")


def _non_sellable(role: SiteRole) -> StatusRule:
    return StatusRule(bucket=StockBucket.NON_SELLABLE, site_role=role)


def default_status_rules() -> dict[str, StatusRule]:
    return {
        "In Warehouse - Ready For Customer": _sale_and_hire(StockBucket.SELLABLE),
        "Allocated": _sale_and_hire(StockBucket.ALLOCATED),
        "Picking": _sale_and_hire(StockBucket.ALLOCATED),
        "Packed": _sale_and_hire(StockBucket.ALLOCATED),
        "Receipted - No Location": _non_sellable("inspection"),
        "Awaiting Inspection": _non_sellable("inspection"),
        "Post-Rental Inspection": _non_sellable("inspection"),
        "In Warehouse Processing": _non_sellable("inspection"),
        "Cleaning": _non_sellable("refurbishment"),
        "In Refurbishment": _non_sellable("refurbishment"),
        "In Repair": _non_sellable("refurbishment"),
        "Quarantine": _non_sellable("quarantine"),
        "With Customer": StatusRule(bucket=StockBucket.ON_HIRE, site_role="on_hire"),
        "Ex-Hired": StatusRule(bucket=StockBucket.RETIRED),
    }


class StatusPolicy(BaseModel):
    """Status → (bucket, site). Keys may be written in any ACS spelling; they are normalised.

    Defaults (sale units / hire units):

    | ACS status | bucket | site |
    | --- | --- | --- |
    | In Warehouse - Ready For Customer | sellable | selling / hire_stock |
    | Allocated, Picking, Packed | allocated | selling / hire_stock |
    | Receipted - No Location, Awaiting Inspection, Post-Rental Inspection, In Warehouse Processing | non_sellable | inspection |
    | Cleaning, In Refurbishment, In Repair | non_sellable | refurbishment |
    | Quarantine | non_sellable | quarantine |
    | With Customer | on_hire | on_hire |
    | Ex-Hired | retired | none |
    | anything else | unknown | none (never sellable) |
    """  # noqa: E501

    model_config = ConfigDict(frozen=True)

    rules: dict[str, StatusRule] = Field(
        default_factory=default_status_rules, validate_default=True
    )

    @field_validator("rules")
    @classmethod
    def _normalise_keys(cls, rules: dict[str, StatusRule]) -> dict[str, StatusRule]:
        out: dict[str, StatusRule] = {}
        for raw, rule in rules.items():
            key = normalise_status(raw)
            if not key:
                raise ValueError("a status policy key must not be blank")
            if key == normalise_status(CONFLICT_STATUS):
                raise ValueError(f"{raw!r} is reserved for conflicting unit rows")
            if key in out and out[key] != rule:
                raise ValueError(f"status {raw!r} is given two different rules")
            if rule.bucket in (StockBucket.SELLABLE, StockBucket.ALLOCATED) and not rule.site_role:
                raise ValueError(f"status {raw!r} is {rule.bucket} but names no site")
            out[key] = rule
        return out

    def rule_for(self, status: str) -> StatusRule:
        """The rule for a raw or normalised status; unknown statuses get ``UNKNOWN_RULE``."""
        return self.rules.get(normalise_status(status), UNKNOWN_RULE)

    def bucket_for(self, status: str) -> StockBucket:
        return self.rule_for(status).bucket


DEFAULT_STATUS_POLICY = StatusPolicy()


def classify_statuses(
    distinct_raw_values: Iterable[str], policy: StatusPolicy | None = None
) -> dict[str, tuple[str, StockBucket]]:
    """``raw → (normalised, bucket)`` per distinct raw status (once per file, never per row)."""
    active = policy or DEFAULT_STATUS_POLICY
    out: dict[str, tuple[str, StockBucket]] = {}
    for raw in distinct_raw_values:
        if raw in out:
            continue
        key = normalise_status(raw)
        out[raw] = (key, active.rules.get(key, UNKNOWN_RULE).bucket)
    return out
