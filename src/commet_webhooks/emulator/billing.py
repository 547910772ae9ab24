"""The billing simulation: customers, subscriptions and invoices, and the events they emit.

Each action changes the simulated state and emits, in the same transaction and in
Commet's order, the events Commet would send. Payloads are built from the state,
so ids, plan names, amounts (cents), period dates and invoice numbers agree across
events and with the state API.
"""

from __future__ import annotations

import calendar
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..events import ACCESS_STATUSES, EventType
from ..testing import iso_time
from .errors import ApiError, validation_error
from .plans import Feature, Plan
from .state import Database, new_id

__all__ = ["Action", "Billing"]

_ENDED = ("canceled", "expired")
_BILLABLE = ("active", "trialing", "past_due")
# A card processor's cut, so orgNetAmount differs from grossAmount as it does live.
_FEE_RATE, _FEE_FIXED = 0.029, 30


@dataclass
class Action:
    """The outcome of a simulation step: the subscription after it and the events emitted."""

    subscription: dict[str, Any]
    event_ids: list[str] = field(default_factory=list)


def _parse(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _add_interval(moment: datetime, interval: str) -> datetime:
    """One billing interval later, clamping the day (31 Jan + 1 month = 28/29 Feb)."""
    months = 12 if interval == "yearly" else 1
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class Billing:
    """Simulated Commet billing over the emulator's database and a plan catalog."""

    def __init__(self, db: Database, plans: Mapping[str, Plan]) -> None:
        self.db = db
        self.plans = dict(plans)

    # ------------------------------------------------------------------ lookups

    def _plan(self, plan_id: str) -> Plan:
        # A subscription may outlive its plan when the catalog file changes.
        return self.plans.get(plan_id) or Plan(id=plan_id, name=plan_id, base_price=0)

    def _subscription_row(self, subscription_id: str) -> sqlite3.Row:
        row = self.db.conn.execute(
            "SELECT * FROM subscriptions WHERE id = ?", (subscription_id,)
        ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"subscription {subscription_id!r} not found")
        return row  # type: ignore[no-any-return]

    def _customer(self, customer_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.conn.execute(
            "SELECT * FROM customers WHERE id = ?", (customer_id,)
        ).fetchone()
        return row

    def _require_status(self, row: sqlite3.Row, allowed: tuple[str, ...], action: str) -> None:
        if row["status"] not in allowed:
            raise ApiError(
                409,
                "invalid_state",
                f"cannot {action} subscription {row['id']!r} in status {row['status']!r} "
                f"(allowed: {', '.join(allowed)})",
            )

    def _update(self, subscription_id: str, **columns: Any) -> None:
        columns["updated_at"] = iso_time(datetime.now(timezone.utc))
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self.db.conn.execute(
            f"UPDATE subscriptions SET {assignments} WHERE id = ?",  # noqa: S608 - fixed names
            (*columns.values(), subscription_id),
        )

    def _done(self, subscription_id: str, event_ids: list[str]) -> Action:
        return Action(self.subscription_view(self._subscription_row(subscription_id)), event_ids)

    def _new_invoice(
        self, row: sqlite3.Row, *, status: str, period_start: str | None, period_end: str | None
    ) -> dict[str, Any]:
        plan = self._plan(row["plan_id"])
        invoice = {
            "id": new_id("inv"),
            "number": f"INV-{self.db.next_number('invoice'):04d}",
            "subscription_id": row["id"],
            "customer_id": row["customer_id"],
            "status": status,
            "currency": plan.currency,
            "subtotal": plan.base_price,
            "total": plan.base_price,
            "period_start": period_start,
            "period_end": period_end,
            "created_at": iso_time(datetime.now(timezone.utc)),
        }
        self.db.conn.execute(
            f"INSERT INTO invoices ({', '.join(invoice)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('?' * len(invoice))})",
            tuple(invoice.values()),
        )
        return invoice

    # ------------------------------------------------------------------ actions

    def create_customer(
        self, customer_id: str, name: str | None, email: str | None
    ) -> dict[str, Any]:
        with self.db.transaction() as conn:
            if self._customer(customer_id) is not None:
                raise ApiError(409, "conflict", f"customer {customer_id!r} already exists")
            created = iso_time(datetime.now(timezone.utc))
            conn.execute(
                "INSERT INTO customers (id, name, email, created_at) VALUES (?, ?, ?, ?)",
                (customer_id, name, email, created),
            )
        return {"id": customer_id, "name": name, "email": email, "createdAt": created}

    def create_subscription(self, customer_id: str, plan_id: str) -> Action:
        """A subscription awaiting its first payment: emits ``subscription.created``."""
        if plan_id not in self.plans:
            raise validation_error(
                "planId", f"unknown plan {plan_id!r}; known: {', '.join(sorted(self.plans))}"
            )
        with self.db.transaction() as conn:
            if self._customer(customer_id) is None:
                raise validation_error("customerId", f"unknown customer {customer_id!r}")
            current = self._current_row(customer_id)
            if current is not None:
                raise ApiError(
                    409,
                    "conflict",
                    f"customer {customer_id!r} already has subscription {current['id']!r} "
                    f"({current['status']}); cancel it first",
                )
            plan = self.plans[plan_id]
            now = iso_time(datetime.now(timezone.utc))
            subscription_id = new_id("sub")
            public_id = "SUB-" + secrets.token_hex(3).upper()
            conn.execute(
                "INSERT INTO subscriptions (id, public_id, customer_id, plan_id, status, name, "
                "start_date, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending_payment', ?, ?, "
                "?, ?)",
                (
                    subscription_id,
                    public_id,
                    customer_id,
                    plan_id,
                    f"{plan.name} plan",
                    now,
                    now,
                    now,
                ),
            )
            event_id = self.db.emit(
                EventType.SUBSCRIPTION_CREATED,
                {
                    "subscriptionId": subscription_id,
                    "publicId": public_id,
                    "customerId": customer_id,
                    "externalId": customer_id,
                    "planId": plan.id,
                    "planName": plan.name,
                    "status": "pending_payment",
                    "startDate": now,
                    "name": f"{plan.name} plan",
                },
            )
            return self._done(subscription_id, [event_id])

    def pay(self, subscription_id: str) -> Action:
        """The first payment succeeds: the first period starts; emits ``subscription.activated``."""
        with self.db.transaction():
            row = self._subscription_row(subscription_id)
            self._require_status(row, ("pending_payment", "draft"), "pay")
            plan = self._plan(row["plan_id"])
            start = datetime.now(timezone.utc)
            period_start, period_end = (
                iso_time(start),
                iso_time(_add_interval(start, plan.billing_interval)),
            )
            invoice = self._new_invoice(
                row, status="paid", period_start=period_start, period_end=period_end
            )
            self._update(
                subscription_id,
                status="active",
                current_period_start=period_start,
                current_period_end=period_end,
            )
            event_id = self.db.emit(
                EventType.SUBSCRIPTION_ACTIVATED,
                {
                    "subscriptionId": subscription_id,
                    "publicId": row["public_id"],
                    "customerId": row["customer_id"],
                    "externalId": row["customer_id"],
                    "status": "active",
                    "currentPeriodStart": period_start,
                    "currentPeriodEnd": period_end,
                    "name": row["name"],
                    "invoiceId": invoice["id"],
                    "invoiceNumber": invoice["number"],
                    "invoiceTotal": invoice["total"],
                    "invoiceCurrency": invoice["currency"],
                },
            )
            return self._done(subscription_id, [event_id])

    def change_plan(self, subscription_id: str, plan_id: str) -> Action:
        """Switch plans now, prorated over the rest of the period: emits ``plan_changed``."""
        with self.db.transaction():
            row = self._subscription_row(subscription_id)
            self._require_status(row, _BILLABLE, "change the plan of")
            if plan_id not in self.plans:
                raise validation_error(
                    "planId", f"unknown plan {plan_id!r}; known: {', '.join(sorted(self.plans))}"
                )
            if plan_id == row["plan_id"]:
                raise validation_error("planId", f"subscription is already on {plan_id!r}")
            previous, current = self._plan(row["plan_id"]), self.plans[plan_id]
            share = self._unused_share(row)
            credit = round(previous.base_price * share)
            charge = round(current.base_price * share)
            self._update(subscription_id, plan_id=plan_id, name=f"{current.name} plan")
            event_id = self.db.emit(
                EventType.SUBSCRIPTION_PLAN_CHANGED,
                {
                    "subscriptionId": subscription_id,
                    "customerId": row["customer_id"],
                    "externalId": row["customer_id"],
                    "previousPlan": {"id": previous.id, "name": previous.name},
                    "currentPlan": {"id": current.id, "name": current.name},
                    "billingInterval": current.billing_interval,
                    "credit": credit,
                    "charge": charge,
                    "totalCharged": max(charge - credit, 0),
                },
            )
            return self._done(subscription_id, [event_id])

    @staticmethod
    def _unused_share(row: sqlite3.Row) -> float:
        start, end = _parse(row["current_period_start"]), _parse(row["current_period_end"])
        if start is None or end is None or end <= start:
            return 1.0
        left = (end - datetime.now(timezone.utc)) / (end - start)
        return min(max(left, 0.0), 1.0)

    def renew(self, subscription_id: str, *, fail: bool) -> Action:
        """Bill the next period: ``invoice.created``, then ``payment.received`` or ``.failed``.

        A success moves the subscription onto the invoice's period and makes it
        active; a failure leaves the period where it was and the subscription
        ``past_due`` with that invoice open. Renewing a ``past_due`` subscription
        charges its open invoice again instead of issuing a new one: no
        ``invoice.created``, only ``payment.received`` (or ``payment.failed``)
        for that same invoice and period.
        """
        with self.db.transaction() as conn:
            row = self._subscription_row(subscription_id)
            self._require_status(row, _BILLABLE, "renew")
            unpaid = (
                conn.execute(
                    "SELECT * FROM invoices WHERE subscription_id = ? AND status = 'open' "
                    "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    (subscription_id,),
                ).fetchone()
                if row["status"] == "past_due"
                else None
            )
            ids: list[str] = []
            invoice = dict(unpaid) if unpaid else self._issue_renewal_invoice(row, ids)
            period_start, period_end = invoice["period_start"], invoice["period_end"]
            if fail:
                self._update(subscription_id, status="past_due")
                ids.append(
                    self.db.emit(
                        EventType.PAYMENT_FAILED,
                        {
                            "invoiceId": invoice["id"],
                            "invoiceNumber": invoice["number"],
                            "customerId": row["customer_id"],
                            "subscriptionId": subscription_id,
                            "failureCode": "card_declined",
                            "failureMessage": "Your card was declined.",
                        },
                    )
                )
                return self._done(subscription_id, ids)
            conn.execute("UPDATE invoices SET status = 'paid' WHERE id = ?", (invoice["id"],))
            self._update(
                subscription_id,
                status="active",
                current_period_start=period_start,
                current_period_end=period_end,
            )
            customer = self._customer(row["customer_id"])
            total = invoice["total"]
            ids.append(
                self.db.emit(
                    EventType.PAYMENT_RECEIVED,
                    {
                        "invoiceId": invoice["id"],
                        "invoiceNumber": invoice["number"],
                        "invoiceTotal": total,
                        "customerId": row["customer_id"],
                        "subscriptionId": subscription_id,
                        "paymentTransactionId": new_id("txn"),
                        "grossAmount": total,
                        "currency": invoice["currency"],
                        "orgNetAmount": max(total - round(total * _FEE_RATE) - _FEE_FIXED, 0)
                        if total
                        else 0,
                        "customerEmail": customer["email"] if customer is not None else None,
                        "paidAt": iso_time(datetime.now(timezone.utc)),
                    },
                )
            )
            return self._done(subscription_id, ids)

    def _issue_renewal_invoice(self, row: sqlite3.Row, ids: list[str]) -> dict[str, Any]:
        """A new open invoice for the period after the current one; emits ``invoice.created``."""
        subscription_id = row["id"]
        plan = self._plan(row["plan_id"])
        start = _parse(row["current_period_end"]) or datetime.now(timezone.utc)
        period_start = iso_time(start)
        period_end = iso_time(_add_interval(start, plan.billing_interval))
        self.db.conn.execute(
            "UPDATE invoices SET status = 'void' WHERE subscription_id = ? AND status = 'open'",
            (subscription_id,),
        )
        invoice = self._new_invoice(
            row, status="open", period_start=period_start, period_end=period_end
        )
        issued = invoice["created_at"]
        ids.append(
            self.db.emit(
                EventType.INVOICE_CREATED,
                {
                    "invoiceId": invoice["id"],
                    "invoiceNumber": invoice["number"],
                    "invoiceStatus": "open",
                    "periodStart": period_start,
                    "periodEnd": period_end,
                    "issueDate": issued,
                    "dueDate": issued,
                    "currency": invoice["currency"],
                    "subtotal": invoice["subtotal"],
                    "total": invoice["total"],
                    "customerId": row["customer_id"],
                    "subscriptionId": subscription_id,
                },
            )
        )
        return invoice

    def cancel(self, subscription_id: str, reason: str | None) -> Action:
        """End the subscription now: emits ``subscription.canceled``."""
        with self.db.transaction():
            row = self._subscription_row(subscription_id)
            if row["status"] in _ENDED:
                raise ApiError(
                    409,
                    "invalid_state",
                    f"subscription {subscription_id!r} is already {row['status']}",
                )
            now = iso_time(datetime.now(timezone.utc))
            self._update(
                subscription_id,
                status="canceled",
                canceled_at=now,
                cancel_reason=reason,
                end_date=now,
            )
            event_id = self.db.emit(
                EventType.SUBSCRIPTION_CANCELED,
                {
                    "subscriptionId": subscription_id,
                    "customerId": row["customer_id"],
                    "externalId": row["customer_id"],
                    "status": "canceled",
                    "canceledAt": now,
                    "cancelReason": reason,
                    "endDate": now,
                },
            )
            return self._done(subscription_id, [event_id])

    def update(
        self,
        subscription_id: str,
        *,
        status: str | None = None,
        name: str | None = None,
        cancel_at_period_end: bool | None = None,
        cancel_reason: str | None = None,
    ) -> Action:
        """Change details (status, name, scheduled cancellation): emits ``subscription.updated``."""
        with self.db.transaction():
            row = self._subscription_row(subscription_id)
            if row["status"] in _ENDED:
                raise ApiError(
                    409, "invalid_state", f"subscription {subscription_id!r} is {row['status']}"
                )
            changes: dict[str, Any] = {}
            if status is not None:
                changes["status"] = status
            if name is not None:
                changes["name"] = name
            if cancel_at_period_end is True:
                changes["canceled_at"] = iso_time(datetime.now(timezone.utc))
                changes["cancel_reason"] = cancel_reason
                changes["end_date"] = row["current_period_end"]
            elif cancel_at_period_end is False:
                changes.update(canceled_at=None, cancel_reason=None, end_date=None)
            elif cancel_reason is not None:
                changes["cancel_reason"] = cancel_reason
            self._update(subscription_id, **changes)
            after = self._subscription_row(subscription_id)
            event_id = self.db.emit(
                EventType.SUBSCRIPTION_UPDATED,
                {
                    "subscriptionId": subscription_id,
                    "customerId": after["customer_id"],
                    "externalId": after["customer_id"],
                    "status": after["status"],
                    "canceledAt": after["canceled_at"],
                    "cancelReason": after["cancel_reason"],
                    "endDate": after["end_date"],
                },
            )
            return self._done(subscription_id, [event_id])

    def record_usage(self, customer_id: str, feature: str, value: int) -> dict[str, Any]:
        """Set a customer's current usage of a metered or seats feature."""
        if self._customer(customer_id) is None:
            raise validation_error("customerId", f"unknown customer {customer_id!r}")
        if self._catalog_feature(feature) is None:
            raise validation_error("feature", f"unknown feature {feature!r}")
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO usage (customer_id, feature, value) VALUES (?, ?, ?) "
                "ON CONFLICT (customer_id, feature) DO UPDATE SET value = excluded.value",
                (customer_id, feature, value),
            )
        return {"customerId": customer_id, "feature": feature, "value": value}

    # ------------------------------------------------------------------ state API

    def _current_row(self, customer_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.conn.execute(
            "SELECT * FROM subscriptions WHERE customer_id = ? AND status NOT IN (?, ?) "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (customer_id, *_ENDED),
        ).fetchone()
        return row

    def _usage(self, customer_id: str, feature: str) -> int:
        row = self.db.conn.execute(
            "SELECT value FROM usage WHERE customer_id = ? AND feature = ?", (customer_id, feature)
        ).fetchone()
        return 0 if row is None else int(row["value"])

    def _catalog_feature(self, code: str) -> Feature | None:
        for plan in self.plans.values():
            for feature in plan.features:
                if feature.code == code:
                    return feature
        return None

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.subscription_view(self._subscription_row(subscription_id))

    def active_subscription(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's current (not canceled or expired) subscription, or None."""
        row = self._current_row(customer_id)
        return None if row is None else self.subscription_view(row)

    def subscription_view(self, row: sqlite3.Row) -> dict[str, Any]:
        """A subscription in the shape of ``GET /api/subscriptions/active``."""
        plan = self._plan(row["plan_id"])
        start, end = row["current_period_start"], row["current_period_end"]
        current_period = None
        if start is not None and end is not None:
            left = (_parse(end) or datetime.now(timezone.utc)) - datetime.now(timezone.utc)
            current_period = {
                "start": start,
                "end": end,
                "daysRemaining": max(left.days + (1 if left.seconds else 0), 0),
            }
        start_date = _parse(row["start_date"])
        return {
            "id": row["id"],
            "customerId": row["customer_id"],
            "plan": {
                "id": plan.id,
                "name": plan.name,
                "basePrice": plan.base_price,
                "billingInterval": plan.billing_interval,
            },
            "name": row["name"],
            "description": plan.description,
            "status": row["status"],
            "trialEndsAt": None,
            "currentPeriod": current_period,
            "features": [self._feature_summary(row, f) for f in plan.features],
            "startDate": row["start_date"],
            "endDate": row["end_date"],
            "billingDayOfMonth": start_date.day if start_date else None,
            "nextBillingDate": end if row["status"] in _BILLABLE else None,
            "checkoutUrl": None,
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
        }

    def _feature_summary(self, row: sqlite3.Row, feature: Feature) -> dict[str, Any]:
        summary: dict[str, Any] = {"code": feature.code, "name": feature.name, "type": feature.type}
        if feature.type == "boolean":
            summary["enabled"] = feature.enabled
        else:
            current = self._usage(row["customer_id"], feature.code)
            summary["usage"] = {
                "current": current,
                "included": feature.included,
                "unlimited": feature.unlimited,
            }
        return summary

    def feature_access(self, code: str, customer_id: str) -> dict[str, Any]:
        """``GET /api/features/{code}``: what the customer may do with a feature right now."""
        known = self._catalog_feature(code)
        if known is None:
            raise ApiError(404, "not_found", f"feature {code!r} not found")
        row = self._current_row(customer_id)
        granted = row is not None and row["status"] in ACCESS_STATUSES
        feature = None
        if row is not None:
            feature = next((f for f in self._plan(row["plan_id"]).features if f.code == code), None)
        if feature is None:
            return {
                "code": code,
                "name": known.name,
                "type": known.type,
                "allowed": False,
                "enabled": False,
            }
        result: dict[str, Any] = {"code": code, "name": feature.name, "type": feature.type}
        if feature.type == "boolean":
            result.update(allowed=granted and feature.enabled, enabled=feature.enabled)
            return result
        current = self._usage(customer_id, code)
        included = feature.included or 0
        result.update(
            allowed=granted
            and (feature.unlimited or current < included or feature.overage_enabled),
            current=current,
            included=feature.included,
            remaining=None if feature.unlimited else max(included - current, 0),
            overage=max(current - included, 0) if not feature.unlimited else 0,
            overageUnitPrice=feature.overage_unit_price,
            unlimited=feature.unlimited,
            overageEnabled=feature.overage_enabled,
        )
        return result
