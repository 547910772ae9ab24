"""The v1 API's answers, built as the structs of :mod:`commet_webhooks._api_models`.

The same structs decode these answers in :class:`commet_webhooks.Commet`, so the
emulator and the client cannot drift apart; nothing here writes a wire dict.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from ... import _api_models as m
from ..lifecycle import ACCESS_STATUSES, Lifecycle
from ..plans import Feature, Plan
from ..storage import Endpoint
from ..storage.billing import Customer, Subscription
from ..storage.times import from_iso

__all__ = [
    "created_webhook",
    "customer",
    "feature_access",
    "plan",
    "subscription",
    "test_clock",
    "test_clock_run",
    "webhook",
]


def _time(value: str | None) -> datetime | None:
    return None if value is None else from_iso(value)


def webhook(endpoint: Endpoint) -> m.Webhook:
    return m.Webhook(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        is_active=endpoint.enabled,
        api_version=endpoint.api_version,
        created_at=_time(endpoint.created_at),
    )


def created_webhook(endpoint: Endpoint) -> m.CreatedWebhook:
    """The only view that carries the signing secret."""
    return m.CreatedWebhook(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        is_active=endpoint.enabled,
        api_version=endpoint.api_version,
        created_at=_time(endpoint.created_at),
        secret_key=endpoint.secret,
    )


def customer(record: Customer) -> m.Customer:
    return m.Customer(
        id=record.id,
        external_id=record.external_id,
        full_name=record.name,
        email=record.email or "",
        timezone=record.timezone,
        metadata=None if record.metadata is None else msgspec.json.decode(record.metadata),
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
    )


def _feature_type(feature: Feature) -> str:
    return {"metered": "usage"}.get(feature.type, feature.type)


def plan(record: Plan) -> m.Plan:
    return m.Plan(
        id=record.id,
        name=record.name,
        code=record.id,
        description=record.description,
        consumption_model=record.consumption_model,
        is_free=record.base_price == 0,
        features=[
            m.PlanFeature(
                code=f.code,
                name=f.name,
                type=_feature_type(f),
                enabled=f.enabled,
                included_amount=f.included,
                unlimited=f.unlimited,
                overage=m.PlanFeatureOverage(
                    enabled=f.overage_enabled, unit_price=f.overage_unit_price
                )
                if f.type != "boolean"
                else None,
            )
            for f in record.features
        ],
        prices=[
            m.PlanPrice(
                id=f"price_{record.id}_{record.billing_interval}",
                billing_interval=record.billing_interval,
                price=record.base_price,
                is_default=True,
                trial_days=record.trial_days,
                included_credits=record.included_credits or None,
                included_balance=record.balance_refill or None,
            )
        ],
    )


def _days_left(end: datetime, now: datetime) -> int:
    left = end - now
    return max(left.days + (1 if left.seconds else 0), 0)


def subscription(lifecycle: Lifecycle, record: Subscription) -> m.Subscription:
    """A subscription as ``GET /api/v1/subscriptions/{id}`` shows it."""
    the_plan = lifecycle.plan(record.plan_id)
    now = lifecycle.clock.now()
    period = None
    if record.current_period_start and record.current_period_end:
        end = from_iso(record.current_period_end)
        period = m.CurrentPeriod(
            start=from_iso(record.current_period_start),
            end=end,
            days_remaining=_days_left(end, now),
        )
    cancellation = None
    if record.canceled_at is not None:
        cancellation = m.SubscriptionCancellation(
            scheduled_at=_time(record.canceled_at),
            reason=record.cancel_reason,
            effective_at=_time(record.end_date),
        )
    scheduled = None
    if record.scheduled_plan_id is not None:
        target = lifecycle.plan(record.scheduled_plan_id)
        scheduled = m.ScheduledPlanChange(
            change_type="downgrade",
            new_plan_id=target.id,
            new_plan_name=target.name,
            new_billing_interval=target.billing_interval,
            scheduled_for=_time(record.current_period_end),
        )
    pause = None
    if record.status == "paused" or record.pause_at is not None:
        pause = m.SubscriptionPause(
            status="active" if record.status == "paused" else "scheduled",
            mode="period_end",
            effective_at=_time(record.paused_at or record.pause_at),
            resume_at=_time(record.resume_at),
        )
    billable = record.status in ("active", "trialing", "past_due")
    start = _time(record.start_date)
    return m.Subscription(
        id=record.id,
        customer_id=lifecycle.customer_ref(record.customer_id),
        plan=m.SubscriptionPlan(id=the_plan.id, name=the_plan.name, base_price=the_plan.base_price),
        name=record.name or "",
        description=the_plan.description,
        status=record.status,
        billing_interval=the_plan.billing_interval,
        trial_ends_at=_time(record.trial_ends_at),
        current_period=period,
        cancellation=cancellation,
        cancel_at_period_end=bool(record.cancel_at_period_end),
        scheduled_plan_change=scheduled,
        start_date=start,
        end_date=_time(record.end_date),
        billing_day_of_month=start.day if start is not None else None,
        next_billing_date=_time(record.current_period_end or record.trial_ends_at)
        if billable
        else None,
        checkout_url=f"https://commet.co/checkout/{record.id}"
        if record.status == "pending_payment"
        else None,
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
        pause=pause,
        consumption_model=the_plan.consumption_model,
        features=[_subscription_feature(lifecycle, record, f) for f in the_plan.features],
        credits=m.SubscriptionCredits(
            remaining=record.credits, included=record.credits_granted, purchased=0
        )
        if the_plan.consumption_model == "credits"
        else None,
        balance=m.SubscriptionBalance(
            remaining=record.balance,
            included=record.balance_refill,
            currency=the_plan.currency.lower(),
        )
        if the_plan.consumption_model == "balance"
        else None,
        price_id=f"price_{the_plan.id}_{the_plan.billing_interval}",
    )


def _subscription_feature(
    lifecycle: Lifecycle, record: Subscription, feature: Feature
) -> m.SubscriptionFeature:
    if feature.type == "boolean":
        return m.BooleanSubscriptionFeature(
            code=feature.code, name=feature.name, enabled=feature.enabled
        )
    current = (
        record.seats
        if feature.type == "seats"
        else lifecycle.billing.usage(record.customer_id, feature.code)
    )
    included = feature.included or 0
    usage = m.SubscriptionFeatureUsage(
        current=current,
        included=included,
        overage_quantity=0 if feature.unlimited else max(current - included, 0),
        unlimited=feature.unlimited,
    )
    if feature.type == "seats":
        return m.SeatsSubscriptionFeature(code=feature.code, name=feature.name, usage=usage)
    return m.UsageFeatureSubscriptionFeature(code=feature.code, name=feature.name, usage=usage)


def _period(lifecycle: Lifecycle, record: Subscription | None) -> m.UsagePeriod:
    now = lifecycle.clock.now()
    if record is not None and record.current_period_start and record.current_period_end:
        return m.UsagePeriod(
            start=from_iso(record.current_period_start), end=from_iso(record.current_period_end)
        )
    return m.UsagePeriod(start=now, end=now + timedelta(days=30))


def feature_access(
    lifecycle: Lifecycle, code: str, customer_id: str, known: Feature
) -> m.FeatureAccess:
    """What the customer may do with a feature right now."""
    record = lifecycle.billing.current_subscription(customer_id)
    granted = record is not None and record.status in ACCESS_STATUSES
    feature = None
    if record is not None:
        feature = next((f for f in lifecycle.plan(record.plan_id).features if f.code == code), None)
        addon = lifecycle.billing.addons.get(record.id, code)
        if feature is None and addon is not None and addon.active:
            feature = Feature(code=code, name=known.name, type="boolean")
    if feature is None or feature.type == "boolean":
        enabled = feature is not None and feature.enabled
        return m.BooleanFeatureAccess(
            code=code, name=known.name, allowed=granted and enabled, enabled=enabled
        )
    included = feature.included or 0
    period = _period(lifecycle, record)
    if feature.type == "seats":
        seats = record.seats if record is not None else 0
        return m.SeatsFeatureAccess(
            code=code,
            name=feature.name,
            allowed=granted and (feature.unlimited or seats <= included or feature.overage_enabled),
            usage=m.FeatureUsage(
                period=period,
                units_used=seats,
                included_units=included,
                remaining_units=max(included - seats, 0),
                unlimited=feature.unlimited,
                overage=m.Overage(enabled=feature.overage_enabled, units=max(seats - included, 0)),
            ),
        )
    used = lifecycle.billing.usage(customer_id, code)
    the_plan = lifecycle.plan(record.plan_id) if record is not None else None
    consumption: Any
    if the_plan is not None and the_plan.consumption_model == "credits" and record is not None:
        consumption = m.CreditsConsumption(
            period=period,
            units_used=used,
            credits_per_unit=1,
            credits_consumed=used,
            available_units=record.credits,
        )
        allowed = granted and record.credits > 0
    elif the_plan is not None and the_plan.consumption_model == "balance" and record is not None:
        consumption = m.BalanceConsumption(
            period=period,
            units_used=used,
            spent=m.Money(amount=used * 10, currency=the_plan.currency.lower()),
            available_units=max(record.balance, 0) // 10,
        )
        allowed = granted and record.balance > 0
    else:
        consumption = m.MeteredConsumption(
            period=period,
            units_used=used,
            included_units=included,
            remaining_units=max(included - used, 0),
            unlimited=feature.unlimited,
            overage=m.Overage(
                enabled=feature.overage_enabled,
                units=0 if feature.unlimited else max(used - included, 0),
            ),
        )
        allowed = granted and (feature.unlimited or used < included or feature.overage_enabled)
    return m.UsageFeatureAccess(
        code=code, name=feature.name, allowed=allowed, consumption=consumption
    )


def test_clock_run(run: dict[str, Any]) -> m.TestClockRun:
    return msgspec.convert(run, m.TestClockRun)


def test_clock(lifecycle: Lifecycle) -> m.TestClock:
    offset = lifecycle.store.clock.offset()
    run = lifecycle.store.clock.last_run()
    now = lifecycle.clock.now()
    return m.TestClock(
        simulated_time=now if offset else None,
        is_active=offset > 0,
        now=now,
        latest_run=None if run is None else msgspec.convert(run, m.TestClockRunSummary),
    )
