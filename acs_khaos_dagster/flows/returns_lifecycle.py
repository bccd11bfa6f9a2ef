"""The hire unit lifecycle's figures, for the returns group's asset: ``flows.hire`` folds
the lifecycle, this says what a run of it did and where the hire units are now."""

from collections import Counter

from acs_khaos_dagster.domain.hire import HireStage
from acs_khaos_dagster.flows.figures import Figures, table
from acs_khaos_dagster.flows.hire import HireLifecycle


def lifecycle_figures(result: HireLifecycle) -> Figures:
    lifecycle = result.lifecycle
    stages = Counter(lifecycle["stage"])
    return {
        # This run's: the lifecycle is folded incrementally (flows.hire).
        "snapshots_read": result.snapshots_read,
        "snapshots_late": result.snapshots_late,
        "hire_units_rewritten": result.units_rewritten,
        "hire_units": len(lifecycle),
        **{f"hire_units_{s.value}": int(stages.get(s.value, 0)) for s in HireStage},
        "hire_returns": result.hire_returns,
        "sample": table(lifecycle, 10),
    }
