"""Subscriptions from checkout to the end: trial, activation, renewals, dunning,
cancellation, reactivation, plan changes and pauses — what happens at each step and
which events it emits, in the platform's order.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta
from typing import Any

from ..._wire import iso_time, new_id
from ..errors import ApiError, validation_error
from ..plans import Plan
from ..storage.billing import Invoice, Subscription
from ..storage.times import from_iso
from .base import (
    BILLABLE,
    DUNNING_RETRIES,
    ENDED,
    OMIT,
    LifecycleBase,
    Outcome,
    add_interval,
)

__all__ = ["SubscriptionSteps"]


class SubscriptionSteps(LifecycleBase):
    """Subscriptions from checkout to the end: trial, activation, renewals, dunning,"""

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
                    **_invoice_ref(invoice),
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
            self.emit("subscription.activated", **self._now_active(sub, invoice))
            self.emit("payment_method.attached", **ids, payment_method="card")
            self._state_changed(sub, sub.customer_id, "subscription_activated")
            sub = self._start_period(sub)
            outcome.subscription = sub
        return outcome

    def _now_active(self, sub: Subscription, invoice: Invoice) -> dict[str, Any]:
        """The data of ``subscription.activated`` and ``.reactivated``: paid, active, period."""
        return {
            **self._sub_ids(sub),
            "status": "active",
            "current_period_start": sub.current_period_start,
            "current_period_end": sub.current_period_end,
            "name": sub.name,
            **_invoice_ref(invoice),
            "provider": "stripe",
        }

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
            self.emit("subscription.reactivated", **self._now_active(sub, invoice))
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


def _invoice_ref(invoice: Invoice) -> dict[str, Any]:
    """The invoice fields events that settle or offer an invoice carry."""
    return {
        "invoice_id": invoice.id,
        "invoice_number": invoice.number,
        "invoice_total": invoice.total,
        "invoice_currency": invoice.currency,
    }
