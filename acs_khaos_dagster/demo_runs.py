"""The demo's runs, launched through the workspace's code location.

``execute_in_process`` records a run with no code-location origin: the UI's Jobs and
Overview pages (which list a location's runs by its repository label) never show it. Here
each run is created as the UI's launchpad creates it, from the remote job that the code
location of ``workspace.yaml`` serves (so it carries that location's origin and label),
then executed in this process, synchronously, like ``execute_in_process``: the demo waits
for it and needs no daemon or run queue.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, JobDefinition
from dagster._core.definitions.selector import JobSubsetSelector
from dagster._core.execution.api import execute_run
from dagster._core.execution.job_execution_result import JobExecutionResult
from dagster._core.remote_representation.code_location import CodeLocation
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import (
    ModuleTarget,
    WorkspaceFileTarget,
    WorkspaceLoadTarget,
)
from dagster._utils.hosted_user_process import recon_job_from_origin

MODULE = "acs_khaos_dagster.definitions"
REPOSITORY = "__repository__"
# `make dev` serves this file; a checkout's demo loads the very same code location.
WORKSPACE_FILE = Path(__file__).resolve().parent.parent / "workspace.yaml"


def workspace_target() -> WorkspaceLoadTarget:
    """``workspace.yaml`` in a checkout; else the module it names, which Dagster gives the
    same location name (the module's), so the runs still land under that location."""
    if WORKSPACE_FILE.exists():
        return WorkspaceFileTarget(paths=[str(WORKSPACE_FILE)])
    return ModuleTarget(
        module_name=MODULE, attribute=None, working_directory=None, location_name=None
    )


class WorkspaceRuns:
    """Runs of the code location's jobs, created with its origin, executed in process."""

    def __init__(self, instance: DagsterInstance, location: CodeLocation) -> None:
        self.instance = instance
        self.location = location

    def execute(
        self,
        job: JobDefinition,
        *,
        run_config: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
        tags: Mapping[str, str] | None = None,
        asset_selection: Sequence[AssetKey] | None = None,
    ) -> JobExecutionResult:
        """One run of ``job`` to its end; failures are in the result, never raised."""
        run_config = dict(run_config or {})
        selector = JobSubsetSelector(
            location_name=self.location.name,
            repository_name=REPOSITORY,
            job_name=job.name,
            op_selection=None,
            asset_selection=asset_selection,
        )
        remote_job = self.location.get_job(selector)
        plan = self.location.get_execution_plan(
            remote_job,
            run_config,
            step_keys_to_execute=None,
            known_state=None,
            instance=self.instance,
        )
        all_tags = {**remote_job.tags, **(tags or {})}
        if partition_key is not None:
            all_tags |= job.get_tags_for_partition_key(partition_key, selected_asset_keys=None)
        repository = self.location.get_repository(REPOSITORY)
        run = self.instance.create_run(
            job_name=job.name,
            run_id=None,
            run_config=run_config,
            status=None,
            tags=all_tags,
            root_run_id=None,
            parent_run_id=None,
            step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
            execution_plan_snapshot=plan.execution_plan_snapshot,
            job_snapshot=remote_job.job_snapshot,
            parent_job_snapshot=remote_job.parent_job_snapshot,
            asset_selection=remote_job.asset_selection,
            asset_check_selection=remote_job.asset_check_selection,
            resolved_op_selection=remote_job.resolved_op_selection,
            op_selection=None,
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            asset_graph=repository.asset_graph,
        )
        # The code location's own pointer, resolved in this process (the module is imported).
        recon = recon_job_from_origin(remote_job.get_python_origin())
        return execute_run(recon, run, self.instance, raise_on_error=False)


@contextmanager
def workspace_runs(instance: DagsterInstance) -> Iterator[WorkspaceRuns]:
    """The workspace's one code location, loaded (a code server) for the block's runs."""
    with WorkspaceProcessContext(instance, workspace_target()) as context:
        workspace = context.create_request_context()
        names = list(workspace.get_code_location_entries())
        if len(names) != 1:
            raise RuntimeError(f"the demo expects one code location in the workspace: {names}")
        location = workspace.get_code_location(names[0])
        yield WorkspaceRuns(instance, location)
