"""The two-brand test's oracles (``brand_isolation``) catch what they are for: an effect
missing from its own brand's systems, one in the other brand's, a call refused for its
credentials, a secret in a file, compressed or not. Small recorded worlds, no Dagster."""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from acs_khaos_dagster.effects import EffectKind
from acs_khaos_dagster_tests.brand_isolation import Effect, isolation_problems, secrets_in_files


def _world(account: str, order: str, parcel: str, sku: str) -> tuple[dict[str, Any], list]:
    """One brand's simulators' truth after one effect of each kind, and those effects."""
    leg = {
        "site_id": 1,
        "group_ref": f"SNAP-{sku}",
        "lines": [
            {"stock_id": 10002, "reason_code": "VARIANCE", "adjust_to": None, "adjust_by": -1}
        ],
    }
    move_legs = [{**leg, "group_ref": "SNAP-M001-S2", "site_id": 2}]
    ret = {
        "associated_ref": "ACSR1-P1",
        "customer_urn": f"C-{account}",
        "items": [{"sku": sku, "quantity": 1}],
    }
    truth = {
        "acs": {
            "account_code": account,
            "products": [{"sku": sku, "puts": 1}, {"sku": "NEVER-PUT", "puts": 0}],
            "orders": [{"order_number": order, "body": {"AccountCode": account}, "puts": 2}],
            "auth_refusals": [],
        },
        "khaos": {
            "invoice_moves": [{"invoice_ids": [80001], "stage_id": 12}],
            "despatch_calls": [
                {
                    "external_ref": f"{order}-1",
                    "order_id": 50001,
                    "lines": [[700001, 1]],
                    "packages": [{"consignment_ref": parcel}],
                }
            ],
            "adjustment_groups": [leg, *move_legs],
            "customer_returns": [ret],
            "auth_refusals": [],
        },
    }
    despatch = {
        "order_id": 50001,
        "external_ref": f"{order}-1",
        "lines": [[700001, 1]],
        "packages": [{"consignment_ref": parcel}],
    }
    effects = [
        Effect(EffectKind.ACS_PRODUCT, "done", {"sku": sku}),
        Effect(EffectKind.ACS_ORDER, "done", {"order_number": order}),
        Effect(EffectKind.KHAOS_MOVE_INVOICES, "done", {"invoice_ids": [80001], "stage_id": 12}),
        Effect(EffectKind.KHAOS_DESPATCH, "done", despatch),
        Effect(EffectKind.KHAOS_STOCK_ADJUSTMENT, "done", leg),
        Effect(EffectKind.KHAOS_STOCK_MOVE, "done", {"ref": "SNAP-M001", "legs": move_legs}),
        Effect(EffectKind.KHAOS_CUSTOMER_RETURN, "done", ret),
    ]
    return truth, effects


@pytest.fixture
def worlds() -> dict[str, tuple[dict[str, Any], list]]:
    # The same order numbers, invoice ids and refs in both brands, as generated worlds have.
    return {
        "acme": _world("ACME01", "SO1", "DPD-ACME", "JKT-1"),
        "bravo": _world("BRAVO01", "SO1", "DPD-BRAVO", "DRS-1"),
    }


def _problems(worlds: dict) -> list[str]:
    (a_truth, a_effects), (b_truth, b_effects) = worlds["acme"], worlds["bravo"]
    return isolation_problems("acme", a_truth, a_effects, b_truth, b_effects) + (
        isolation_problems("bravo", b_truth, b_effects, a_truth, a_effects)
    )


def test_two_brands_each_in_their_own_systems_have_no_problem(worlds: dict) -> None:
    assert _problems(worlds) == []


# Where each kind of effect lands in the systems' records (``_world``).
LANDS_IN = {
    EffectKind.ACS_PRODUCT: ("acs", "products", 0),
    EffectKind.ACS_ORDER: ("acs", "orders", 0),
    EffectKind.KHAOS_MOVE_INVOICES: ("khaos", "invoice_moves", 0),
    EffectKind.KHAOS_DESPATCH: ("khaos", "despatch_calls", 0),
    EffectKind.KHAOS_STOCK_ADJUSTMENT: ("khaos", "adjustment_groups", 0),
    EffectKind.KHAOS_STOCK_MOVE: ("khaos", "adjustment_groups", 1),
    EffectKind.KHAOS_CUSTOMER_RETURN: ("khaos", "customer_returns", 0),
}


@pytest.mark.parametrize("kind", list(EffectKind))
def test_an_effect_of_one_brand_that_reached_the_others_systems_is_named(
    worlds: dict, kind: EffectKind
) -> None:
    system, records, index = LANDS_IN[kind]
    strayed = copy.deepcopy(worlds["acme"][0][system][records][index])
    worlds["bravo"][0][system][records].append(strayed)
    assert any(p.startswith("bravo: its") for p in _problems(worlds)), kind


@pytest.mark.parametrize("kind", list(EffectKind))
def test_a_done_effect_missing_from_its_own_brands_systems_is_named(
    worlds: dict, kind: EffectKind
) -> None:
    system, records, index = LANDS_IN[kind]
    del worlds["acme"][0][system][records][index]
    assert any(p.startswith("acme: done, not in its own") for p in _problems(worlds)), kind


def test_a_call_refused_for_its_credentials_is_named(worlds: dict) -> None:
    worlds["bravo"][0]["khaos"]["auth_refusals"].append({"operation": "ImportDespatch"})
    assert _problems(worlds) == [
        "bravo: its khaos refused calls for their credentials: [{'operation': 'ImportDespatch'}]"
    ]


def test_a_secret_is_found_in_plain_parquet_and_zipped_files_but_not_in_skipped_ones(
    tmp_path: Path,
) -> None:
    secret = "acme-acs-key-0123456789abcdef"
    data, settings = tmp_path / "data", tmp_path / "settings"
    (data / "deep").mkdir(parents=True)
    settings.mkdir()
    (data / "deep" / "log.out").write_text(f"calling with {secret}\n")
    # Compressed, without column statistics (which hold values as they are): the secret is
    # not in the file's bytes.
    pd.DataFrame({"note": [secret * 3] * 50}).to_parquet(
        data / "t.parquet", compression="gzip", write_statistics=False
    )
    with zipfile.ZipFile(data / "pack.xlsx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", f"<t>{secret}</t>" * 20)
    (data / "clean.csv").write_text("nothing here\n")
    (settings / "acme.env").write_text(f"ACS_KHAOS_ACS__SUBSCRIPTION_KEY={secret}\n")
    assert secret.encode() not in (data / "t.parquet").read_bytes()
    found, read = secrets_in_files([tmp_path], [secret, "never-written"], skip=[settings])
    assert {Path(p).name for p in found} == {"log.out", "t.parquet", "pack.xlsx"}
    assert read == 4
