"""The team running several brands: ``acs-khaos overview`` and ``acs-khaos --brand CODE``.

Each brand is a ``<code>.yaml`` (and ``<code>.env``) in a brands folder, as the brand's
code server reads them (deploy/README.md "Several brands").
"""

from __future__ import annotations

import configparser
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from acs_khaos_dagster.brands import brand_environment
from acs_khaos_dagster.cli import app
from acs_khaos_dagster.store import Store

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """``--brand`` makes the process the brand's for good: put the test's back after."""
    from acs_khaos_dagster.config import get_settings

    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


def _brand(folder: Path, code: str, *, store: Path | None = None, extra: str = "") -> Path:
    folder.mkdir(exist_ok=True)
    file = folder / f"{code}.yaml"
    file.write_text(f"brand: {code}\ndata_dir: {folder.parent / code}\n{extra}", encoding="utf-8")
    file.chmod(0o600)
    secrets = f"ACS_KHAOS_KHAOS__PASSWORD='{code}-password'\n"
    if store is not None:
        secrets += f"ACS_KHAOS_DATABASE_URL=sqlite:///{store}\n"
    env = file.with_suffix(".env")
    env.write_text(secrets, encoding="utf-8")
    env.chmod(0o600)
    return file


def _raise(file: Path, type_: str, ref: str) -> None:
    with brand_environment(file) as settings, Store.from_settings(settings) as store:
        store.exceptions.raise_exception(type_, ref, f"{ref} needs a person")


