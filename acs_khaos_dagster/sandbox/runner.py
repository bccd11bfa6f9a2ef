"""Runs both simulators together on loopback, sharing one simulated clock.

Used by ``acs-khaos sandbox``, the demo, the tests and the benchmarks.
Production code never imports the sandbox.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

from fastapi import FastAPI

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.sandbox.acs import AcsSimulator
from acs_khaos_dagster.sandbox.clock import SimClock
from acs_khaos_dagster.sandbox.faults import FaultInjector
from acs_khaos_dagster.sandbox.http import serve_in_thread
from acs_khaos_dagster.sandbox.khaos import KhaosSimulator
from acs_khaos_dagster.sandbox.scenario.manifest import ScenarioManifest
from acs_khaos_dagster.sandbox.variants import MODELLED, Variant

log = logging.getLogger(__name__)

# Simulated time moves in steps no longer than this, so picking, despatch and the
# finance batch interleave in the order they would in real life.
CLOCK_STEP = timedelta(minutes=15)


class Sandbox:
    """Both simulators, their fault injectors and the shared clock."""

    def __init__(
        self,
        scenario_dir: Path,
        drop_folder: Path,
        settings: Settings,
        *,
        seed: int = 0,
        acs_port: int = 0,
        khaos_port: int = 0,
        activation_lag: timedelta = timedelta(hours=2),
        variant: Variant = MODELLED,
    ) -> None:
        """``variant``: how these simulated systems differ from the modelled contract;
        ``settings_env`` carries the settings the integration needs to match it."""
        self.variant = variant
        self.scenario_dir = scenario_dir
        self.manifest = ScenarioManifest.load(scenario_dir)
        self.drop_folder = drop_folder
        self.clock = SimClock(self.manifest.start_at)
        self.acs_faults = FaultInjector(seed)
        self.khaos_faults = FaultInjector(seed + 1)
        self._ports = (acs_port, khaos_port)
        self._stops: list[Callable[[], None]] = []
        self.acs = AcsSimulator(
            self.manifest,
            scenario_dir,
            drop_folder,
            self.clock,
            self.acs_faults,
            subscription_key=settings.acs.subscription_key.get_secret_value(),
            account_code=self.manifest.account_code,
            activation_lag=activation_lag,
            seed=seed,
            install=variant.acs,
        )
        self.khaos = KhaosSimulator(
            self.manifest,
            self.clock,
            self.khaos_faults,
            username=settings.khaos.username,
            password=settings.khaos.password.get_secret_value(),
            exe_name=settings.khaos.exe_name,
            seed=seed,
            install=variant.khaos,
        )
        for app in (self.acs.app, self.khaos.app):
            self._add_clock_control(app)
        self.acs_url = ""
        self.khaos_url = ""
        # The integration reads simulated time from this file (``ACS_KHAOS_CLOCK_URL``).
        handle, name = tempfile.mkstemp(prefix="acs-khaos-sandbox-", suffix=".clock")
        os.close(handle)
        self.clock_file = Path(name)
        self._publish_clock()

    def _add_clock_control(self, app: FastAPI) -> None:
        def advance(minutes: float) -> dict[str, str]:
            now = self.advance(timedelta(minutes=minutes))
            return {"now": now.isoformat()}

        def now() -> dict[str, str]:
            return {"now": self.clock.now().isoformat()}

        app.add_api_route("/_sandbox/clock/advance", advance, methods=["POST"])
        app.add_api_route("/_sandbox/clock", now, methods=["GET"])

    def start(self) -> Self:
        self.drop_folder.mkdir(parents=True, exist_ok=True)
        self.acs_url, stop_acs = serve_in_thread(self.acs.app, port=self._ports[0])
        self._stops.append(stop_acs)
        self.khaos_url, stop_khaos = serve_in_thread(self.khaos.app, port=self._ports[1])
        self._stops.append(stop_khaos)
        log.info("sandbox up: ACS %s, Khaos %s", self.acs_url, self.khaos_url)
        return self

    def stop(self) -> None:
        while self._stops:
            self._stops.pop()()
        self.clock_file.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance(self, delta: timedelta) -> Any:
        """Move simulated time forward, letting both systems act at each step."""
        target = self.clock.now() + delta
        while self.clock.now() < target:
            self.clock.advance(min(CLOCK_STEP, target - self.clock.now()))
            self.acs.on_clock()
            self.khaos.on_clock()
        self._publish_clock()
        return self.clock.now()

    def _publish_clock(self) -> None:
        partial = self.clock_file.with_suffix(".partial")
        partial.write_text(self.clock.now().isoformat(), encoding="utf-8")
        partial.replace(self.clock_file)

    def settings_env(self) -> dict[str, str]:
        """Environment variables pointing the integration's settings at this sandbox."""
        return {
            "ACS_KHAOS_ACS__BASE_URL": self.acs_url,
            "ACS_KHAOS_KHAOS__BASE_URL": self.khaos_url,
            "ACS_KHAOS_ACS__DROP_FOLDER": str(self.drop_folder.resolve()),
            "ACS_KHAOS_ACS__ACCOUNT_CODE": self.manifest.account_code,
            "ACS_KHAOS_CLOCK_URL": self.clock_file.resolve().as_uri(),
            **self.variant.settings,
        }

    def truth(self) -> dict[str, Any]:
        return {"acs": self.acs.truth(), "khaos": self.khaos.truth()}
