"""A flow's figures and a check's verdict become the metadata the UI shows: tables as
Markdown, reports as links the UI opens, settings as text, numbers as numbers."""

from pathlib import Path

import pandas as pd
from dagster import AssetCheckSeverity, MetadataValue

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.dagster_kit.results import check_result, metadata
from acs_khaos_dagster.flows.figures import Markdown, Verdict, bullets, file_link, setting, table


def test_an_empty_table_says_none_rather_than_showing_an_empty_grid():
    assert table(pd.DataFrame({"sku": []})) == Markdown("_none_")


def test_a_table_shows_only_its_first_rows():
    shown = table(pd.DataFrame({"sku": [f"S{i}" for i in range(30)]}), limit=3).text
    assert "S2" in shown and "S3" not in shown


def test_a_setting_is_text_so_the_ui_does_not_plot_it():
    figures = metadata({"limit": setting(0.05, "products.not_ready_warn_above")})
    assert figures["limit"] == "5% (products.not_ready_warn_above)"


def test_markdown_becomes_a_markdown_value_and_numbers_stay_numbers():
    figures = metadata({"sample": Markdown("| a |"), "open": 3, "share": 0.5})
    assert figures == {"sample": MetadataValue.md("| a |"), "open": 3, "share": 0.5}


def test_a_served_report_is_a_link_the_ui_opens(tmp_path: Path):
    conf = Settings(data_dir=tmp_path)
    report = tmp_path / "audit" / "2026-11.html"
    assert metadata({"report": file_link(conf, report)})["report"] == MetadataValue.url(
        "/files/audit/2026-11.html"
    )


def test_a_file_outside_the_served_folders_is_shown_as_its_path(tmp_path: Path):
    conf = Settings(data_dir=tmp_path)
    private = tmp_path / "integration.sqlite"
    assert metadata({"file": file_link(conf, private)})["file"] == MetadataValue.path(str(private))


def test_a_failed_warning_verdict_is_a_warning_not_an_error():
    result = check_result(Verdict(passed=False, figures={"late": 2}, warn=True))
    assert (result.passed, result.severity) == (False, AssetCheckSeverity.WARN)
    assert result.metadata["late"] == MetadataValue.int(2)


def test_a_verdict_is_an_error_unless_it_says_it_only_warns():
    assert check_result(Verdict(passed=False)).severity == AssetCheckSeverity.ERROR


def test_a_verdict_says_why_beside_its_result():
    result = check_result(Verdict(passed=False, warn=True, description="the file was cut short"))
    assert result.description == "the file was cut short"


def test_a_list_shows_its_first_items_and_says_none_when_empty():
    assert bullets(["a", "b", "c"], limit=2) == Markdown("- a\n- b")
    assert bullets([]) == Markdown("_none_")
