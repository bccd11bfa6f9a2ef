"""A sensor's look-up of one job's runs: only this code location's brand's, on the instance."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from acs_khaos_dagster.dagster_kit.brand import brand_tags

# Not started yet: such a run reads its source to the end when it starts.
NOT_STARTED = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
)
# Still to finish: a sensor starting another for the same work would run it twice.
RUN_IN_PROGRESS = (*NOT_STARTED, dg.DagsterRunStatus.STARTED)


@dataclass(frozen=True)
class JobRuns:
    """The runs of job ``job_name`` of this brand (run look-ups by job name are instance-wide,
    so the brand's tag narrows them: ``dagster_kit/brand.py``)."""

    instance: dg.DagsterInstance
    job_name: str

    def find(
        self,
        statuses: Iterable[dg.DagsterRunStatus] | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> list[dg.DagsterRun]:
        """Newest first."""
        filters = dg.RunsFilter(
            job_name=self.job_name,
            statuses=list(statuses) if statuses is not None else None,
            tags={**(tags or {}), **brand_tags()},
        )
        return list(self.instance.get_runs(filters=filters, limit=limit))

    def one_in_progress(self) -> bool:
        return bool(self.find(RUN_IN_PROGRESS, limit=1))

    def one_has_ended(self) -> bool:
        runs = self.find(limit=1)
        return bool(runs) and runs[0].status not in RUN_IN_PROGRESS

    def tagged(self, tags: Mapping[str, str]) -> int:
        return len(self.find(tags=tags))
