"""Dagster resources: one per external system plus the store.

Each resource builds its client from the one settings model (pydantic-settings:
defaults, YAML file, ``ACS_KHAOS_*`` environment), so secrets come from the
environment and never from Dagster run config or metadata.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource, FilesystemIOManager

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.store import Store


class SettingsResource(ConfigurableResource):
    """Where the integration's settings come from; ``config_file`` is a YAML path or empty."""

    config_file: str = ""

    def load(self) -> Settings:
        return load_settings(Path(self.config_file) if self.config_file else None)


class AcsApiResource(ConfigurableResource):
    """The ACS partner API (orders, products, despatch feed)."""

    settings: SettingsResource

    @contextmanager
    def client(self) -> Iterator[AcsClient]:
        with AcsClient.from_settings(self.settings.load()) as client:
            yield client


class KhaosApiResource(ConfigurableResource):
    """The Khaos Control SOAP service."""

    settings: SettingsResource

    @contextmanager
    def client(self) -> Iterator[KhaosClient]:
        with KhaosClient.from_settings(self.settings.load()) as client:
            yield client


class StoreResource(ConfigurableResource):
    """The integration's own database: outbox, exceptions, audit log, file ledger, cursors."""

    settings: SettingsResource

    @contextmanager
    def connect(self) -> Iterator[Store]:
        with Store.from_settings(self.settings.load()) as store:
            yield store


def default_resources(config_file: str = "") -> dict[str, object]:
    settings = SettingsResource(config_file=config_file)
    return {
        # Under $DAGSTER_HOME/storage, so the UI and `make demo` see the same values.
        "io_manager": FilesystemIOManager(),
        "settings": settings,
        "acs": AcsApiResource(settings=settings),
        "khaos": KhaosApiResource(settings=settings),
        "store": StoreResource(settings=settings),
    }
