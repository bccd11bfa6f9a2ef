"""ACS (fashion 3PL) <-> Khaos Control (retail ERP) integration, orchestrated by Dagster.

Layers (each calls only the one below it):
- ``domain``: pure rules over pydantic models and DataFrames, no I/O.
- ``connectors``: one package per external system (``acs``, ``khaos``); the only
  code that knows wire field names.
- ``store``: the integration's own database (outbox, exceptions, audit, ledger).
- ``defs``: Dagster assets, checks, sensors, schedules and resources.
- ``sandbox``: simulators of both systems for the demo, tests and benchmarks.
  Production code never imports it.
"""

__version__ = "0.1.0"
