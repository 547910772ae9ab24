"""The objects of Commet's state API (``/api/v1``, version ``2026-08-27``) as msgspec structs.

One definition serves both ends of the wire: :mod:`commet_webhooks.client` decodes the
platform's answers into these structs, and the local emulator answers with them, so
what the emulator serves is what the platform serves.

Rules every struct follows:

- Wire names are camelCase, attributes snake_case (the error object keeps the
  platform's ``doc_url``). Unknown keys are ignored.
- Values the platform may extend (statuses, intervals, models) are plain ``str``.
- Numbers the platform documents as ``number`` are ``int | float``: ``4`` stays an
  ``int``, ``4.5`` stays a ``float``.
- Fields the platform marks *required* are always encoded (``null`` when empty);
  fields it marks *optional* default to ``msgspec.UNSET`` and are left out of the
  encoded JSON until set. So ``msgspec.json.encode(struct)`` is the wire form.
- Times are timezone-aware ``datetime`` values (a naive time is read as UTC).

Unions (:data:`FeatureAccess` on ``type``, :data:`Consumption` on ``model``,
:data:`SubscriptionFeature` on ``type``) are tagged unions. A discriminator value this
version does not know decodes, through :func:`from_wire`, to the ``Unknown*`` variant
instead of failing the whole answer; those stand-ins are for reading only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ._wire import API_VERSION
from .events import ACCESS_STATUSES

__all__ = [
    "API_VERSION",
    "ApiError",
    "ApiStruct",
    "BalanceConsumption",
    "BooleanBaseAccess",
    "BooleanFeatureAccess",
    "BooleanSubscriptionFeature",
    "Consumption",
    "CreatedWebhook",
    "CreditsConsumption",
    "CurrentPeriod",
    "Customer",
    "CustomerList",
    "DeletedObject",
    "ErrorResponse",
    "Feature",
    "FeatureAccess",
    "FeatureAccessList",
    "FeatureList",
    "FeatureUsage",
    "ListObject",
    "MeteredConsumption",
    "Money",
    "Number",
    "Overage",
    "Plan",
    "PlanExchangeRate",
    "PlanFeature",
    "PlanFeatureOverage",
    "PlanList",
    "PlanPrice",
    "PlanRef",
    "QuotaFeatureAccess",
    "QuotaSubscriptionFeature",
    "ScheduledPlanChange",
    "SeatsFeatureAccess",
    "SeatsSubscriptionFeature",
    "Subscription",
    "SubscriptionBalance",
    "SubscriptionCancellation",
    "SubscriptionCredits",
    "SubscriptionFeature",
    "SubscriptionFeatureUsage",
    "SubscriptionList",
    "SubscriptionPause",
    "SubscriptionPlan",
    "SubscriptionPlanGrant",
    "TestClock",
    "TestClockRun",
    "TestClockRunItem",
    "TestClockRunSummary",
    "UnitPrice",
    "UnitsBaseAccess",
    "UnknownConsumption",
    "UnknownFeatureAccess",
    "UnknownSubscriptionFeature",
    "UsageEvent",
    "UsageEventConsumption",
    "UsageEventProperty",
    "UsageFeatureAccess",
    "UsageFeatureSubscriptionFeature",
    "UsagePeriod",
    "Webhook",
    "WebhookList",
    "WebhookTest",
    "from_wire",
    "to_wire",
]

#: A JSON number: an ``int`` when the platform sent an integer, else a ``float``.
Number: TypeAlias = int | float

T = TypeVar("T")

# The tag an unknown discriminator is rewritten to before decoding, and the key that
# keeps the value the platform actually sent (read back by the ``type``/``model``
# property of the ``Unknown*`` variants).
_UNKNOWN_TAG = "~unknown"
_ORIGINAL_KEY = "~original"


class ApiStruct(msgspec.Struct, rename="camel", kw_only=True):
    """Base of every API object: camelCase wire names, unknown keys ignored.

    Subclasses list their ``datetime`` attributes in ``_time_fields``; naive values
    are made UTC on construction and on decoding.
    """

    _time_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._time_fields:
            value = getattr(self, name)
            if isinstance(value, datetime) and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=timezone.utc))


# --------------------------------------------------------------------------- lists


class ListObject(ApiStruct, Generic[T], kw_only=True):
    """A page of a list endpoint: ``{object: "list", data, hasMore, nextCursor?}``.

    Pass ``next_cursor`` back as ``cursor`` to read the next page.
    """

    object: str = "list"
    data: list[T] = msgspec.field(default_factory=list)
    has_more: bool = False
    next_cursor: str | UnsetType = UNSET


class DeletedObject(ApiStruct, kw_only=True):
    """The answer to a delete: ``{id, deleted: true, object, livemode}``."""

    id: str
    deleted: bool = True
    object: str
    livemode: bool = False


# --------------------------------------------------------------------------- errors


class ApiError(ApiStruct, kw_only=True):
    """The platform's error object (the value of ``"error"`` in an error answer)."""

    type: str = "api_error"
    code: str
    message: str
    param: str | None = None
    details: Any = None
    doc_url: str | None = msgspec.field(default=None, name="doc_url")


