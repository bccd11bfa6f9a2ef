"""``generate_scenario``: the steps run in order, the files written and the manifest."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from acs_khaos_dagster.domain.models import Site
from acs_khaos_dagster.sandbox.acs.files import STOCK_UNITS
from acs_khaos_dagster.sandbox.scenario.generator.catalogue import Catalogue
from acs_khaos_dagster.sandbox.scenario.generator.helpers import file_stamp
from acs_khaos_dagster.sandbox.scenario.generator.orders import Orders
from acs_khaos_dagster.sandbox.scenario.generator.returns import ReturnsFile
from acs_khaos_dagster.sandbox.scenario.generator.tables import (
    SIZES,
    START_AT,
    Progress,
    ScenarioSize,
    ScenarioSpec,
)
from acs_khaos_dagster.sandbox.scenario.generator.units import UnitsFile
from acs_khaos_dagster.sandbox.scenario.manifest import (
    MANIFEST_NAME,
    ScenarioFiles,
    ScenarioManifest,
    SiteLevel,
)


class _Builder(Catalogue, Orders, UnitsFile, ReturnsFile):
    def run(self) -> ScenarioManifest:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.build_catalogue()
        self.build_registry()
        self.build_customers()
        self.build_orders()
        self.build_plans()
        self.apportion_units()
        units_name = f"{STOCK_UNITS}_{self.account}_{file_stamp(self.start_at)}.csv"
        line_units: dict[int, list[str]] = {}
        self.write_units(self.out_dir / units_name, line_units)
        returns_name = self.write_returns(self.out_dir, line_units)
        site_names = {
            "selling": "ACS Sellable",
            "hire_stock": "ACS Hire Stock",
            "on_hire": "ACS On Hire",
            "inspection": "ACS Inspection",
            "refurbishment": "ACS Refurbishment",
            "quarantine": "ACS Quarantine",
        }
        manifest = ScenarioManifest(
            seed=self.seed,
            size=self.size,
            account_code=self.account,
            start_at=self.start_at,
            sites=sorted(
                (
                    Site(site_id=site_id, name=site_names[role])
                    for role, site_id in self.sites.model_dump().items()
                ),
                key=lambda s: s.site_id,
            ),
            stock_items=sorted(self.stock_items, key=lambda s: s.stock_id),
            acs_registry=self.registry,
            khaos_levels=[
                SiteLevel(stock_id=stock_id, site_id=site_id, level=level)
                for (stock_id, site_id), level in sorted(self.levels.items())
            ],
            customers=sorted(self.customers, key=lambda c: c.urn),
            orders=sorted(self.orders, key=lambda o: o.order_id),
            fulfilment_plans=sorted(self.plans, key=lambda p: p.order_code),
            files=ScenarioFiles(stock_units=units_name, returns=returns_name),
            counts=dict(sorted(self.counts.items())),
        )
        (self.out_dir / MANIFEST_NAME).write_text(
            manifest.model_dump_json(indent=1) + "\n", encoding="utf-8"
        )
        self.progress("manifest", 1, 1)
        return manifest


def generate_scenario(
    size: ScenarioSize,
    seed: int,
    out_dir: Path,
    account_code: str = "BRAND01",
    progress: Progress | None = None,
    *,
    spec: ScenarioSpec | None = None,
    start_at: datetime = START_AT,
) -> ScenarioManifest:
    """Write a scenario folder (manifest + ACS files) and return its manifest.

    ``spec`` overrides the size's figures (tests use it for a mid-sized streaming check);
    ``start_at`` moves the whole brand in time (a summer start puts UK time an hour
    ahead of UTC: what ACS's times without an offset need to be tested against).
    """
    if size not in SIZES:
        raise ValueError(f"unknown scenario size {size!r}; expected one of {', '.join(SIZES)}")
    builder = _Builder(
        spec or SIZES[size], size, seed, Path(out_dir), account_code, progress, start_at
    )
    return builder.run()
