"""The lifecycle's plumbing: simulated time, emitting events, lookups, and charging.

Every step of the lifecycle runs through :meth:`LifecycleBase._action` (state and
events in one transaction) and emits with :meth:`LifecycleBase.emit`, which builds
the payload from the published example of its type with the simulation's values.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..._samples import sample_data, sample_envelope, wire_value
from ..._wire import camel_case, iso_time, new_id
from ..errors import ApiError, validation_error
from ..plans import ADD_ONS, Feature, Plan
from ..storage import Endpoint, Storage
from ..storage.billing import (
    Customer,
    Invoice,
    Payment,
    Subscription,
)
from ..storage.times import from_iso

__all__ = [
    "ACCESS_STATUSES",
    "BILLABLE",
    "ENDED",
    "OMIT",
    "Clock",
    "ClockItem",
    "LifecycleBase",
    "Outcome",
    "add_interval",
]


#: The ``organizationId`` stamped on every envelope the emulator sends.
ORGANIZATION_ID = "org_emulator"
#: Statuses that grant access to a plan's features.
ACCESS_STATUSES = ("active", "trialing", "past_due")
ENDED = ("canceled", "expired")
BILLABLE = ("active", "trialing", "past_due")

# Timing of the platform's scheduled work.
TRIAL_NOTICE = timedelta(days=3)  # trial.will_end, 3 days before the trial ends
UPCOMING_NOTICE = timedelta(days=3)  # invoice.upcoming, 3 days before a renewal
INVOICE_DUE = timedelta(days=1)  # an open invoice becomes overdue after this
DUNNING_RETRIES = (timedelta(days=3), timedelta(days=5), timedelta(days=7))
FUNDS_HOLD = timedelta(days=2)  # a payment's funds become available for payout
PAYOUT_TRANSIT = timedelta(days=2)  # a payout reaches the bank
# A card processor's cut, so orgNetAmount differs from grossAmount as it does live.
FEE_RATE, FEE_FIXED = 0.029, 30
PAYOUT_FEE = 25
LOW_SHARE = 0.10  # credits.low / balance.low below 10% of the period's amount
QUOTA_SHARE = 0.80  # quota.threshold_reached at 80% of the included amount
_MAX_STEPS = 100_000  # a guard against a clock run that would never end
#: A field value meaning "leave this optional field out of the payload".
OMIT: Any = object()


def add_interval(moment: datetime, interval: str, count: int = 1) -> datetime:
    """``count`` billing intervals later, clamping the day (31 Jan + 1 month = 28/29 Feb)."""
    months = (12 if interval == "yearly" else 1) * count
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class Clock:
    """Simulated time: real time plus an offset kept in the database (never goes back)."""

    def __init__(self, store: Storage) -> None:
        self.store = store

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.store.clock.offset())

    def iso(self) -> str:
        return iso_time(self.now())

    def move_to(self, moment: datetime) -> None:
        """Set simulated time to ``moment`` (ignored when that would go back)."""
        real = datetime.now(timezone.utc)
        offset = (moment - real).total_seconds()
        if offset > self.store.clock.offset():
            self.store.clock.set_offset(offset)


@dataclass
class Outcome:
    """What an action did: the subscription after it (if any) and the events it emitted."""

    subscription: Subscription | None = None
    event_ids: list[str] = field(default_factory=list)
    result: Any = None


@dataclass
class ClockItem:
    """One piece of work the clock ran (the platform lists billing cycles and retries)."""

    kind: str
    due_at: str
    subscription_id: str | None
    outcome: str
    invoice_id: str | None = None
    invoice_number: str | None = None
    customer_name: str | None = None


class LifecycleBase:
    """What every group of lifecycle steps shares: storage, plans, clock, emitting."""

    def __init__(self, store: Storage, plans: Mapping[str, Plan]) -> None:
        self.store = store
        self.billing = store.billing
        self.plans = dict(plans)
        self.clock = Clock(store)
        self._emitted: list[str] | None = None

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _action(self) -> Iterator[Outcome]:
        """One atomic step: state changes and the events they emit commit together."""
        outcome = Outcome()
        outer = self._emitted
        self._emitted = outcome.event_ids
        try:
            with self.store.db.transaction():
                yield outcome
        finally:
            self._emitted = outer
        if outer is not None:
            outer.extend(outcome.event_ids)

    def emit(self, event_type: str, **fields: Any) -> str:
        """Emit ``event_type`` with a schema-valid payload carrying ``fields``.

        A dict given for a field the published example also has as an object is
        merged into it (``payment_context={"reason": ...}`` keeps the other keys).
        """
        example = sample_data(event_type)
        merged: dict[str, Any] = {}
        for name, value in fields.items():
            base = example.get(camel_case(name))
            if isinstance(value, dict) and isinstance(base, dict):
                value = {**base, **wire_value(value)}
            merged[name] = value
        data = sample_data(event_type, **{k: v for k, v in merged.items() if v is not OMIT})
        for name, value in merged.items():
            if value is OMIT:  # an optional field that does not apply: leave it out
                data.pop(camel_case(name), None)
        return self.emit_data(event_type, data)

    def emit_data(self, event_type: str, data: Mapping[str, Any]) -> str:
        """Emit ``event_type`` with exactly ``data`` (the ``POST /api/emulator/events`` route)."""
        envelope = sample_envelope(
            event_type, dict(data), organization_id=ORGANIZATION_ID, mode="sandbox"
        )
        self.store.events.record(envelope, self.store.endpoints.active())
        event_id = str(envelope["id"])
        if self._emitted is not None:
            self._emitted.append(event_id)
        return event_id

    def send_test(self, event_type: str, endpoint: Endpoint) -> str:
        """A sample ``event_type`` for one endpoint only, as one attempt that is never
        retried (``POST /api/v1/webhooks/{id}/test``); returns the delivery id."""
        envelope = sample_envelope(
            event_type, sample_data(event_type), organization_id=ORGANIZATION_ID, mode="sandbox"
        )
        (delivery_id,) = self.store.events.record(envelope, [endpoint], manual=True)
        return delivery_id

    def now(self) -> str:
        return self.clock.iso()

    def plan(self, plan_id: str) -> Plan:
        # A subscription may outlive its plan when the catalog file changes.
        return self.plans.get(plan_id) or Plan(id=plan_id, name=plan_id, base_price=0)

    def _known_plan(self, plan_id: str, field_name: str = "planId") -> Plan:
        if plan_id not in self.plans:
            raise validation_error(
                field_name, f"unknown plan {plan_id!r}; known: {', '.join(sorted(self.plans))}"
            )
        return self.plans[plan_id]

    def customer(self, ref: str, field_name: str | None = None) -> Customer:
        found = self.billing.customer_by_any_id(ref)
        if found is None:
            if field_name is not None:
                raise validation_error(field_name, f"unknown customer {ref!r}")
            raise ApiError(404, "not_found", f"customer {ref!r} not found")
        return found

    def subscription(self, subscription_id: str) -> Subscription:
        found = self.billing.subscriptions.get(subscription_id)
        if found is None:
            raise ApiError(404, "not_found", f"subscription {subscription_id!r} not found")
        return found

    @staticmethod
    def _require(sub: Subscription, allowed: tuple[str, ...], action: str) -> None:
        if sub.status not in allowed:
            raise ApiError(
                409,
                "invalid_state",
                f"cannot {action} subscription {sub.id!r} in status {sub.status!r} "
                f"(allowed: {', '.join(allowed)})",
            )

    def _save(self, sub: Subscription, **changes: Any) -> Subscription:
        updated = dataclasses.replace(sub, **changes, updated_at=self.now())
        self.billing.subscriptions.save(updated)
        return updated

    def customer_ref(self, customer_id: str) -> str:
        """The id payloads carry for a customer: its externalId when it has one."""
        found = self.billing.customers.get(customer_id)
        return (found.external_id or found.id) if found is not None else customer_id

    def _sub_ids(self, sub: Subscription) -> dict[str, Any]:
        return {"subscription_id": sub.id, "customer_id": self.customer_ref(sub.customer_id)}

    def _plan_ref(self, plan: Plan) -> dict[str, str]:
        return {"id": plan.id, "name": plan.name}

    def _state_changed(self, sub: Subscription | None, customer_id: str, trigger: str) -> None:
        """``customer.state_changed``: what the customer can access after ``trigger``."""
        live = sub is not None and sub.status in ACCESS_STATUSES
        fields: dict[str, Any] = {
            "customer_id": self.customer_ref(customer_id),
            "trigger": trigger,
            "status": sub.status if sub is not None and live else "none",
            "subscription_id": sub.id if sub is not None and live else None,
            "plan": self._plan_ref(self.plan(sub.plan_id)) if sub is not None and live else None,
            "billing_interval": self.plan(sub.plan_id).billing_interval
            if sub is not None and live
            else None,
            "consumption_model": self.plan(sub.plan_id).consumption_model
            if sub is not None and live
            else None,
            "features": [],
            "seats": [],
            "credits": None,
            "balance": None,
        }
        self.emit("customer.state_changed", **fields)

    # ------------------------------------------------------------------ invoices, charges

    def _new_invoice(
        self,
        sub: Subscription,
        plan: Plan,
        *,
        status: str,
        start: datetime | None,
        end: datetime | None,
        amount: int | None = None,
    ) -> Invoice:
        now = self.clock.now()
        total = plan.base_price if amount is None else amount
        return self.billing.invoices.insert(
            Invoice(
                id=new_id("inv"),
                number=f"INV-{self.store.db.next_number('invoice'):04d}",
                subscription_id=sub.id,
                customer_id=sub.customer_id,
                status=status,
                currency=plan.currency,
                subtotal=total,
                total=total,
                period_start=None if start is None else iso_time(start),
                period_end=None if end is None else iso_time(end),
                created_at=iso_time(now),
                due_date=iso_time(now + INVOICE_DUE),
            )
        )

    def _invoice_fields(self, invoice: Invoice) -> dict[str, Any]:
        return {
            "invoice_id": invoice.id,
            "invoice_number": invoice.number,
            "invoice_status": invoice.status,
            "period_start": invoice.period_start or invoice.created_at,
            "period_end": invoice.period_end or invoice.created_at,
            "issue_date": invoice.created_at,
            "due_date": invoice.due_date or invoice.created_at,
            "currency": invoice.currency,
            "subtotal": invoice.subtotal,
            "total": invoice.total,
            "customer_id": self.customer_ref(invoice.customer_id),
            "subscription_id": invoice.subscription_id,
        }

    def _charge_fails(self) -> bool:
        """Whether the next charge is declined (``/api/emulator/charges/fail-next``)."""
        return self.store.counters.take("fail_charges")

    def _settle(self, sub: Subscription, invoice: Invoice, *, reason: str) -> Payment:
        """A charge of ``invoice`` succeeds: the invoice is paid, ``payment.received``."""
        now = self.now()
        invoice = dataclasses.replace(invoice, status="paid", paid_at=now)
        self.billing.invoices.save(invoice)
        payment = self.billing.payments.insert(
            Payment(
                id=new_id("txn"),
                invoice_id=invoice.id,
                subscription_id=sub.id,
                customer_id=sub.customer_id,
                amount=invoice.total,
                currency=invoice.currency,
                status="succeeded",
                created_at=now,
                available_at=iso_time(self.clock.now() + FUNDS_HOLD),
            )
        )
        customer = self.billing.customers.get(sub.customer_id)
        total = invoice.total
        self.emit(
            "payment.received",
            payment_context={"reason": reason},
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            invoice_total=total,
            customer_id=self.customer_ref(sub.customer_id),
            subscription_id=sub.id,
            payment_transaction_id=payment.id,
            provider="stripe",
            payment_method="card",
            sub_payment_method="credit_card",
            gross_amount=total,
            currency=invoice.currency,
            org_net_amount=max(total - round(total * FEE_RATE) - FEE_FIXED, 0) if total else 0,
            customer_email=customer.email if customer is not None else None,
            paid_at=now,
        )
        return payment

    def _decline(self, sub: Subscription, invoice: Invoice, *, reason: str) -> None:
        self.emit(
            "payment.failed",
            payment_context={"reason": reason},
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            customer_id=self.customer_ref(sub.customer_id),
            subscription_id=sub.id,
            provider="stripe",
            payment_method="card",
            sub_payment_method="credit_card",
            failure_code="card_declined",
            failure_message="Your card was declined.",
            recovery_url=f"https://commet.co/portal/invoices/{invoice.id}",
        )

    def _unused_share(self, sub: Subscription) -> float:
        if sub.current_period_start is None or sub.current_period_end is None:
            return 1.0
        start, end = from_iso(sub.current_period_start), from_iso(sub.current_period_end)
        if end <= start:
            return 1.0
        left = (end - self.clock.now()) / (end - start)
        return min(max(left, 0.0), 1.0)

    def _feature(self, sub: Subscription | None, code: str) -> Feature | None:
        if sub is None:
            return None
        return next((f for f in self.plan(sub.plan_id).features if f.code == code), None)

    def catalog_feature(self, code: str) -> Feature | None:
        for plan in self.plans.values():
            for feature in plan.features:
                if feature.code == code:
                    return feature
        addon = next((a for a in ADD_ONS.values() if a.feature_code == code), None)
        if addon is not None:
            return Feature(code=addon.feature_code, name=addon.name, type="boolean")
        return None
