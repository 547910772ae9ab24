"""Customers: created and updated, and a card replaced in the portal."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from ..._wire import new_id
from ..errors import ApiError
from ..storage.billing import (
    Customer,
)
from .base import (
    LifecycleBase,
    Outcome,
)

__all__ = ["CustomerSteps"]


class CustomerSteps(LifecycleBase):
    """Customers: created and updated, and a card replaced in the portal."""

    # ------------------------------------------------------------------ customers

    def create_customer(
        self,
        *,
        customer_id: str | None,
        external_id: str | None,
        name: str | None,
        email: str | None,
        timezone_name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Customer:
        """A new customer: emits ``customer.created``."""
        with self._action():
            for ref in (customer_id, external_id):
                if ref is not None and self.billing.customer_by_any_id(ref) is not None:
                    raise ApiError(409, "conflict", f"customer {ref!r} already exists")
            now = self.now()
            customer = self.billing.customers.insert(
                Customer(
                    id=customer_id or new_id("cus"),
                    external_id=external_id,
                    name=name,
                    email=email,
                    timezone=timezone_name,
                    metadata=None if metadata is None else msgspec.json.encode(metadata).decode(),
                    created_at=now,
                    updated_at=now,
                )
            )
            self.emit("customer.created", **self.customer_payload(customer))
        return customer

    def update_customer(self, ref: str, **changes: Any) -> Customer:
        """Change a customer's details: emits ``customer.updated``."""
        with self._action():
            customer = self.customer(ref)
            if "metadata" in changes and changes["metadata"] is not None:
                changes["metadata"] = msgspec.json.encode(changes["metadata"]).decode()
            customer = dataclasses.replace(customer, **changes, updated_at=self.now())
            self.billing.customers.save(customer)
            self.emit("customer.updated", **self.customer_payload(customer))
        return customer

    @staticmethod
    def customer_payload(customer: Customer) -> dict[str, Any]:
        return {
            "id": customer.id,
            "external_id": customer.external_id,
            "full_name": customer.name,
            "email": customer.email or "",
            "tax_document": None,
            "document_type": None,
            "timezone": customer.timezone,
            "metadata": None
            if customer.metadata is None
            else msgspec.json.decode(customer.metadata),
            "created_at": customer.created_at,
            "updated_at": customer.updated_at,
        }

    def update_payment_method(self, customer_ref: str) -> Outcome:
        """The customer replaces their card in the portal: ``payment_method.updated``."""
        with self._action() as outcome:
            customer = self.customer(customer_ref)
            self.emit(
                "payment_method.updated",
                customer_id=customer.external_id or customer.id,
                payment_method="card",
            )
        return outcome
