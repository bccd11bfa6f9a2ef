"""The ports a flow takes — settings, store, ACS and Khaos clients, the clock — without
Dagster: the simulators over real HTTP on loopback (the ``sandbox`` fixture, tiny brand,
seed 7) and a fresh SQLite store. Tests of ``acs_khaos_dagster.flows`` use ``ports``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from acs_khaos_dagster.clock import integration_now
from acs_khaos_dagster.config import Settings, load_settings
from acs_khaos_dagster.connectors.acs.client import AcsClient
from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.store import Store


@dataclass
class Ports:
    sandbox: Any
    settings: Settings
    store: Store
    acs: AcsClient
    khaos: KhaosClient

    def now(self) -> datetime:
        return integration_now(self.settings)

    def open_exceptions(self, type_: str) -> list[Any]:
        return self.store.exceptions.list(type=type_)

    def khaos_truth(self) -> dict[str, Any]:
        return self.sandbox.khaos.truth()

    def acs_truth(self) -> dict[str, Any]:
        return self.sandbox.acs.truth()


@pytest.fixture
def ports(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ports]:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    conf = load_settings()
    with (
        Store.from_settings(conf) as store,
        AcsClient.from_settings(conf) as acs,
        KhaosClient.from_settings(conf) as khaos,
    ):
        yield Ports(sandbox, conf, store, acs, khaos)
