"""Issue 17 point 5: an unmatched return is refunded at most once.

The oracle is the Khaos simulator's own credit notes: what Khaos would pay the customer,
whatever the integration believes it sent.
"""

from __future__ import annotations

import json

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.domain.models import CreditMode, CustomerReturn, ReturnItem
from acs_khaos_dagster.store.returns import ReturnsRepository
from acs_khaos_dagster_tests.conftest import IntegrationHarness
from acs_khaos_dagster_tests.test_returns_flow import FLOW, _deliver, _open, _run, _ship, _unit

# Order SO0050004 line 700007 (JKT-0002-BRG-S, one unit) is despatched and invoiced first.
ORDER, LINE, SKU = "SO0050004", 700007, "JKT-0002-BRG-S"


def _credit_notes_for(integration: IntegrationHarness, refs: set[str]) -> list[dict]:
    return [
        n
        for n in integration.sandbox.khaos.truth()["credit_notes"]
        if any(n["associated_ref"].startswith(r) for r in refs)
    ]


def _unmatched_return_delivered(integration: IntegrationHarness) -> None:
    _ship(integration, 50004, [(LINE, 1)])
    # The customer's parcel came without paperwork: ACS books it against no order.
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RH1", "", "", SKU, "UH-RH1")],
    )
    _run(integration, *FLOW)


def _to_stock_reason() -> str:
    return sorted(load_settings().khaos.reasons.returned_to_stock)[0]


def _raise_credit_by_hand(integration: IntegrationHarness) -> None:
    """Finance keys the customer return into Khaos themselves, credit raised at once."""
    with KhaosClient.from_settings(load_settings()) as client:
        client.import_customer_return(
            CustomerReturn(
                associated_ref="HAND-RH1",
                customer_urn="C0004",
                items=(ReturnItem(sku=SKU, quantity=1, return_reason=_to_stock_reason()),),
                credit_mode=CreditMode.AUTO,
            )
        )


def test_an_unmatched_return_resolved_by_hand_is_never_credited_again(
    integration: IntegrationHarness,
) -> None:
    _unmatched_return_delivered(integration)
    [problem] = _open(integration, "return_unmatched")
    _raise_credit_by_hand(integration)
    with integration.store() as store:
        store.exceptions.resolve(problem.row.id, "finance.jo", "credit raised by hand: HAND-RH1")

    # ACS corrects its record afterwards: the unit would now match its order line.
    _deliver(
        "returns_BRAND01_20260303100000.csv",
        [_unit("RH1", ORDER, LINE, SKU, "UH-RH1")],
    )
    result = _run(integration, *FLOW)
    _run(integration, *FLOW)

    assert len(_credit_notes_for(integration, {"HAND-RH1", "RH1"})) == 1
    assert [n["associated_ref"] for n in _credit_notes_for(integration, {"RH1"})] == []
    assert _open(integration, "return_unmatched") == []
    assert integration.metadata(result, "acs_returns")["corrections_not_applied"] == 1
    with integration.store() as store:
        unit = ReturnsRepository(store.db).units().set_index("unique_sku").loc["UH-RH1"]
        assert unit["settled_by_hand_by"] == "finance.jo"
        assert unit["order_number"] is None  # the correction was kept, not applied
        [correction] = ReturnsRepository(store.db).corrections().itertuples()
        assert correction.outcome == "not_applied_settled_by_hand"
        assert json.loads(correction.changes)["order_number"] == ["", ORDER]


def test_a_corrected_acs_row_for_an_open_unmatched_return_is_taken_in_and_credited_once(
    integration: IntegrationHarness,
) -> None:
    _unmatched_return_delivered(integration)
    assert len(_open(integration, "return_unmatched")) == 1

    _deliver(
        "returns_BRAND01_20260303100000.csv",
        [_unit("RH1", ORDER, LINE, SKU, "UH-RH1")],
    )
    result = _run(integration, *FLOW)
    _run(integration, *FLOW)

    assert integration.metadata(result, "acs_returns")["units_corrected"] == 1
    [note] = _credit_notes_for(integration, {"RH1"})
    assert note["associated_ref"] == "RH1-P1"
    assert _open(integration, "return_unmatched") == []
    with integration.store() as store:
        [entry] = store.audit.list(action="return_corrected")
        assert entry.subject == "return:RH1:UH-RH1" and entry.outcome == "applied"


def test_a_return_settled_by_hand_that_later_matches_by_itself_is_not_credited(
    integration: IntegrationHarness,
) -> None:
    # The return is graded before Khaos has the despatch: nothing despatched to match.
    _deliver(
        "returns_BRAND01_20260302100000.csv",
        [_unit("RH2", ORDER, LINE, SKU, "UH-RH2")],
    )
    _run(integration, *FLOW)
    [problem] = _open(integration, "return_unmatched")
    _raise_credit_by_hand(integration)
    with integration.store() as store:
        store.exceptions.resolve(problem.row.id, "finance.jo", "credit raised by hand: HAND-RH1")

    _ship(integration, 50004, [(LINE, 1)])  # now the unit would match its line
    _run(integration, *FLOW)

    assert _credit_notes_for(integration, {"RH2"}) == []
    assert _open(integration, "return_unmatched") == []