class ErrorResponse(ApiStruct, kw_only=True):
    """An error answer's body: ``{"error": {type, code, message, param, details, doc_url}}``."""

    error: ApiError


# --------------------------------------------------------------------------- subscriptions


class SubscriptionPlan(ApiStruct, kw_only=True):
    """The plan a subscription is on. ``base_price`` is in the currency's minor unit."""

    id: str
    name: str = ""
    base_price: Number = 0


class PlanRef(ApiStruct, kw_only=True):
    """A reference to a plan by id and name."""

    id: str
    name: str = ""


class CurrentPeriod(ApiStruct, kw_only=True):
    """The billing period in progress; ``days_remaining`` may be fractional."""

    _time_fields = ("start", "end")
    start: datetime | None = None
    end: datetime | None = None
    days_remaining: Number = 0


class SubscriptionCancellation(ApiStruct, kw_only=True):
    """A cancellation that is scheduled or has taken effect."""

    _time_fields = ("scheduled_at", "effective_at")
    scheduled_at: datetime | None = None
    reason: str | None = None
    effective_at: datetime | None = None


class ScheduledPlanChange(ApiStruct, kw_only=True):
    """A plan downgrade or interval change waiting for the end of the period."""

    _time_fields = ("scheduled_for",)
    change_type: str
    new_plan_id: str | None = None
    new_plan_name: str | None = None
    new_billing_interval: str | None = None
    scheduled_for: datetime | None = None


class SubscriptionPause(ApiStruct, kw_only=True):
    """A pause: ``status`` is ``scheduled`` or ``active``; ``mode`` ``immediate`` or
    ``period_end``."""

    _time_fields = ("requested_at", "effective_at", "resume_at")
    status: str
    mode: str
    requested_at: datetime | None = None
    effective_at: datetime | None = None
    resume_at: datetime | None = None


class SubscriptionPlanGrant(ApiStruct, kw_only=True):
    """A higher plan temporarily granted on top of the subscription."""

    _time_fields = ("expires_at",)
    id: str
    plan: PlanRef
    expires_at: datetime | None = None


class SubscriptionCredits(ApiStruct, kw_only=True):
    """Credits left on a credits-model subscription."""

    remaining: Number = 0
    included: Number = 0
    purchased: Number = 0


class SubscriptionBalance(ApiStruct, kw_only=True):
    """Money left on a balance-model subscription (minor units of ``currency``)."""

    remaining: Number = 0
    included: Number = 0
    currency: str = "usd"


class SubscriptionFeatureUsage(ApiStruct, kw_only=True):
    """Usage of a plan feature within a subscription."""

    current: Number = 0
    included: Number = 0
    overage_quantity: Number = 0
    overage_unit_price: Number | UnsetType = UNSET
    unlimited: bool | UnsetType = UNSET


