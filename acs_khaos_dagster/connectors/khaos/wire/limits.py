"""Khaos's limits, checked before anything is sent (``WireValidationError``), and the
readers of values as Khaos writes them (money, whole-number quantities).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from acs_khaos_dagster.connectors.khaos.xml import (
    int_of,
    text_of,
)
from acs_khaos_dagster.domain.models import (
    Address,
)

MAX_STOCK_CODE = 50
MAX_EXPORT_STOCK_CODES = 100
MAX_REF = 50
MAX_ADDRESS_LINE = 35


class WireValidationError(ValueError):
    """A value Khaos would reject; found before sending."""


# --- limits ------------------------------------------------------------------------


def clean_stock_code(code: str) -> str:
    value = code.strip()
    if not value:
        raise WireValidationError("a stock code cannot be empty")
    if len(value) > MAX_STOCK_CODE:
        raise WireValidationError(f"stock code {value[:20]!r}… is longer than {MAX_STOCK_CODE}")
    if "#" in value:
        raise WireValidationError(f"stock code {value!r} contains '#'")
    return value


def clean_ref(value: str, field: str, required: bool = True, max_len: int = MAX_REF) -> str:
    text = value.strip()
    if required and not text:
        raise WireValidationError(f"{field} is required")
    if len(text) > max_len:
        raise WireValidationError(f"{field} is longer than {max_len} characters")
    return text


def check_address(address: Address) -> Address:
    """Refuse address lines Khaos would truncate or reject (over 35 characters)."""
    for name in ("line1", "line2", "line3", "line4", "city", "county"):
        if len(getattr(address, name)) > MAX_ADDRESS_LINE:
            raise WireValidationError(f"address {name} is longer than {MAX_ADDRESS_LINE}")
    return address


def _money(value: Decimal) -> str:
    return format(value, "f")


def _decimal(element: ET.Element, tag: str) -> Decimal:
    text = text_of(element, tag).strip()
    return Decimal(text) if text else Decimal("0")


def _int(element: ET.Element, tag: str) -> int:
    value = int_of(element, tag)
    if value is None:
        raise ValueError(f"{tag} missing in the reply")
    return value


def whole_number(text: str, tag: str) -> int:
    """A quantity as Khaos writes it: ``10`` or ``10.0000``; never a fraction."""
    try:
        number = Decimal(text.strip())
    except ArithmeticError:
        raise ValueError(f"{tag} {text!r} is not a number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{tag} {text!r} is not a whole number of units")
    return int(number)


def _quantity(element: ET.Element, tag: str, default: int | None = None) -> int:
    text = text_of(element, tag).strip()
    if not text:
        if default is None:
            raise ValueError(f"{tag} missing in the reply")
        return default
    return whole_number(text, tag)


def _optional_quantity(element: ET.Element, tag: str) -> int | None:
    return _quantity(element, tag) if text_of(element, tag).strip() else None
