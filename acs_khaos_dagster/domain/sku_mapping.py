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
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from acs_khaos_dagster.domain.models import AcsProduct

# --- code rules ---------------------------------------------------------------------

MAX_CODE_LENGTH = 50

# Characters a SKU may not contain, with the reason. ``#`` is Khaos's own rule. The rest
# come from the SKU being a path segment of ``PUT .../products/{sku}.json`` behind an API
# gateway on an IIS/ASP.NET-style stack: ``/ \\`` split or normalise the path, ``? #``
# start a query or fragment, ``%`` invites double decoding, and ``& : * < > + "`` are
# refused in paths by the default request filtering of that stack (a 400 before ACS ever
# sees the request). Edit this table, not the functions, to change the rules.
FORBIDDEN_CHARACTERS: dict[str, str] = {
    "#": "Khaos does not allow '#' in a stock code",
    "/": "'/' would split the ACS URL path",
    "\\": "'\\' is read as a path separator",
    "?": "'?' would start a URL query",
    "%": "'%' is read as percent-encoding",
    "&": "'&' is refused in URL paths",
    ":": "':' is refused in URL paths",
    "*": "'*' is refused in URL paths",
    "<": "'<' is refused in URL paths",
    ">": "'>' is refused in URL paths",
    "+": "'+' is refused in URL paths (double escaping)",
    '"': "'\"' is refused in URL paths",
}

_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
# Non-ASCII is refused: the same visible code can be several byte strings (é composed or
# not), which would make one garment two SKUs between Khaos, ACS's API and its CSV files.
_NON_ASCII_RE = re.compile("[^\x00-\x7f]")
# Matches every code any rule below could refuse (and a few more, checked again one by
# one), so the vectorised form reads each code once.
_SUSPECT_RE = "[^ -~]|[" + re.escape("".join(FORBIDDEN_CHARACTERS)) + r"]|^\s|\s$"

PROBLEM_SEPARATOR = "; "


def code_problems(code: str) -> list[str]:
    """Why ``code`` cannot be a Khaos stock code sent to ACS; empty when it is valid.

    >>> code_problems("DRS-0001-NVY-10")
    []
    >>> code_problems("DRS#1")
    ["contains '#': Khaos does not allow '#' in a stock code"]
    """
    problems: list[str] = []
    if not code:
        return ["is empty"]
    if len(code) > MAX_CODE_LENGTH:
        problems.append(f"is {len(code)} characters long, more than {MAX_CODE_LENGTH}")
    if code != code.strip():
        problems.append("has leading or trailing whitespace")
    if _CONTROL_RE.search(code):
        problems.append("contains a control character")
    if _NON_ASCII_RE.search(code):
        problems.append("contains a non-ASCII character")
    problems += [
        f"contains {char!r}: {reason}"
        for char, reason in FORBIDDEN_CHARACTERS.items()
        if char in code
    ]
    return problems


def code_problems_series(codes: pd.Series) -> pd.Series:
    """Per code, its problems joined by ``"; "`` (empty string when the code is valid).

    Vectorised: one regex pass finds the suspects; only those are checked one by one.
    """
    text = codes.fillna("").astype(str)
    suspect = text.str.contains(_SUSPECT_RE, regex=True).to_numpy(dtype=bool)
    length = text.str.len().to_numpy()
    suspect |= (length == 0) | (length > MAX_CODE_LENGTH)
    result = pd.Series("", index=codes.index, dtype=object)
    for position in np.flatnonzero(suspect):
        result.iat[position] = PROBLEM_SEPARATOR.join(code_problems(text.iat[position]))
    return result


# --- frames -------------------------------------------------------------------------

REGISTRY_COLUMNS = ["sku", "barcode", "style", "colour", "size", "description", "is_hire", "status"]

COMPARED_FIELDS = ("barcode", "style", "colour", "size", "is_hire")
"""Fields whose difference makes an ``attribute_mismatch`` (the SKU is not ready)."""

PUSHED_FIELDS = ("barcode", "style", "colour", "size", "description", "is_hire")
"""Fields sent with the SKU; a difference in any of them makes the SKU worth a push."""

Classification = Literal[
    "matched",
    "missing_in_acs",
    "pending_in_acs",
    "inactive_in_acs",
    "attribute_mismatch",
    "unknown_to_khaos",
    "invalid_code",
    "renamed",
    "discontinued",
]
CLASSIFICATIONS: tuple[str, ...] = get_args(Classification)