class BooleanBaseAccess(ApiStruct, kw_only=True):
    """Access a boolean feature grants without any add-on."""

    enabled: bool


class _SubscriptionUnitsBaseAccess(ApiStruct, kw_only=True):
    included: Number = 0
    unlimited: bool = False


class _SubscriptionFeatureBase(ApiStruct, kw_only=True, tag_field="type"):
    code: str
    name: str = ""

    @property
    def type(self) -> str:
        """The feature type: ``boolean``, ``usage``, ``seats`` or ``quota``."""
        tag = self.__struct_config__.tag
        return tag if isinstance(tag, str) else ""


class BooleanSubscriptionFeature(_SubscriptionFeatureBase, kw_only=True, tag="boolean"):
    """An on/off plan feature of a subscription."""

    enabled: bool = False
    base_access: BooleanBaseAccess | UnsetType | None = UNSET


class UsageFeatureSubscriptionFeature(_SubscriptionFeatureBase, kw_only=True, tag="usage"):
    """A usage-based plan feature of a subscription."""

    usage: SubscriptionFeatureUsage | UnsetType = UNSET
    base_access: _SubscriptionUnitsBaseAccess | UnsetType | None = UNSET


class SeatsSubscriptionFeature(_SubscriptionFeatureBase, kw_only=True, tag="seats"):
    """A seat-based plan feature of a subscription."""

    usage: SubscriptionFeatureUsage = msgspec.field(default_factory=SubscriptionFeatureUsage)
    base_access: _SubscriptionUnitsBaseAccess | UnsetType | None = UNSET


class QuotaSubscriptionFeature(_SubscriptionFeatureBase, kw_only=True, tag="quota"):
    """A quota plan feature of a subscription."""

    usage: SubscriptionFeatureUsage | UnsetType = UNSET
    base_access: _SubscriptionUnitsBaseAccess | UnsetType | None = UNSET


class UnknownSubscriptionFeature(_SubscriptionFeatureBase, kw_only=True, tag=_UNKNOWN_TAG):
    """A plan feature whose ``type`` this version does not know (read-only stand-in)."""

    original_type: str = msgspec.field(default="", name=_ORIGINAL_KEY)

    @property
    def type(self) -> str:
        """The ``type`` the platform sent."""
        return self.original_type


SubscriptionFeature: TypeAlias = (
    BooleanSubscriptionFeature
    | UsageFeatureSubscriptionFeature
    | SeatsSubscriptionFeature
    | QuotaSubscriptionFeature
    | UnknownSubscriptionFeature
)


class Subscription(ApiStruct, kw_only=True):
    """A subscription (``GET /api/v1/subscriptions/active``, ``/subscriptions/{id}``).

    ``status`` is one of ``draft``, ``pending_payment``, ``trialing``, ``active``,
    ``past_due``, ``paused``, ``canceled`` (or a newer one). :attr:`is_active` is the
    access rule of thumb.
    """

    _time_fields = (
        "trial_ends_at",
        "start_date",
        "end_date",
        "next_billing_date",
        "created_at",
        "updated_at",
    )
    id: str
    customer_id: str
    plan: SubscriptionPlan
    name: str = ""
    description: str | None = None
    status: str
    billing_interval: str | None = None
    trial_ends_at: datetime | None = None
    current_period: CurrentPeriod | None = None
    cancellation: SubscriptionCancellation | None = None
    cancel_at_period_end: bool = False
    scheduled_plan_change: ScheduledPlanChange | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    billing_day_of_month: int | None = None
    next_billing_date: datetime | None = None
    checkout_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    offer_applications: list[dict[str, Any]] = msgspec.field(default_factory=list)
    pause: SubscriptionPause | None = None
    plan_grant: SubscriptionPlanGrant | UnsetType = UNSET
    consumption_model: str | None = None
    features: list[SubscriptionFeature] = msgspec.field(default_factory=list)
    credits: SubscriptionCredits | None = None
    balance: SubscriptionBalance | None = None
    price_id: str | None = None
    object: str = "subscription"
    livemode: bool = False

    @property
    def is_active(self) -> bool:
        """True when the status grants access: ``active`` or ``trialing``."""
        return self.status in ACCESS_STATUSES

    def feature(self, code: str) -> SubscriptionFeature | None:
        """The plan feature with this code, or None."""
        return next((f for f in self.features if f.code == code), None)


