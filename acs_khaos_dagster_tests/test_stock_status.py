"""The ACS status key and the default stock policy."""

from __future__ import annotations

import pytest

from acs_khaos_dagster.domain.layout import KhaosSites
from acs_khaos_dagster.domain.stock_status import (
    CONFLICT_STATUS,
    DEFAULT_STATUS_POLICY,
    StatusPolicy,
    StatusRule,
    StockBucket,
    classify_statuses,
    normalise_status,
    site_id_for,
    site_role_for,
)


@pytest.mark.parametrize(
    "spelling",
    [
        "In Warehouse - Ready For Customer",
        "in warehouse – ready for customer",
        "IN WAREHOUSE-READY FOR CUSTOMER",
        "  In  Warehouse —Ready\tFor Customer ",
        "In Warehouse \u2011 Ready For Customer",
        "In Warehouse \u2212 Ready For Customer",
        "In\u00a0Warehouse - Ready For Customer",
    ],
)
def test_every_spelling_of_ready_gives_one_key(spelling: str) -> None:
    assert normalise_status(spelling) == "in warehouse - ready for customer"


def test_hyphenated_words_normalise_like_their_dash_variants() -> None:
    assert normalise_status("Ex-Hired") == normalise_status("EX – HIRED")
    assert normalise_status("Post-Rental Inspection") == normalise_status("post—rental inspection")


@pytest.mark.parametrize(
    ("status", "bucket", "sale_site", "hire_site"),
    [
        ("In Warehouse - Ready For Customer", StockBucket.SELLABLE, "selling", "hire_stock"),
        ("Allocated", StockBucket.ALLOCATED, "selling", "hire_stock"),
        ("Picking", StockBucket.ALLOCATED, "selling", "hire_stock"),
        ("Packed", StockBucket.ALLOCATED, "selling", "hire_stock"),
        ("Receipted - No Location", StockBucket.NON_SELLABLE, "inspection", "inspection"),
        ("Awaiting Inspection", StockBucket.NON_SELLABLE, "inspection", "inspection"),
        ("Post-Rental Inspection", StockBucket.NON_SELLABLE, "inspection", "inspection"),
        ("In Warehouse Processing", StockBucket.NON_SELLABLE, "inspection", "inspection"),
        ("Cleaning", StockBucket.NON_SELLABLE, "refurbishment", "refurbishment"),
        ("In Refurbishment", StockBucket.NON_SELLABLE, "refurbishment", "refurbishment"),
        ("In Repair", StockBucket.NON_SELLABLE, "refurbishment", "refurbishment"),
        ("Quarantine", StockBucket.NON_SELLABLE, "quarantine", "quarantine"),
        ("With Customer", StockBucket.ON_HIRE, "on_hire", "on_hire"),
        ("Ex-Hired", StockBucket.RETIRED, None, None),
    ],
)
def test_default_policy_places_each_contract_status(
    status: str, bucket: StockBucket, sale_site: str | None, hire_site: str | None
) -> None:
    rule = DEFAULT_STATUS_POLICY.rule_for(status)
    assert rule.bucket == bucket
    assert site_role_for(rule, is_hire=False) == sale_site
    assert site_role_for(rule, is_hire=True) == hire_site


def test_unknown_status_is_never_sellable_and_on_no_site() -> None:
    rule = DEFAULT_STATUS_POLICY.rule_for("Lost In Transit")
    assert rule.bucket == StockBucket.UNKNOWN
    assert site_id_for(rule, is_hire=False, sites=KhaosSites()) is None


def test_conflict_marker_is_unknown() -> None:
    assert DEFAULT_STATUS_POLICY.bucket_for(CONFLICT_STATUS) == StockBucket.UNKNOWN


def test_site_ids_follow_the_configured_sites() -> None:
    sites = KhaosSites(
        selling=11, hire_stock=12, on_hire=13, inspection=14, refurbishment=15, quarantine=16
    )
    ready = DEFAULT_STATUS_POLICY.rule_for("In Warehouse - Ready For Customer")
    assert site_id_for(ready, is_hire=False, sites=sites) == 11
    assert site_id_for(ready, is_hire=True, sites=sites) == 12


def test_classify_statuses_maps_each_distinct_raw_value() -> None:
    result = classify_statuses(["Allocated", "ALLOCATED", "Lost In Transit", "Allocated"])
    assert result == {
        "Allocated": ("allocated", StockBucket.ALLOCATED),
        "ALLOCATED": ("allocated", StockBucket.ALLOCATED),
        "Lost In Transit": ("lost in transit", StockBucket.UNKNOWN),
    }


def test_policy_override_keys_accept_any_spelling() -> None:
    policy = StatusPolicy(rules={"IN TRANSIT–TO STORE": StatusRule(bucket=StockBucket.IGNORE)})
    assert policy.bucket_for("in transit - to store") == StockBucket.IGNORE
    assert policy.bucket_for("In Warehouse - Ready For Customer") == StockBucket.UNKNOWN


def test_policy_loads_from_settings_shaped_data() -> None:
    policy = StatusPolicy.model_validate(
        {"rules": {"Ready": {"bucket": "sellable", "site_role": "selling"}}}
    )
    assert policy.rule_for("READY").site_role == "selling"


def test_policy_refuses_a_sellable_status_without_a_site() -> None:
    with pytest.raises(ValueError, match="names no site"):
        StatusPolicy(rules={"Ready": StatusRule(bucket=StockBucket.SELLABLE)})
