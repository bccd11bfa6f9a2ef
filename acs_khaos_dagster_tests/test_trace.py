"""``acs-khaos trace``: one order's, SKU's or return's journey on one screen.

The tiny brand (seed 7) runs through products, release and despatch in Dagster; ACS ships
SO0050003 in three shipments (see ``test_orders_flow``). The trace is read back from the
store and, for invoice stages, live from the Khaos simulator.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from acs_khaos_dagster.cli_trace import trace_app
from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.trace import trace_order, trace_return, trace_sku
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping", "ready_for_sale_skus")
RELEASE = ("khaos_released_orders", "acs_order_release")
DESPATCH = ("acs_shipments", "khaos_shipment_postings")
ORDER = "SO0050003"
SHIPMENTS = [f"{ORDER}-{n}" for n in (1, 2, 3)]

runner = CliRunner()
cli = trace_app


@pytest.fixture
def shipped(integration: IntegrationHarness) -> IntegrationHarness:
    """Every order released, despatched by ACS and posted to Khaos."""
    integration.run(*PRODUCTS)
    integration.run(*RELEASE)
    integration.sandbox.advance(timedelta(hours=12))
    integration.run(*DESPATCH)
    return integration


def _order_trace(integration: IntegrationHarness):
    with integration.store() as store, KhaosClient.from_settings(load_settings()) as client:
        return trace_order(store, ORDER, client)


def test_the_trace_of_an_order_shows_its_release_shipments_postings_and_invoices(
    shipped: IntegrationHarness,
) -> None:
    trace = _order_trace(shipped)

    assert trace.found
    [release] = trace.section("Released").rows
    assert release[2] and release[4] != "not yet"  # released and acknowledged
    assert trace.section("Sent to ACS").column("state") == ["done"]
    assert trace.section("Shipments (ACS despatch events)").column("shipment") == SHIPMENTS
    postings = trace.section("Postings to Khaos")
    assert postings.column("effect") == ["done"] * 3
    invoice_ids = postings.column("invoice id")
    assert all(invoice_ids) and len(set(invoice_ids)) == 3
    invoices = trace.section("Invoice stage (live from Khaos)")
    by_shipment = dict(zip(invoices.column("shipment"), invoices.column("invoice id"), strict=True))
    assert [by_shipment[s] for s in SHIPMENTS] == invoice_ids


def test_the_trace_command_prints_the_order_on_one_screen_without_customer_details(
    shipped: IntegrationHarness,
) -> None:
    result = runner.invoke(cli, ["order", ORDER], env={"COLUMNS": "250"})

    assert result.exit_code == 0, result.output
    for text in ("Released", "Sent to ACS", *SHIPMENTS, "Invoice stage", "Audit log"):
        assert text in result.output
    [order] = [o for o in shipped.sandbox.khaos.truth()["orders"] if o["order_code"] == ORDER]
    for private in _customer_details(order):
        assert private not in result.output


def _customer_details(order: dict) -> list[str]:
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, str) and len(value) > 3:
            found.append(value)

    walk(order.get("contact", {}))
    walk(order.get("delivery_address", {}))
    return [v for v in found if v not in ("GB", "United Kingdom")]


def test_an_unreachable_or_unasked_khaos_is_said_on_screen_and_the_trace_still_shows(
    integration: IntegrationHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration.run(*PRODUCTS)
    integration.run(*RELEASE)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ACS_KHAOS_KHAOS__BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ACS_KHAOS_HTTP__READ_RETRIES", "0")

    result = runner.invoke(cli, ["order", ORDER], env={"COLUMNS": "250"})

    assert result.exit_code == 0, result.output
    assert "Khaos not reachable" in result.output
    assert "no despatch event received" in result.output
    offline = runner.invoke(cli, ["order", ORDER, "--offline"], env={"COLUMNS": "250"})
    assert offline.exit_code == 0 and "Khaos not asked" in offline.output


def test_the_trace_of_a_sku_shows_its_identity_and_its_push(
    integration: IntegrationHarness,
) -> None:
    result = integration.run(*PRODUCTS, "acs_sku_push")
    pushed = result.output_for_node("acs_sku_push")
    stock_id = int(pushed["stock_id"].iloc[0])

    with integration.store() as store:
        trace = trace_sku(store, str(stock_id))

    assert trace.found
    [identity] = trace.section("Identity").rows
    assert identity[0] == str(stock_id)
    assert set(trace.section("Pushes to ACS").column("state")) == {"done"}


def test_an_unknown_return_is_reported_as_not_known(integration: IntegrationHarness) -> None:
    with integration.store() as store:
        trace = trace_return(store, "RET-NOPE")

    assert not trace.found
    assert trace.section("Units").note == "no unit of this return was received"
    result = runner.invoke(cli, ["return", "RET-NOPE"])
    assert result.exit_code == 1 and "not known to the integration" in result.output
