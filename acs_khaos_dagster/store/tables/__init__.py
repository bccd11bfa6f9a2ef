"""Tables of the individual flows (products, orders, stock, returns), one module each.

Every module here is imported by ``store.schema`` so Alembic and the drift test see it.
Each flow's migration revises the core revision ``0001``.
"""
