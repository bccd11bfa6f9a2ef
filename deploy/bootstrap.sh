#!/usr/bin/env bash
# One-off set-up of a production Dagster instance (run with DAGSTER_HOME set).
set -euo pipefail
: "${DAGSTER_HOME:?set DAGSTER_HOME to the folder holding deploy/dagster.yaml}"
# How many steps may talk to each external system at once, across all runs.
dagster instance concurrency set acs_api "${ACS_API_CONCURRENCY:-2}"
dagster instance concurrency set khaos_api "${KHAOS_API_CONCURRENCY:-1}"
