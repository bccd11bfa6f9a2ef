"""The ``brand_overview`` asset's figures, built without Dagster (``flows.overview``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.flows.overview import BrandOverview, OverviewFiles, overview_figures

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _figures(tmp_path: Path, row: BrandOverview) -> dict[str, object]:
    folder = tmp_path / "overview"
    files = OverviewFiles(folder / "brand_overview.csv", folder / "brand_overview.html")
    return overview_figures(Settings(data_dir=tmp_path), row, files)


def test_an_age_not_known_yet_is_null_rather_than_zero(tmp_path: Path) -> None:
    figures = _figures(tmp_path, BrandOverview(brand="a", as_at=NOW))
    assert figures["snapshot_age_h"] is None and figures["unexplained_drift_value"] is None


def test_ages_are_plotted_in_hours_to_two_places(tmp_path: Path) -> None:
    row = BrandOverview(brand="a", as_at=NOW, snapshot_age=timedelta(minutes=100))
    assert _figures(tmp_path, row)["snapshot_age_h"] == 1.67


def test_every_owner_team_has_its_counts_even_with_nothing_open(tmp_path: Path) -> None:
    row = BrandOverview(brand="a", as_at=NOW, open_by_owner={"finance": 2})
    figures = _figures(tmp_path, row)
    assert figures["open_finance"] == 2 and figures["over_target_finance"] == 0
    assert figures["open_integration"] == 0
