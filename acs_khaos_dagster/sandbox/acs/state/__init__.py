"""The ACS simulator's state: SKU registry, orders, fulfilment over simulated time, units, feed.

No HTTP here: the app in ``simulator.py`` authenticates, injects faults and calls
these methods. Every public method takes the state lock, so uvicorn's threads and
the runner's ``on_clock`` never interleave inside a change.

Wire names (``OrderNumber``, ``GarmentSku``…) are used here on purpose: the
simulator speaks the modelled ACS contract, independently of the client's code, so
that a mismatch between the two shows up in the client's tests.

The package's modules: ``records`` (statuses, timetable, limits, ``ApiError``, wire helpers
and the records held), ``warehouse`` (the shared data, the lock and the timetable), and the
parts of ``AcsState`` (``core``): ``products`` (the SKU registry), ``orders`` (orders put
and revised), ``fulfilment`` (allocate, pick, pack, despatch), ``hire`` (the hire cycle),
``returns`` (customer returns) and ``units`` (stock units and warehouse events).
"""

from acs_khaos_dagster.sandbox.acs.state.core import AcsState
from acs_khaos_dagster.sandbox.acs.state.records import (
    ApiError,
    decode_cursor,
    encode_cursor,
    parse_dt,
    parse_limit,
)

__all__ = [
    "AcsState",
    "ApiError",
    "decode_cursor",
    "encode_cursor",
    "parse_dt",
    "parse_limit",
]