MAPPING_COLUMNS = [
    "stock_id",  # Int64, null only for unknown_to_khaos
    "stock_code",  # Khaos's current code; "" for unknown_to_khaos
    "acs_sku",  # the SKU ACS knows (identity map, else the stock code)
    "classification",
    "ready_for_sale",
    "acs_status",  # active | inactive | pending | missing
    "renamed",
    "discontinued",
    "publish_on_web",
    "is_hire",  # Khaos's flag (ACS's for unknown_to_khaos)
    "cost_price",  # NaN for unknown_to_khaos
    "description",
    "barcode",
    "style",
    "colour",
    "size",
    "acs_barcode",  # ACS's values; "" (and NA for acs_is_hire) when missing at ACS
    "acs_style",
    "acs_colour",
    "acs_size",
    "acs_description",
    "acs_is_hire",
    "mismatch_fields",  # e.g. "barcode,size"; "" when none
    "mismatch_detail",  # e.g. "barcode: 501… (Khaos) ≠ 502… (ACS)"
    "differs_from_acs",  # missing at ACS, or any pushed field differs
    "code_problems",  # reasons joined by "; "; "" when valid
]

READY_COLUMNS = ["stock_id", "stock_code", "acs_sku", "is_hire", "cost_price"]

_TEXT_FIELDS = ("barcode", "style", "colour", "size", "description")


def acs_registry_frame(products: Iterable[AcsProduct]) -> pd.DataFrame:
    """ACS's registry as a table keyed by ``sku`` (the last listing of a SKU wins)."""
    rows = [
        {
            "sku": p.sku,
            "barcode": p.barcode,
            "style": p.style,
            "colour": p.colour,
            "size": p.size,
            "description": p.description,
            "is_hire": p.is_hire,
            "status": str(p.status),
        }
        for p in products
    ]
    frame = pd.DataFrame(rows, columns=REGISTRY_COLUMNS)
    frame["is_hire"] = frame["is_hire"].astype(bool)
    frame = frame.drop_duplicates("sku", keep="last")
    return frame.sort_values("sku", kind="stable").reset_index(drop=True)


IdentityInput = pd.DataFrame | Mapping[int, str] | None
RegistryInput = pd.DataFrame | Iterable[AcsProduct]


def _identity_dict(identity: IdentityInput) -> dict[int, str]:
    if identity is None:
        return {}
    if isinstance(identity, pd.DataFrame):
        return {
            int(s): str(k) for s, k in zip(identity["stock_id"], identity["acs_sku"], strict=True)
        }
    return {int(s): str(k) for s, k in identity.items()}


def _registry(registry: RegistryInput) -> pd.DataFrame:
    if isinstance(registry, pd.DataFrame):
        return registry.drop_duplicates("sku", keep="last")
    return acs_registry_frame(registry)


def _text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str)


def _khaos_skus(master: pd.DataFrame, identity: dict[int, str]) -> pd.DataFrame:
    """Stock-controlled items with their ACS SKU, rename flag and code problems."""
    skus = master.loc[master["stock_controlled"].astype(bool)].copy()
    skus["stock_id"] = skus["stock_id"].astype("int64")
    for name in (*_TEXT_FIELDS, "stock_code"):
        skus[name] = _text(skus[name])
    for name in ("is_hire", "discontinued", "publish_on_web"):
        skus[name] = skus[name].astype(bool)
    skus["cost_price"] = skus["cost_price"].astype(float)
    held = skus["stock_id"].map(pd.Series(identity, dtype=object))
    skus["registered"] = held.notna().to_numpy()
    skus["acs_sku"] = held.where(held.notna(), skus["stock_code"]).astype(str)
    skus["renamed"] = skus["registered"] & (skus["acs_sku"] != skus["stock_code"])
    skus["code_problems"] = code_problems_series(skus["acs_sku"])
    _add_collisions(skus, identity)
    return skus.sort_values("stock_id", kind="stable").reset_index(drop=True)