# --------------------------------------------------------------------------- feature access


class UsagePeriod(ApiStruct, kw_only=True):
    """The time range a feature's consumption is counted over (end exclusive)."""

    _time_fields = ("start", "end")
    start: datetime
    end: datetime


class UnitPrice(ApiStruct, kw_only=True):
    """A rate: ``amount / scale`` is the price of one unit in major units."""

    amount: int
    currency: str = "usd"
    scale: int = 10000

    @property
    def value(self) -> float:
        """The price of one unit in major units (e.g. dollars)."""
        return self.amount / self.scale


class Money(ApiStruct, kw_only=True):
    """An amount in the currency's smallest unit."""

    amount: int
    currency: str = "usd"


class Overage(ApiStruct, kw_only=True):
    """Usage above what is included."""

    enabled: bool = False
    units: Number = 0
    unit_price: UnitPrice | UnsetType = UNSET


class _ConsumptionBase(ApiStruct, kw_only=True, tag_field="model"):
    period: UsagePeriod
    units_used: Number = 0

    @property
    def model(self) -> str:
        """The consumption model: ``metered``, ``credits`` or ``balance``."""
        tag = self.__struct_config__.tag
        return tag if isinstance(tag, str) else ""


class MeteredConsumption(_ConsumptionBase, kw_only=True, tag="metered"):
    """Usage counted against an included allowance, with optional overage."""

    included_units: Number = 0
    remaining_units: Number | UnsetType = UNSET
    unlimited: bool = False
    overage: Overage = msgspec.field(default_factory=Overage)


class CreditsConsumption(_ConsumptionBase, kw_only=True, tag="credits"):
    """Usage paid from a shared pool of credits."""

    credits_per_unit: int = 0
    credits_consumed: Number = 0
    available_units: int = 0


class BalanceConsumption(_ConsumptionBase, kw_only=True, tag="balance"):
    """Usage paid from a shared money balance."""

    spent: Money
    available_units: int | UnsetType = UNSET
    unit_price: UnitPrice | UnsetType = UNSET


class UnknownConsumption(_ConsumptionBase, kw_only=True, tag=_UNKNOWN_TAG):
    """A consumption whose ``model`` this version does not know (read-only stand-in)."""

    original_model: str = msgspec.field(default="", name=_ORIGINAL_KEY)

    @property
    def model(self) -> str:
        """The ``model`` the platform sent."""
        return self.original_model


Consumption: TypeAlias = (
    MeteredConsumption | CreditsConsumption | BalanceConsumption | UnknownConsumption
)


class FeatureUsage(ApiStruct, kw_only=True):
    """Units of a seats or quota feature in use; ``billed_units`` is for quotas."""

    period: UsagePeriod
    units_used: Number = 0
    included_units: Number = 0
    remaining_units: Number | UnsetType = UNSET
    unlimited: bool = False
    overage: Overage = msgspec.field(default_factory=Overage)
    billed_units: Number | UnsetType = UNSET


class UnitsBaseAccess(ApiStruct, kw_only=True):
    """Units a feature grants without any add-on."""

    included_units: Number = 0
    unlimited: bool = False


class _FeatureAccessBase(ApiStruct, kw_only=True, tag_field="type"):
    code: str
    name: str = ""
    unit_name: str | None = None
    allowed: bool

    @property
    def type(self) -> str:
        """The feature type: ``boolean``, ``usage``, ``seats`` or ``quota``."""
        tag = self.__struct_config__.tag
        return tag if isinstance(tag, str) else ""


