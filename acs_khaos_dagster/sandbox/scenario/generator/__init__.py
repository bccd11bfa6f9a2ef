"""Seeded scenario generator: a fashion brand's catalogue, customers, orders and ACS files.

``generate_scenario(size, seed, out_dir)`` writes ``manifest.json`` (a
``ScenarioManifest``) and two ACS files in the contract's layout:
``stock_units_{account}_{yyyymmddHHMMSS}.csv`` (the snapshot at ``start_at``)
and ``returns_{account}_{yyyymmddHHMMSS}.csv``. The same seed gives the same
bytes: everything comes from one ``random.Random(seed)``, integer arithmetic for
quantities and money, a fixed ``start_at`` (Monday 2026-03-02 07:00 UTC) and no
wall clock. The units file is streamed SKU by SKU, so ``brand`` (3M units) runs
in bounded memory.

Sizes (child SKUs / units / orders / returns):
``tiny`` 20 / ~300 / 10 / 5, ``small`` 500 / ~20,000 / 300 / 100,
``brand`` 50,000 / ~3,000,000 / 20,000 / 5,000. Unit totals are approximate:
every SKU holds at least the units its orders allocate.

Catalogue
    Styles of one category (``DRS`` dress, ``TOP``, ``JKT``, ``TRS``, ``SKT``,
    ``KNT``, ``COT``, ``JNS``) with colour × size children. The parent is a
    non-stock-controlled ``StockItem`` (code ``DRS-0001``) with no units; each child
    (``DRS-0001-NVY-10``) has ``scs_parent_id``, style/colour/size, an EAN-13, cost
    and sell prices (cost 25–45 % of sell). About 10 % of styles are hire styles
    (every child ``is_hire``; at least one hire style); about 3 % of children are
    discontinued; most publish on the web.

ACS registry (``acs_registry``)
    Every child SKU active with matching attributes, except (sale SKUs, never
    ordered): 2 missing (``counts["acs_missing_skus"]``), 2 ``pending``, 1
    ``inactive``, 1 registered with a different barcode; plus 1 active SKU
    Khaos does not know (``counts["acs_unknown_to_khaos_skus"]``) that holds
    3 units ready for customer in the units file. Missing and pending SKUs have
    no units.

Units file (one row per physical unit; ``counts["status:<ACS status>"]``)
    Hire SKUs hold ~30 % of the units. Each ordered unit of a released order is
    one unit ``Allocated`` (70 %), ``Picking`` (20 %) or ``Packed`` (10 %)
    carrying that order's ``order_code`` as ``order_number`` (2–8 % of units
    depending on size). Every other unit: sale units 10 % in processing, the
    rest ``In Warehouse - Ready For Customer``; hire units 1/3 ``With
    Customer`` (with a historic hire order number ``SO9xxxxxx`` and an
    ``expected_return_date``), 1/6 ``Ex-Hired``, 10 % in processing, the rest
    ready. Overall: ready ≈ 70 %, allocated/picking/packed ≈ 2–8 %, processing
    ≈ 10 %, with customer ≈ 10 %, ex-hired ≈ 5 %. Processing is split between
    Receipted - No Location, Awaiting Inspection, In Warehouse Processing,
    Cleaning, In Refurbishment, In Repair, Quarantine and (hire only)
    Post-Rental Inspection. 5 % of rows spell the status differently (case,
    en dash, no spaces round the dash). ``small`` has 2 and ``brand`` 25 units
    with the unknown status ``Lost In Transit`` (``counts["units_unknown_status"]``).

Khaos levels (``khaos_levels``)
    The count of units per StockID × site under the default status policy:
    ready + allocated sale units on the selling site, hire units on hire stock,
    with customer on the on-hire site, processing units on their
    inspection/refurbishment/quarantine site; ex-hired and unknown units nowhere.
    Only non-zero levels are listed.

Orders and fulfilment plans
    Each order: 1–4 lines (40/30/20/10 %) of distinct active SKUs, quantity 1
    (2 for 10 % of sale lines), hire lines for hire SKUs (unit_net = 15 % of the
    sell price; sale lines at the sell price), one invoice at stage 9 on the
    selling site, dated before ``start_at``. Plans: one shipment, except 15 % of
    multi-line orders split over 2–3; 2 % of sale lines closed short
    (``STOCK_NOT_FOUND`` or ``DAMAGED_AT_PICK``).

Returns file
    Units of shipped order lines returned after ``start_at``, plus ~3 %
    unexpected returns (empty ``order_number``/``line_item_id``, a unit not in the
    snapshot). Grades by exact quota: A 60 %, B 25 %, C 10 %, BER 5 %. Actions: A
    → RESTOCK; B → CLEAN (60 %) or REPAIR; C → REPAIR (50 %), QUARANTINE (25 %)
    or RESALE; BER → EX_HIRE for hire lines, else DISPOSE.

The package's modules: ``tables`` (sizes, statuses, shares, words), ``helpers``,
``draft`` (the scenario being built) and its steps, ``catalogue``, ``orders``, ``units``
and ``returns``, run in order by ``builder`` (``generate_scenario``).
"""

from acs_khaos_dagster.sandbox.scenario.generator.builder import generate_scenario
from acs_khaos_dagster.sandbox.scenario.generator.helpers import ean13
from acs_khaos_dagster.sandbox.scenario.generator.tables import (
    SIZES,
    START_AT,
    Progress,
    ScenarioSize,
    ScenarioSpec,
)

__all__ = [
    "SIZES",
    "START_AT",
    "Progress",
    "ScenarioSize",
    "ScenarioSpec",
    "ean13",
    "generate_scenario",
]
