"""A flow's figures as Dagster metadata, a check rule's verdict as a check result."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from acs_khaos_dagster.flows.figures import FileLink, Markdown, Verdict


def metadata(figures: Mapping[str, Any]) -> dict[str, Any]:
    """A flow's figures (``flows/figures.py``) as Dagster metadata."""
    return {name: _value(value) for name, value in figures.items()}


def _value(value: Any) -> Any:
    if isinstance(value, Markdown):
        return dg.MetadataValue.md(value.text)
    if isinstance(value, FileLink):
        if value.url:
            return dg.MetadataValue.url(value.url)
        return dg.MetadataValue.path(str(value.path))
    return value


def check_result(verdict: Verdict, check_name: str | None = None) -> dg.AssetCheckResult:
    """``check_name`` names the check when an asset reports its own check's result."""
    severity = dg.AssetCheckSeverity.WARN if verdict.warn else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=verdict.passed,
        severity=severity,
        metadata=metadata(verdict.figures),
        description=verdict.description,
    )