class BooleanFeatureAccess(_FeatureAccessBase, kw_only=True, tag="boolean"):
    """Access to an on/off feature."""

    enabled: bool = False
    base_access: BooleanBaseAccess | UnsetType | None = UNSET
    object: str = "feature_access"
    livemode: bool = False


class UsageFeatureAccess(_FeatureAccessBase, kw_only=True, tag="usage"):
    """Access to a usage-based feature; the numbers are in ``consumption``."""

    consumption: Consumption
    base_access: UnitsBaseAccess | UnsetType | None = UNSET
    object: str = "feature_access"
    livemode: bool = False


class SeatsFeatureAccess(_FeatureAccessBase, kw_only=True, tag="seats"):
    """Access to a seat-based feature; the numbers are in ``usage``."""

    usage: FeatureUsage
    base_access: UnitsBaseAccess | UnsetType | None = UNSET
    object: str = "feature_access"
    livemode: bool = False


class QuotaFeatureAccess(_FeatureAccessBase, kw_only=True, tag="quota"):
    """Access to a quota feature; the numbers are in ``usage``."""

    usage: FeatureUsage
    base_access: UnitsBaseAccess | UnsetType | None = UNSET
    object: str = "feature_access"
    livemode: bool = False


class UnknownFeatureAccess(_FeatureAccessBase, kw_only=True, tag=_UNKNOWN_TAG):
    """Access to a feature whose ``type`` this version does not know (read-only stand-in).

    ``allowed`` is still the platform's answer.
    """

    original_type: str = msgspec.field(default="", name=_ORIGINAL_KEY)
    object: str = "feature_access"
    livemode: bool = False

    @property
    def type(self) -> str:
        """The ``type`` the platform sent."""
        return self.original_type


FeatureAccess: TypeAlias = (
    BooleanFeatureAccess
    | UsageFeatureAccess
    | SeatsFeatureAccess
    | QuotaFeatureAccess
    | UnknownFeatureAccess
)


# --------------------------------------------------------------------------- usage


class UsageEventProperty(ApiStruct, kw_only=True):
    """One ``{property, value}`` pair attached to a usage event."""

    property: str
    value: str


class UsageEventConsumption(ApiStruct, kw_only=True):
    """What a usage event deducted from a credits or balance subscription."""

    model: str
    deducted: Number = 0
    remaining: Number = 0
    blocked: bool = False


class UsageEvent(ApiStruct, kw_only=True):
    """A recorded usage event (``POST /api/v1/usage/events``)."""

    _time_fields = ("ts", "created_at")
    id: str
    feature_code: str
    value: Number = 1
    customer_id: str
    event_id: str | None = None
    ts: datetime | None = None
    created_at: datetime | None = None
    properties: list[UsageEventProperty] = msgspec.field(default_factory=list)
    consumption: UsageEventConsumption | UnsetType = UNSET
    object: str = "usage_event"
    livemode: bool = False


# --------------------------------------------------------------------------- customers


class Customer(ApiStruct, kw_only=True):
    """A customer (``/api/v1/customers``)."""

    _time_fields = ("created_at", "updated_at")
    id: str
    external_id: str | None = None
    full_name: str | None = None
    email: str
    tax_document: str | None = None
    document_type: str | None = None
    timezone: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    object: str = "customer"
    livemode: bool = False


# --------------------------------------------------------------------------- catalog


class Feature(ApiStruct, kw_only=True):
    """A feature of the catalog (``/api/v1/features``); not a customer's access to it."""

    _time_fields = ("created_at", "updated_at")
    id: str
    name: str = ""
    code: str
    type: str
    description: str | None = None
    unit_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    object: str = "feature"
    livemode: bool = False


class PlanFeatureOverage(ApiStruct, kw_only=True):
    """Overage pricing of a plan feature (``unit_price`` in minor units)."""

    enabled: bool = False
    model: str | None = None
    unit_price: int | None = None


