"""The plan catalog the billing simulation sells: a default one, or a JSON file.

A catalog file is a JSON list of plans (or ``{"plans": [...]}``)::

    [{"id": "plan_team", "name": "Team", "basePrice": 4900, "billingInterval": "monthly",
      "features": [{"code": "sso", "name": "SSO", "type": "boolean", "enabled": true},
                   {"code": "api_calls", "name": "API calls", "type": "metered",
                    "included": 50000, "overageEnabled": true, "overageUnitPrice": 1}]}]

Prices are integers in cents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

__all__ = [
    "ADD_ONS",
    "DEFAULT_PLANS",
    "AddOnSpec",
    "Feature",
    "Plan",
    "PlanCatalogError",
    "load_plans",
]


class Feature(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """A feature a plan grants: a switch, a metered quota or a number of seats."""

    code: str
    name: str
    type: Literal["boolean", "metered", "seats"]
    enabled: bool = True
    included: int | None = None
    unlimited: bool = False
    overage_enabled: bool = False
    overage_unit_price: int | None = None


class Plan(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """A plan: price in cents per billing interval, and its features.

    ``trialDays`` starts subscriptions in a trial; ``consumptionModel`` ``credits``
    grants ``includedCredits`` each period (usage spends them), ``balance`` refills a
    prepaid balance of ``balanceRefill`` cents each period.
    """

    id: str
    name: str
    base_price: int
    billing_interval: Literal["monthly", "yearly"] = "monthly"
    currency: str = "USD"
    description: str | None = None
    features: list[Feature] = msgspec.field(default_factory=list)
    trial_days: int = 0
    consumption_model: Literal["metered", "credits", "balance"] = "metered"
    included_credits: int = 0
    balance_refill: int = 0


class AddOnSpec(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """An add-on any subscription can activate: a price per period and the feature it adds."""

    id: str
    name: str
    feature_code: str
    price: int
    currency: str = "USD"


#: The add-ons on sale.
ADD_ONS: dict[str, AddOnSpec] = {
    "priority_support": AddOnSpec(
        id="priority_support", name="Priority support", feature_code="priority_support", price=1900
    )
}


class PlanCatalogError(ValueError):
    """The plan catalog file is missing or invalid; the message says where."""


def _default_plans() -> dict[str, Plan]:
    starter = Plan(
        id="plan_starter",
        name="Starter",
        base_price=900,
        description="For individuals getting started",
        features=[
            Feature(
                code="advanced_analytics", name="Advanced analytics", type="boolean", enabled=False
            ),
            Feature(
                code="api_calls",
                name="API calls",
                type="metered",
                included=1_000,
                overage_enabled=False,
            ),
            Feature(code="team_members", name="Team members", type="seats", included=1),
        ],
    )
    pro = Plan(
        id="plan_pro",
        name="Pro",
        base_price=2900,
        description="For growing teams",
        features=[
            Feature(code="advanced_analytics", name="Advanced analytics", type="boolean"),
            Feature(
                code="api_calls",
                name="API calls",
                type="metered",
                included=10_000,
                overage_enabled=True,
                overage_unit_price=1,
            ),
            Feature(code="team_members", name="Team members", type="seats", included=10),
        ],
    )
    credits = Plan(
        id="plan_credits",
        name="Credits",
        base_price=1900,
        description="1,000 AI credits a month",
        consumption_model="credits",
        included_credits=1_000,
        features=[Feature(code="ai_credits", name="AI credits", type="metered", included=1_000)],
    )
    prepaid = Plan(
        id="plan_prepaid",
        name="Prepaid",
        base_price=5000,
        description="A prepaid balance spent by usage",
        consumption_model="balance",
        balance_refill=5000,
        features=[Feature(code="api_calls", name="API calls", type="metered", included=0)],
    )
    return {plan.id: plan for plan in (starter, pro, credits, prepaid)}


#: The catalog used when no file is given: ``plan_starter``, ``plan_pro``, ``plan_credits``
#: (a credits plan) and ``plan_prepaid`` (a balance plan).
DEFAULT_PLANS: dict[str, Plan] = _default_plans()


def load_plans(path: str | Path | None) -> dict[str, Plan]:
    """The catalog in ``path`` keyed by plan id, or :data:`DEFAULT_PLANS` when ``path`` is None."""
    if path is None:
        return dict(DEFAULT_PLANS)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PlanCatalogError(f"cannot read plan catalog {str(path)!r}: {exc.strerror}") from None
    try:
        doc = msgspec.json.decode(raw)
        if isinstance(doc, dict):
            doc = doc.get("plans")
        plan_list = msgspec.convert(doc, list[Plan])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PlanCatalogError(f"invalid plan catalog {str(path)!r}: {exc}") from None
    if not plan_list:
        raise PlanCatalogError(f"plan catalog {str(path)!r} has no plans")
    catalog: dict[str, Plan] = {}
    for plan in plan_list:
        if plan.id in catalog:
            raise PlanCatalogError(f"plan catalog {str(path)!r}: duplicate plan id {plan.id!r}")
        if plan.base_price < 0:
            raise PlanCatalogError(f"plan catalog {str(path)!r}: {plan.id!r} has a negative price")
        catalog[plan.id] = plan
    return catalog
