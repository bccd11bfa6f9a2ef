"""The SKU registry: products put by the client, set up by ACS after its activation lag,
one barcode per SKU.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Any

from acs_khaos_dagster.sandbox.acs.state.records import (
    ApiError,
    Product,
    _err,
    decode_cursor,
    encode_cursor,
)
from acs_khaos_dagster.sandbox.acs.state.warehouse import Warehouse


class ProductRegistry(Warehouse):
    def put_product(self, sku: str, body: dict[str, Any], now: datetime) -> tuple[bool, dict]:
        errors: list[dict[str, str]] = []
        self._check_account(body, errors)
        if "sku" not in body or not isinstance(body.get("sku"), str) or not body["sku"]:
            errors.append(_err("sku", "MISSING_FIELD", "sku is required"))
        elif body["sku"] != sku:
            errors.append(
                _err(
                    "sku",
                    "SKU_MISMATCH",
                    "the body's sku differs from the path; a SKU cannot be renamed",
                )
            )
        for name in ("barcode", "style", "colour", "size", "description"):
            if name in body and body[name] is not None and not isinstance(body[name], str):
                errors.append(_err(name, "INVALID_VALUE", f"{name} must be a string"))
        if "is_hire" in body and not isinstance(body["is_hire"], bool):
            errors.append(_err("is_hire", "INVALID_VALUE", "is_hire must be a boolean"))
        if errors:
            raise ApiError(422, errors[0]["code"], errors[0]["message"], errors=errors)
        attributes = {
            "sku": sku,
            "barcode": body.get("barcode") or "",
            "style": body.get("style") or "",
            "colour": body.get("colour") or "",
            "size": body.get("size") or "",
            "description": body.get("description") or "",
            "is_hire": bool(body.get("is_hire", False)),
        }
        with self.lock:
            self.advance(now)
            # ACS identifies a garment by its barcode at goods-in: one barcode, one SKU.
            barcode = attributes["barcode"]
            if barcode and self._skus_by_barcode.get(barcode, set()) - {sku}:
                raise ApiError(
                    422,
                    "DUPLICATE_BARCODE",
                    f"barcode {barcode} is already registered to another SKU",
                    errors=[
                        _err(
                            "barcode",
                            "DUPLICATE_BARCODE",
                            f"barcode {barcode} belongs to another SKU",
                        )
                    ],
                )
            product = self.products.get(sku)
            if product is None:
                product = Product(
                    sku=sku,
                    attributes=attributes,
                    status="pending",
                    registered_at=now,
                    active_at=self._set_up_at(now),
                    puts=1,
                    revisions=1,
                )
                self._add_product(product)
                return True, self._product_json(product)
            product.puts += 1
            if product.attributes != attributes:
                self._forget_barcode(product)
                product.attributes = attributes
                product.revisions += 1
                self._remember_barcode(product)
            return False, self._product_json(product)

    def get_product(self, sku: str, now: datetime) -> dict:
        with self.lock:
            self.advance(now)
            product = self.products.get(sku)
            if product is None:
                raise ApiError(404, "NOT_FOUND", f"unknown product {sku}", "sku")
            return self._product_json(product)

    def list_products(self, cursor: str | None, limit: int, now: datetime) -> dict:
        after = decode_cursor("p", cursor) if cursor else None
        with self.lock:
            self.advance(now)
            skus = sorted(self.products)
            if after is not None:
                skus = [s for s in skus if s > after]
            page = skus[:limit]
            more = len(skus) > limit
            return {
                "products": [self._product_json(self.products[s]) for s in page],
                "next_cursor": encode_cursor("p", page[-1]) if more and page else None,
            }

    def _add_product(self, product: Product) -> None:
        self.products[product.sku] = product
        self._remember_barcode(product)
        if product.status == "pending" and product.active_at is not None:
            heapq.heappush(self._activations, (product.active_at, product.sku))

    def _remember_barcode(self, product: Product) -> None:
        barcode = product.attributes.get("barcode")
        if barcode:
            self._skus_by_barcode.setdefault(barcode, set()).add(product.sku)

    def _forget_barcode(self, product: Product) -> None:
        barcode = product.attributes.get("barcode")
        if barcode:
            self._skus_by_barcode.get(barcode, set()).discard(product.sku)

    def set_product_status(self, sku: str, status: str, active_at: datetime | None = None) -> dict:
        """``active_at``: when a ``pending`` product becomes active by itself (never if None)."""
        if status not in ("active", "inactive", "pending"):
            raise ApiError(422, "INVALID_VALUE", "status must be active, inactive or pending")
        with self.lock:
            product = self.products.get(sku)
            if product is None:
                raise ApiError(404, "NOT_FOUND", f"unknown product {sku}", "sku")
            product.status = status
            product.active_at = active_at if status == "pending" else None
            if product.active_at is not None:
                heapq.heappush(self._activations, (product.active_at, sku))
            return self._product_json(product)

    @staticmethod
    def _product_json(product: Product) -> dict:
        return {**product.attributes, "status": product.status}

    def _set_up_at(self, registered_at: datetime) -> datetime | None:
        lag = self.activation_lag
        return None if lag is None else registered_at + lag
