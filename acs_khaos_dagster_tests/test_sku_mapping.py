"""SKU mapping between the Khaos SKU master and ACS's registry: the rules as specifications."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from acs_khaos_dagster.domain.catalogue import sku_master_frame
from acs_khaos_dagster.domain.models import AcsProduct, AcsProductStatus, Barcode, StockItem
from acs_khaos_dagster.domain.sku_mapping import (
    CLASSIFICATIONS,
    MAPPING_COLUMNS,
    READY_COLUMNS,
    acs_registry_frame,
    classify_skus,
    code_problems,
    code_problems_series,
    content_hash,
    coverage,
    identity_updates,
    mapping_exceptions,
    products_to_push,
    ready_for_sale,
    summary_counts,
)

ACTIVE = AcsProductStatus.ACTIVE
PENDING = AcsProductStatus.PENDING
INACTIVE = AcsProductStatus.INACTIVE


def _item(stock_id: int, code: str, **kw: Any) -> StockItem:
    barcode = kw.pop("barcode", f"50{stock_id:011d}")
    fields: dict[str, Any] = {
        "description": f"Dress {stock_id}",
        "style": "DRS-0001",
        "colour": "Navy",
        "size": "10",
        "cost_price": Decimal("12.50"),
        "sell_price": Decimal("49.00"),
        "publish_on_web": True,
        "scs_parent_id": 1,
        "barcodes": (Barcode(value=barcode),) if barcode else (),
    }
    fields.update(kw)
    return StockItem(stock_id=stock_id, stock_code=code, **fields)


def _acs(item: StockItem, status: AcsProductStatus = ACTIVE, **kw: Any) -> AcsProduct:
    fields: dict[str, Any] = {
        "sku": item.stock_code,
        "barcode": item.barcodes[0].value if item.barcodes else "",
        "style": item.style,
        "colour": item.colour,
        "size": item.size,
        "description": item.description,
        "is_hire": item.is_hire,
        "status": status,
    }
    fields.update(kw)
    return AcsProduct(**fields)


def _row(mapping: pd.DataFrame, stock_id: int) -> pd.Series:
    rows = mapping.loc[mapping["stock_id"] == stock_id]
    assert len(rows) == 1
    return rows.iloc[0]


def _classify(
    items: list[StockItem], registry: list[AcsProduct], identity: dict[int, str] | None = None
) -> pd.DataFrame:
    return classify_skus(sku_master_frame(items), acs_registry_frame(registry), identity)


# --- code rules -------------------------------------------------------------------------


def test_a_plain_garment_code_has_no_problems() -> None:
    assert code_problems("DRS-0001-NVY-10") == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("", "is empty"),
        ("X" * 51, "is 51 characters long, more than 50"),
        (" DRS-1", "leading or trailing whitespace"),
        ("DRS-1 ", "leading or trailing whitespace"),
        ("DRS#1", "Khaos does not allow '#'"),
        ("DRS\t1", "control character"),
        ("DRS/1", "'/' would split the ACS URL path"),
        ("DRS?1", "'?' would start a URL query"),
        ("DRS%201", "percent-encoding"),
        ("DRS-É", "non-ASCII"),
    ],
)
def test_a_code_breaking_a_rule_says_which_rule(code: str, reason: str) -> None:
    problems = code_problems(code)
    assert any(reason in problem for problem in problems), problems


def test_a_code_of_exactly_fifty_characters_is_valid() -> None:
    assert code_problems("X" * 50) == []


def test_a_code_breaking_several_rules_lists_every_reason() -> None:
    assert len(code_problems(" A#B/")) == 3


def test_the_vectorised_rules_give_the_same_reasons_as_the_single_code_form() -> None:
    codes = pd.Series(["OK-1", "A#1", "", "a/b?c"])
    joined = code_problems_series(codes)
    assert [p.split("; ") if p else [] for p in joined] == [code_problems(c) for c in codes]


# --- classification ---------------------------------------------------------------------


def test_a_sku_active_at_acs_with_the_same_attributes_is_matched_and_ready() -> None:
    item = _item(11, "DRS-0001-NVY-10")
    row = _row(_classify([item], [_acs(item)]), 11)
    assert (row.classification, row.ready_for_sale, row.acs_sku) == (
        "matched",
        True,
        "DRS-0001-NVY-10",
    )


def test_a_sku_acs_does_not_hold_is_missing_in_acs_and_not_ready() -> None:
    row = _row(_classify([_item(11, "DRS-0001-NVY-10")], []), 11)
    assert (row.classification, row.acs_status, row.ready_for_sale) == (
        "missing_in_acs",
        "missing",
        False,
    )


def test_a_sku_acs_has_not_finished_setting_up_is_pending_and_not_ready() -> None:
    item = _item(11, "DRS-0001-NVY-10")
    row = _row(_classify([item], [_acs(item, PENDING)]), 11)
    assert (row.classification, row.ready_for_sale) == ("pending_in_acs", False)


def test_a_sku_acs_deactivated_is_inactive_and_not_ready() -> None:
    item = _item(11, "DRS-0001-NVY-10")
    row = _row(_classify([item], [_acs(item, INACTIVE)]), 11)
    assert (row.classification, row.ready_for_sale) == ("inactive_in_acs", False)


def test_a_different_barcode_is_a_mismatch_naming_the_field_and_both_values() -> None:
    item = _item(11, "DRS-0001-NVY-10", barcode="5012345678901")
    row = _row(_classify([item], [_acs(item, barcode="5029999999999")]), 11)
    assert row.classification == "attribute_mismatch"
    assert not row.ready_for_sale
    assert row.mismatch_fields == "barcode"
    assert row.mismatch_detail == "barcode: 5012345678901 (Khaos) ≠ 5029999999999 (ACS)"
    assert (row.barcode, row.acs_barcode) == ("5012345678901", "5029999999999")


@pytest.mark.parametrize(
    ("field", "acs_value"),
    [("style", "DRS-0002"), ("colour", "Black"), ("size", "12"), ("is_hire", True)],
)
def test_each_compared_attribute_that_differs_is_a_mismatch(field: str, acs_value: Any) -> None:
    item = _item(11, "DRS-0001-NVY-10")
    row = _row(_classify([item], [_acs(item, **{field: acs_value})]), 11)
    assert (row.classification, row.mismatch_fields) == ("attribute_mismatch", field)


def test_a_hire_flag_mismatch_reads_as_yes_and_no() -> None:
    item = _item(11, "DRS-0001-NVY-10", is_hire=True)
    row = _row(_classify([item], [_acs(item, is_hire=False)]), 11)
    assert row.mismatch_detail == "is_hire: yes (Khaos) ≠ no (ACS)"


def test_a_description_difference_alone_is_still_matched_and_ready() -> None:
    item = _item(11, "DRS-0001-NVY-10")
    row = _row(_classify([item], [_acs(item, description="Old words")]), 11)
    assert (row.classification, row.ready_for_sale, row.differs_from_acs) == (
        "matched",
        True,
        True,
    )


def test_a_sku_at_acs_that_khaos_does_not_know_is_unknown_to_khaos_without_a_stock_id() -> None:
    stranger = AcsProduct(sku="TOP-9999-BLK-M", status=ACTIVE)
    mapping = _classify([], [stranger])
    assert len(mapping) == 1
    row = mapping.iloc[0]
    assert (row.classification, row.acs_sku, row.ready_for_sale) == (
        "unknown_to_khaos",
        "TOP-9999-BLK-M",
        False,
    )
    assert pd.isna(row.stock_id)


def test_an_scs_parent_is_not_a_sku_and_never_counts_as_missing() -> None:
    parent = _item(1, "DRS-0001", stock_controlled=False, scs_parent_id=None, barcode="")
    child = _item(11, "DRS-0001-NVY-10")
    mapping = _classify([parent, child], [_acs(child)])
    assert mapping["stock_id"].tolist() == [11]
    assert summary_counts(mapping)["missing_in_acs"] == 0


def test_an_invalid_code_is_classified_invalid_with_its_reason() -> None:
    row = _row(_classify([_item(11, "DRS/0001")], []), 11)
    assert row.classification == "invalid_code"
    assert "'/' would split the ACS URL path" in row.code_problems
    assert not row.ready_for_sale


def test_an_invalid_code_takes_precedence_over_discontinued() -> None:
    row = _row(_classify([_item(11, "DRS#1", discontinued=True)], []), 11)
    assert row.classification == "invalid_code"


def test_an_invalid_code_is_never_ready_even_if_acs_holds_it_active() -> None:
    item = _item(11, "DRS#1")
    row = _row(_classify([item], [_acs(item)]), 11)
    assert (row.classification, row.ready_for_sale) == ("invalid_code", False)


def test_a_discontinued_sku_missing_at_acs_is_discontinued_not_missing() -> None:
    row = _row(_classify([_item(11, "DRS-1", discontinued=True)], []), 11)
    assert (row.classification, row.ready_for_sale) == ("discontinued", False)


def test_a_discontinued_sku_still_active_and_matching_at_acs_can_still_sell() -> None:
    item = _item(11, "DRS-1", discontinued=True)
    row = _row(_classify([item], [_acs(item)]), 11)
    assert (row.classification, row.ready_for_sale) == ("discontinued", True)


# --- renames and identity -----------------------------------------------------------------


def test_a_renamed_code_keeps_the_first_registered_acs_sku() -> None:
    first = _item(11, "DRS-0001-NVY-10")
    renamed = _item(11, "DRS-0001-NAVY-10")
    row = _row(_classify([renamed], [_acs(first)], {11: "DRS-0001-NVY-10"}), 11)
    assert (row.classification, row.stock_code, row.acs_sku) == (
        "renamed",
        "DRS-0001-NAVY-10",
        "DRS-0001-NVY-10",
    )


def test_a_renamed_sku_active_and_matching_under_its_acs_sku_is_ready() -> None:
    first = _item(11, "DRS-0001-NVY-10")
    mapping = _classify([_item(11, "DRS-0001-NAVY-10")], [_acs(first)], {11: "DRS-0001-NVY-10"})
    assert _row(mapping, 11).ready_for_sale
    assert ready_for_sale(mapping)["acs_sku"].tolist() == ["DRS-0001-NVY-10"]


def test_a_renamed_sku_whose_acs_sku_is_pending_is_not_ready() -> None:
    first = _item(11, "DRS-0001-NVY-10")
    row = _row(
        _classify([_item(11, "NEW-CODE")], [_acs(first, PENDING)], {11: "DRS-0001-NVY-10"}), 11
    )
    assert (row.classification, row.acs_status, row.ready_for_sale) == (
        "renamed",
        "pending",
        False,
    )


def test_a_rename_pushes_nothing_and_never_registers_the_new_code() -> None:
    first = _item(11, "DRS-0001-NVY-10")
    plan = products_to_push(
        sku_master_frame([_item(11, "DRS-0001-NAVY-10")]),
        [_acs(first)],
        {11: "DRS-0001-NVY-10"},
        {},
    )
    assert plan.pushes == ()


def test_a_renamed_sku_with_a_changed_attribute_is_pushed_under_its_first_acs_sku() -> None:
    first = _item(11, "DRS-0001-NVY-10")
    changed = _item(11, "DRS-0001-NAVY-10", colour="Dark Navy")
    plan = products_to_push(sku_master_frame([changed]), [_acs(first)], {11: "DRS-0001-NVY-10"}, {})
    assert [(p.product.sku, p.product.colour) for p in plan.pushes] == [
        ("DRS-0001-NVY-10", "Dark Navy")
    ]


def test_a_rename_is_not_mistaken_for_a_new_sku_by_the_identity_map() -> None:
    master = sku_master_frame([_item(11, "DRS-0001-NAVY-10")])
    assert identity_updates(master, {11: "DRS-0001-NVY-10"}) == {}


def test_a_stock_id_seen_for_the_first_time_is_recorded_under_its_code() -> None:
    master = sku_master_frame([_item(11, "DRS-1"), _item(12, "DRS-2")])
    assert identity_updates(master, {11: "DRS-1"}) == {12: "DRS-2"}


def test_an_invalid_code_is_never_recorded_in_the_identity_map() -> None:
    master = sku_master_frame([_item(11, "DRS#1")])
    assert identity_updates(master, {}) == {}


def test_a_discontinued_sku_is_recorded_only_if_acs_already_holds_it() -> None:
    held = _item(11, "DRS-1", discontinued=True)
    master = sku_master_frame([held, _item(12, "DRS-2", discontinued=True)])
    assert identity_updates(master, {}, [_acs(held)]) == {11: "DRS-1"}


def test_the_identity_map_can_be_given_as_a_frame() -> None:
    identity = pd.DataFrame({"stock_id": [11], "acs_sku": ["DRS-0001-NVY-10"]})
    first = _item(11, "DRS-0001-NVY-10")
    row = _row(_classify([_item(11, "NEW-CODE")], [_acs(first)], identity), 11)  # type: ignore[arg-type]
    assert row.acs_sku == "DRS-0001-NVY-10"


def test_a_new_stock_id_reusing_a_renamed_skus_old_code_is_invalid_and_not_pushed() -> None:
    first = _item(11, "DRS-1")
    master = sku_master_frame([_item(11, "DRS-1-NEW"), _item(12, "DRS-1")])
    mapping = classify_skus(master, [_acs(first)], {11: "DRS-1"})
    row = _row(mapping, 12)
    assert row.classification == "invalid_code"
    assert "registered to StockID 11" in row.code_problems
    plan = products_to_push(master, [_acs(first)], {11: "DRS-1"}, {})
    assert plan.pushes == ()
    assert [i.stock_id for i in plan.invalid] == [12]


def test_two_new_codes_differing_only_in_case_are_both_invalid() -> None:
    mapping = _classify([_item(11, "drs-1"), _item(12, "DRS-1")], [])
    assert mapping["classification"].tolist() == ["invalid_code", "invalid_code"]


def test_a_stock_id_khaos_no_longer_lists_keeps_its_acs_sku() -> None:
    row = _row(_classify([_item(12, "DRS-1")], [], {11: "DRS-1"}), 12)
    assert "registered to StockID 11" in row.code_problems


# --- pushes -------------------------------------------------------------------------------


def test_a_sku_missing_at_acs_is_pushed_with_its_attributes_and_a_content_hash() -> None:
    item = _item(11, "DRS-1", is_hire=True)
    plan = products_to_push(sku_master_frame([item]), [], {}, {})
    (push,) = plan.pushes
    assert push.product == AcsProduct(
        sku="DRS-1",
        barcode=item.barcodes[0].value,
        style="DRS-0001",
        colour="Navy",
        size="10",
        description="Dress 11",
        is_hire=True,
    )
    assert (push.stock_id, push.reason, push.content_hash) == (
        11,
        "new",
        content_hash(push.product),
    )


def test_the_content_hash_is_stable_and_ignores_the_acs_status() -> None:
    product = AcsProduct(sku="DRS-1", barcode="501", status=PENDING)
    assert content_hash(product) == content_hash(product.model_copy(update={"status": ACTIVE}))
    assert len(content_hash(product)) == 64


def test_a_sku_already_pushed_with_the_same_content_is_not_pushed_again() -> None:
    master = sku_master_frame([_item(11, "DRS-1")])
    first = products_to_push(master, [], {}, {})
    hashes = {p.stock_id: p.content_hash for p in first.pushes}
    again = products_to_push(master, [], {11: "DRS-1"}, hashes)
    assert again.pushes == ()


def test_a_changed_attribute_is_pushed_again_with_a_new_hash() -> None:
    before = _item(11, "DRS-1")
    hashes = {
        p.stock_id: p.content_hash
        for p in products_to_push(sku_master_frame([before]), [], {}, {}).pushes
    }
    after = _item(11, "DRS-1", size="12")
    plan = products_to_push(
        sku_master_frame([after]), [_acs(before, PENDING)], {11: "DRS-1"}, hashes
    )
    (push,) = plan.pushes
    assert (push.product.size, push.reason) == ("12", "changed")
    assert push.content_hash != hashes[11]


def test_a_sku_acs_already_holds_identically_is_not_pushed_even_without_a_stored_hash() -> None:
    item = _item(11, "DRS-1")
    assert products_to_push(sku_master_frame([item]), [_acs(item)], {}, {}).pushes == ()


def test_a_changed_description_alone_is_pushed() -> None:
    item = _item(11, "DRS-1")
    plan = products_to_push(sku_master_frame([item]), [_acs(item, description="Old")], {}, {})
    assert [p.product.description for p in plan.pushes] == ["Dress 11"]


def test_a_discontinued_sku_is_never_pushed() -> None:
    plan = products_to_push(sku_master_frame([_item(11, "DRS-1", discontinued=True)]), [], {}, {})
    assert plan.pushes == ()


def test_an_invalid_code_is_never_pushed_and_comes_back_with_its_reason() -> None:
    master = sku_master_frame([_item(11, "DRS#1"), _item(12, "DRS-2")])
    plan = products_to_push(master, [], {}, {})
    assert [p.product.sku for p in plan.pushes] == ["DRS-2"]
    (refused,) = plan.invalid
    assert (refused.stock_id, refused.acs_sku) == (11, "DRS#1")
    assert refused.reasons == ("contains '#': Khaos does not allow '#' in a stock code",)


def test_a_push_plan_records_the_new_stock_ids_it_registers() -> None:
    plan = products_to_push(sku_master_frame([_item(11, "DRS-1"), _item(12, "BAD#")]), [], {}, {})
    assert plan.identity_updates == {11: "DRS-1"}


def test_a_pending_sku_becomes_ready_once_active_without_another_push() -> None:
    item = _item(11, "DRS-1")
    master = sku_master_frame([item])
    first = products_to_push(master, [], {}, {})
    hashes = {p.stock_id: p.content_hash for p in first.pushes}
    identity = first.identity_updates

    pending = [_acs(item, PENDING)]
    assert not _row(classify_skus(master, pending, identity), 11).ready_for_sale
    assert products_to_push(master, pending, identity, hashes).pushes == ()

    active = [_acs(item, ACTIVE)]
    assert _row(classify_skus(master, active, identity), 11).ready_for_sale
    assert products_to_push(master, active, identity, hashes).pushes == ()


def test_pushes_never_share_an_acs_sku() -> None:
    items = [_item(11, "DRS-1"), _item(12, "drs-1"), _item(13, "DRS-1-NEW"), _item(14, "DRS-2")]
    plan = products_to_push(sku_master_frame(items), [], {13: "DRS-1"}, {})
    skus = [p.product.sku.casefold() for p in plan.pushes]
    assert len(skus) == len(set(skus))


# --- readiness, coverage, counts --------------------------------------------------------


def test_ready_for_sale_lists_only_active_matching_skus_with_what_flows_need() -> None:
    good, pending = _item(11, "DRS-1", cost_price=Decimal("9.99")), _item(12, "DRS-2")
    ready = ready_for_sale(_classify([good, pending], [_acs(good), _acs(pending, PENDING)]))
    assert list(ready.columns) == READY_COLUMNS
    assert ready.to_dict("records") == [
        {
            "stock_id": 11,
            "stock_code": "DRS-1",
            "acs_sku": "DRS-1",
            "is_hire": False,
            "cost_price": 9.99,
        }
    ]


def test_coverage_is_the_share_of_web_published_skus_ready_for_sale() -> None:
    a, b = _item(11, "DRS-1"), _item(12, "DRS-2")
    hidden = _item(13, "DRS-3", publish_on_web=False)
    mapping = _classify([a, b, hidden], [_acs(a), _acs(b, PENDING), _acs(hidden)])
    assert coverage(mapping) == 0.5


def test_coverage_is_complete_when_nothing_is_published() -> None:
    assert coverage(_classify([_item(11, "DRS-1", publish_on_web=False)], [])) == 1.0


def test_summary_counts_name_every_classification() -> None:
    item = _item(11, "DRS-1")
    counts = summary_counts(_classify([item, _item(12, "DRS-2")], [_acs(item)]))
    assert list(counts) == list(CLASSIFICATIONS)
    assert (counts["matched"], counts["missing_in_acs"], counts["renamed"]) == (1, 1, 0)


def test_the_mapping_has_the_documented_columns() -> None:
    assert list(_classify([_item(11, "DRS-1")], []).columns) == MAPPING_COLUMNS


# --- exceptions -------------------------------------------------------------------------


def _types(mapping: pd.DataFrame) -> list[tuple[str, str]]:
    return [(e.type, e.entity_ref) for e in mapping_exceptions(mapping)]


def test_a_missing_unpublished_sku_raises_sku_missing_in_acs_only() -> None:
    mapping = _classify([_item(11, "DRS-1", publish_on_web=False)], [])
    assert _types(mapping) == [("sku_missing_in_acs", "11")]


def test_a_published_sku_acs_has_not_activated_raises_sku_not_live() -> None:
    item = _item(11, "DRS-1")
    (spec,) = mapping_exceptions(_classify([item], [_acs(item, PENDING)]))
    assert (spec.type, spec.entity_ref) == ("sku_not_live", "11")
    assert "published on the web" in spec.message


def test_a_mismatch_exception_carries_the_field_and_both_values() -> None:
    item = _item(11, "DRS-1", publish_on_web=False, barcode="5011111111111")
    (spec,) = mapping_exceptions(_classify([item], [_acs(item, barcode="5022222222222")]))
    assert spec.type == "sku_mismatch"
    assert (spec.details["fields"], spec.details["khaos"], spec.details["acs"]) == (
        ["barcode"],
        {"barcode": "5011111111111"},
        {"barcode": "5022222222222"},
    )


def test_an_invalid_code_raises_invalid_sku_code_with_the_reason_and_no_missing() -> None:
    mapping = _classify([_item(11, "DRS#1", publish_on_web=False)], [])
    (spec,) = mapping_exceptions(mapping)
    assert spec.type == "invalid_sku_code"
    assert spec.details["reasons"] == ["contains '#': Khaos does not allow '#' in a stock code"]


def test_a_rename_raises_sku_renamed_keyed_by_stock_id() -> None:
    first = _item(11, "DRS-1")
    mapping = _classify([_item(11, "DRS-1-NEW")], [_acs(first)], {11: "DRS-1"})
    (spec,) = mapping_exceptions(mapping)
    assert (spec.type, spec.entity_ref) == ("sku_renamed", "11")
    assert "'DRS-1'" in spec.message and "'DRS-1-NEW'" in spec.message


def test_a_discontinued_unpublished_sku_raises_nothing() -> None:
    assert (
        mapping_exceptions(
            _classify([_item(11, "DRS-1", discontinued=True, publish_on_web=False)], [])
        )
        == []
    )


def test_matched_skus_and_skus_unknown_to_khaos_raise_nothing() -> None:
    item = _item(11, "DRS-1")
    mapping = _classify([item], [_acs(item), AcsProduct(sku="X-1", status=ACTIVE)])
    assert mapping_exceptions(mapping) == []


def test_exceptions_come_in_a_fixed_order_by_type_then_stock_id() -> None:
    items = [
        _item(30, "C-1"),
        _item(20, "B#1"),
        _item(10, "A-1"),
    ]
    assert _types(_classify(items, [])) == [
        ("invalid_sku_code", "20"),
        ("sku_missing_in_acs", "10"),
        ("sku_missing_in_acs", "30"),
        ("sku_not_live", "10"),
        ("sku_not_live", "20"),
        ("sku_not_live", "30"),
    ]


# --- scale --------------------------------------------------------------------------------


def test_fifty_thousand_skus_classify() -> None:
    n = 50_000
    ids = range(10_001, 10_001 + n)
    master = pd.DataFrame(
        {
            "stock_id": list(ids),
            "stock_code": [f"DRS-{i:06d}" for i in ids],
            "description": "Dress",
            "style": "DRS",
            "colour": "Navy",
            "size": "10",
            "barcode": [f"50{i:011d}" for i in ids],
            "cost_price": 10.0,
            "sell_price": 40.0,
            "is_hire": False,
            "discontinued": False,
            "publish_on_web": True,
            "stock_controlled": True,
            "scs_parent_id": pd.array([1] * n, dtype="Int64"),
        }
    )
    registry = pd.DataFrame(
        {
            "sku": master["stock_code"],
            "barcode": master["barcode"],
            "style": "DRS",
            "colour": "Navy",
            "size": "10",
            "description": "Dress",
            "is_hire": False,
            "status": ["pending" if i % 100 == 0 else "active" for i in ids],
        }
    ).iloc[:-10]
    master.loc[5, "stock_code"] = "BAD#CODE"
    identity = dict(
        zip(master["stock_id"].iloc[:40_000], registry["sku"].iloc[:40_000], strict=True)
    )
    mapping = classify_skus(master, registry, identity)
    counts = summary_counts(mapping)
    assert len(mapping) == n
    assert counts["missing_in_acs"] == 10
    assert counts["pending_in_acs"] == 500 - 1
    assert counts["renamed"] == 1
