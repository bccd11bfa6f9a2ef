"""StockID ↔ ACS SKU identities and the content last pushed for each SKU."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from acs_khaos_dagster.store.db import Database
from acs_khaos_dagster.store.tables.products import SkuIdentity


class SkuIdentities:
    def __init__(self, db: Database) -> None:
        self._db = db

    def identity(self, session: Session | None = None) -> dict[int, str]:
        """``stock_id -> acs_sku`` as first registered."""
        with self._db.transaction(session) as s:
            rows = s.execute(select(SkuIdentity.stock_id, SkuIdentity.acs_sku))
            return {stock_id: acs_sku for stock_id, acs_sku in rows}

    def last_pushed_hashes(self, session: Session | None = None) -> dict[int, str]:
        with self._db.transaction(session) as s:
            rows = s.execute(
                select(SkuIdentity.stock_id, SkuIdentity.last_pushed_hash).where(
                    SkuIdentity.last_pushed_hash.is_not(None)
                )
            )
            return {stock_id: digest for stock_id, digest in rows if digest}

    def record(
        self,
        new_identities: Mapping[int, str],
        stock_codes: Mapping[int, str],
        pushed_hashes: Mapping[int, str],
        session: Session,
    ) -> None:
        """Store first registrations and pushed content hashes in the caller's transaction.

        An identity once stored is never changed: that is what keeps a renamed Khaos
        stock code on the ACS SKU it was first registered under.
        """
        now = self._db.now()
        # One statement each for all rows (executemany): a first load registers 50k SKUs.
        if new_identities:
            insert = self._db.insert(SkuIdentity).on_conflict_do_nothing(
                index_elements=[SkuIdentity.stock_id]
            )
            session.execute(
                insert,
                [
                    {
                        "stock_id": stock_id,
                        "acs_sku": acs_sku,
                        "first_stock_code": stock_codes.get(stock_id, acs_sku),
                        "registered_at": now,
                    }
                    for stock_id, acs_sku in new_identities.items()
                ],
            )
        if pushed_hashes:
            table = SkuIdentity.__table__
            session.execute(
                update(table)
                .where(table.c.stock_id == bindparam("pushed_stock_id"))
                .values(last_pushed_hash=bindparam("pushed_hash"), last_pushed_at=now),
                [
                    {"pushed_stock_id": stock_id, "pushed_hash": digest}
                    for stock_id, digest in pushed_hashes.items()
                ],
            )
