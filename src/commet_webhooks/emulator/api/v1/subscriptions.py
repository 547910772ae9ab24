"""``/api/v1/subscriptions``: create, get, active, list, cancel/uncancel, change-plan,
pause/resume, reactivate, add-ons, credit packs and balance top-ups."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...._wire import iso_time
from ...errors import ApiError, validation_error
from ...lifecycle import Outcome
from ...storage.billing import Subscription
from .. import views
from ..context import Context
from ..http import ok, read_body, required_query
from ._common import Body, known_customer, page

__all__ = ["routes"]

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Days = Annotated[int, msgspec.Meta(ge=0, le=3650)]
STATUSES = (
    "draft",
    "pending_payment",
    "trialing",
    "active",
    "past_due",
    "paused",
    "canceled",
    "expired",
)


class SubscriptionIn(Body):
    customer_id: Text
    plan_id: Text | None = None
    plan_code: Text | None = None
    custom_trial_days: Days | None = None
    skip_trial: bool = False
    cancel_at_period_end: bool = False


class CancelIn(Body):
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    immediate: bool = False


class ChangePlanIn(Body):
    new_plan_id: Text | None = None
    plan_id: Text | None = None


class PauseIn(Body):
    mode: Literal["immediate", "period_end"]
    duration_days: Days | None = None


class PausePatch(Body):
    duration_days: Days | None = None


class AddOnIn(Body):
    addon_id: Text


class CreditsIn(Body):
    credits: Annotated[int, msgspec.Meta(ge=1, le=10**9)] = 1000
    price: Annotated[int, msgspec.Meta(ge=0)] = 1000


class TopUpIn(Body):
    amount: Annotated[int, msgspec.Meta(ge=1, le=10**9)]


def routes(ctx: Context) -> list[BaseRoute]:
    life = ctx.lifecycle

    def view(sub: Subscription | None) -> Any:
        return None if sub is None else views.subscription(life, sub)

    def done(outcome: Outcome, status: int = 200) -> Response:
        ctx.emitted()
        return ok(view(outcome.subscription), status)

    async def create(request: Request) -> Response:
        body = await read_body(request, SubscriptionIn)
        plan_id = body.plan_id or body.plan_code
        if plan_id is None:
            raise validation_error("planId", "give planId or planCode")
        known_customer(life, body.customer_id)
        trial = 0 if body.skip_trial else body.custom_trial_days
        outcome = life.create_subscription(body.customer_id, plan_id, trial_days=trial)
        if body.cancel_at_period_end and outcome.subscription is not None:
            life.update(outcome.subscription.id, cancel_at_period_end=True)
            outcome.subscription = life.subscription(outcome.subscription.id)
        ctx.emitted()
        assert outcome.subscription is not None
        created = msgspec.to_builtins(views.subscription(life, outcome.subscription))
        created["checkoutProvider"] = "stripe"
        return ok(created, 201)

    async def get(request: Request) -> Response:
        return ok(view(life.subscription(request.path_params["id"])))

    async def active(request: Request) -> Response:
        # A customer never seen has no subscription: null, as for one without any.
        customer = life.billing.customer_by_any_id(required_query(request, "customerId"))
        return ok(view(life.billing.current_subscription(customer.id) if customer else None))

    async def list_(request: Request) -> Response:
        ref = request.query_params.get("customerId") or None
        customer_id = known_customer(life, ref).id if ref else None
        status = request.query_params.get("status") or None
        if status is not None and status not in STATUSES:
            raise validation_error("status", f"must be one of {', '.join(STATUSES)}")
        return page(
            request,
            lambda after, limit: life.billing.list_subscriptions(
                customer_id=customer_id, status=status, after_seq=after, limit=limit
            ),
            lambda sub: sub.seq,
            lambda sub: views.subscription(life, sub),
        )

    async def cancel(request: Request) -> Response:
        body = await read_body(request, CancelIn)
        return done(
            life.cancel(request.path_params["id"], body.reason, at_period_end=not body.immediate)
        )

    async def uncancel(request: Request) -> Response:
        return done(life.revoke_cancellation(request.path_params["id"]))

    async def change_plan(request: Request) -> Response:
        body = await read_body(request, ChangePlanIn)
        plan_id = body.new_plan_id or body.plan_id
        if plan_id is None:
            raise validation_error("newPlanId", "is required")
        sub_id = request.path_params["id"]
        before = life.subscription(sub_id)
        outcome = life.change_plan(sub_id, plan_id)
        ctx.emitted()
        after = outcome.subscription
        assert after is not None
        customer = life.customer_ref(after.customer_id)
        # The platform's PlanChange answer (no shared model: the client does not read it).
        if after.scheduled_plan_id is not None and after.plan_id == before.plan_id:
            target = life.plan(after.scheduled_plan_id)
            return ok(
                {
                    "outcome": "scheduled",
                    "id": after.id,
                    "scheduled": True,
                    "scheduledFor": after.current_period_end,
                    "changeType": "subscription.plan_downgrade",
                    "customerId": customer,
                    "newPlanId": target.id,
                    "newPlanName": target.name,
                    "newBillingInterval": target.billing_interval,
                    "object": "plan_change",
                    "livemode": False,
                }
            )
        previous, current = life.plan(before.plan_id), life.plan(after.plan_id)
        return ok(
            {
                "outcome": "completed",
                "id": after.id,
                "scheduled": False,
                "customerId": customer,
                "previousPlan": {"id": previous.id, "name": previous.name},
                "currentPlan": {"id": current.id, "name": current.name},
                "billingInterval": current.billing_interval,
                "billing": {"credit": 0, "charge": 0, "totalCharged": 0},
                "object": "plan_change",
                "livemode": False,
            }
        )

    def _resume_at(sub: Subscription, days: int | None, immediate: bool) -> str | None:
        if days is None:
            return None
        start = life.clock.now() if immediate or not sub.current_period_end else None
        from ...storage.times import from_iso

        base = start if start is not None else from_iso(sub.current_period_end or life.now())
        return iso_time(base + timedelta(days=days))

    async def pause(request: Request) -> Response:
        body = await read_body(request, PauseIn)
        sub = life.subscription(request.path_params["id"])
        immediate = body.mode == "immediate"
        return done(
            life.pause(
                sub.id,
                resume_at=_resume_at(sub, body.duration_days, immediate),
                immediate=immediate,
            )
        )

    async def update_pause(request: Request) -> Response:
        body = await read_body(request, PausePatch)
        sub = life.subscription(request.path_params["id"])
        if sub.pause_at is None:
            raise ApiError(409, "invalid_subscription_status", "no pause is scheduled")
        return done(life.pause(sub.id, resume_at=_resume_at(sub, body.duration_days, False)))

    async def revoke_pause(request: Request) -> Response:
        return done(life.revoke_pause(request.path_params["id"]))

    async def resume(request: Request) -> Response:
        outcome = life.resume(request.path_params["id"])
        ctx.emitted()
        sub = outcome.subscription
        assert sub is not None
        invoice = life.billing.latest_invoice(sub.id)
        return ok(
            {
                "subscriptionId": sub.id,
                "invoiceId": invoice.id if invoice else None,
                "status": "succeeded" if sub.status == "active" else "processing",
                "object": "subscription_resume",
                "livemode": False,
            }
        )

    async def reactivate(request: Request) -> Response:
        return done(life.reactivate(request.path_params["id"]))

    async def add_addon(request: Request) -> Response:
        body = await read_body(request, AddOnIn)
        return done(life.set_addon(request.path_params["id"], body.addon_id, active=True))

    async def remove_addon(request: Request) -> Response:
        return done(
            life.set_addon(request.path_params["id"], request.path_params["addon"], active=False)
        )

    async def credits(request: Request) -> Response:
        body = await read_body(request, CreditsIn)
        return done(life.buy_credits(request.path_params["id"], body.credits, body.price))

    async def top_up(request: Request) -> Response:
        body = await read_body(request, TopUpIn)
        return done(life.top_up(request.path_params["id"], body.amount))

    one = "/api/v1/subscriptions/{id}"
    return [
        Route("/api/v1/subscriptions", list_, methods=["GET"]),
        Route("/api/v1/subscriptions", create, methods=["POST"]),
        Route("/api/v1/subscriptions/active", active, methods=["GET"]),
        Route(one, get, methods=["GET"]),
        Route(one + "/cancel", cancel, methods=["POST"]),
        Route(one + "/uncancel", uncancel, methods=["POST"]),
        Route(one + "/change-plan", change_plan, methods=["POST"]),
        Route(one + "/pause", pause, methods=["POST"]),
        Route(one + "/pause", update_pause, methods=["PATCH"]),
        Route(one + "/pause", revoke_pause, methods=["DELETE"]),
        Route(one + "/resume", resume, methods=["POST"]),
        Route(one + "/reactivate", reactivate, methods=["POST"]),
        Route(one + "/addons", add_addon, methods=["POST"]),
        Route(one + "/addons/{addon}", remove_addon, methods=["DELETE"]),
        Route(one + "/credits", credits, methods=["POST"]),
        Route(one + "/balance/topup", top_up, methods=["POST"]),
    ]
