"""The demo's summary prints every figure an asset's metadata has; money as finance reads it."""

from rich.console import Console

from acs_khaos_dagster.demo import _print_summary


def test_the_demo_prints_money_figures_in_pounds_to_the_penny() -> None:
    console = Console(record=True, width=200)
    figures = {"month_end_pack_preview": {"stock_value_gbp": 856086.6, "stock_units": 18547}}

    _print_summary(figures, {}, console)

    text = console.export_text()
    assert "stock value £856,086.60" in text and "stock units 18547" in text
