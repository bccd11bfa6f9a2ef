"""The core sheets' columns (``TableSpec``): stock, order to cash, returns, exceptions,
drift, non-sellable. Part of ``reports.pack_sheets`` (see its docstring); code moved
verbatim."""

from __future__ import annotations

from acs_khaos_dagster.reports._tables import Column, TableSpec

STOCK_CLASSIFICATIONS = ("in_step", "in_flight", "push_missing", "within_tolerance", "unexplained")
ORDER_TO_CASH_STATUSES = ("despatched_not_posted", "posted_not_invoiced", "invoiced")
CREDIT_STATUSES = ("raised", "review", "none")
SIGN = "ACS − Khaos: positive = the warehouse holds more than Khaos's Level"

STOCK_RECONCILIATION = TableSpec(
    "stock_reconciliation",
    "Stock reconciliation",
    (
        Column("stock_id", "int", "Stock ID", "Khaos StockID."),
        Column("stock_code", "text", "Stock code", "Khaos StockCode (the SKU)."),
        Column("site_id", "int", "Site ID", "Khaos site id."),
        Column("site_name", "text", "Site", "Khaos site name."),
        Column("acs_units", "int", "ACS units", "ACS units for this site under the status policy."),
        Column("khaos_level", "int", "Khaos Level", "Khaos Level (ExportStockStatus)."),
        Column("difference", "int", "Difference (units)", f"acs_units − khaos_level ({SIGN})."),
        Column("value", "money", "Difference value (£ at cost)", "difference × CostPrice, signed."),
        Column(
            "explained_in_flight",
            "int",
            "In transit / timing (units)",
            "Part of the difference that is timing only: despatched not yet invoiced, "
            "restocked not yet processed, changes still in the outbox (ACS − Khaos).",
        ),
        Column(
            "explained_push_missing",
            "int",
            "Unconfirmed pushes (units)",
            "Part of the difference a stock push the outbox gave up on would have moved.",
        ),
        Column(
            "unexplained",
            "int",
            "Unexplained (units)",
            "difference − in transit − unconfirmed pushes (ACS − Khaos).",
        ),
        Column(
            "unexplained_value",
            "money",
            "Unexplained value (£ at cost)",
            "unexplained × CostPrice, signed; empty when the cost price is unknown.",
            nullable=True,
        ),
        Column(
            "classification",
            "text",
            "Classification",
            "unexplained (beyond tolerance: drift), within_tolerance (booked as VARIANCE by "
            "the next push), push_missing, in_flight (timing), in_step.",
            allowed=STOCK_CLASSIFICATIONS,
        ),
    ),
)
ORDER_TO_CASH = TableSpec(
    "order_to_cash",
    "Order to cash",
    (
        Column("shipment_id", "text", "Shipment", "ACS shipment reference."),
        Column("order_number", "text", "Order", "Khaos order number."),
        Column("despatched_at", "datetime", "Despatched (UK)", "Despatch time; naive = UK time."),
        Column(
            "status",
            "text",
            "Status",
            "As at the pack's as-at moment: "
            + ", ".join(ORDER_TO_CASH_STATUSES)
            + " (an invoice issued later is not invoiced yet).",
            allowed=ORDER_TO_CASH_STATUSES,
        ),
        Column("age_days", "int", "Age (days)", "Whole days since despatch at the as-at moment."),
        Column(
            "value_waiting",
            "money",
            "Value waiting (£)",
            "Goods value (units × UnitNet, net of VAT) not yet invoiced (0 once invoiced).",
        ),
        Column("ageing_bucket", "text", "Ageing bucket", "Age band at the as-at moment."),
        Column("invoice_id", "text", "Invoice", "Khaos invoice id (empty: never posted).", True),
        Column(
            "issue_date", "date", "Issued (UK)", "Invoice issue date; empty if not issued.", True
        ),
        Column("issue_period", "text", "Issue period", "Month of issue (YYYY-MM).", True),
        Column("period", "text", "Despatch period", "Month of despatch (YYYY-MM), UK time."),
        Column("value", "money", "Net value (£)", "units × UnitNet, net of VAT.", True),
    ),
)
RETURNS = TableSpec(
    "returns",
    "Returns",
    (
        Column("return_ref", "text", "Return", "ACS return reference."),
        Column("part", "text", "Part", "The returned unit (its unique SKU)."),
        Column("grade", "text", "Grade", "ACS grade (A, B, C, BER, ...)."),
        Column(
            "credit_status",
            "text",
            "Credit",
            "raised (credit note raised), review (pending review) or none.",
            allowed=CREDIT_STATUSES,
        ),
        Column("credit_value", "money", "Credit value (£)", "Value of the credit (raised/review)."),
        Column("written_off_units", "int", "Units written off", "Units written off for this part."),
        Column("write_off_value", "money", "Write-off value (£ at cost)", "At CostPrice."),
        Column(
            "refund_days_left",
            "int",
            "Refund days left",
            "Whole days left of the 14-day refund window at the as-at moment; negative = "
            "overdue; empty = refunded/n/a.",
            nullable=True,
        ),
        Column("order_number", "text", "Order", "The Khaos order the unit was sold on.", True),
        Column("order_date", "date", "Ordered (UK)", "Date of that order.", True),
        Column("received_date", "date", "Received (UK)", "Date ACS received the return.", True),
        Column("hire", "text", "Sale or hire", "sale, or hire (a hire return owes no credit)."),
    ),
)
EXCEPTIONS = TableSpec(
    "exceptions",
    "Exceptions",
    (
        Column("type", "text", "Exception type", "Exception type code."),
        Column("owner", "text", "Owner team", "operations, finance, ecommerce, integration..."),
        Column("count", "int", "Open", "Open exceptions of this type and owner."),
        Column("oldest_age_hours", "number", "Oldest (hours)", "Age of the oldest open one."),
        Column(
            "over_target",
            "int",
            "Over target",
            "How many of them are older than the owner team's target age (0..count).",
        ),
    ),
)
DRIFT_BY_DAY = TableSpec(
    "drift_by_day",
    "Drift by day",
    (
        Column("day", "date", "Day", "A day of the month (UK)."),
        Column(
            "unexplained_units",
            "int",
            "Unexplained units",
            "Σ |Unexplained (units)| of that day's rows classified unexplained.",
        ),
        Column(
            "unexplained_value",
            "money",
            "Unexplained value (£ at cost)",
            "Σ |Unexplained value| of those rows.",
        ),
    ),
)
NON_SELLABLE_VALUE = TableSpec(
    "non_sellable_value",
    "Non-sellable stock",
    (
        Column("site_name", "text", "Site", "Khaos non-sellable site name."),
        Column("units", "int", "Units", "Units (Level) in the site."),
        Column("value_at_cost", "money", "Value (£ at cost)", "units × CostPrice."),
    ),
)
