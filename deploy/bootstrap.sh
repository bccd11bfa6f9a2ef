#!/usr/bin/env bash
# One-off set-up of a production Dagster instance (run with DAGSTER_HOME set).
set -euo pipefail
: "${DAGSTER_HOME:?set DAGSTER_HOME to the folder holding deploy/dagster.yaml}"
# How many steps may talk to each external system at once, across all runs.
dagster instance concurrency set acs_api "${ACS_API_CONCURRENCY:-2}"
dagster instance concurrency set khaos_api "${KHAOS_API_CONCURRENCY:-1}"
# Several brands (deploy/README.md "Several brands"): each brand has pools of its own, so a
# slow Khaos in one brand never holds another's slot. ACS_KHAOS_BRANDS="acme bravo".
for brand in ${ACS_KHAOS_BRANDS:-}; do
    dagster instance concurrency set "acs_api:${brand}" "${ACS_API_CONCURRENCY:-2}"
    dagster instance concurrency set "khaos_api:${brand}" "${KHAOS_API_CONCURRENCY:-1}"
done