class PlanFeature(ApiStruct, kw_only=True):
    """A feature as configured in a plan."""

    code: str
    name: str = ""
    type: str
    unit_name: str | None = None
    enabled: bool = True
    included_amount: int | None = None
    unlimited: bool = False
    overage: PlanFeatureOverage | None = None
    regional_prices: list[dict[str, Any]] = msgspec.field(default_factory=list)


class PlanPrice(ApiStruct, kw_only=True):
    """One price of a plan (``price`` in the currency's minor unit)."""

    id: str
    billing_interval: str
    price: int
    is_default: bool = False
    trial_days: int = 0
    included_balance: int | None = None
    included_credits: int | None = None
    offer_id: str | None = None
    inherits_from_price_id: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    market_prices: list[dict[str, Any]] = msgspec.field(default_factory=list)
    regional_prices: list[dict[str, Any]] = msgspec.field(default_factory=list)


class PlanExchangeRate(ApiStruct, kw_only=True):
    """The rate used to present a plan's prices in another currency."""

    currency: str
    exchange_rate: Number


class Plan(ApiStruct, kw_only=True):
    """A plan of the catalog (``/api/v1/plans``)."""

    _time_fields = ("created_at", "updated_at")
    id: str
    name: str = ""
    code: str
    description: str | None = None
    consumption_model: str | None = None
    is_public: bool = True
    is_default: bool = False
    is_free: bool = False
    block_on_exhaustion: bool | None = None
    sort_order: int = 0
    plan_group_id: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    features: list[PlanFeature] = msgspec.field(default_factory=list)
    prices: list[PlanPrice] = msgspec.field(default_factory=list)
    exchange_rates: list[PlanExchangeRate] = msgspec.field(default_factory=list)
    object: str = "plan"
    livemode: bool = False


# --------------------------------------------------------------------------- webhook endpoints


class Webhook(ApiStruct, kw_only=True):
    """A webhook endpoint (``/api/v1/webhooks``); ``api_version`` is its pin, if any."""

    _time_fields = ("created_at",)
    id: str
    url: str
    events: list[str] = msgspec.field(default_factory=list)
    description: str | None = None
    is_active: bool = True
    api_version: str | None = None
    created_at: datetime | None = None
    object: str = "webhook"
    livemode: bool = False


class CreatedWebhook(Webhook, kw_only=True):
    """A webhook endpoint just created: the only answer that carries its signing secret.

    The secret is left out of ``repr()``; it is still encoded on the wire.
    """

    secret_key: str

    def __repr__(self) -> str:
        return f"CreatedWebhook(id={self.id!r}, url={self.url!r}, secret_key='[redacted]')"


class WebhookTest(ApiStruct, kw_only=True):
    """The outcome of ``POST /api/v1/webhooks/{id}/test``."""

    _time_fields = ("delivered_at",)
    success: bool
    delivery_id: str
    delivered_at: datetime | None = None
    object: str = "webhook_delivery"
    livemode: bool = False


# --------------------------------------------------------------------------- test clock


class TestClockRunItem(ApiStruct, kw_only=True):
    """One billing deadline processed by a test-clock run."""

    __test__ = False  # not a pytest test class
    _time_fields = ("due_at",)
    kind: str
    status: str
    due_at: datetime | None = None
    subscription_id: str
    customer_name: str | None = None
    invoice_number: str | None = None
    invoice_id: str | None = None
    outcome: str | None = None
    detail: str | None = None
    error: str | None = None


class TestClockRunSummary(ApiStruct, kw_only=True):
    """A test-clock run as embedded in :class:`TestClock` (``latestRun``)."""

    __test__ = False
    _time_fields = ("started_at_time", "target_time")
    id: str
    status: str
    started_at_time: datetime | None = None
    target_time: datetime | None = None
    estimated_deadline_count: int = 0
    completed_deadline_count: int = 0
    failed_deadline_count: int = 0
    error: str | None = None
    items: list[TestClockRunItem] = msgspec.field(default_factory=list)


