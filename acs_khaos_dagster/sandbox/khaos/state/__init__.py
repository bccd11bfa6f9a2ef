"""The Khaos Control simulator's books: stock, orders, invoices, adjustments, returns.

Plain Python, no HTTP: the SOAP layer (``soap.py``) parses a call, runs one of the
operations here under the simulator's lock, and renders the result. Every rule of
the contract's "Stock model" and "Order model" lives here:

- Level per StockID x site; open (unissued, not cancelled) invoices at a site
  allocate their non-hire quantities; ``Available = Level - allocated``.
- Issuing (the finance batch) lowers Level by the invoiced non-hire quantity;
  the allocation goes with it. Hire lines neither allocate nor move Level.
- ``ImportDespatch``, ``ImportStockAdjustments`` and ``ImportCustomerReturns``
  apply every call: no de-duplication, like the real system.

The package's modules: ``records`` (stages, codes, faults, ``IssuePolicy`` and the records
held), ``books`` (the shared data and the stock model) and the parts of ``KhaosBooks``
(``core``): ``reads`` (the export operations), ``invoices`` (stages, the finance batch,
despatch), ``adjustments`` and ``returns``.
"""

from acs_khaos_dagster.sandbox.khaos.state.core import KhaosBooks
from acs_khaos_dagster.sandbox.khaos.state.records import (
    ADJUSTMENT_REASONS,
    ISSUED_STAGES,
    RETURN_REASONS,
    AdjustmentGroupRecord,
    IssuePolicy,
    ReturnRecord,
    SimFault,
    validation,
)

__all__ = [
    "ADJUSTMENT_REASONS",
    "ISSUED_STAGES",
    "RETURN_REASONS",
    "AdjustmentGroupRecord",
    "IssuePolicy",
    "KhaosBooks",
    "ReturnRecord",
    "SimFault",
    "validation",
]
