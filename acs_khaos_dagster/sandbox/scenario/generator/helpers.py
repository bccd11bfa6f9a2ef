"""Small helpers of the generator: time stamps, EAN-13 check digits, exact shares by
largest remainder, and ACS's drifting status spellings.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from random import Random

from acs_khaos_dagster.sandbox.scenario.generator.tables import STATUS_VARIANT_PCT


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def file_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def ean13(body12: str) -> str:
    """Append the EAN-13 check digit to a 12-digit body."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def _weighted(rng: Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _quota(total: int, shares: tuple[tuple[str, int], ...]) -> list[str]:
    """Exactly ``total`` labels in the given integer shares (largest remainder)."""
    weight = sum(w for _, w in shares)
    counts = {label: total * w // weight for label, w in shares}
    order = sorted(shares, key=lambda s: (-(total * s[1] % weight), s[0]))
    for label, _ in order[: total - sum(counts.values())]:
        counts[label] += 1
    return [label for label, _ in shares for _ in range(counts[label])]


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to integer ``weights`` (largest remainder, deterministic)."""
    if not weights:
        return []
    whole = sum(weights)
    counts = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _spelling(rng: Random, status: str) -> str:
    """ACS's spelling drifts between files: case and dash style vary on a few rows."""
    if rng.randrange(100) >= STATUS_VARIANT_PCT:
        return status
    variant = rng.randrange(4)
    if variant == 0:
        return status.upper()
    if variant == 1:
        return status.lower()
    if variant == 2:
        return status.replace(" - ", " – ").replace("-", "–")
    return status.replace(" - ", "-")


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())
