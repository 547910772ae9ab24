"""The test clock: every piece of scheduled work, run in time order up to a target."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from ..._wire import iso_time, new_id
from ..errors import ApiError, validation_error
from ..storage.billing import (
    Invoice,
    Subscription,
)
from ..storage.times import from_iso
from .base import (
    _MAX_STEPS,
    TRIAL_NOTICE,
    UPCOMING_NOTICE,
    ClockItem,
    Outcome,
)
from .money import MoneySteps
from .subscriptions import SubscriptionSteps

__all__ = ["ClockSteps"]


class ClockSteps(SubscriptionSteps, MoneySteps):
    """The test clock: every piece of scheduled work, run in time order up to a target."""

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
                step(fresh)
                after = self.billing.subscriptions.get(sub.id)
                invoice = self.billing.open_invoice(sub.id) or self.billing.latest_invoice(sub.id)
                return ClockItem(
                    kind=kind,
                    due_at=self.now(),
                    subscription_id=sub.id,
                    outcome=after.status if after is not None else "unknown",
                    invoice_id=invoice.id if invoice is not None else None,
                    invoice_number=invoice.number if invoice is not None else None,
                    customer_name=self._customer_name(sub.customer_id),
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

    def _customer_name(self, customer_id: str) -> str | None:
        customer = self.billing.customers.get(customer_id)
        return customer.name if customer is not None else None

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
