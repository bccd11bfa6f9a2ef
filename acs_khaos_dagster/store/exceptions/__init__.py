"""The exception queue: one row per open problem a person has to look at.

A problem is keyed by its type and entity reference; seeing it again updates that row
(count, last seen) instead of adding one. Flows call ``auto_resolve`` with the references
still wrong, so fixed problems close themselves.
"""

# Re-exported as before the split: the store names the owners' targets from here.
from acs_khaos_dagster.config import OwnerTargets
from acs_khaos_dagster.store.exceptions.kinds import (
    DEFAULT_OWNERS,
    DEFAULT_SEVERITIES,
    SEVERITIES,
    STATUSES,
    ExceptionNotFound,
    ExceptionType,
    ListedException,
    Owner,
    SecondApprovalNeeded,
)
from acs_khaos_dagster.store.exceptions.queue import ExceptionQueue

__all__ = [
    "DEFAULT_OWNERS",
    "DEFAULT_SEVERITIES",
    "SEVERITIES",
    "STATUSES",
    "ExceptionNotFound",
    "ExceptionQueue",
    "ExceptionType",
    "ListedException",
    "Owner",
    "OwnerTargets",
    "SecondApprovalNeeded",
]
