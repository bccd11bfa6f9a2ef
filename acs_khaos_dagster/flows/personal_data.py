"""Personal data retention: blank customers' data the store no longer needs.

The rule (which bodies, when) is ``store.retention``; this is the nightly step over it,
with what it did as figures for the run's metadata.
"""

from datetime import datetime

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.flows.figures import Figures
from acs_khaos_dagster.store import Store


def purge_personal_data(db: Store, conf: Settings, now: datetime) -> Figures:
    """Blank bodies older than ``retention.personal_data_days``; what was blanked and kept."""
    report = db.purge_personal_data(conf.retention.personal_data_days, now)
    return {
        "cutoff": report.cutoff.isoformat(),
        "effects_purged": report.effects_purged,
        "releases_purged": report.releases_purged,
        "releases_kept_unfinished": report.releases_kept_unfinished,
    }
