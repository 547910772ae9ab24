"""The simulated Commet: what happens to customers, subscriptions and money, and the
events each step emits, in the platform's order.

Everything a subscription goes through lives here, one method per step: checkout,
trial, activation, renewal (with the upcoming-invoice notice, scheduled changes,
pauses and cancellations taking effect), failed payments and dunning, recovery,
reactivation, refunds and disputes, usage against quotas, credits and balances,
seats, add-ons, payment links, plan grants and payouts. The test clock
(:meth:`Lifecycle.advance`) runs every step that falls due, in time order.

The lifecycle reads and writes records through :mod:`.storage` and builds every
payload with :func:`commet_webhooks._samples.sample_data`, filled with the
simulation's real ids and amounts; it never writes SQL or hand-builds a payload.
"""

from __future__ import annotations

import calendar
import dataclasses
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from .._samples import sample_data, sample_envelope, wire_value
from .._wire import camel_case, iso_time, new_id
from .errors import ApiError, validation_error
from .plans import ADD_ONS, Feature, Plan
from .storage import Endpoint, Storage
from .storage.billing import (
    AddOn,
    Customer,
    Invoice,
    Payment,
    PaymentLink,
    Payout,
    PlanGrant,
    Subscription,
)
from .storage.times import from_iso

__all__ = ["ACCESS_STATUSES", "Clock", "Lifecycle", "Outcome"]

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


