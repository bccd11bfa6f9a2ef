"""SKU mapping between the Khaos SKU master and ACS's product registry: pure rules, no I/O.

Khaos is the master of every SKU. ACS must hold a SKU, active and with the same
attributes, before anything is sold or sent for it. This module answers, for every
Khaos SKU: what ACS calls it, whether ACS has it, whether the two agree, whether it
may be sold, and what (if anything) must be pushed to ACS.

Identity. ``StockID`` is Khaos's stable key; ``StockCode`` can be renamed. ACS cannot
rename a SKU, so the ACS SKU is fixed when a StockID is first registered and kept in
the store's identity map (StockID → ACS SKU). A StockID in that map uses the stored
SKU forever; a StockID not yet in it uses its current stock code.

What counts as a SKU. Only stock-controlled items. Style/colour/size (SCS) parents
are not stock controlled, never go to ACS and are left out of the mapping entirely
(``classify_skus`` returns no row for them, so nothing counts them as missing).

Classification (one headline per row; the first that applies wins):

1. ``invalid_code``      the ACS SKU breaks the code rules (``code_problems``) or is
                         claimed by another StockID (see "Collisions"); never pushed,
                         never ready for sale.
2. ``discontinued``      discontinued in Khaos: not pushed and not required at ACS.
                         It is still ready for sale if ACS happens to hold it active
                         with matching attributes (remaining stock can still sell).
3. ``renamed``           the Khaos code differs from the first-registered ACS SKU.
                         Reported (an ecommerce exception); everything else about the
                         row (push, readiness) follows the ACS SKU, so a renamed SKU
                         can be ready for sale.
4. ``missing_in_acs``    ACS's registry has no such SKU.
5. ``inactive_in_acs``   ACS holds it ``inactive``.
6. ``pending_in_acs``    ACS holds it ``pending`` (set-up lags registration).
7. ``attribute_mismatch`` ACS holds it ``active`` but barcode, style, colour, size or
                         the hire flag differ.
8. ``matched``           active at ACS with matching attributes.

Plus ``unknown_to_khaos``: a registry SKU no Khaos SKU maps to (``stock_id`` is null).

The headline hides nothing: ``acs_status`` (``active``/``inactive``/``pending``/
``missing``), ``renamed``, ``mismatch_fields`` and ``code_problems`` are columns of
their own, and ``mapping_exceptions`` is built from them, not from the headline.

``ready_for_sale`` = valid code, ``acs_status == "active"`` and no attribute mismatch.
A description difference is pushed but does not make a SKU unready.

Collisions. Two StockIDs must never share an ACS SKU, compared case-insensitively
(ACS's database may well ignore case). The StockID the identity map gives the SKU to
keeps it, including a StockID Khaos no longer lists; every other claimant is
``invalid_code``. When nobody holds the SKU in the identity map, all claimants are
invalid until the codes are made distinct in Khaos.

The package's modules: ``codes`` (the code rules), ``classify`` (the mapping),
``readiness`` (identity, readiness, coverage, counts), ``push`` (what to send to ACS) and
``exceptions`` (the exception queue's problems).
"""

from __future__ import annotations

from acs_khaos_dagster.domain.sku_mapping.classify import (
    CLASSIFICATIONS,
    COMPARED_FIELDS,
    MAPPING_COLUMNS,
    PUSHED_FIELDS,
    READY_COLUMNS,
    REGISTRY_COLUMNS,
    Classification,
    IdentityInput,
    RegistryInput,
    acs_registry_frame,
    classify_skus,
)
from acs_khaos_dagster.domain.sku_mapping.codes import (
    FORBIDDEN_CHARACTERS,
    MAX_CODE_LENGTH,
    PROBLEM_SEPARATOR,
    code_problems,
    code_problems_series,
)
from acs_khaos_dagster.domain.sku_mapping.exceptions import (
    ExceptionKind,
    ExceptionSpec,
    mapping_exceptions,
)
from acs_khaos_dagster.domain.sku_mapping.push import (
    InvalidSku,
    PushPlan,
    SkuPush,
    content_hash,
    products_to_push,
)
from acs_khaos_dagster.domain.sku_mapping.readiness import (
    coverage,
    identity_updates,
    ready_for_sale,
    summary_counts,
)

__all__ = [
    "CLASSIFICATIONS",
    "COMPARED_FIELDS",
    "FORBIDDEN_CHARACTERS",
    "MAPPING_COLUMNS",
    "MAX_CODE_LENGTH",
    "PROBLEM_SEPARATOR",
    "PUSHED_FIELDS",
    "READY_COLUMNS",
    "REGISTRY_COLUMNS",
    "Classification",
    "ExceptionKind",
    "ExceptionSpec",
    "IdentityInput",
    "InvalidSku",
    "PushPlan",
    "RegistryInput",
    "SkuPush",
    "acs_registry_frame",
    "classify_skus",
    "code_problems",
    "code_problems_series",
    "content_hash",
    "coverage",
    "identity_updates",
    "mapping_exceptions",
    "products_to_push",
    "ready_for_sale",
    "summary_counts",
]
