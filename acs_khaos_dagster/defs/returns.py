"""Returns group: ACS graded returns to Khaos customer returns, credits and write-offs."""

from dagster import Definitions

defs = Definitions()
