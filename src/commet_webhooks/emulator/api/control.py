"""Emulator-only controls under ``/api/emulator``: what the platform does on its own or
what a customer does in a browser (pay a checkout, fail the next charge, dispute a
payment, move money), plus the event and delivery log.

Simulation actions answer ``{"success": true, "data": <subscription>, "eventIds": [...]}``
with the ids of the events they emitted, in order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..._signing import sign
from ..._wire import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from ..chaos import Chaos
from ..errors import validation_error
from ..lifecycle import Outcome
from ..storage import DELIVERY_STATUSES, Delivery, EventRecord
from .context import EVENT_NAME, EVENT_NAME_HINT, Context
from .http import ok, query_int, read_body
from .legacy import subscription_view

__all__ = ["delivery_view", "event_view", "routes"]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Count = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Amount = Annotated[int, msgspec.Meta(ge=1, le=10**10)]


class _Body(msgspec.Struct, rename="camel", kw_only=True):
    """Request bodies: camelCase on the wire; unknown keys are ignored."""


class EventIn(_Body):
    event: NonEmpty
    data: dict[str, Any] | None = None


class CustomerIn(_Body):
    id: NonEmpty
    name: str | None = None
    email: str | None = None


class SubscriptionIn(_Body):
    customer_id: NonEmpty
    plan_id: NonEmpty
    trial_days: Annotated[int, msgspec.Meta(ge=0, le=365)] | None = None


class ChangePlanIn(_Body):
    plan_id: NonEmpty
    at_period_end: bool | None = None


class RenewIn(_Body):
    fail: bool | None = None


class CancelIn(_Body):
    reason: str | None = None
    at_period_end: bool = False


class SubscriptionPatch(_Body):
    status: Literal["active", "trialing", "paused", "past_due"] | None = None
    name: NonEmpty | None = None
    cancel_at_period_end: bool | None = None
    cancel_reason: str | None = None


class UsageIn(_Body):
    customer_id: NonEmpty
    feature: NonEmpty
    value: Annotated[int, msgspec.Meta(ge=0)]


class FailNextIn(_Body):
    count: Count = 1


class PaymentIn(_Body):
    payment_id: NonEmpty | None = None
    subscription_id: NonEmpty | None = None
    amount: Amount | None = None
    outcome: Literal["won", "lost"] | None = None


class LinkIn(_Body):
    customer_id: NonEmpty
    amount: Amount
    description: str | None = None


class GrantIn(_Body):
    customer_id: NonEmpty
    plan_id: NonEmpty
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class GrantPatch(_Body):
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    revoke: bool = False


class ChaosIn(_Body):
    duplicates: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    drop: float = 0.0
    max_delay: float = 2.0


class SeatsIn(_Body):
    feature_code: NonEmpty
    seats: Annotated[int, msgspec.Meta(ge=0, le=10**6)]


def attempt_view(attempt: Any) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "attemptedAt": attempt.attempted_at,
        "manual": attempt.manual,
        "statusCode": attempt.status_code,
        "latencyMs": attempt.latency_ms,
        "error": attempt.error,
        "response": attempt.response,
        "note": attempt.note,
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "event": delivery.event_type,
        "endpointId": delivery.endpoint_id,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": [attempt_view(a) for a in delivery.attempts],
        "nextAttemptAt": delivery.next_attempt_at,
        "createdAt": delivery.created_at,
        "updatedAt": delivery.updated_at,
    }


def event_view(event: EventRecord) -> dict[str, Any]:
    return {
        "id": event.id,
        "event": event.type,
        "timestamp": event.timestamp,
        "payload": event.payload,
        "deliveries": [delivery_view(d) for d in event.deliveries],
    }


def _status(request: Request) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise validation_error("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
    return status


def routes(ctx: Context) -> list[BaseRoute]:
    store, life = ctx.store, ctx.lifecycle

    def acted(outcome: Outcome, status: int = 200) -> Response:
        ctx.emitted()
        sub = outcome.subscription
        data = None if sub is None else subscription_view(life, sub)
        return ok(data, status, eventIds=outcome.event_ids)

    def did(outcome: Outcome, data: Any = None) -> Response:
        ctx.emitted()
        return ok(data, eventIds=outcome.event_ids)

    # -------------------------------------------------------------- log

    async def list_events(request: Request) -> Response:
        events = store.events.recent(
            event_type=request.query_params.get("event") or None,
            family=request.query_params.get("family") or None,
            status=_status(request),
            limit=query_int(request, "limit", 100, 1000),
        )
        return ok([event_view(e) for e in events])

    async def create_event(request: Request) -> Response:
        body = await read_body(request, EventIn)
        if not EVENT_NAME.match(body.event):
            raise validation_error("event", EVENT_NAME_HINT)
        if body.data is None:
            event_id = life.emit(body.event)
        else:
            event_id = life.emit_data(body.event, body.data)
        ctx.emitted()
        return ok({"id": event_id}, 201)

    async def list_deliveries(request: Request) -> Response:
        event_id = request.query_params.get("eventId")
        deliveries = store.events.deliveries(
            event_ids=[event_id] if event_id else None,
            endpoint_id=request.query_params.get("endpointId") or None,
            status=_status(request),
            limit=query_int(request, "limit", 100, 1000),
        )
        return ok([delivery_view(d) for d in deliveries])

    async def get_delivery(request: Request) -> Response:
        return ok(delivery_view(ctx.delivery(request.path_params["id"])))

    async def redeliver(request: Request) -> Response:
        delivery_id = request.path_params["id"]
        ctx.redeliver(delivery_id)
        return ok(delivery_view(ctx.delivery(delivery_id)), 202)

    async def event_counts(request: Request) -> Response:
        return ok(store.events.type_counts())

    # -------------------------------------------------------------- billing

    async def list_plans(request: Request) -> Response:
        return ok([msgspec.to_builtins(plan) for plan in life.plans.values()])

    async def create_customer(request: Request) -> Response:
        body = await read_body(request, CustomerIn)
        customer = life.create_customer(
            customer_id=body.id, external_id=body.id, name=body.name, email=body.email
        )
        ctx.emitted()
        return ok(
            {
                "id": customer.id,
                "name": customer.name,
                "email": customer.email,
                "createdAt": customer.created_at,
            },
            201,
        )

    async def record_usage(request: Request) -> Response:
        body = await read_body(request, UsageIn)
        return ok(life.set_usage(body.customer_id, body.feature, body.value))

    async def create_subscription(request: Request) -> Response:
        body = await read_body(request, SubscriptionIn)
        return acted(
            life.create_subscription(body.customer_id, body.plan_id, trial_days=body.trial_days),
            201,
        )

    async def get_subscription(request: Request) -> Response:
        return ok(subscription_view(life, life.subscription(request.path_params["id"])))

    async def pay(request: Request) -> Response:
        return acted(life.pay(request.path_params["id"]))

    async def change_plan(request: Request) -> Response:
        body = await read_body(request, ChangePlanIn)
        return acted(
            life.change_plan(
                request.path_params["id"], body.plan_id, at_period_end=body.at_period_end
            )
        )

    async def renew(request: Request) -> Response:
        body = await read_body(request, RenewIn)
        return acted(life.renew(request.path_params["id"], fail=body.fail))

    async def cancel(request: Request) -> Response:
        body = await read_body(request, CancelIn)
        return acted(
            life.cancel(request.path_params["id"], body.reason, at_period_end=body.at_period_end)
        )

    async def update_subscription(request: Request) -> Response:
        body = await read_body(request, SubscriptionPatch)
        if all(value is None for value in msgspec.structs.astuple(body)):
            raise validation_error(
                "body", "give at least one of status, name, cancelAtPeriodEnd, cancelReason"
            )
        return acted(
            life.update(
                request.path_params["id"],
                status=body.status,
                name=body.name,
                cancel_at_period_end=body.cancel_at_period_end,
                cancel_reason=body.cancel_reason,
            )
        )

    async def seats(request: Request) -> Response:
        body = await read_body(request, SeatsIn)
        return acted(life.set_seats(request.path_params["id"], body.feature_code, body.seats))

    # -------------------------------------------------------------- money

    async def fail_charges(request: Request) -> Response:
        body = await read_body(request, FailNextIn)
        return ok({"pending": store.counters.add("fail_charges", body.count)})

    async def fail_payouts(request: Request) -> Response:
        body = await read_body(request, FailNextIn)
        return ok({"pending": store.counters.add("fail_payouts", body.count)})

    async def refund(request: Request) -> Response:
        body = await read_body(request, PaymentIn)
        outcome = life.refund(
            payment_id=body.payment_id, subscription_id=body.subscription_id, amount=body.amount
        )
        return did(outcome, {"paymentId": outcome.result})

    async def dispute(request: Request) -> Response:
        body = await read_body(request, PaymentIn)
        outcome = life.dispute(
            payment_id=body.payment_id,
            subscription_id=body.subscription_id,
            outcome_name=body.outcome,
        )
        return did(outcome, {"paymentId": outcome.result})

    async def payment_method(request: Request) -> Response:
        return did(life.update_payment_method(request.path_params["id"]))

    async def create_link(request: Request) -> Response:
        body = await read_body(request, LinkIn)
        outcome = life.create_payment_link(body.customer_id, body.amount, body.description)
        return did(outcome, {"id": outcome.result.id, "status": outcome.result.status})

    async def settle_link(request: Request) -> Response:
        outcome = life.settle_payment_link(request.path_params["id"], request.path_params["action"])
        return did(outcome, {"id": outcome.result.id, "status": outcome.result.status})

    async def create_grant(request: Request) -> Response:
        body = await read_body(request, GrantIn)
        outcome = life.grant_plan(body.customer_id, body.plan_id, days=body.days)
        return did(outcome, {"id": outcome.result.id, "status": outcome.result.status})

    async def change_grant(request: Request) -> Response:
        body = await read_body(request, GrantPatch)
        outcome = life.change_grant(request.path_params["id"], days=body.days, revoke=body.revoke)
        return did(outcome, {"id": outcome.result.id, "status": outcome.result.status})

    # -------------------------------------------------------------- chaos, fixtures

    async def get_chaos(request: Request) -> Response:
        endpoint = ctx.endpoint(request.path_params["id"])
        own = endpoint.chaos is not None
        chaos = ctx.engine.chaos_for_endpoint(endpoint.chaos)
        return ok({**_chaos_view(chaos), "own": own})

    async def set_chaos(request: Request) -> Response:
        body = await read_body(request, ChaosIn)
        endpoint_id = request.path_params["id"]
        ctx.endpoint(endpoint_id)
        try:
            chaos = Chaos(**msgspec.structs.asdict(body))
        except ValueError as exc:
            raise validation_error("body", str(exc)) from None
        store.endpoints.set_chaos(endpoint_id, msgspec.json.encode(chaos.to_dict()).decode())
        return ok({**_chaos_view(chaos), "own": True})

    async def clear_chaos(request: Request) -> Response:
        endpoint_id = request.path_params["id"]
        ctx.endpoint(endpoint_id)
        store.endpoints.set_chaos(endpoint_id, None)
        return ok({**_chaos_view(ctx.engine.chaos), "own": False})

    async def fixtures(request: Request) -> Response:
        """Recorded events as test fixtures: the exact bodies and the headers to send."""
        secret = request.query_params.get("secret") or None
        if secret is not None and not secret.startswith("whsec_"):
            raise validation_error("secret", "must be a whsec_ signing secret")
        rows = store.events.bodies(
            event_type=request.query_params.get("event") or None,
            family=request.query_params.get("family") or None,
            limit=query_int(request, "limit", 100, 1000),
        )
        return ok(
            [_fixture(event_id, kind, stamp, body, secret) for event_id, kind, stamp, body in rows]
        )

    subs = "/api/emulator/subscriptions/{id}"
    link_actions = "{action:str}"
    return [
        Route("/api/emulator/events", list_events, methods=["GET"]),
        Route("/api/emulator/events", create_event, methods=["POST"]),
        Route("/api/emulator/event-counts", event_counts, methods=["GET"]),
        Route("/api/emulator/deliveries", list_deliveries, methods=["GET"]),
        Route("/api/emulator/deliveries/{id}", get_delivery, methods=["GET"]),
        Route("/api/emulator/deliveries/{id}/retry", redeliver, methods=["POST"]),
        Route("/api/emulator/plans", list_plans, methods=["GET"]),
        Route("/api/emulator/customers", create_customer, methods=["POST"]),
        Route("/api/emulator/customers/{id}/payment-method", payment_method, methods=["POST"]),
        Route("/api/emulator/usage", record_usage, methods=["POST"]),
        Route("/api/emulator/subscriptions", create_subscription, methods=["POST"]),
        Route(subs, get_subscription, methods=["GET"]),
        Route(subs, update_subscription, methods=["PATCH"]),
        Route(subs + "/pay", pay, methods=["POST"]),
        Route(subs + "/change-plan", change_plan, methods=["POST"]),
        Route(subs + "/renew", renew, methods=["POST"]),
        Route(subs + "/cancel", cancel, methods=["POST"]),
        Route(subs + "/seats", seats, methods=["POST"]),
        Route("/api/emulator/charges/fail-next", fail_charges, methods=["POST"]),
        Route("/api/emulator/payouts/fail-next", fail_payouts, methods=["POST"]),
        Route("/api/emulator/payments/refund", refund, methods=["POST"]),
        Route("/api/emulator/payments/dispute", dispute, methods=["POST"]),
        Route("/api/emulator/payment-links", create_link, methods=["POST"]),
        Route("/api/emulator/payment-links/{id}/" + link_actions, settle_link, methods=["POST"]),
        Route("/api/emulator/plan-grants", create_grant, methods=["POST"]),
        Route("/api/emulator/plan-grants/{id}", change_grant, methods=["POST"]),
        Route("/api/emulator/webhooks/{id}/chaos", get_chaos, methods=["GET"]),
        Route("/api/emulator/webhooks/{id}/chaos", set_chaos, methods=["PUT"]),
        Route("/api/emulator/webhooks/{id}/chaos", clear_chaos, methods=["DELETE"]),
        Route("/api/emulator/fixtures", fixtures, methods=["GET"]),
    ]


def _chaos_view(chaos: Chaos) -> dict[str, Any]:
    return {
        "duplicates": chaos.duplicates,
        "reorder": chaos.reorder,
        "delay": chaos.delay,
        "drop": chaos.drop,
        "maxDelay": chaos.max_delay,
    }


def _fixture(
    event_id: str, kind: str, stamp: str, body: bytes, secret: str | None
) -> dict[str, Any]:
    """One recorded event as a receiver's test needs it (signed when ``secret`` is given)."""
    headers = {
        "Content-Type": "application/json",
        EVENT_TYPE_HEADER: kind,
        TIMESTAMP_HEADER: stamp,
        EVENT_ID_HEADER: event_id,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    return {"id": event_id, "event": kind, "headers": headers, "body": body.decode("utf-8")}
