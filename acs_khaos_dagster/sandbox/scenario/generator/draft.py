"""``Draft``: the scenario being built, what each step adds and the next reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from random import Random

from acs_khaos_dagster.config import KhaosSettings, KhaosSites
from acs_khaos_dagster.domain.models import AcsProduct, SalesOrder, StockItem
from acs_khaos_dagster.sandbox.scenario.generator.tables import START_AT, Progress, ScenarioSpec
from acs_khaos_dagster.sandbox.scenario.manifest import Customer, FulfilmentPlan


@dataclass
class _Sku:
    item: StockItem
    units: int = 0
    allocated: int = 0  # units promised to generated order lines


class Draft:
    def __init__(
        self,
        spec: ScenarioSpec,
        size: str,
        seed: int,
        out_dir: Path,
        account_code: str,
        progress: Progress | None,
        start_at: datetime = START_AT,
    ) -> None:
        self.start_at = start_at
        self.spec = spec
        self.size = size
        self.seed = seed
        self.out_dir = out_dir
        self.account = account_code
        self.progress = progress or (lambda stage, done, total: None)
        self.rng = Random(seed)
        self.sites: KhaosSites = KhaosSettings().sites
        self.counts: Counter[str] = Counter()
        self.stock_items: list[StockItem] = []
        self.children: list[_Sku] = []
        self.registry: list[AcsProduct] = []
        self.customers: list[Customer] = []
        self.orders: list[SalesOrder] = []
        self.plans: list[FulfilmentPlan] = []
        self.levels: Counter[tuple[int, int]] = Counter()
        self.problem_codes: set[str] = set()
        self.unknown_sku = ""
