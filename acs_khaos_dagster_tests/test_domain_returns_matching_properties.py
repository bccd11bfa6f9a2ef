"""Properties of returns matching (``domain/returns/matching.py``): a returned unit is
credited against its order line only while the line has despatched units left, whatever
order the units arrive in, however often a file repeats them, and across runs.

One fixed order (three lines) and generated returns files; the oracle is the despatched
quantity per line the test sets and the units it generates, counted by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from acs_khaos_dagster.domain.models import OrderLine, SalesOrder
from acs_khaos_dagster.domain.returns import match_returns

T0 = datetime(2026, 3, 10, 9, tzinfo=UTC)


def line(item: int, stock_id: int, code: str, quantity: int, net: str) -> OrderLine:
    return OrderLine(
        order_item_id=item, stock_id=stock_id, stock_code=code, quantity=quantity,
        unit_net=Decimal(net),
    )  # fmt: skip


ORDER = SalesOrder(
    order_id=1,
    order_code="SO1",
    order_date=T0 - timedelta(days=10),
    site_id=1,
    customer_urn="C1",
    lines=(
        line(1, 11, "TOP-S", 3, "20"),
        line(2, 12, "SKIRT-M", 2, "30"),
        line(3, 13, "TOP-S-OLD", 1, "5"),
    ),
)
ORDERS = {"SO1": ORDER}
IDENTITY = {11: "TOP-S", 12: "SKIRT-M", 13: "TOP-S-OLD"}
SKU_OF_LINE = {1: "TOP-S", 2: "SKIRT-M", 3: "TOP-S-OLD"}


def unit(ref: str, serial: str, line: int | str, minutes: int, sku: str | None = None) -> dict:
    return {
        "return_ref": ref,
        "unique_sku": serial,
        "order_number": "SO1",
        "line_item_id": str(line),
        "sku": sku if sku is not None else SKU_OF_LINE.get(int(line) if str(line) else 0, ""),
        "received_at": T0 + timedelta(minutes=minutes),
        "grade": "A",
    }


units = st.lists(
    st.tuples(
        st.sampled_from(["R1", "R2", "R3"]),
        st.integers(min_value=1, max_value=9),  # unit serial
        st.sampled_from([1, 2, 3]),
        st.integers(min_value=0, max_value=500),
    ),
    max_size=14,
)
despatched_per_line = st.fixed_dictionaries(
    {1: st.integers(0, 3), 2: st.integers(0, 2), 3: st.integers(0, 1)}
)


def frame_of(generated: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    rows = [unit(ref, f"U{serial}", line, minutes) for ref, serial, line, minutes in generated]
    return pd.DataFrame(rows)


def first_copies(generated: list[tuple[str, int, int, int]]) -> dict[tuple[str, str], tuple]:
    out: dict[tuple[str, str], tuple] = {}
    for ref, serial, line, minutes in generated:
        out.setdefault((ref, f"U{serial}"), (line, minutes))
    return out


def run(generated, despatched, before=None):
    limits = {("SO1", line): n for line, n in despatched.items()}
    return match_returns(frame_of(generated), ORDERS, IDENTITY, limits, matched_before=before or {})


@settings(max_examples=150, deadline=None)
@given(units, despatched_per_line)
def test_no_line_is_credited_more_units_than_were_despatched_on_it(generated, despatched) -> None:
    matched, _ = run(generated, despatched)
    per_line = matched.groupby("order_item_id").size().to_dict() if len(matched) else {}
    for line, limit in despatched.items():
        assert per_line.get(line, 0) <= limit


@settings(max_examples=150, deadline=None)
@given(units, despatched_per_line)
def test_every_distinct_unit_is_either_matched_or_a_problem_exactly_once(
    generated, despatched
) -> None:
    matched, problems = run(generated, despatched)
    keys = list(zip(matched["return_ref"], matched["unique_sku"], strict=True))
    keys += [(p.return_ref, p.unique_sku) for p in problems]
    assert sorted(keys) == sorted(first_copies(generated))


@settings(max_examples=150, deadline=None)
@given(units, despatched_per_line)
def test_a_line_accepts_as_many_units_as_it_can_up_to_what_was_despatched(
    generated, despatched
) -> None:
    matched, _ = run(generated, despatched)
    returned: dict[int, int] = {}
    for line, _minutes in first_copies(generated).values():
        returned[line] = returned.get(line, 0) + 1
    per_line = matched.groupby("order_item_id").size().to_dict() if len(matched) else {}
    for line, limit in despatched.items():
        assert per_line.get(line, 0) == min(limit, returned.get(line, 0))


@settings(max_examples=150, deadline=None)
@given(units, despatched_per_line)
def test_over_the_limit_the_earliest_received_units_are_the_ones_accepted(
    generated, despatched
) -> None:
    matched, _ = run(generated, despatched)
    copies = first_copies(generated)
    accepted = {(r, u) for r, u in zip(matched["return_ref"], matched["unique_sku"], strict=True)}
    for line in despatched:
        on_line = sorted(
            ((copies[k][1], k) for k in copies if copies[k][0] == line),
        )
        taken = [k for _, k in on_line if k in accepted]
        assert taken == [k for _, k in on_line][: len(taken)]


@settings(max_examples=150, deadline=None)
@given(units, despatched_per_line, st.randoms(use_true_random=False))
def test_the_matches_do_not_depend_on_the_order_units_arrive_in(generated, despatched, rnd) -> None:
    # De-duplicate first: which copy of a repeated unit comes first is the file's order.
    seen: set[tuple[str, int]] = set()
    unique = []
    for ref, serial, line, minutes in generated:
        if (ref, serial) not in seen:
            seen.add((ref, serial))
            unique.append((ref, serial, line, minutes))
    shuffled = list(unique)
    rnd.shuffle(shuffled)
    first, _ = run(unique, despatched)
    second, _ = run(shuffled, despatched)
    key = ["return_ref", "unique_sku"]
    assert set(map(tuple, first[key].values.tolist())) == set(
        map(tuple, second[key].values.tolist())
    )


@settings(max_examples=100, deadline=None)
@given(units, despatched_per_line)
def test_units_matched_in_an_earlier_run_use_up_the_line_once(generated, despatched) -> None:
    # Run once, then again with the same file and the first run's matches as history: the
    # same units match again (they are this run's, not extra ones).
    matched, _ = run(generated, despatched)
    before = {
        (r, u): ("SO1", int(line))
        for r, u, line in zip(
            matched["return_ref"], matched["unique_sku"], matched["order_item_id"], strict=True
        )
    }
    again, _ = run(generated, despatched, before)
    key = ["return_ref", "unique_sku"]
    assert again[key].values.tolist() == matched[key].values.tolist()


def test_a_unit_matched_in_an_earlier_file_counts_against_the_line() -> None:
    before = {("R0", "U0"): ("SO1", 2), ("R0", "U9"): ("SO1", 2)}
    matched, problems = match_returns(
        pd.DataFrame([unit("R1", "U1", 2, 0)]), ORDERS, IDENTITY, {("SO1", 2): 2},
        matched_before=before,
    )  # fmt: skip
    assert matched.empty
    assert "has 2 unit(s) despatched and 2 already returned" in problems[0].message


def test_a_unit_without_a_line_id_matches_only_a_sku_on_exactly_one_line() -> None:
    two_lines = ORDER.model_copy(
        update={"lines": (*ORDER.lines, ORDER.lines[0].model_copy(update={"order_item_id": 4}))}
    )
    returned = pd.DataFrame(
        [unit("R1", "U1", "", 0, sku="TOP-S"), unit("R1", "U2", "", 0, sku="SKIRT-M")]
    )
    matched, problems = match_returns(
        returned, {"SO1": two_lines}, IDENTITY, {("SO1", 1): 3, ("SO1", 2): 2, ("SO1", 4): 3}
    )  # fmt: skip
    assert matched["unique_sku"].tolist() == ["U2"]
    assert matched["line_item_id"].tolist() == ["2"]
    assert problems[0].message.endswith("SKU TOP-S is on several lines of order SO1.")


def test_a_line_id_that_is_not_a_number_is_unmatched_not_guessed() -> None:
    matched, problems = match_returns(
        pd.DataFrame([unit("R1", "U1", "1a", 0, sku="TOP-S")]), ORDERS, IDENTITY, {("SO1", 1): 3}
    )
    assert matched.empty and problems[0].message.endswith("order SO1 has no line 1a.")


def test_a_matched_unit_carries_the_order_lines_price_and_customer() -> None:
    matched, _ = match_returns(
        pd.DataFrame([unit("R1", "U1", 2, 0)]), ORDERS, IDENTITY, {("SO1", 2): 1}
    )
    [row] = matched.to_dict("records")
    assert (row["stock_id"], row["stock_code"], row["unit_net"]) == (12, "SKIRT-M", Decimal("30"))
    assert row["customer_urn"] == "C1" and row["is_hire"] is False