class TestClockRun(TestClockRunSummary, kw_only=True):
    """A durable run started by ``POST /api/v1/test-clock``."""

    __test__ = False
    object: str = "test_clock_run"
    livemode: bool = False


class TestClock(ApiStruct, kw_only=True):
    """The organization's test clock (``GET /api/v1/test-clock``, sandbox only)."""

    __test__ = False
    _time_fields = ("simulated_time", "now")
    simulated_time: datetime | None = None
    is_active: bool = False
    now: datetime
    latest_run: TestClockRunSummary | None = None
    object: str = "test_clock"
    livemode: bool = False


# --------------------------------------------------------------------------- list pages


class CustomerList(ListObject[Customer], kw_only=True):
    """A page of customers (``GET /api/v1/customers``)."""


class SubscriptionList(ListObject[Subscription], kw_only=True):
    """A page of subscriptions (``GET /api/v1/subscriptions``)."""


class FeatureAccessList(ListObject[FeatureAccess], kw_only=True):
    """Every feature's access for a customer (``GET /api/v1/feature-access``)."""


class FeatureList(ListObject[Feature], kw_only=True):
    """A page of the feature catalog (``GET /api/v1/features``)."""


class PlanList(ListObject[Plan], kw_only=True):
    """A page of plans (``GET /api/v1/plans``)."""


class WebhookList(ListObject[Webhook], kw_only=True):
    """A page of webhook endpoints (``GET /api/v1/webhooks``)."""


# --------------------------------------------------------------------------- tolerant decoding

_FEATURE_TYPES = frozenset({"boolean", "usage", "seats", "quota"})
_CONSUMPTION_MODELS = frozenset({"metered", "credits", "balance"})


def _retag(value: Any, field: str, known: frozenset[str]) -> Any:
    """A copy of ``value`` whose unknown ``field`` is replaced by the stand-in tag."""
    if not isinstance(value, dict) or value.get(field) in known:
        return value
    original = value.get(field)
    return {
        **value,
        field: _UNKNOWN_TAG,
        _ORIGINAL_KEY: original if isinstance(original, str) else "",
    }


def _tolerant_feature_access(value: Any) -> Any:
    value = _retag(value, "type", _FEATURE_TYPES)
    if isinstance(value, dict) and value.get("type") == "usage":
        consumption = _retag(value.get("consumption"), "model", _CONSUMPTION_MODELS)
        if consumption is not value.get("consumption"):
            value = {**value, "consumption": consumption}
    return value


def _tolerant_subscription(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("features"), list):
        features = [_retag(f, "type", _FEATURE_TYPES) for f in value["features"]]
        value = {**value, "features": features}
    return value


def _tolerant_list(item: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def prepare(value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("data"), list):
            value = {**value, "data": [item(v) for v in value["data"]]}
        return value

    return prepare


_PREPARE: dict[Any, Callable[[Any], Any]] = {
    FeatureAccess: _tolerant_feature_access,
    Subscription: _tolerant_subscription,
    FeatureAccessList: _tolerant_list(_tolerant_feature_access),
    SubscriptionList: _tolerant_list(_tolerant_subscription),
}


def from_wire(value: Any, type_: Any) -> Any:
    """Decode a JSON value (bytes, str, or already-parsed objects) into ``type_``.

    Unlike a bare ``msgspec.convert``, an unknown ``type`` or ``model`` in a union
    becomes the ``Unknown*`` stand-in instead of an error. ``type_`` may be
    ``X | None``. Raises ``msgspec.ValidationError`` / ``msgspec.DecodeError``.
    """
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        value = msgspec.json.decode(value)
    prepare = _PREPARE.get(type_)
    if prepare is None:
        args = getattr(type_, "__args__", ())
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:  # X | None
            prepare = _PREPARE.get(inner[0])
    if prepare is not None and value is not None:
        value = prepare(value)
    return msgspec.convert(value, type_)


def to_wire(value: Any) -> bytes:
    """The JSON the platform would send for ``value`` (same as ``msgspec.json.encode``)."""
    return msgspec.json.encode(value)
