"""The products group's check rules and figures without Dagster (``flows/products_checks.py``,
``flows/products_mapping.py``): each rule's verdict on small tables whose answer is counted
by hand, and the figures a run shows.
"""

from __future__ import annotations

import csv

import pandas as pd

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.flows import products_checks as rules
from acs_khaos_dagster.flows.figures import FileLink, Markdown
from acs_khaos_dagster.flows.products_mapping import (
    SkuMapping,
    not_ready_csv_path,
    ready_for_sale_skus,
    registry_figures,
)


def _conf(**products: float) -> Settings:
    conf = load_settings()
    return conf.model_copy(update={"products": conf.products.model_copy(update=products)})


def _mapping(*rows: tuple[str, bool, bool, bool]) -> pd.DataFrame:
    """(code, ready, published, discontinued) per Khaos SKU."""
    return pd.DataFrame(
        [
            {
                "stock_id": n,
                "stock_code": code,
                "acs_sku": code,
                "classification": "matched" if ready else "pending_in_acs",
                "ready_for_sale": ready,
                "acs_status": "active" if ready else "pending",
                "discontinued": discontinued,
                "publish_on_web": published,
                "mismatch_detail": "",
                "code_problems": "",
                "is_hire": False,
                "cost_price": 1.0,
            }
            for n, (code, ready, published, discontinued) in enumerate(rows, start=1)
        ]
    )


def test_no_invalid_code_pushed_fails_on_a_pushed_code_too_long_for_acs_and_lists_it() -> None:
    pushed = pd.DataFrame({"acs_sku": ["GOOD-1", "X" * 51], "reason": ["new", "new"]})

    verdict = rules.no_invalid_code_pushed(pushed)

    assert not verdict.passed and not verdict.warn
    assert verdict.figures["invalid_pushed"] == 1
    assert "GOOD-1" not in verdict.figures["sample"].text


def test_no_invalid_code_pushed_passes_when_every_code_is_valid() -> None:
    verdict = rules.no_invalid_code_pushed(pd.DataFrame({"acs_sku": ["A-1", "B-2"]}))

    assert verdict.passed and verdict.figures["sample"] == Markdown("_none_")


def test_web_coverage_warns_under_the_threshold_and_shows_the_setting_as_text() -> None:
    # Two of three published SKUs ready: 0.6667 against 0.7; the unpublished one not counted.
    mapping = _mapping(
        ("A", True, True, False),
        ("B", True, True, False),
        ("C", False, True, False),
        ("D", False, False, False),
    )

    under = rules.web_coverage(_conf(coverage_warn_below=0.7), mapping)
    over = rules.web_coverage(_conf(coverage_warn_below=0.6), mapping)

    assert not under.passed and under.warn and over.passed
    assert under.figures["coverage"] == 0.6667
    assert under.figures["published_not_ready"] == 1
    assert under.figures["threshold"] == "70% (products.coverage_warn_below)"


def test_ready_skus_active_at_acs_names_each_ready_sku_acs_does_not_hold_active() -> None:
    ready = pd.DataFrame({"stock_id": [1, 2, 3], "stock_code": ["A", "B", "C"]})
    ready["acs_sku"] = ready["stock_code"]
    registry = pd.DataFrame({"sku": ["A", "B"], "status": ["active", "inactive"]})

    verdict = rules.ready_skus_active_at_acs(ready, registry)

    assert not verdict.passed and not verdict.warn
    assert verdict.figures["ready_not_active"] == 2
    assert "| B " in verdict.figures["skus"].text and "| C " in verdict.figures["skus"].text


def test_the_not_ready_share_is_of_skus_on_sale_and_warns_above_the_limit() -> None:
    # On sale: A (ready), B and C (not); D is discontinued, so not counted: 2 of 3.
    mapping = _mapping(
        ("A", True, True, False),
        ("B", False, True, False),
        ("C", False, False, False),
        ("D", False, True, True),
    )

    above = rules.not_ready_share_within_limit(_conf(not_ready_warn_above=0.6), mapping)
    within = rules.not_ready_share_within_limit(_conf(not_ready_warn_above=0.7), mapping)

    assert not above.passed and above.warn and within.passed
    assert (above.figures["not_ready"], above.figures["on_sale"]) == (2, 3)
    assert above.figures["not_ready_share"] == 0.6667
    assert above.figures["limit"] == "60% (products.not_ready_warn_above)"
    assert "| D " not in above.figures["skus"].text


def test_registry_figures_count_the_skus_per_status() -> None:
    registry = pd.DataFrame({"sku": ["A", "B", "C"], "status": ["active", "pending", "active"]})

    assert registry_figures(registry) == {"skus": 3, "status_active": 2, "status_pending": 1}


def test_mapping_figures_count_every_classification_and_the_open_exceptions() -> None:
    mapping = _mapping(("A", True, True, False), ("B", False, False, False))

    figures = SkuMapping(mapping, {"sku_not_live": 1}).figures()

    assert figures["class_matched"] == 1 and figures["class_pending_in_acs"] == 1
    assert figures["class_renamed"] == 0
    assert figures["ready_for_sale"] == 1 and figures["web_coverage"] == 1.0
    assert figures["open_sku_not_live"] == 1
    assert "| B " in figures["problems_sample"].text
    assert "| A " not in figures["problems_sample"].text


def test_ready_for_sale_keeps_the_ready_skus_and_writes_every_other_to_the_csv() -> None:
    conf = load_settings()
    mapping = _mapping(
        *[(f"W{n:03}", False, True, False) for n in range(60)], ("R", True, False, False)
    )

    result = ready_for_sale_skus(conf, mapping)
    figures = result.figures(conf)

    assert result.ready["stock_code"].tolist() == ["R"]
    assert (figures["ready_for_sale"], figures["not_ready_for_sale"]) == (1, 60)
    with not_ready_csv_path(conf).open(newline="") as handle:
        assert len(list(csv.reader(handle))) == 61  # a header and every SKU not ready
    rows = figures["not_ready_first_50"].text.splitlines()[2:]
    assert [row.split("|")[1].strip() for row in rows] == [f"W{n:03}" for n in range(50)]
    assert isinstance(figures["not_ready_csv"], FileLink)
    assert figures["not_ready_csv"].path == result.csv == not_ready_csv_path(conf)