class Lifecycle:
    """Simulated billing over the emulator's storage and a plan catalog."""

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

    # ------------------------------------------------------------------ checkout, trial

    def create_subscription(
        self, customer_ref: str, plan_id: str, *, trial_days: int | None = None
    ) -> Outcome:
        """A subscription awaiting its checkout: ``subscription.created``, then
        ``checkout.ready`` (or ``trial.checkout_ready`` for a trial plan)."""
        plan = self._known_plan(plan_id)
        with self._action() as outcome:
            customer = self.customer(customer_ref, "customerId")
            current = self.billing.current_subscription(customer.id)
            if current is not None:
                raise ApiError(
                    409,
                    "conflict",
                    f"customer {customer_ref!r} already has subscription {current.id!r} "
                    f"({current.status}); cancel it first",
                )
            now = self.now()
            days = plan.trial_days if trial_days is None else trial_days
            sub = self.billing.subscriptions.insert(
                Subscription(
                    id=new_id("sub"),
                    public_id="SUB-" + secrets.token_hex(3).upper(),
                    customer_id=customer.id,
                    plan_id=plan.id,
                    status="pending_payment",
                    name=f"{plan.name} plan",
                    start_date=now,
                    created_at=now,
                    updated_at=now,
                    trial_ends_at=iso_time(self.clock.now() + timedelta(days=days))
                    if days > 0
                    else None,
                )
            )
            ids = self._sub_ids(sub)
            self.emit(
                "subscription.created",
                **ids,
                plan_id=plan.id,
                plan_name=plan.name,
                status="pending_payment",
                start_date=now,
                name=sub.name,
            )
            checkout = f"https://commet.co/checkout/{sub.id}"
            if days > 0:
                self.emit(
                    "trial.checkout_ready",
                    **ids,
                    plan_name=plan.name,
                    trial_days=days,
                    checkout_url=checkout,
                )
            else:
                invoice = self._new_invoice(sub, plan, status="open", start=None, end=None)
                self.emit(
                    "checkout.ready",
                    **ids,
                    invoice_id=invoice.id,
                    invoice_number=invoice.number,
                    invoice_total=invoice.total,
                    invoice_currency=invoice.currency,
                    checkout_url=checkout,
                )
            outcome.subscription = sub
        return outcome

    def pay(self, subscription_id: str) -> Outcome:
        """The customer completes checkout.

        Without a trial the first charge settles: ``payment.received``,
        ``subscription.activated``, ``payment_method.attached``, then the access and
        credit events. With a trial the card is saved and the trial starts:
        ``payment_method.attached``, ``trial.started``.
        """
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, ("pending_payment", "draft"), "pay")
            plan = self.plan(sub.plan_id)
            ids = self._sub_ids(sub)
            if sub.trial_ends_at is not None:
                sub = self._save(sub, status="trialing")
                self.emit(
                    "payment_method.attached",
                    **ids,
                    payment_method="card",
                )
                self.emit(
                    "trial.started",
                    **ids,
                    status="trialing",
                    plan_id=plan.id,
                    plan_name=plan.name,
                    trial_ends_at=sub.trial_ends_at,
                )
                self._state_changed(sub, sub.customer_id, "trial_started")
                outcome.subscription = sub
                return outcome
            invoice = self.billing.open_invoice(sub.id)
            start = self.clock.now()
            end = add_interval(start, plan.billing_interval)
            if invoice is None:
                invoice = self._new_invoice(sub, plan, status="open", start=start, end=end)
            invoice = dataclasses.replace(
                invoice, period_start=iso_time(start), period_end=iso_time(end)
            )
            self._settle(sub, invoice, reason="first_subscription_payment")
            sub = self._save(
                sub,
                status="active",
                current_period_start=iso_time(start),
                current_period_end=iso_time(end),
            )
            self.emit(
                "subscription.activated",
                **ids,
                status="active",
                current_period_start=sub.current_period_start,
                current_period_end=sub.current_period_end,
                name=sub.name,
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                invoice_total=invoice.total,
                invoice_currency=invoice.currency,
                provider="stripe",
            )
            self.emit("payment_method.attached", **ids, payment_method="card")
            self._state_changed(sub, sub.customer_id, "subscription_activated")
            sub = self._start_period(sub)
            outcome.subscription = sub
        return outcome

    def _start_period(self, sub: Subscription) -> Subscription:
        """A new period: usage and once-per-period notices reset; plan credits or balance
        are granted (the previous period's unused plan credits expire)."""
        plan = self.plan(sub.plan_id)
        self.billing.reset_usage(sub.customer_id)
        changes: dict[str, Any] = {"flags": "", "upcoming_notified": None}
        ids = self._sub_ids(sub)
        if plan.consumption_model == "credits" and plan.included_credits:
            leftover = sub.credits
            if sub.credits_granted and leftover > 0:
                self.emit("credits.expired", **ids, expired_credits=leftover)
            changes.update(credits=plan.included_credits, credits_granted=plan.included_credits)
            self.emit("credits.granted", **ids, credits=plan.included_credits, reason="plan_period")
        if plan.consumption_model == "balance" and plan.balance_refill:
            changes.update(balance=plan.balance_refill, balance_refill=plan.balance_refill)
        return self._save(sub, **changes)

    def _trial_will_end(self, sub: Subscription) -> None:
        plan = self.plan(sub.plan_id)
        self.emit(
            "trial.will_end",
            **self._sub_ids(sub),
            status="trialing",
            plan_id=plan.id,
            plan_name=plan.name,
            trial_ends_at=sub.trial_ends_at,
        )
        self._save(sub, trial_notified=1)

    def _trial_ends(self, sub: Subscription) -> Subscription:
        """The trial runs out: ``trial.expired``, then the first regular invoice is charged."""
        plan = self.plan(sub.plan_id)
        self.emit(
            "trial.expired",
            **self._sub_ids(sub),
            status="active",
            plan_id=plan.id,
            plan_name=plan.name,
            trial_ends_at=sub.trial_ends_at,
        )
        start = from_iso(sub.trial_ends_at) if sub.trial_ends_at else self.clock.now()
        sub = self._save(
            sub, current_period_start=iso_time(start), current_period_end=iso_time(start)
        )
        return self._bill_period(sub, reason="trial_conversion")

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

    # ------------------------------------------------------------------ renewals

    def renew(self, subscription_id: str, *, fail: bool | None = None) -> Outcome:
        """Bill the next period now (the clock does this at each period's end).

        ``invoice.created`` then ``payment.received``, or ``payment.failed`` and
        ``subscription.past_due`` with dunning retries scheduled. Renewing a
        ``past_due`` subscription charges its open invoice again: no new invoice.
        """
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, BILLABLE, "renew")
            if sub.status == "past_due":
                outcome.subscription = self._retry_dunning(sub, fail=fail, manual=True)
            else:
                outcome.subscription = self._bill_period(sub, reason="recurring_billing", fail=fail)
        return outcome

    def _bill_period(
        self, sub: Subscription, *, reason: str, fail: bool | None = None
    ) -> Subscription:
        plan = self.plan(sub.plan_id)
        start = from_iso(sub.current_period_end) if sub.current_period_end else self.clock.now()
        end = add_interval(start, plan.billing_interval)
        invoice = self._new_invoice(sub, plan, status="open", start=start, end=end)
        self.emit("invoice.created", **self._invoice_fields(invoice))
        declined = self._charge_fails() if fail is None else fail
        if declined:
            self._decline(sub, invoice, reason=reason)
            sub = self._save(
                sub,
                status="past_due",
                dunning_attempt=0,
                next_retry_at=iso_time(self.clock.now() + DUNNING_RETRIES[0]),
            )
            self.emit(
                "subscription.past_due",
                **self._sub_ids(sub),
                status="past_due",
                invoice_id=invoice.id,
                invoice_number=invoice.number,
            )
            self._state_changed(sub, sub.customer_id, "payment_failed")
            return sub
        self._settle(sub, invoice, reason=reason)
        sub = self._save(
            sub,
            status="active",
            current_period_start=iso_time(start),
            current_period_end=iso_time(end),
        )
        if reason == "trial_conversion":
            self._state_changed(sub, sub.customer_id, "trial_expired")
        return self._start_period(sub)

    def _retry_dunning(
        self, sub: Subscription, *, fail: bool | None = None, manual: bool = False
    ) -> Subscription:
        """Charge the open invoice again: ``payment.recovered`` + ``payment.received``, or
        another ``payment.failed``; after the last retry, ``payment.retry_failed`` and the
        subscription is canceled (``dunning_exhausted``), its invoice voided."""
        invoice = self.billing.open_invoice(sub.id)
        if invoice is None:  # nothing to collect: back to active
            return self._save(sub, status="active", next_retry_at=None, dunning_attempt=0)
        declined = self._charge_fails() if fail is None else fail
        attempt = sub.dunning_attempt + 1
        if not declined:
            self._settle(sub, invoice, reason="recurring_billing")
            self.emit(
                "payment.recovered",
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                invoice_total=invoice.total,
                customer_id=self.customer_ref(sub.customer_id),
                subscription_id=sub.id,
                provider="stripe",
                payment_method="card",
                sub_payment_method="credit_card",
            )
            sub = self._save(
                sub,
                status="active",
                dunning_attempt=0,
                next_retry_at=None,
                current_period_start=invoice.period_start,
                current_period_end=invoice.period_end,
            )
            self._state_changed(sub, sub.customer_id, "payment_recovered")
            return self._start_period(sub)
        self._decline(sub, invoice, reason="recurring_billing")
        if manual or attempt < len(DUNNING_RETRIES):
            nxt = DUNNING_RETRIES[min(attempt, len(DUNNING_RETRIES) - 1)]
            return self._save(
                sub, dunning_attempt=attempt, next_retry_at=iso_time(self.clock.now() + nxt)
            )
        self.emit(
            "payment.retry_failed",
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            customer_id=self.customer_ref(sub.customer_id),
            subscription_id=sub.id,
            provider="stripe",
            reason="dunning_exhausted",
        )
        return self._end(sub, reason="dunning_exhausted")

    def _end(self, sub: Subscription, *, reason: str | None) -> Subscription:
        """Terminate now: open invoices are voided, ``subscription.canceled``."""
        now = self.now()
        invoice = self.billing.open_invoice(sub.id)
        if invoice is not None:
            invoice = dataclasses.replace(invoice, status="void")
            self.billing.invoices.save(invoice)
            self.emit("invoice.voided", **self._invoice_fields(invoice))
        sub = self._save(
            sub,
            status="canceled",
            canceled_at=sub.canceled_at or now,
            cancel_reason=reason,
            end_date=now,
            next_retry_at=None,
            cancel_at_period_end=0,
            scheduled_plan_id=None,
            pause_at=None,
            resume_at=None,
        )
        self.emit(
            "subscription.canceled",
            **self._sub_ids(sub),
            status="canceled",
            canceled_at=sub.canceled_at,
            cancel_reason=reason,
            end_date=now,
        )
        self._state_changed(None, sub.customer_id, "subscription_canceled")
        return sub

    def _period_end(self, sub: Subscription) -> Subscription:
        """The period is over: a scheduled cancellation, pause or plan change takes effect,
        else the next period is billed."""
        if sub.cancel_at_period_end:
            return self._end(sub, reason=sub.cancel_reason)
        if sub.pause_at is not None and sub.pause_at <= (sub.current_period_end or ""):
            return self._pause_now(sub)
        if sub.scheduled_plan_id is not None:
            previous, current = self.plan(sub.plan_id), self.plan(sub.scheduled_plan_id)
            sub = self._save(
                sub, plan_id=current.id, name=f"{current.name} plan", scheduled_plan_id=None
            )
            self._plan_changed(sub, previous, current, credit=0, charge=0)
        return self._bill_period(sub, reason="recurring_billing")

    def _upcoming(self, sub: Subscription) -> None:
        plan = self.plan(sub.plan_id)
        self.emit(
            "invoice.upcoming",
            **self._sub_ids(sub),
            status=sub.status,
            plan_id=plan.id,
            plan_name=plan.name,
            billing_interval=plan.billing_interval,
            current_period_end=sub.current_period_end,
        )
        self._save(sub, upcoming_notified=sub.current_period_end)

    # ------------------------------------------------------------------ cancel, reactivate

    def cancel(
        self, subscription_id: str, reason: str | None, *, at_period_end: bool = False
    ) -> Outcome:
        """Cancel now (``subscription.canceled``), or at the period's end
        (``subscription.cancellation_scheduled`` and ``subscription.updated``)."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            if sub.status in ENDED:
                raise ApiError(
                    409,
                    "invalid_state",
                    f"subscription {subscription_id!r} is already {sub.status}",
                )
            if not at_period_end or sub.status not in ("active", "trialing"):
                outcome.subscription = self._end(sub, reason=reason)
                return outcome
            now = self.now()
            effective = sub.trial_ends_at if sub.status == "trialing" else sub.current_period_end
            sub = self._save(
                sub,
                cancel_at_period_end=1,
                canceled_at=now,
                cancel_reason=reason,
                end_date=effective,
            )
            ids = self._sub_ids(sub)
            self.emit(
                "subscription.cancellation_scheduled",
                **ids,
                status=sub.status,
                canceled_at=now,
                cancel_reason=reason,
                effective_at=effective or now,
            )
            self._updated(sub)
            outcome.subscription = sub
        return outcome

    def revoke_cancellation(self, subscription_id: str) -> Outcome:
        """Undo a scheduled cancellation: ``subscription.cancellation_revoked``."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            if not sub.cancel_at_period_end:
                raise ApiError(409, "invalid_state", "no cancellation is scheduled")
            sub = self._save(
                sub, cancel_at_period_end=0, canceled_at=None, cancel_reason=None, end_date=None
            )
            self.emit(
                "subscription.cancellation_revoked",
                **self._sub_ids(sub),
                status=sub.status,
                current_period_end=sub.current_period_end,
            )
            self._updated(sub)
            outcome.subscription = sub
        return outcome

    def _updated(self, sub: Subscription) -> None:
        self.emit(
            "subscription.updated",
            **self._sub_ids(sub),
            status=sub.status,
            canceled_at=sub.canceled_at or OMIT,
            cancel_reason=sub.cancel_reason,
            end_date=sub.end_date or OMIT,
        )

    def reactivate(self, subscription_id: str) -> Outcome:
        """A canceled subscription comes back: a fresh invoice is charged, then
        ``subscription.reactivated`` (a declined charge leaves it canceled)."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, ("canceled",), "reactivate")
            current = self.billing.current_subscription(sub.customer_id)
            if current is not None:
                raise ApiError(409, "conflict", f"customer already has subscription {current.id!r}")
            plan = self.plan(sub.plan_id)
            start = self.clock.now()
            end = add_interval(start, plan.billing_interval)
            invoice = self._new_invoice(sub, plan, status="open", start=start, end=end)
            self.emit("invoice.created", **self._invoice_fields(invoice))
            if self._charge_fails():
                self._decline(sub, invoice, reason="reactivation")
                invoice = dataclasses.replace(invoice, status="void")
                self.billing.invoices.save(invoice)
                self.emit("invoice.voided", **self._invoice_fields(invoice))
                outcome.subscription = sub
                return outcome
            self._settle(sub, invoice, reason="reactivation")
            sub = self._save(
                sub,
                status="active",
                canceled_at=None,
                cancel_reason=None,
                end_date=None,
                current_period_start=iso_time(start),
                current_period_end=iso_time(end),
                dunning_attempt=0,
            )
            self.emit(
                "subscription.reactivated",
                **self._sub_ids(sub),
                status="active",
                current_period_start=sub.current_period_start,
                current_period_end=sub.current_period_end,
                name=sub.name,
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                invoice_total=invoice.total,
                invoice_currency=invoice.currency,
                provider="stripe",
            )
            self._state_changed(sub, sub.customer_id, "subscription_reactivated")
            outcome.subscription = self._start_period(sub)
        return outcome

    # ------------------------------------------------------------------ plan changes

    def change_plan(
        self, subscription_id: str, plan_id: str, *, at_period_end: bool | None = None
    ) -> Outcome:
        """Change plans.

        An upgrade (or any change during a trial, which converts the trial) applies
        now, prorated: ``subscription.plan_changed``. A downgrade is scheduled for the
        period's end: ``subscription.plan_change_scheduled`` (replacing an earlier
        schedule first fires ``subscription.plan_change_revoked``).
        """
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, BILLABLE, "change the plan of")
            current = self._known_plan(plan_id)
            previous = self.plan(sub.plan_id)
            if plan_id == sub.plan_id:
                raise validation_error("planId", f"subscription is already on {plan_id!r}")
            later = (
                (current.base_price < previous.base_price)
                if at_period_end is None
                else at_period_end
            )
            ids = self._sub_ids(sub)
            if later and sub.status == "active":
                if sub.scheduled_plan_id is not None:
                    revoked = self.plan(sub.scheduled_plan_id)
                    self.emit(
                        "subscription.plan_change_revoked",
                        **ids,
                        status=sub.status,
                        current_plan=self._plan_ref(previous),
                        revoked_plan=self._plan_ref(revoked),
                        billing_interval=previous.billing_interval,
                        revoked_billing_interval=revoked.billing_interval,
                    )
                sub = self._save(sub, scheduled_plan_id=current.id)
                self.emit(
                    "subscription.plan_change_scheduled",
                    **ids,
                    status=sub.status,
                    current_plan=self._plan_ref(previous),
                    scheduled_plan=self._plan_ref(current),
                    billing_interval=previous.billing_interval,
                    scheduled_billing_interval=current.billing_interval
                    if current.billing_interval != previous.billing_interval
                    else None,
                    effective_at=sub.current_period_end or self.now(),
                )
                outcome.subscription = sub
                return outcome
            share = self._unused_share(sub)
            credit = round(previous.base_price * share)
            charge = round(current.base_price * share)
            sub = self._save(
                sub, plan_id=current.id, name=f"{current.name} plan", scheduled_plan_id=None
            )
            if sub.status == "trialing":
                sub = self._convert_trial(sub, previous, current)
            else:
                self._plan_changed(sub, previous, current, credit=credit, charge=charge)
            outcome.subscription = sub
        return outcome

    def _plan_changed(
        self, sub: Subscription, previous: Plan, current: Plan, *, credit: int, charge: int
    ) -> None:
        self.emit(
            "subscription.plan_changed",
            **self._sub_ids(sub),
            previous_plan=self._plan_ref(previous),
            current_plan=self._plan_ref(current),
            billing_interval=current.billing_interval,
            credit=credit,
            charge=charge,
            total_charged=max(charge - credit, 0),
        )
        self._state_changed(sub, sub.customer_id, "plan_changed")

    def _convert_trial(self, sub: Subscription, previous: Plan, current: Plan) -> Subscription:
        """A plan change during a trial ends it: ``trial.converted``, then the first charge."""
        self._plan_changed(sub, previous, current, credit=0, charge=current.base_price)
        self.emit(
            "trial.converted",
            **self._sub_ids(sub),
            status="active",
            plan_id=current.id,
            plan_name=current.name,
        )
        now = self.now()
        sub = self._save(sub, trial_ends_at=now, current_period_start=now, current_period_end=now)
        return self._bill_period(sub, reason="trial_conversion")

    def _unused_share(self, sub: Subscription) -> float:
        if sub.current_period_start is None or sub.current_period_end is None:
            return 1.0
        start, end = from_iso(sub.current_period_start), from_iso(sub.current_period_end)
        if end <= start:
            return 1.0
        left = (end - self.clock.now()) / (end - start)
        return min(max(left, 0.0), 1.0)

    # ------------------------------------------------------------------ pauses

    def pause(
        self, subscription_id: str, *, resume_at: str | None = None, immediate: bool = False
    ) -> Outcome:
        """Pause at the period's end (``subscription.pause_scheduled``) or now
        (``subscription.paused``); a new pause while one is scheduled changes it
        (``subscription.pause_updated``)."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, ("active", "trialing"), "pause")
            if immediate:
                sub = self._save(sub, pause_at=self.now(), resume_at=resume_at)
                outcome.subscription = self._pause_now(sub, mode="immediate")
                return outcome
            effective = sub.current_period_end or self.now()
            updating = sub.pause_at is not None
            sub = self._save(sub, pause_at=effective, resume_at=resume_at)
            fields = dict(
                **self._sub_ids(sub), status=sub.status, effective_at=effective, resume_at=resume_at
            )
            if updating:
                self.emit("subscription.pause_updated", **fields)
            else:
                self.emit("subscription.pause_scheduled", **fields, mode="period_end")
            outcome.subscription = sub
        return outcome

    def revoke_pause(self, subscription_id: str) -> Outcome:
        """Drop a scheduled pause: ``subscription.pause_revoked``."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            if sub.pause_at is None or sub.status == "paused":
                raise ApiError(409, "invalid_state", "no pause is scheduled")
            sub = self._save(sub, pause_at=None, resume_at=None)
            self.emit("subscription.pause_revoked", **self._sub_ids(sub), status=sub.status)
            outcome.subscription = sub
        return outcome

    def _pause_now(self, sub: Subscription, mode: str = "period_end") -> Subscription:
        effective = sub.pause_at or self.now()
        sub = self._save(sub, status="paused", paused_at=effective, pause_at=None)
        self.emit(
            "subscription.paused",
            **self._sub_ids(sub),
            status="paused",
            mode=mode,
            effective_at=effective,
            resume_at=sub.resume_at,
        )
        self._state_changed(sub, sub.customer_id, "subscription_paused")
        return sub

    def resume(self, subscription_id: str) -> Outcome:
        """Resume a paused subscription now (the clock does it at ``resumeAt``)."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, ("paused",), "resume")
            outcome.subscription = self._resume(sub, mode="immediate")
        return outcome

    def _resume(self, sub: Subscription, *, mode: str) -> Subscription:
        """Charge a new period: ``subscription.resumed``, or ``subscription.resume_failed``
        (the subscription stays paused)."""
        plan = self.plan(sub.plan_id)
        start = self.clock.now()
        end = add_interval(start, plan.billing_interval)
        invoice = self._new_invoice(sub, plan, status="open", start=start, end=end)
        self.emit("invoice.created", **self._invoice_fields(invoice))
        ids = self._sub_ids(sub)
        if self._charge_fails():
            self._decline(sub, invoice, reason="subscription_resume")
            self.emit(
                "subscription.resume_failed",
                **ids,
                status="paused",
                invoice_id=invoice.id,
                failed_at=self.now(),
            )
            invoice = dataclasses.replace(invoice, status="void")
            self.billing.invoices.save(invoice)
            return self._save(sub, resume_at=None)
        self._settle(sub, invoice, reason="subscription_resume")
        sub = self._save(
            sub,
            status="active",
            paused_at=None,
            resume_at=None,
            current_period_start=iso_time(start),
            current_period_end=iso_time(end),
        )
        self.emit(
            "subscription.resumed",
            **ids,
            status="active",
            mode=mode,
            resumed_at=self.now(),
            invoice_id=invoice.id,
        )
        self._state_changed(sub, sub.customer_id, "subscription_resumed")
        return self._start_period(sub)

    # ------------------------------------------------------------------ legacy detail update

    def update(
        self,
        subscription_id: str,
        *,
        status: str | None = None,
        name: str | None = None,
        cancel_at_period_end: bool | None = None,
        cancel_reason: str | None = None,
    ) -> Outcome:
        """Change details (status, name, scheduled cancellation): ``subscription.updated``."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            if sub.status in ENDED:
                raise ApiError(
                    409, "invalid_state", f"subscription {subscription_id!r} is {sub.status}"
                )
            changes: dict[str, Any] = {}
            if status is not None:
                changes["status"] = status
            if name is not None:
                changes["name"] = name
            if cancel_at_period_end is True:
                changes.update(
                    cancel_at_period_end=1,
                    canceled_at=self.now(),
                    cancel_reason=cancel_reason,
                    end_date=sub.current_period_end,
                )
            elif cancel_at_period_end is False:
                changes.update(
                    cancel_at_period_end=0, canceled_at=None, cancel_reason=None, end_date=None
                )
            elif cancel_reason is not None:
                changes["cancel_reason"] = cancel_reason
            sub = self._save(sub, **changes)
            self._updated(sub)
            outcome.subscription = sub
        return outcome

    # ------------------------------------------------------------------ usage, quotas, seats

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

    def set_usage(self, customer_ref: str, feature: str, value: int) -> dict[str, Any]:
        """Set a customer's current usage of a feature (legacy control; no events)."""
        with self._action():
            customer = self.customer(customer_ref, "customerId")
            if self.catalog_feature(feature) is None:
                raise validation_error("feature", f"unknown feature {feature!r}")
            self.billing.set_usage(customer.id, feature, value)
        return {"customerId": customer_ref, "feature": feature, "value": value}

    def track(
        self, customer_ref: str, feature: str, value: int, *, event_id: str | None
    ) -> Outcome:
        """A usage event: ``usage.recorded``, and the quota, credit and balance events its
        crossing causes. An ``eventId`` already seen for the customer is not counted again."""
        with self._action() as outcome:
            customer = self.customer(customer_ref, "customerId")
            if self.catalog_feature(feature) is None:
                raise validation_error("feature", f"unknown feature {feature!r}")
            if event_id is not None:
                seen = self.billing.usage_event(customer.id, event_id)
                if seen is not None:
                    outcome.result = {**seen, "duplicate": True}
                    return outcome
            sub = self.billing.current_subscription(customer.id)
            if sub is None or sub.status not in ACCESS_STATUSES:
                raise ApiError(
                    409,
                    "no_active_subscription",
                    f"customer {customer_ref!r} has no active subscription",
                )
            now = self.now()
            record_id = new_id("ue")
            key = event_id or record_id
            self.billing.add_usage_event(customer.id, key, feature, value, record_id, now)
            before = self.billing.usage(customer.id, feature)
            after = before + value
            self.billing.set_usage(customer.id, feature, after)
            ids = self._sub_ids(sub)
            self.emit(
                "usage.recorded",
                **ids,
                usage_event_id=record_id,
                feature_code=feature,
                value=value,
                ts=now,
            )
            self._after_usage(sub, feature, before, after, value)
            outcome.subscription = self.billing.subscriptions.get(sub.id)
            outcome.result = {
                "id": record_id,
                "event_id": key,
                "customer_id": customer_ref,
                "feature": feature,
                "value": value,
                "created_at": now,
                "duplicate": False,
            }
        return outcome

    def _after_usage(
        self, sub: Subscription, code: str, before: int, after: int, value: int
    ) -> None:
        plan = self.plan(sub.plan_id)
        ids = self._sub_ids(sub)
        feature = self._feature(sub, code)
        flags = sub.flags
        if plan.consumption_model == "credits":
            remaining = max(sub.credits - value, 0)
            low_at = int(sub.credits_granted * LOW_SHARE)
            if (
                sub.credits > low_at >= remaining
                and remaining > 0
                and "credits.low" not in flags.split()
            ):
                self.emit(
                    "credits.low",
                    **ids,
                    remaining_credits=remaining,
                    threshold_credits=low_at,
                    period_credits=sub.credits_granted,
                )
                flags = sub.with_flag("credits.low")
            if sub.credits > 0 and remaining == 0:
                self.emit("credits.depleted", **ids, remaining_credits=0)
                self._state_changed(sub, sub.customer_id, "credits_depleted")
            sub = self._save(sub, credits=remaining, flags=flags)
            return
        if plan.consumption_model == "balance":
            cost = value * 10  # cents per unit
            remaining = sub.balance - cost
            low_at = int(sub.balance_refill * LOW_SHARE)
            if sub.balance > low_at >= remaining > 0:
                self.emit(
                    "balance.low",
                    **ids,
                    current_balance=remaining,
                    threshold_balance=low_at,
                    currency=plan.currency,
                )
            if sub.balance > 0 >= remaining:
                self.emit(
                    "balance.depleted", **ids, current_balance=remaining, currency=plan.currency
                )
                self._state_changed(sub, sub.customer_id, "balance_depleted")
            self._save(sub, balance=remaining)
            return
        if (
            feature is None
            or feature.type != "metered"
            or not feature.included
            or feature.unlimited
        ):
            return
        included = feature.included
        threshold = included * QUOTA_SHARE
        common = dict(
            **ids,
            feature_code=code,
            current_usage=after,
            included_amount=included,
            period_start=sub.current_period_start or self.now(),
        )
        if before < threshold <= after and after <= included:
            self.emit("quota.threshold_reached", **common)
        if before <= included < after:
            self.emit("quota.exceeded", **common, overage_enabled=feature.overage_enabled)
            self._state_changed(sub, sub.customer_id, "quota_exceeded")

    def set_seats(self, subscription_id: str, feature_code: str, seats: int) -> Outcome:
        """A new seat count: ``seats.updated``, and ``seats.limit_reached`` on reaching
        the plan's included seats."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, ACCESS_STATUSES, "change the seats of")
            feature = self._feature(sub, feature_code)
            if feature is None or feature.type != "seats":
                raise validation_error(
                    "featureCode", f"{feature_code!r} is not a seats feature of this plan"
                )
            previous = sub.seats
            sub = self._save(sub, seats=seats)
            ids = self._sub_ids(sub)
            self.emit(
                "seats.updated",
                **ids,
                feature_code=feature_code,
                previous_seats=previous,
                current_seats=seats,
            )
            included = feature.included or 0
            if previous < included <= seats:
                self.emit(
                    "seats.limit_reached",
                    **ids,
                    feature_code=feature_code,
                    current_seats=seats,
                    included_seats=included,
                )
            self._state_changed(sub, sub.customer_id, "seats_updated")
            outcome.subscription = sub
        return outcome

    def buy_credits(self, subscription_id: str, credits: int, price: int) -> Outcome:
        """A credit pack bought in the portal: ``payment.received``, ``credits.purchased``."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            plan = self.plan(sub.plan_id)
            if plan.consumption_model != "credits":
                raise ApiError(409, "invalid_state", "credit packs need a credits plan")
            invoice = self._new_invoice(
                sub, plan, status="open", start=None, end=None, amount=price
            )
            self._settle(sub, invoice, reason="prepayment")
            sub = self._save(sub, credits=sub.credits + credits)
            self.emit(
                "credits.purchased",
                **self._sub_ids(sub),
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                credit_pack_name=f"{credits} credits",
                credits=credits,
            )
            outcome.subscription = sub
        return outcome

    def top_up(self, subscription_id: str, amount: int) -> Outcome:
        """A prepaid balance top-up: ``payment.received``, ``balance.topped_up``."""
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            plan = self.plan(sub.plan_id)
            if plan.consumption_model != "balance":
                raise ApiError(409, "invalid_state", "top-ups need a balance plan")
            invoice = self._new_invoice(
                sub, plan, status="open", start=None, end=None, amount=amount
            )
            self._settle(sub, invoice, reason="prepayment")
            sub = self._save(sub, balance=sub.balance + amount, balance_refill=sub.balance + amount)
            self.emit(
                "balance.topped_up",
                **self._sub_ids(sub),
                invoice_id=invoice.id,
                invoice_number=invoice.number,
                amount=amount,
                currency=plan.currency,
            )
            outcome.subscription = sub
        return outcome

    # ------------------------------------------------------------------ add-ons

    def set_addon(self, subscription_id: str, code: str, *, active: bool) -> Outcome:
        """Activate (prorated charge, ``addon.activated``) or deactivate an add-on."""
        spec = ADD_ONS.get(code)
        if spec is None:
            raise validation_error("addon", f"unknown add-on {code!r}; known: {', '.join(ADD_ONS)}")
        with self._action() as outcome:
            sub = self.subscription(subscription_id)
            self._require(sub, ACCESS_STATUSES, "change the add-ons of")
            current = self.billing.addons.get(sub.id, code)
            ids = self._sub_ids(sub)
            ref = {"id": spec.id, "name": spec.name}
            if active:
                if current is not None and current.active:
                    raise ApiError(409, "addon_already_active", f"{code!r} is already active")
                price = round(spec.price * self._unused_share(sub))
                addon = AddOn(subscription_id=sub.id, code=code, active=1, activated_at=self.now())
                if current is None:
                    self.billing.addons.insert(addon)
                else:
                    self.billing.addons.save(addon)
                if price:
                    invoice = self._new_invoice(
                        sub,
                        self.plan(sub.plan_id),
                        status="open",
                        start=None,
                        end=None,
                        amount=price,
                    )
                    self._settle(sub, invoice, reason="addon_activation")
                self.emit(
                    "addon.activated",
                    **ids,
                    addon=ref,
                    feature_code=spec.feature_code,
                    prorated_price=price,
                    currency=spec.currency,
                )
                self._state_changed(sub, sub.customer_id, "addon_activated")
            else:
                if current is None or not current.active:
                    raise ApiError(409, "addon_not_active", f"{code!r} is not active")
                self.billing.addons.save(dataclasses.replace(current, active=0))
                self.emit("addon.deactivated", **ids, addon=ref, feature_code=spec.feature_code)
                self._state_changed(sub, sub.customer_id, "addon_deactivated")
            outcome.subscription = sub
        return outcome

    # ------------------------------------------------------------------ payments

    def _payment(self, payment_id: str | None, subscription_id: str | None) -> Payment:
        payment: Payment | None = None
        if payment_id:
            payment = self.billing.payments.get(payment_id)
        elif subscription_id:
            payment = self.billing.last_payment(subscription_id)
        if payment is None:
            raise ApiError(404, "not_found", "no such payment")
        return payment

    def _payment_fields(self, payment: Payment) -> dict[str, Any]:
        invoice = self.billing.invoices.get(payment.invoice_id) if payment.invoice_id else None
        return {
            "payment_transaction_id": payment.id,
            "provider": "stripe",
            "payment_link_id": None if payment.subscription_id else payment.invoice_id,
            "invoice_id": payment.invoice_id,
            "invoice_number": invoice.number if invoice is not None else None,
            "customer_id": self.customer_ref(payment.customer_id),
            "subscription_id": payment.subscription_id,
            "currency": payment.currency,
        }

    def refund(
        self, *, payment_id: str | None, subscription_id: str | None, amount: int | None
    ) -> Outcome:
        """Refund a payment, fully or partly: ``payment.refunded`` (the subscription stays)."""
        with self._action() as outcome:
            payment = self._payment(payment_id, subscription_id)
            left = payment.amount - payment.refunded
            value = left if amount is None else amount
            if not 0 < value <= left:
                raise validation_error(
                    "amount", f"must be between 1 and {left} (what is left to refund)"
                )
            self.billing.payments.save(
                dataclasses.replace(payment, refunded=payment.refunded + value)
            )
            self.emit("payment.refunded", **self._payment_fields(payment), refund_amount=value)
            outcome.result = payment.id
        return outcome

    def dispute(
        self, *, payment_id: str | None, subscription_id: str | None, outcome_name: str | None
    ) -> Outcome:
        """Open a dispute (``payment.disputed``) or close it, ``won`` or ``lost``
        (``payment.dispute_resolved``)."""
        with self._action() as outcome:
            payment = self._payment(payment_id, subscription_id)
            fields = self._payment_fields(payment)
            fields.update(dispute_amount=payment.amount, dispute_reason="fraudulent")
            if outcome_name is None:
                if payment.dispute == "open":
                    raise ApiError(409, "invalid_state", "the payment already has an open dispute")
                self.billing.payments.save(dataclasses.replace(payment, dispute="open"))
                self.emit("payment.disputed", **fields)
            else:
                if payment.dispute != "open":
                    raise ApiError(409, "invalid_state", "the payment has no open dispute")
                self.billing.payments.save(dataclasses.replace(payment, dispute=outcome_name))
                self.emit("payment.dispute_resolved", **fields, outcome=outcome_name)
            outcome.result = payment.id
        return outcome

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

    # ------------------------------------------------------------------ payment links

    def create_payment_link(
        self, customer_ref: str, amount: int, description: str | None
    ) -> Outcome:
        with self._action() as outcome:
            customer = self.customer(customer_ref, "customerId")
            link = self.billing.payment_links.insert(
                PaymentLink(
                    id=new_id("pay"),
                    customer_id=customer.id,
                    amount=amount,
                    currency="USD",
                    description=description or "Payment",
                    status="pending",
                    created_at=self.now(),
                )
            )
            self.emit("payment_link.created", **self._link_fields(link))
            outcome.result = link
        return outcome

    def _link_fields(self, link: PaymentLink) -> dict[str, Any]:
        return {
            "payment_id": link.id,
            "status": link.status,
            "amount": link.amount,
            "currency": link.currency,
            "description": link.description,
            "customer_id": self.customer_ref(link.customer_id),
        }

    def settle_payment_link(self, link_id: str, action: str) -> Outcome:
        """``pay`` (``payment_link.completed``), ``fail`` (``payment_link.failed``, the link
        stays open) or ``cancel`` (``payment_link.canceled``) a pending link."""
        with self._action() as outcome:
            link = self.billing.payment_links.get(link_id)
            if link is None:
                raise ApiError(404, "not_found", f"payment link {link_id!r} not found")
            if link.status != "pending":
                raise ApiError(409, "invalid_state", f"payment link {link_id!r} is {link.status}")
            if action not in ("pay", "fail", "cancel"):
                raise ApiError(
                    404, "not_found", f"no payment link action {action!r} (pay, fail, cancel)"
                )
            context = {"reason": "one_time_payment"}
            if action == "fail":
                self.emit(
                    "payment_link.failed",
                    **self._link_fields(link),
                    payment_context=context,
                    failure_code="card_declined",
                    failure_message="Your card was declined.",
                    payment_method="card",
                    sub_payment_method="credit_card",
                )
            elif action == "cancel":
                link = dataclasses.replace(link, status="canceled")
                self.billing.payment_links.save(link)
                self.emit("payment_link.canceled", **self._link_fields(link))
            else:
                link = dataclasses.replace(link, status="completed")
                self.billing.payment_links.save(link)
                number = f"INV-{self.store.db.next_number('invoice'):04d}"
                payment = self.billing.payments.insert(
                    Payment(
                        id=new_id("txn"),
                        invoice_id=None,
                        subscription_id=None,
                        customer_id=link.customer_id,
                        amount=link.amount,
                        currency=link.currency,
                        status="succeeded",
                        created_at=self.now(),
                        available_at=iso_time(self.clock.now() + FUNDS_HOLD),
                    )
                )
                self.emit(
                    "payment_link.completed",
                    **self._link_fields(link),
                    payment_context=context,
                    invoice_id=new_id("inv"),
                    invoice_number=number,
                    payment_transaction_id=payment.id,
                    payment_method="card",
                    sub_payment_method="credit_card",
                )
            outcome.result = link
        return outcome

    # ------------------------------------------------------------------ plan grants

    def grant_plan(self, customer_ref: str, plan_id: str, *, days: int | None) -> Outcome:
        """Give a customer a plan for ``days`` or until revoked: ``plan_grant.created``."""
        plan = self._known_plan(plan_id)
        with self._action() as outcome:
            customer = self.customer(customer_ref, "customerId")
            if self.billing.current_subscription(customer.id) is None:
                raise ApiError(
                    409, "subscription_required", "a plan grant needs a live subscription"
                )
            now = self.clock.now()
            grant = self.billing.plan_grants.insert(
                PlanGrant(
                    id=new_id("pg"),
                    customer_id=customer.id,
                    plan_id=plan.id,
                    status="active",
                    starts_at=iso_time(now),
                    ends_at=None if days is None else iso_time(now + timedelta(days=days)),
                    created_at=iso_time(now),
                )
            )
            self.emit("plan_grant.created", **self._grant_fields(grant, "plan_grant.created"))
            outcome.result = grant
        return outcome

    def change_grant(self, grant_id: str, *, days: int | None, revoke: bool) -> Outcome:
        """Extend a grant (``plan_grant.updated``) or revoke it (``plan_grant.revoked``)."""
        with self._action() as outcome:
            grant = self.billing.plan_grants.get(grant_id)
            if grant is None:
                raise ApiError(404, "not_found", f"plan grant {grant_id!r} not found")
            if grant.status != "active":
                raise ApiError(409, "invalid_state", f"plan grant {grant_id!r} is {grant.status}")
            if revoke:
                grant = dataclasses.replace(grant, status="revoked")
                self.billing.plan_grants.save(grant)
                self.emit("plan_grant.revoked", **self._grant_fields(grant, "plan_grant.revoked"))
            else:
                ends = (
                    None
                    if days is None
                    else iso_time(from_iso(grant.starts_at) + timedelta(days=days))
                )
                grant = dataclasses.replace(grant, ends_at=ends)
                self.billing.plan_grants.save(grant)
                self.emit("plan_grant.updated", **self._grant_fields(grant, "plan_grant.updated"))
            outcome.result = grant
        return outcome

    def _grant_fields(self, grant: PlanGrant, event_type: str) -> dict[str, Any]:
        sub = self.billing.current_subscription(grant.customer_id)
        if sub is None:  # ended since: the grant still names the last one
            sub = self.billing.latest_subscription(grant.customer_id)
        now = self.now()
        return {
            "id": grant.id,
            "customer_id": self.customer_ref(grant.customer_id),
            "subscription_id": sub.id if sub is not None else "",
            "base_plan_id": sub.plan_id if sub is not None else "",
            "target_plan_id": grant.plan_id,
            "target_plan_release_id": f"rel_{grant.plan_id}",
            "status": grant.status,
            "duration": "until_date" if grant.ends_at else "until_revoked",
            "duration_cycles": None,
            "starts_at": grant.starts_at,
            "expires_at": grant.ends_at,
            "reason": "grant",
            "source": "system" if event_type == "plan_grant.expired" else "api",
            "revoked_at": now if grant.status == "revoked" else None,
            "created_at": grant.created_at,
            "updated_at": now,
        }

    # ------------------------------------------------------------------ payouts

    def _funds_available(self, due: datetime) -> None:
        """Held funds become available (``payout.available``) and are paid out at once
        (``payout.created``); the bank confirms later."""
        ready = [
            p
            for p in self.billing.pending_funds()
            if p.available_at and from_iso(p.available_at) <= due
        ]
        if not ready:
            return
        amount = 0
        for payment in ready:
            self.billing.payments.save(dataclasses.replace(payment, available=1))
            amount += max(payment.amount - payment.refunded, 0)
        currency = ready[0].currency
        self.emit("payout.available", available_amount=amount, currency=currency)
        if amount <= PAYOUT_FEE:
            return
        now = self.clock.now()
        payout = self.billing.payouts.insert(
            Payout(
                id=new_id("po"),
                amount=amount,
                currency=currency,
                status="pending",
                arrives_at=iso_time(now + PAYOUT_TRANSIT),
                created_at=iso_time(now),
                fail=int(self.store.counters.take("fail_payouts")),
            )
        )
        self.emit(
            "payout.created",
            **self._payout_fields(payout),
            status="pending",
            created_at=payout.created_at,
        )

    def _payout_fields(self, payout: Payout) -> dict[str, Any]:
        return {
            "payout_id": payout.id,
            "amount": payout.amount,
            "fee": PAYOUT_FEE,
            "net_amount": payout.amount - PAYOUT_FEE,
            "currency": payout.currency,
        }

    def _payout_arrives(self, payout: Payout) -> None:
        now = self.now()
        if payout.fail:
            payout = dataclasses.replace(payout, status="failed")
            self.billing.payouts.save(payout)
            self.emit(
                "payout.failed",
                **self._payout_fields(payout),
                status="failed",
                failed_at=now,
                failure_code="account_closed",
                failure_message="The bank account has been closed.",
            )
            return
        payout = dataclasses.replace(payout, status="paid")
        self.billing.payouts.save(payout)
        self.emit("payout.paid", **self._payout_fields(payout), status="paid", paid_at=now)

    # ------------------------------------------------------------------ the test clock

    def _deadlines(self) -> Iterator[tuple[datetime, int, str, Callable[[], ClockItem | None]]]:
        """Every piece of scheduled work: (when, order, kind, run)."""
        for sub in self.billing.live_subscriptions():
            yield from self._subscription_deadlines(sub)
        for invoice in self.billing.open_invoices():
            if invoice.due_date and not invoice.overdue_notified:
                yield from self._overdue_deadline(invoice)
        for payment in self.billing.pending_funds():
            if payment.available_at:
                yield (
                    from_iso(payment.available_at),
                    5,
                    "funds",
                    self._run_funds(payment.available_at),
                )
        for payout in self.billing.unpaid_payouts():
            yield (from_iso(payout.arrives_at), 6, "payout", self._run_payout(payout.id))
        for grant in self.billing.active_grants():
            if grant.ends_at:
                yield (from_iso(grant.ends_at), 4, "grant", self._run_grant(grant.id))

    def _subscription_deadlines(
        self, sub: Subscription
    ) -> Iterator[tuple[datetime, int, str, Callable[[], ClockItem | None]]]:
        def run(step: Callable[[Subscription], Any], kind: str) -> Callable[[], ClockItem | None]:
            def go() -> ClockItem | None:
                fresh = self.billing.subscriptions.get(sub.id)
                if fresh is None:
                    return None
                before = len(self._emitted or [])
                step(fresh)
                after = self.billing.subscriptions.get(sub.id)
                invoice = self.billing.open_invoice(sub.id)
                return (
                    ClockItem(
                        kind=kind,
                        due_at=self.now(),
                        subscription_id=sub.id,
                        outcome=after.status if after is not None else "unknown",
                        invoice_id=invoice.id if invoice is not None else None,
                        invoice_number=invoice.number if invoice is not None else None,
                    )
                    if len(self._emitted or []) >= before
                    else None
                )

            return go

        if sub.status == "trialing" and sub.trial_ends_at:
            ends = from_iso(sub.trial_ends_at)
            if not sub.trial_notified:
                yield (
                    ends - TRIAL_NOTICE,
                    1,
                    "trial_notice",
                    run(self._trial_will_end, "trial_notice"),
                )
            yield (ends, 2, "billing_cycle", run(self._trial_ends_or_cancel, "billing_cycle"))
        elif sub.status == "active" and sub.current_period_end:
            end = from_iso(sub.current_period_end)
            if sub.upcoming_notified != sub.current_period_end and not sub.cancel_at_period_end:
                yield (end - UPCOMING_NOTICE, 1, "upcoming", run(self._upcoming, "upcoming"))
            yield (end, 2, "billing_cycle", run(self._period_end, "billing_cycle"))
        elif sub.status == "past_due" and sub.next_retry_at:
            yield (
                from_iso(sub.next_retry_at),
                3,
                "dunning_retry",
                run(self._retry_dunning, "dunning_retry"),
            )
        elif sub.status == "paused" and sub.resume_at:
            yield (
                from_iso(sub.resume_at),
                2,
                "resume",
                run(lambda s: self._resume(s, mode="period_end"), "resume"),
            )

    def _trial_ends_or_cancel(self, sub: Subscription) -> Subscription:
        if sub.cancel_at_period_end:
            return self._end(sub, reason=sub.cancel_reason)
        return self._trial_ends(sub)

    def _overdue_deadline(
        self, invoice: Invoice
    ) -> Iterator[tuple[datetime, int, str, Callable[[], ClockItem | None]]]:
        def go() -> ClockItem | None:
            fresh = self.billing.invoices.get(invoice.id)
            if fresh is None or fresh.status != "open" or fresh.overdue_notified:
                return None
            self.billing.invoices.save(dataclasses.replace(fresh, overdue_notified=1))
            self.emit("invoice.overdue", **self._invoice_fields(fresh))
            return None

        assert invoice.due_date is not None
        yield (from_iso(invoice.due_date), 4, "overdue", go)

    def _run_funds(self, at: str) -> Callable[[], ClockItem | None]:
        def go() -> ClockItem | None:
            self._funds_available(from_iso(at))
            return None

        return go

    def _run_payout(self, payout_id: str) -> Callable[[], ClockItem | None]:
        def go() -> ClockItem | None:
            payout = self.billing.payouts.get(payout_id)
            if payout is not None and payout.status == "pending":
                self._payout_arrives(payout)
            return None

        return go

    def _run_grant(self, grant_id: str) -> Callable[[], ClockItem | None]:
        def go() -> ClockItem | None:
            grant = self.billing.plan_grants.get(grant_id)
            if grant is not None and grant.status == "active":
                grant = dataclasses.replace(grant, status="expired")
                self.billing.plan_grants.save(grant)
                self.emit("plan_grant.expired", **self._grant_fields(grant, "plan_grant.expired"))
            return None

        return go

    def advance(self, *, days: float | None = None, to: datetime | None = None) -> Outcome:
        """Move the test clock forward, running everything that falls due, in time order.

        Each due piece of work is its own transaction, run with the clock set to its
        due time. The result (``outcome.result``) is the run, as ``GET /test-clock``
        reports it.
        """
        start = self.clock.now()
        target = to if to is not None else start + timedelta(days=days or 0)
        if target < start:
            raise validation_error("frozenTime", "the test clock only moves forward")
        outcome = Outcome()
        items: list[ClockItem] = []
        self._emitted = outcome.event_ids
        try:
            for _ in range(_MAX_STEPS):
                due = [d for d in self._deadlines() if d[0] <= target]
                if not due:
                    break
                when, _order, _kind, go = min(due, key=lambda d: (d[0], d[1]))
                self.clock.move_to(when)
                with self.store.db.transaction():
                    item = go()
                if item is not None:
                    items.append(item)
            else:  # pragma: no cover - a bug would make the clock loop forever
                raise ApiError(500, "clock_stuck", "the test clock found work that never ends")
            self.clock.move_to(target)
        finally:
            self._emitted = None
        # The platform reports billing cycles and dunning retries; notices are not deadlines.
        deadlines = [i for i in items if i.kind in ("billing_cycle", "dunning_retry")]
        run = {
            "id": new_id("tcr"),
            "status": "completed",
            "startedAtTime": iso_time(start),
            "targetTime": iso_time(target),
            "estimatedDeadlineCount": len(deadlines),
            "completedDeadlineCount": len(deadlines),
            "failedDeadlineCount": 0,
            "error": None,
            "items": [
                {
                    "kind": "dunning_retry" if item.kind == "dunning_retry" else "billing_cycle",
                    "status": "completed",
                    "dueAt": item.due_at,
                    "subscriptionId": item.subscription_id,
                    "customerName": item.customer_name,
                    "invoiceNumber": item.invoice_number,
                    "invoiceId": item.invoice_id,
                    "outcome": item.outcome,
                    "detail": item.kind,
                    "error": None,
                }
                for item in deadlines
            ],
        }
        with self.store.db.transaction():
            self.store.clock.set_last_run(run)
        outcome.result = run
        return outcome