def test_the_overview_lists_every_brand_with_its_open_exceptions_by_owner_and_over_target(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "brands"
    acme = _brand(folder, "acme", extra="owner_targets:\n  operations: 0.0001\n")
    _brand(folder, "bravo")
    _raise(acme, "order_locked", "SO1")
    _raise(acme, "sku_not_live", "SKU1")
    time.sleep(1.0)  # past acme's operations target (0.36 s)
    result = runner.invoke(app, ["overview", "--brands-dir", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["brand"]: row for row in map(json.loads, result.output.splitlines())}
    assert rows["acme"]["open_by_owner"] == {"operations": 1, "ecommerce": 1}
    assert rows["acme"]["over_target_by_owner"] == {"operations": 1}
    assert rows["bravo"]["open_by_owner"] == {}
    assert rows["bravo"]["month_end"].endswith("not built")


def test_the_overview_table_names_each_brand(tmp_path: Path) -> None:
    folder = tmp_path / "brands"
    _brand(folder, "acme")
    _brand(folder, "bravo")
    result = runner.invoke(app, ["overview", "--brands-dir", str(folder)])
    assert result.exit_code == 0, result.output
    assert "acme" in result.output and "bravo" in result.output
    assert "acme-password" not in result.output


def test_two_brands_on_one_store_are_named_and_fail_the_overview(tmp_path: Path) -> None:
    folder = tmp_path / "brands"
    shared = tmp_path / "shared.sqlite"
    _brand(folder, "acme", store=shared)
    _brand(folder, "bravo", store=shared)
    result = runner.invoke(app, ["overview", "--brands-dir", str(folder)])
    assert result.exit_code == 1
    assert "brands acme and bravo share one store" in result.output


def test_a_command_run_as_a_brand_reads_that_brands_store_alone(
    tmp_path: Path, restored_environment: None
) -> None:
    folder = tmp_path / "brands"
    _raise(_brand(folder, "acme"), "order_locked", "ACME-ORDER")
    _raise(_brand(folder, "bravo"), "order_locked", "BRAVO-ORDER")
    result = runner.invoke(
        app, ["--brand", "bravo", "--brands-dir", str(folder), "exceptions", "list"]
    )
    assert result.exit_code == 0, result.output
    assert "BRAVO-ORDER" in result.output and "ACME-ORDER" not in result.output


def test_a_brand_whose_settings_name_another_brand_is_refused(
    tmp_path: Path, restored_environment: None
) -> None:
    folder = tmp_path / "brands"
    _brand(folder, "acme")
    (folder / "bravo.yaml").write_text("brand: acme\n", encoding="utf-8")
    result = runner.invoke(
        app, ["--brand", "bravo", "--brands-dir", str(folder), "outbox", "status"]
    )
    assert result.exit_code == 2
    assert "must name its brand (brand: bravo); it names acme" in result.output


def test_the_brand_unit_is_hardened_like_the_others_and_serves_the_workspaces_socket() -> None:
    from acs_khaos_dagster_tests.security.test_systemd_units import HARDENING

    unit = ROOT / "deploy" / "systemd" / "brands" / "acs-khaos-brand@.service"
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    service = dict(parser["Service"])
    assert {k: v for k, v in HARDENING.items() if service.get(k) != v} == {}
    socket = "/run/acs-khaos/brand-%i/code-server.sock"
    assert f"--socket {socket}" in service["ExecStart"]
    assert "-m acs_khaos_dagster.definitions" in service["ExecStart"]
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.brands.yaml").read_text())
    for entry in workspace["load_from"]:
        brand = entry["grpc_server"]["location_name"]
        assert entry["grpc_server"]["socket"] == socket.replace("%i", brand)


def test_the_demo_makes_each_generated_brand_a_settings_file_of_its_own(tmp_path: Path) -> None:
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.demo_brands import write_brand_settings

    folder = write_brand_settings(load_settings(data_dir=tmp_path), 2)
    loaded = {}
    for file in sorted(folder.glob("*.yaml")):
        with brand_environment(file) as settings:
            loaded[settings.brand] = settings
    assert set(loaded) == {"brand_a", "brand_b"}
    assert loaded["brand_a"].data_dir != loaded["brand_b"].data_dir
    assert loaded["brand_a"].acs.account_code != loaded["brand_b"].acs.account_code


@pytest.fixture
def no_brands_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``--brands-dir``, no ``ACS_KHAOS_BRANDS_DIR``, no ``/etc/acs-khaos/brands``; this
    installation's data folder is ``tmp_path/data`` (returned)."""
    import acs_khaos_dagster.brands as brands

    for key in [k for k in os.environ if k.startswith("ACS_KHAOS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setattr(brands, "DEFAULT_BRANDS_DIR", tmp_path / "etc" / "brands")
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_a_bare_overview_after_the_brands_demo_shows_the_demos_brands_and_says_so(
    no_brands_folder: Path,
) -> None:
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.demo_brands import write_brand_settings

    demo = write_brand_settings(load_settings(data_dir=no_brands_folder), 2)  # as the demo does
    result = runner.invoke(app, ["overview", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # stdout: the rows alone
    assert [row["brand"] for row in rows] == ["brand_a", "brand_b"]
    assert f"the demo's brands in {demo}" in " ".join(result.stderr.split())


def test_a_bare_overview_with_no_brands_anywhere_shows_this_installation_as_one_brand(
    no_brands_folder: Path,
) -> None:
    result = runner.invoke(app, ["overview"])
    assert result.exit_code == 0, result.output
    assert "(default)" in result.stdout and "Brands (1)" in result.stdout
    assert "this installation's own settings, as one brand" in " ".join(result.stderr.split())


def test_a_brands_folder_named_but_missing_is_an_error_not_a_fallback(
    no_brands_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.demo_brands import write_brand_settings

    write_brand_settings(load_settings(data_dir=no_brands_folder), 2)
    missing = no_brands_folder.parent / "missing"
    assert runner.invoke(app, ["overview", "--brands-dir", str(missing)]).exit_code == 2
    monkeypatch.setenv("ACS_KHAOS_BRANDS_DIR", str(missing))
    result = runner.invoke(app, ["overview"])
    assert result.exit_code == 2 and "is not a folder" in " ".join(result.output.split())
