"""The snapshot's quality, as a check operations can see and rerun in the UI.

Not blocking: the push's own guards refuse a cut or implausible file. This check says, per
snapshot day (partitioned like the snapshot; re-run for a past day, it judges that day's
newest snapshot), whether the file was whole, how much of it was quarantined and how many
units were in statuses the policy does not know.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    MetadataValue,
)

from acs_khaos_dagster.defs.brand import brand_key
from acs_khaos_dagster.defs.checks import owned_by, partitioned_check
from acs_khaos_dagster.defs.partitions import SNAPSHOT_DAYS
from acs_khaos_dagster.defs.resources import SettingsResource

SNAPSHOT = AssetKey("acs_stock_snapshot")


def snapshot_quality_findings(
    metadata: dict[str, float], max_quarantine_share: float, max_unknown_share: float
) -> list[str]:
    """What is wrong with a snapshot, from its materialisation's figures (empty: nothing)."""
    units = metadata.get("units", 0)
    quarantined = metadata.get("rows_quarantined", 0)
    unknown = metadata.get("unknown_status_units", 0)
    findings = []
    if metadata.get("file_truncated", 0):
        findings.append("the file was cut short (refused: stock_file_truncated)")
    rows = units + quarantined
    if rows and quarantined / rows > max_quarantine_share:
        findings.append(f"{quarantined} of {rows:g} rows quarantined")
    if units and unknown / units > max_unknown_share:
        findings.append(f"{unknown:g} of {units:g} units in unknown statuses")
    return findings


@partitioned_check(
    partitions_def=SNAPSHOT_DAYS,
    asset=SNAPSHOT,
    name="snapshot_file_is_whole_and_known",
    # ACS sent the file: operations ask for it again (as for stock_file_truncated).
    metadata=owned_by("operations"),
    description="The stock file was whole, at most stock.max_quarantine_share of its rows were "
    "quarantined and at most stock.max_unknown_share of its units were in unknown statuses.",
)
def snapshot_file_is_whole_and_known(
    context: AssetCheckExecutionContext, settings: SettingsResource
) -> AssetCheckResult:
    day = context.partition_key
    snapshot = brand_key(SNAPSHOT.path[-1])
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=snapshot, asset_partitions=[day]), limit=1
    ).records
    if not records:
        return AssetCheckResult(passed=False, metadata={"missing": f"no snapshot for {day}"})
    materialization = records[0].asset_materialization
    assert materialization is not None
    figures = {
        key: float(value.value)
        for key, value in materialization.metadata.items()
        if isinstance(value.value, int | float)
    }
    file = materialization.metadata.get("file")
    stock = settings.load().stock
    findings = snapshot_quality_findings(
        figures, stock.max_quarantine_share, stock.max_unknown_share
    )
    return AssetCheckResult(
        passed=not findings,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(findings) or "whole, nothing unusual",
        metadata={
            "file": MetadataValue.text(str(getattr(file, "value", ""))),
            "units": int(figures.get("units", 0)),
            "rows_quarantined": int(figures.get("rows_quarantined", 0)),
            "unknown_status_units": int(figures.get("unknown_status_units", 0)),
            "file_truncated": bool(figures.get("file_truncated", 0)),
        },
    )
