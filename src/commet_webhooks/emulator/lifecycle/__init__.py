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

from .base import ACCESS_STATUSES, BILLABLE, ENDED, Clock, Outcome
from .clock import ClockSteps
from .customers import CustomerSteps
from .usage import UsageSteps

__all__ = ["ACCESS_STATUSES", "BILLABLE", "ENDED", "Clock", "Lifecycle", "Outcome"]


class Lifecycle(CustomerSteps, UsageSteps, ClockSteps):
    """Simulated billing over the emulator's storage and a plan catalog.

    The steps are grouped by concern: :mod:`.customers`, :mod:`.subscriptions` (what
    happens at checkout, renewal, dunning, cancellation, plan changes and pauses),
    :mod:`.usage`, :mod:`.money` and :mod:`.clock`; :mod:`.base` holds what they share.
    """