def _add_collisions(skus: pd.DataFrame, identity: dict[int, str]) -> None:
    """Mark as invalid every StockID that claims an ACS SKU another StockID owns or shares."""
    listed = set(skus["stock_id"].tolist())
    absent = {s: k for s, k in identity.items() if s not in listed}
    claims = pd.DataFrame(
        {
            "stock_id": np.concatenate(
                [skus["stock_id"].to_numpy(), np.fromiter(absent.keys(), dtype="int64")]
            ),
            "acs_sku": list(skus["acs_sku"]) + list(absent.values()),
            "registered": np.concatenate(
                [skus["registered"].to_numpy(dtype=bool), np.ones(len(absent), dtype=bool)]
            ),
        }
    )
    if claims.empty:
        return
    claims["key"] = claims["acs_sku"].astype(str).str.casefold()
    claimants = claims["key"].map(claims["key"].value_counts())
    holders = claims["key"].map(claims.loc[claims["registered"], "key"].value_counts()).fillna(0)
    loses = (claimants > 1) & (~claims["registered"] | (holders > 1))
    if not loses.any():
        return
    by_key = claims.groupby("key")["stock_id"].apply(lambda ids: sorted(ids.tolist()))
    position = pd.Series(np.arange(len(skus)), index=skus["stock_id"].to_numpy())
    for row in claims.loc[loses & claims["stock_id"].isin(listed)].itertuples():
        others = [s for s in by_key[row.key] if s != row.stock_id]
        owner = [s for s in others if identity.get(s, "").casefold() == row.key]
        if owner:
            reason = f"ACS SKU {row.acs_sku!r} is registered to StockID {owner[0]}"
        else:
            listing = ", ".join(str(s) for s in others)
            reason = f"ACS SKU {row.acs_sku!r} is also claimed by StockID {listing}"
        i = int(position[row.stock_id])
        current = skus["code_problems"].iat[i]
        skus.iloc[i, skus.columns.get_loc("code_problems")] = (
            f"{current}{PROBLEM_SEPARATOR}{reason}" if current else reason
        )


def classify_skus(
    master: pd.DataFrame, registry: RegistryInput, identity: IdentityInput = None
) -> pd.DataFrame:
    """One row per Khaos SKU and per ACS SKU unknown to Khaos (columns ``MAPPING_COLUMNS``).

    ``master`` is ``catalogue.sku_master_frame``; ``registry`` is ``acs_registry_frame``
    (or the ``AcsProduct`` records); ``identity`` maps StockID → first-registered ACS SKU
    (a dict, or a frame with ``stock_id`` and ``acs_sku``). Khaos rows come first by
    ``stock_id``, then unknown ACS SKUs by ``acs_sku``.
    """
    ident = _identity_dict(identity)
    reg = _registry(registry)
    skus = _khaos_skus(master, ident)

    acs = reg.rename(columns={f: f"acs_{f}" for f in PUSHED_FIELDS})
    acs = acs.rename(columns={"status": "acs_status"})
    # The registry is unique by SKU, so a hash lookup replaces a (much slower) merge.
    looked_up = acs.set_index("sku").reindex(skus["acs_sku"].to_numpy())
    merged = skus
    for name in looked_up.columns:
        merged[name] = looked_up[name].to_numpy()
    present = merged["acs_status"].notna().to_numpy()
    merged["acs_status"] = merged["acs_status"].fillna("missing").astype(str)
    for name in _TEXT_FIELDS:
        merged[f"acs_{name}"] = _text(merged[f"acs_{name}"])
    merged["acs_is_hire"] = merged["acs_is_hire"].astype("boolean")

    differs = {
        name: present & (merged[name] != merged[f"acs_{name}"]).to_numpy(dtype=bool)
        for name in _TEXT_FIELDS
    }
    differs["is_hire"] = present & (
        merged["is_hire"].to_numpy(dtype=bool)
        != merged["acs_is_hire"].fillna(False).to_numpy(dtype=bool)
    )
    mismatched = np.zeros(len(merged), dtype=bool)
    for name in COMPARED_FIELDS:
        mismatched |= differs[name]
    pushed_differs = ~present
    for name in PUSHED_FIELDS:
        pushed_differs = pushed_differs | differs[name]
    merged["differs_from_acs"] = pushed_differs
    merged["mismatch_fields"], merged["mismatch_detail"] = _mismatch_text(
        merged, differs, mismatched
    )

    invalid = (merged["code_problems"] != "").to_numpy()
    status = merged["acs_status"].to_numpy()
    merged["classification"] = np.select(
        [
            invalid,
            merged["discontinued"].to_numpy(dtype=bool),
            merged["renamed"].to_numpy(dtype=bool),
            status == "missing",
            status == "inactive",
            status == "pending",
            mismatched,
        ],
        [
            "invalid_code",
            "discontinued",
            "renamed",
            "missing_in_acs",
            "inactive_in_acs",
            "pending_in_acs",
            "attribute_mismatch",
        ],
        default="matched",
    )
    merged["ready_for_sale"] = ~invalid & (status == "active") & ~mismatched
    merged["stock_id"] = merged["stock_id"].astype("Int64")

    unknown = _unknown_to_khaos(reg, set(merged["acs_sku"]))
    frames = [merged[MAPPING_COLUMNS]]
    if len(unknown):
        frames.append(unknown[MAPPING_COLUMNS])
    mapping = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _typed(mapping.reset_index(drop=True))


