"""Money after the charge: refunds, disputes, payment links, plan grants and payouts."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from ..._wire import iso_time, new_id
from ..errors import ApiError, validation_error
from ..storage.billing import (
    Payment,
    PaymentLink,
    Payout,
    PlanGrant,
)
from ..storage.times import from_iso
from .base import (
    FUNDS_HOLD,
    PAYOUT_FEE,
    PAYOUT_TRANSIT,
    LifecycleBase,
    Outcome,
)

__all__ = ["MoneySteps"]


class MoneySteps(LifecycleBase):
    """Money after the charge: refunds, disputes, payment links, plan grants and payouts."""

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
