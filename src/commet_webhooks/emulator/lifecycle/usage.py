"""Usage against quotas, credits and balances; seats; add-ons."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..._wire import new_id
from ..errors import ApiError, validation_error
from ..plans import ADD_ONS
from ..storage.billing import (
    AddOn,
    Subscription,
)
from .base import (
    ACCESS_STATUSES,
    LOW_SHARE,
    QUOTA_SHARE,
    LifecycleBase,
    Outcome,
)

__all__ = ["UsageSteps"]


class UsageSteps(LifecycleBase):
    """Usage against quotas, credits and balances; seats; add-ons."""

    # ------------------------------------------------------------------ usage, quotas, seats

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
                    404,
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