def _mismatch_text(
    merged: pd.DataFrame, differs: dict[str, np.ndarray], mismatched: np.ndarray
) -> tuple[pd.Series, pd.Series]:
    fields = pd.Series("", index=merged.index, dtype=object)
    detail = pd.Series("", index=merged.index, dtype=object)
    for position in np.flatnonzero(mismatched):
        names = [name for name in COMPARED_FIELDS if differs[name][position]]
        fields.iat[position] = ",".join(names)
        detail.iat[position] = PROBLEM_SEPARATOR.join(
            f"{name}: {_shown(merged[name].iat[position])} (Khaos) ≠ "
            f"{_shown(merged[f'acs_{name}'].iat[position])} (ACS)"
            for name in names
        )
    return fields, detail


def _shown(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return repr(str(value)) if value == "" else str(value)


def _unknown_to_khaos(reg: pd.DataFrame, claimed: set[str]) -> pd.DataFrame:
    rows = reg.loc[~reg["sku"].isin(claimed)]
    if rows.empty:
        return pd.DataFrame(columns=MAPPING_COLUMNS)
    out = pd.DataFrame(
        {
            "stock_id": pd.array([pd.NA] * len(rows), dtype="Int64"),
            "stock_code": "",
            "acs_sku": rows["sku"].astype(str).to_numpy(),
            "classification": "unknown_to_khaos",
            "ready_for_sale": False,
            "acs_status": rows["status"].astype(str).to_numpy(),
            "renamed": False,
            "discontinued": False,
            "publish_on_web": False,
            "is_hire": rows["is_hire"].astype(bool).to_numpy(),
            "cost_price": np.nan,
            "mismatch_fields": "",
            "mismatch_detail": "",
            "differs_from_acs": False,
            "code_problems": "",
        }
    )
    for name in _TEXT_FIELDS:
        out[name] = ""
        out[f"acs_{name}"] = _text(rows[name]).to_numpy()
    out["acs_is_hire"] = pd.array(rows["is_hire"].astype(bool).to_numpy(), dtype="boolean")
    return out.sort_values("acs_sku", kind="stable")


def _typed(mapping: pd.DataFrame) -> pd.DataFrame:
    mapping["stock_id"] = mapping["stock_id"].astype("Int64")
    for name in (
        "ready_for_sale",
        "renamed",
        "discontinued",
        "publish_on_web",
        "is_hire",
        "differs_from_acs",
    ):
        mapping[name] = mapping[name].astype(bool)
    mapping["acs_is_hire"] = mapping["acs_is_hire"].astype("boolean")
    mapping["cost_price"] = mapping["cost_price"].astype(float)
    return mapping


# --- identity -----------------------------------------------------------------------


def identity_updates(
    master: pd.DataFrame, identity: IdentityInput, registry: RegistryInput | None = None
) -> dict[int, str]:
    """StockID → ACS SKU for StockIDs to record in the identity map now.

    A StockID is recorded the first time its code is either about to be pushed (valid,
    uncontested, not discontinued) or already in ACS's registry (pass ``registry``; this
    adopts what ACS holds on the first run). An invalid or contested code is never
    recorded, so fixing it in Khaos is not mistaken for a rename. Store these in the same
    transaction as the pushes are enqueued, so a rename between the push and the next
    registry read cannot register a second SKU.
    """
    ident = _identity_dict(identity)
    skus = _khaos_skus(master, ident)
    known = set(_registry(registry)["sku"]) if registry is not None else set()
    fresh = skus.loc[
        ~skus["registered"]
        & (skus["code_problems"] == "")
        & (~skus["discontinued"] | skus["acs_sku"].isin(known))
    ]
    return {int(s): str(k) for s, k in zip(fresh["stock_id"], fresh["acs_sku"], strict=True)}


# --- readiness, coverage, counts -----------------------------------------------------


def ready_for_sale(mapping: pd.DataFrame) -> pd.DataFrame:
    """SKUs active at ACS with matching attributes: what order and stock flows may use."""
    ready = mapping.loc[mapping["ready_for_sale"], READY_COLUMNS].copy()
    ready["stock_id"] = ready["stock_id"].astype("int64")
    return ready.sort_values("stock_id", kind="stable").reset_index(drop=True)


def coverage(mapping: pd.DataFrame) -> float:
    """Share of web-published Khaos SKUs that are ready for sale (1.0 when none publish)."""
    published = mapping.loc[mapping["stock_id"].notna() & mapping["publish_on_web"]]
    if published.empty:
        return 1.0
    return float(published["ready_for_sale"].sum()) / len(published)


def summary_counts(mapping: pd.DataFrame) -> dict[str, int]:
    """Rows per classification, every classification present (zero when none)."""
    counts = mapping["classification"].value_counts()
    return {name: int(counts.get(name, 0)) for name in CLASSIFICATIONS}


# --- pushes -------------------------------------------------------------------------


class SkuPush(BaseModel):
    """One ``PUT products`` to send: the product body and the hash of its content."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stock_id: int
    stock_code: str
    product: AcsProduct
    content_hash: str
    reason: Literal["new", "changed"]

    @property
    def idempotency_key(self) -> str:
        """Same SKU, same content → same key: the outbox never sends it twice."""
        return f"acs-product:{self.product.sku}:{self.content_hash}"


class InvalidSku(BaseModel):
    """A SKU that will not be sent, with why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stock_id: int
    stock_code: str
    acs_sku: str
    reasons: tuple[str, ...]


class PushPlan(BaseModel):
    """What to send (``pushes``), what to record (``identity_updates``), what was refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pushes: tuple[SkuPush, ...]
    invalid: tuple[InvalidSku, ...]
    identity_updates: dict[int, str]


def content_hash(product: AcsProduct) -> str:
    """Deterministic hash of what a push sends (the SKU and ``PUSHED_FIELDS``, not status)."""
    body = {"sku": product.sku, **{name: getattr(product, name) for name in PUSHED_FIELDS}}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def products_to_push(
    master: pd.DataFrame,
    registry: RegistryInput,
    identity: IdentityInput,
    last_pushed_hashes: Mapping[int, str] | None = None,
) -> PushPlan:
    """Every valid, non-discontinued SKU that ACS lacks or holds differently, unless the
    very same content was already pushed for its StockID.

    A push goes to the SKU's ACS SKU (the first-registered one for a renamed StockID),
    so a rename never creates a second SKU at ACS. Invalid codes are never pushed; they
    come back in ``invalid`` with their reasons. Ordered by ``stock_id``.
    """
    last = {int(k): v for k, v in (last_pushed_hashes or {}).items()}
    mapping = classify_skus(master, registry, identity)
    khaos = mapping.loc[mapping["stock_id"].notna()]
    candidates = khaos.loc[
        (khaos["classification"] != "invalid_code")
        & ~khaos["discontinued"]
        & khaos["differs_from_acs"]
    ]
    pushes: list[SkuPush] = []
    for row in candidates.itertuples(index=False):
        product = AcsProduct(
            sku=row.acs_sku,
            barcode=row.barcode,
            style=row.style,
            colour=row.colour,
            size=row.size,
            description=row.description,
            is_hire=bool(row.is_hire),
        )
        digest = content_hash(product)
        stock_id = int(row.stock_id)
        if last.get(stock_id) == digest:
            continue
        pushes.append(
            SkuPush(
                stock_id=stock_id,
                stock_code=row.stock_code,
                product=product,
                content_hash=digest,
                reason="new" if row.acs_status == "missing" else "changed",
            )
        )
    invalid_rows = khaos.loc[khaos["classification"] == "invalid_code"]
    invalid = tuple(
        InvalidSku(
            stock_id=int(row.stock_id),
            stock_code=row.stock_code,
            acs_sku=row.acs_sku,
            reasons=tuple(row.code_problems.split(PROBLEM_SEPARATOR)),
        )
        for row in invalid_rows.itertuples(index=False)
    )
    return PushPlan(
        pushes=tuple(pushes),
        invalid=invalid,
        identity_updates=identity_updates(master, identity, registry),
    )


# --- exceptions ---------------------------------------------------------------------

ExceptionKind = Literal[
    "invalid_sku_code", "sku_missing_in_acs", "sku_mismatch", "sku_renamed", "sku_not_live"
]
_KIND_ORDER: tuple[str, ...] = (
    "invalid_sku_code",
    "sku_missing_in_acs",
    "sku_mismatch",
    "sku_renamed",
    "sku_not_live",
)


class ExceptionSpec(BaseModel):
    """A problem for the exception queue; the queue sets the owner and severity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ExceptionKind
    entity_ref: str
    message: str
    details: dict[str, Any]


def mapping_exceptions(mapping: pd.DataFrame) -> list[ExceptionSpec]:
    """The mapping's exceptions, ordered by type then StockID.

    ``entity_ref`` is the StockID (stable across renames, so a fixed problem closes
    itself). Discontinued SKUs raise only ``sku_not_live``; invalid codes raise only
    ``invalid_sku_code`` and ``sku_not_live``; ``unknown_to_khaos`` rows raise nothing.
    - ``invalid_sku_code``: every ``invalid_code`` row, with the reasons.
    - ``sku_missing_in_acs``: ACS lacks the (first-registered) SKU.
    - ``sku_mismatch``: ACS holds it with a different barcode/style/colour/size/hire flag,
      whatever its ACS status.
    - ``sku_renamed``: the Khaos code moved away from the first-registered ACS SKU.
    - ``sku_not_live``: published on web at Khaos but not ready for sale.
    """
    invalid_rows = mapping["classification"] == "invalid_code"
    concern = ~invalid_rows & ~mapping["discontinued"]
    raises = mapping["stock_id"].notna() & (
        invalid_rows
        | (mapping["publish_on_web"] & ~mapping["ready_for_sale"])
        | (
            concern
            & (
                (mapping["acs_status"] == "missing")
                | (mapping["mismatch_fields"] != "")
                | mapping["renamed"]
            )
        )
    )
    khaos = mapping.loc[raises]
    specs: list[ExceptionSpec] = []
    for row in khaos.itertuples(index=False):
        stock_id = int(row.stock_id)
        ref = str(stock_id)
        base: dict[str, Any] = {
            "stock_id": stock_id,
            "stock_code": row.stock_code,
            "acs_sku": row.acs_sku,
            "acs_status": row.acs_status,
            "classification": row.classification,
        }
        name = f"{row.stock_code!r} (StockID {stock_id})"
        invalid = row.classification == "invalid_code"
        live_concern = not invalid and not row.discontinued
        if invalid:
            reasons = row.code_problems.split(PROBLEM_SEPARATOR)
            specs.append(
                ExceptionSpec(
                    type="invalid_sku_code",
                    entity_ref=ref,
                    message=f"{name} cannot be sent to ACS: {row.code_problems}",
                    details={**base, "reasons": reasons},
                )
            )
        if live_concern and row.acs_status == "missing":
            specs.append(
                ExceptionSpec(
                    type="sku_missing_in_acs",
                    entity_ref=ref,
                    message=f"{name} is not in ACS's product registry as {row.acs_sku!r}",
                    details=base,
                )
            )
        if live_concern and row.mismatch_fields:
            fields = row.mismatch_fields.split(",")
            specs.append(
                ExceptionSpec(
                    type="sku_mismatch",
                    entity_ref=ref,
                    message=f"{name} differs at ACS: {row.mismatch_detail}",
                    details={
                        **base,
                        "fields": fields,
                        "khaos": {f: _plain(getattr(row, f)) for f in fields},
                        "acs": {f: _plain(getattr(row, f"acs_{f}")) for f in fields},
                    },
                )
            )
        if live_concern and row.renamed:
            specs.append(
                ExceptionSpec(
                    type="sku_renamed",
                    entity_ref=ref,
                    message=(
                        f"StockID {stock_id} is now {row.stock_code!r} in Khaos but was first "
                        f"registered at ACS as {row.acs_sku!r}; ACS keeps {row.acs_sku!r} and "
                        "orders and stock follow the StockID"
                    ),
                    details=base,
                )
            )
        if row.publish_on_web and not row.ready_for_sale:
            specs.append(
                ExceptionSpec(
                    type="sku_not_live",
                    entity_ref=ref,
                    message=(
                        f"{name} is published on the web but ACS cannot fulfil it yet "
                        f"({row.classification.replace('_', ' ')}, ACS status "
                        f"{row.acs_status})"
                    ),
                    details=base,
                )
            )
    specs.sort(key=lambda s: (_KIND_ORDER.index(s.type), int(s.entity_ref)))
    return specs


def _plain(value: Any) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return None
    return value
