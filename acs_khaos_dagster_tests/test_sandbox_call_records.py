"""What the simulators record of calls that leave no other trace: a call refused for its
credentials, and a ``MoveInvoices`` whose stage a later step replaced. Tests of several
brands read them to show no call went to another brand's systems (``test_two_brands``).
"""

from __future__ import annotations

import pytest

from acs_khaos_dagster.connectors.errors import PermanentError
from acs_khaos_dagster_tests import acs_fixtures, khaos_fixtures
from acs_khaos_dagster_tests.acs_fixtures import AcsHarness
from acs_khaos_dagster_tests.khaos_fixtures import INV_A, KhaosHarness

acs_server, acs = acs_fixtures.acs_server_fixture, acs_fixtures.acs_fixture
khaos_server, khaos = khaos_fixtures.khaos_server, khaos_fixtures.khaos


def test_acs_records_each_call_refused_for_its_subscription_key(acs: AcsHarness) -> None:
    assert acs.api("GET", "/products").status_code == 200
    assert acs.sim.truth()["auth_refusals"] == []
    assert acs.api("GET", "/products", key="another-brands-key").status_code == 401
    assert acs.http.get("/api/partner/v1/despatches").status_code == 401  # no key at all
    refused = acs.sim.truth()["auth_refusals"]
    assert [(r["method"], r["path"]) for r in refused] == [
        ("GET", "/api/partner/v1/products"),
        ("GET", "/api/partner/v1/despatches"),
    ]


def test_khaos_records_each_call_refused_for_its_credentials(khaos: KhaosHarness) -> None:
    khaos.client().get_sites()
    assert khaos.truth()["auth_refusals"] == []
    with pytest.raises(PermanentError):
        khaos.client(password="another-brands-password").get_sites()
    assert [r["operation"] for r in khaos.truth()["auth_refusals"]] == ["GetSiteList"]


def test_khaos_records_each_invoice_move_as_asked_though_a_later_stage_replaces_it(
    khaos: KhaosHarness,
) -> None:
    khaos.client().move_invoices([INV_A, 999], 12)
    khaos.client().move_invoices([INV_A], 10)
    truth = khaos.truth()
    assert [(m["invoice_ids"], m["stage_id"], m["moved"]) for m in truth["invoice_moves"]] == [
        ([INV_A, 999], 12, [INV_A]),
        ([INV_A], 10, [INV_A]),
    ]
    assert next(i for i in truth["invoices"] if i["invoice_id"] == INV_A)["stage"] == 10
