"""How one simulated ACS account behaves where real accounts differ from the modelled contract.

The integration is set up with the matching settings (``acs.time_without_offset``,
``acs.dates_day_first``); ``sandbox.variants`` declares both sides of each variant once.
"""

from __future__ import annotations

from dataclasses import dataclass

from acs_khaos_dagster.sandbox.acs.files import AcsTimes, Timestamps


@dataclass(frozen=True)
class AcsInstall:
    """``timestamps``: how the account writes times (``files.AcsTimes``).
    ``sets_up_skus``: a newly registered SKU becomes active after the set-up lag; when
    False ACS never sets it up and it stays ``pending``."""

    timestamps: Timestamps = "utc_z"
    sets_up_skus: bool = True

    @property
    def times(self) -> AcsTimes:
        return AcsTimes(self.timestamps)


MODELLED = AcsInstall()
