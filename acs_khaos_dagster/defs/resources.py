"""Dagster resources: one per external system plus the store.

Each resource builds its client from the one settings model (pydantic-settings:
defaults, YAML file, ``ACS_KHAOS_*`` environment), so secrets come from the
environment and never from Dagster run config or metadata.

No resource has a config field. Anything configurable on a Dagster resource can be
changed by whoever launches a run from the UI's launchpad; a settings file path there
would let any UI user make the integration read a file of the server (and echo it in
the step's failure) or load settings of their own (TLS off, another webhook). The
settings file is named by the environment of the code location only
(``ACS_KHAOS_CONFIG_FILE``, set in ``/etc/acs-khaos/env``).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from dagster import ConfigurableResource, FilesystemIOManager, InitResourceContext, OutputContext
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.store import Store


class SettingsResource(ConfigurableResource):
    """The integration's settings: defaults, ``ACS_KHAOS_CONFIG_FILE``, ``ACS_KHAOS_*``.

    Deliberately without config fields (see the module docstring): run config cannot
    name a file or change a setting.
    """

    def load(self) -> Settings:
        return load_settings()


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


class _CountingFilesystemIOManager(PickledObjectFilesystemIOManager):
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        super().handle_output(context, obj)
        if isinstance(obj, pd.DataFrame):
            # The catalogue's row count, for every table asset alike.
            context.add_output_metadata({"dagster/row_count": len(obj)})


class TableIOManager(FilesystemIOManager):
    """Dagster's filesystem IO manager that also records each table's row count."""

    def create_io_manager(self, context: InitResourceContext) -> _CountingFilesystemIOManager:
        base_dir = self.base_dir or context.instance.storage_directory()  # type: ignore[union-attr]
        return _CountingFilesystemIOManager(base_dir=base_dir)


def default_resources() -> dict[str, object]:
    settings = SettingsResource()
    return {
        # Under $DAGSTER_HOME/storage, so the UI and `make demo` see the same values.
        "io_manager": TableIOManager(),
        "settings": settings,
        "acs": AcsApiResource(settings=settings),
        "khaos": KhaosApiResource(settings=settings),
        "store": StoreResource(settings=settings),
    }
