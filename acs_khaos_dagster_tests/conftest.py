"""Fixtures shared by the whole suite.

Every test session gets its own data folder and a clean ``ACS_KHAOS_*``
environment, so nothing on the developer's machine leaks into a test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "ACS_KHAOS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
KEEP_ENV = {"ACS_KHAOS_REQUIRE_POSTGRES", "ACS_KHAOS_TEST_POSTGRES_URL"}


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("ACS_KHAOS_") and key not in KEEP_ENV:
            del os.environ[key]
    data = tmp_path_factory.mktemp("data")
    os.environ["ACS_KHAOS_DATA_DIR"] = str(data)
    os.environ["ACS_KHAOS_ACS__DROP_FOLDER"] = str(data / "acs_drop")
    os.environ.pop("DAGSTER_HOME", None)
    yield data
    os.environ.clear()
    os.environ.update(saved)


def postgres_required() -> bool:
    return os.environ.get("ACS_KHAOS_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The real PostgreSQL; skipped when it is down locally, a failure in CI."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        if postgres_required():
            pytest.fail(
                f"PostgreSQL is required (ACS_KHAOS_REQUIRE_POSTGRES=1) but unreachable: {exc}"
            )
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def fresh_postgres_database(postgres_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database for one test, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    name = f"akd_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the sandbox -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny brand (seed 7), generated once per test session."""
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    folder = tmp_path_factory.mktemp("scenario-tiny")
    generate_scenario("tiny", 7, folder)
    return folder


@pytest.fixture(scope="session")
def summer_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny brand (seed 7) starting in British Summer Time, for ACS's time variants."""
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario
    from acs_khaos_dagster.sandbox.variants import SUMMER_START

    folder = tmp_path_factory.mktemp("scenario-tiny-summer")
    generate_scenario("tiny", 7, folder, start_at=SUMMER_START)
    return folder


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``variants`` runs against every Khaos and ACS install variant
    (``sandbox.variants``), or those it names (``variants("khaos_own_codes", ...)``, always
    with ``modelled``); every other test against the modelled contract only."""
    marker = metafunc.definition.get_closest_marker("variants")
    if marker is None:
        return
    from acs_khaos_dagster.sandbox.variants import VARIANTS

    names = ["modelled", *marker.args] if marker.args else list(VARIANTS)
    metafunc.parametrize("variant", [VARIANTS[n] for n in names], ids=names, indirect=True)


@pytest.fixture
def variant(request: pytest.FixtureRequest):
    """The install the sandbox simulates (``modelled`` unless the test is marked ``variants``)."""
    from acs_khaos_dagster.sandbox.variants import MODELLED

    return getattr(request, "param", MODELLED)


@pytest.fixture
def sandbox(
    tiny_scenario: Path,
    variant,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """Both simulators with fresh state on free loopback ports; settings point at them
    (and are those the integration needs for the simulated install, ``variant``)."""
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.sandbox.runner import Sandbox

    scenario = request.getfixturevalue("summer_scenario") if variant.summer else tiny_scenario
    box = Sandbox(scenario, tmp_path / "acs_drop", load_settings(), seed=7, variant=variant).start()
    for key, value in box.settings_env().items():
        monkeypatch.setenv(key, value)
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The integration's database on both backends (a fresh one per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'integration.sqlite'}"
    else:
        yield request.getfixturevalue("fresh_postgres_database")


# --- Dagster ---------------------------------------------------------------------------


@pytest.fixture
def dagster_instance(tmp_path: Path):
    from dagster import instance_for_test

    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def integration(sandbox, dagster_instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the integration's assets through Dagster against a fresh sandbox and store.

    ``integration.run("sku_mapping", ...)`` materialises those assets (and their checks)
    with the production resources and returns Dagster's result.
    """
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return IntegrationHarness(sandbox, dagster_instance)


class IntegrationHarness:
    def __init__(self, sandbox, instance) -> None:
        self.sandbox = sandbox
        self.instance = instance

    def run(self, *asset_names: str, run_config: dict | None = None, raise_on_error: bool = True):
        from dagster import AssetKey, materialize

        from acs_khaos_dagster.definitions import defs
        from acs_khaos_dagster.defs.resources import default_resources

        return materialize(
            [*defs.assets, *defs.asset_checks],
            selection=[AssetKey(name) for name in asset_names],
            resources=default_resources(),
            instance=self.instance,
            run_config=run_config,
            raise_on_error=raise_on_error,
        )

    def store(self):
        from acs_khaos_dagster.config import load_settings
        from acs_khaos_dagster.store import Store

        return Store.from_settings(load_settings())

    def metadata(self, result, asset_name: str) -> dict:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            if materialization.asset_key.to_user_string() == asset_name:
                return {k: v.value for k, v in materialization.metadata.items()}
        raise KeyError(asset_name)
