"""A year of simulated billing, driven through the emulator's API as an integration would.

One organisation, a handful of customers, every lifecycle path the platform has:
trials, activation, renewals, dunning (recovered and exhausted), reactivation, plan
changes (scheduled, replaced, immediate, during a trial), cancellations scheduled and
revoked, pauses (scheduled, changed, revoked, taken, failed and successful resumes),
usage against quotas, credits and balances, seats, add-ons, refunds and disputes,
payment links, plan grants and payouts.
"""

from __future__ import annotations

from typing import Any

from emulator.emulator_helpers import Emulator


def call(emulator: Emulator, method: str, path: str, body: Any = None, **params: Any) -> Any:
    response = emulator.client.request(method, path, json=body, params=params or None)
    payload = response.json()
    assert response.is_success and payload.get("success") is True, (method, path, payload)
    return payload["data"]


def advance(emulator: Emulator, days: int) -> dict[str, Any]:
    result: dict[str, Any] = call(emulator, "POST", "/api/v1/test-clock", {"advanceDays": days})
    return result


def fail_next_charges(emulator: Emulator, count: int = 1) -> None:
    call(emulator, "POST", "/api/emulator/charges/fail-next", {"count": count})


def run_year(emulator: Emulator) -> dict[str, str]:
    """Drive the year; returns the main customers' subscription ids by name."""
    e = emulator
    # customers: created and updated
    ada = call(e, "POST", "/api/v1/customers",
               {"externalId": "user_ada", "email": "ada@example.com", "fullName": "Ada"})  # fmt: skip
    call(e, "PATCH", f"/api/v1/customers/{ada['id']}", {"fullName": "Ada Lovelace"})
    for ref in ("user_bea", "user_cy", "user_dee"):
        call(e, "POST", "/api/v1/customers", {"externalId": ref, "email": f"{ref}@example.com"})

    # Ada: a 14-day trial of Pro, card saved at checkout
    sub = call(e, "POST", "/api/v1/subscriptions",
               {"customerId": "user_ada", "planId": "plan_pro", "customTrialDays": 14})  # fmt: skip
    ada_sub = sub["id"]
    call(e, "POST", f"/api/emulator/subscriptions/{ada_sub}/pay")
    advance(e, 15)  # trial.will_end, trial.expired, first invoice paid

    # usage against Pro's 10,000 included API calls; a repeated eventId counts once
    for value, event_id in ((8500, "evt-1"), (8500, "evt-1"), (2000, "evt-2")):
        call(e, "POST", "/api/v1/usage/events",
             {"customerId": "user_ada", "featureCode": "api_calls", "value": value,
              "eventId": event_id})  # fmt: skip
    call(e, "POST", f"/api/emulator/subscriptions/{ada_sub}/seats",
         {"featureCode": "team_members", "seats": 10})  # fmt: skip
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/addons", {"addonId": "priority_support"})
    call(e, "DELETE", f"/api/v1/subscriptions/{ada_sub}/addons/priority_support")
    call(e, "POST", "/api/emulator/customers/user_ada/payment-method")

    # a renewal fails once and is recovered by the first dunning retry
    advance(e, 20)
    fail_next_charges(e)
    advance(e, 14)

    # money: refund part of the last payment, a dispute won
    call(e, "POST", "/api/emulator/payments/refund", {"subscriptionId": ada_sub, "amount": 500})
    call(e, "POST", "/api/emulator/payments/dispute", {"subscriptionId": ada_sub})
    call(e, "POST", "/api/emulator/payments/dispute", {"subscriptionId": ada_sub, "outcome": "won"})

    # plan changes: a downgrade scheduled, replaced, then taken at the period's end
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/change-plan", {"newPlanId": "plan_starter"})
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/change-plan", {"newPlanId": "plan_credits"})
    advance(e, 31)
    # and an upgrade, right away
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/change-plan", {"newPlanId": "plan_pro"})

    # cancellation scheduled, then revoked
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/cancel", {"reason": "too_pricey"})
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/uncancel")

    # pause: scheduled, changed, revoked; scheduled again and taken; a resume that fails,
    # then one that succeeds
    call(
        e,
        "POST",
        f"/api/v1/subscriptions/{ada_sub}/pause",
        {"mode": "period_end", "durationDays": 30},
    )
    call(e, "PATCH", f"/api/v1/subscriptions/{ada_sub}/pause", {"durationDays": 20})
    call(e, "DELETE", f"/api/v1/subscriptions/{ada_sub}/pause")
    call(
        e,
        "POST",
        f"/api/v1/subscriptions/{ada_sub}/pause",
        {"mode": "period_end", "durationDays": 10},
    )
    advance(e, 32)
    fail_next_charges(e)
    advance(e, 12)
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/resume")

    # dunning exhausted: every retry fails, the subscription ends; later reactivated
    advance(e, 20)
    fail_next_charges(e, 4)
    advance(e, 30)
    call(e, "POST", f"/api/v1/subscriptions/{ada_sub}/reactivate")

    # Bea: a credits plan, no trial: checkout, credits spent and bought, expired at reset
    bea = call(
        e, "POST", "/api/v1/subscriptions", {"customerId": "user_bea", "planId": "plan_credits"}
    )
    call(e, "POST", f"/api/emulator/subscriptions/{bea['id']}/pay")
    for value in (950, 50):
        call(e, "POST", "/api/v1/usage/events",
             {"customerId": "user_bea", "featureCode": "ai_credits", "value": value})  # fmt: skip
    call(e, "POST", f"/api/v1/subscriptions/{bea['id']}/credits", {"credits": 500, "price": 900})

    # Cy: a prepaid balance, spent down and topped up
    cy = call(
        e, "POST", "/api/v1/subscriptions", {"customerId": "user_cy", "planId": "plan_prepaid"}
    )
    call(e, "POST", f"/api/emulator/subscriptions/{cy['id']}/pay")
    for value in (460, 50):
        call(e, "POST", "/api/v1/usage/events",
             {"customerId": "user_cy", "featureCode": "api_calls", "value": value})  # fmt: skip
    call(e, "POST", f"/api/v1/subscriptions/{cy['id']}/balance/topup", {"amount": 2000})

    # Dee: converts her trial early by changing plan, then cancels at once
    dee = call(e, "POST", "/api/v1/subscriptions",
               {"customerId": "user_dee", "planId": "plan_starter", "customTrialDays": 7})  # fmt: skip
    call(e, "POST", f"/api/emulator/subscriptions/{dee['id']}/pay")
    call(e, "POST", f"/api/v1/subscriptions/{dee['id']}/change-plan", {"newPlanId": "plan_pro"})
    call(e, "POST", f"/api/v1/subscriptions/{dee['id']}/cancel", {"immediate": True})

    # payment links: one fails then is paid, one is canceled
    link = call(e, "POST", "/api/emulator/payment-links",
                {"customerId": "user_dee", "amount": 4900, "description": "Onboarding"})  # fmt: skip
    call(e, "POST", f"/api/emulator/payment-links/{link['id']}/fail")
    call(e, "POST", f"/api/emulator/payment-links/{link['id']}/pay")
    other = call(
        e, "POST", "/api/emulator/payment-links", {"customerId": "user_dee", "amount": 100}
    )
    call(e, "POST", f"/api/emulator/payment-links/{other['id']}/cancel")

    # plan grants: one extended and left to expire, one revoked
    grant = call(e, "POST", "/api/emulator/plan-grants",
                 {"customerId": "user_bea", "planId": "plan_pro", "days": 10})  # fmt: skip
    call(e, "POST", f"/api/emulator/plan-grants/{grant['id']}", {"days": 20})
    revoked = call(
        e, "POST", "/api/emulator/plan-grants", {"customerId": "user_cy", "planId": "plan_pro"}
    )
    call(e, "POST", f"/api/emulator/plan-grants/{revoked['id']}", {"revoke": True})

    # the rest of the year: renewals, credit resets, payouts (one fails at the bank)
    call(e, "POST", "/api/emulator/payouts/fail-next", {"count": 1})
    for _ in range(6):
        advance(e, 30)
    return {"ada": ada_sub, "bea": bea["id"], "cy": cy["id"], "dee": dee["id"]}
