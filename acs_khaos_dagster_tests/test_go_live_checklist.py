"""The go-live checklist names every modelled operation and field, and only real settings.

Issue 18: whatever must be confirmed against a customer's WSDL or ACS account is listed
in ``docs/go-live-checklist.md`` with the setting it maps to. The contract's fields come
from ``contract_fields`` (the same list the simulators' conformance tests use).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster_tests import contract_fields

CHECKLIST = Path(__file__).resolve().parent.parent / "docs" / "go-live-checklist.md"
TEXT = CHECKLIST.read_text(encoding="utf-8")
KHAOS_PART, _, ACS_PART = TEXT.partition("## ACS (partner API and file drop)")
SECTIONS = tuple(Settings.model_fields)


def _names(shape: contract_fields.Shape) -> set[str]:
    names: set[str] = set()
    for key, below in shape.items():
        names.add(key)
        names |= _names(below)
    return names


def _quoted(text: str) -> set[str]:
    """Every name written in backticks (``SITES/SITE``, ``products[]`` and JSON included)."""
    return {
        word
        for quoted in re.findall(r"`([^`]+)`", text)
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", quoted)
    }


@pytest.mark.parametrize("operation", sorted(contract_fields.KHAOS))
def test_every_khaos_operation_and_its_fields_are_on_the_checklist(operation: str) -> None:
    quoted = _quoted(KHAOS_PART)
    assert operation in quoted
    assert _names(contract_fields.KHAOS[operation]) - quoted == set()


@pytest.mark.parametrize("operation", sorted(contract_fields.ACS))
def test_every_acs_call_and_its_fields_are_on_the_checklist(operation: str) -> None:
    assert _names(contract_fields.ACS[operation]) - _quoted(ACS_PART) == set()


def test_every_acs_file_column_is_on_the_checklist() -> None:
    columns = {*contract_fields.STOCK_UNITS_COLUMNS, *contract_fields.RETURNS_COLUMNS}
    assert columns - _quoted(ACS_PART) == set()


def test_every_setting_the_checklist_names_exists() -> None:
    named = {
        q.rstrip(".*").removesuffix(".")
        for q in re.findall(r"`([^`]+)`", TEXT)
        if q.split(".", 1)[0] in SECTIONS and " " not in q
    }
    assert len(named) > 20
    for path in sorted(named):
        model: type = Settings
        for part in path.split("."):
            assert part in model.model_fields, f"{path}: no setting {part!r}"
            annotation = model.model_fields[part].annotation
            model = annotation if isinstance(annotation, type) else object
