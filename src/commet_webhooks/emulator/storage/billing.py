"""The simulated billing's entities: customers, subscriptions, invoices, usage, payments,
payouts, payment links, plan grants and add-ons.

Each entity is a dataclass whose fields are its table's columns; a store reads and
writes whole records, so the lifecycle works on plain objects and never sees SQL.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .database import Database

__all__ = [
    "AddOn",
    "BillingStores",
    "Customer",
    "Invoice",
    "Payment",
    "PaymentLink",
    "Payout",
    "PlanGrant",
    "Subscription",
]

R = TypeVar("R")


@dataclass
class Customer:
    id: str
    external_id: str | None
    name: str | None
    email: str | None
    timezone: str | None
    metadata: str | None  # JSON text
    created_at: str
    updated_at: str
    seq: int = 0


@dataclass
class Subscription:
    id: str
    public_id: str
    customer_id: str
    plan_id: str
    status: str
    name: str | None
    start_date: str | None
    created_at: str
    updated_at: str
    current_period_start: str | None = None
    current_period_end: str | None = None
    canceled_at: str | None = None
    cancel_reason: str | None = None
    end_date: str | None = None
    trial_ends_at: str | None = None
    trial_notified: int = 0
    upcoming_notified: str | None = None
    cancel_at_period_end: int = 0
    scheduled_plan_id: str | None = None
    pause_at: str | None = None
    paused_at: str | None = None
    resume_at: str | None = None
    dunning_attempt: int = 0
    next_retry_at: str | None = None
    seats: int = 1
    credits: int = 0
    credits_granted: int = 0
    balance: int = 0
    balance_refill: int = 0
    #: Once-per-period notices already sent, space-separated (``credits.low quota:api_calls``).
    flags: str = ""
    seq: int = 0

    def has_flag(self, flag: str) -> bool:
        return flag in self.flags.split()

    def with_flag(self, flag: str) -> str:
        return " ".join([*self.flags.split(), flag]) if not self.has_flag(flag) else self.flags


@dataclass
class Invoice:
    id: str
    number: str
    subscription_id: str
    customer_id: str
    status: str
    currency: str
    subtotal: int
    total: int
    period_start: str | None
    period_end: str | None
    created_at: str
    due_date: str | None = None
    overdue_notified: int = 0
    paid_at: str | None = None


@dataclass
class Payment:
    id: str
    invoice_id: str | None
    subscription_id: str | None
    customer_id: str
    amount: int
    currency: str
    status: str
    created_at: str
    refunded: int = 0
    dispute: str | None = None
    available_at: str | None = None
    available: int = 0


@dataclass
class Payout:
    id: str
    amount: int
    currency: str
    status: str
    arrives_at: str
    created_at: str
    fail: int = 0


@dataclass
class PaymentLink:
    id: str
    customer_id: str
    amount: int
    currency: str
    description: str | None
    status: str
    created_at: str


@dataclass
class PlanGrant:
    id: str
    customer_id: str
    plan_id: str
    status: str
    starts_at: str
    ends_at: str | None
    created_at: str


@dataclass
class AddOn:
    subscription_id: str
    code: str
    active: int
    activated_at: str


class Table(Generic[R]):
    """Whole-record reads and writes of one table whose columns are ``kind``'s fields."""

    def __init__(self, db: Database, name: str, kind: type[R], key: tuple[str, ...] = ("id",)):
        self.db = db
        self.name = name
        self.kind = kind
        self.key = key
        self.columns = [f.name for f in dataclasses.fields(kind)]  # type: ignore[arg-type]

    def _record(self, row: sqlite3.Row) -> R:
        return self.kind(**{name: row[name] for name in self.columns})

    def insert(self, record: R) -> R:
        values = dataclasses.asdict(record)  # type: ignore[call-overload]
        columns = [c for c in self.columns if not (c == "seq" and not values[c])]
        if "seq" in self.columns and "seq" not in columns:
            sql = (
                f"INSERT INTO {self.name} ({', '.join(columns)}, seq) "  # noqa: S608 - fixed names
                f"VALUES ({', '.join('?' * len(columns))}, "
                f"(SELECT COALESCE(MAX(seq), 0) + 1 FROM {self.name})) RETURNING seq"
            )
            row = self.db.conn.execute(sql, [values[c] for c in columns]).fetchone()
            return dataclasses.replace(record, seq=row["seq"])  # type: ignore[type-var]
        sql = (
            f"INSERT INTO {self.name} ({', '.join(columns)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        self.db.conn.execute(sql, [values[c] for c in columns])
        return record

    def save(self, record: R) -> R:
        values = dataclasses.asdict(record)  # type: ignore[call-overload]
        settable = [c for c in self.columns if c not in self.key and c != "seq"]
        sql = (
            f"UPDATE {self.name} SET {', '.join(f'{c} = ?' for c in settable)} "  # noqa: S608
            f"WHERE {' AND '.join(f'{k} = ?' for k in self.key)}"
        )
        self.db.conn.execute(sql, [values[c] for c in settable] + [values[k] for k in self.key])
        return record

    def get(self, *key: object) -> R | None:
        row = self.db.conn.execute(
            f"SELECT * FROM {self.name} WHERE {' AND '.join(f'{k} = ?' for k in self.key)}",  # noqa: S608
            key,
        ).fetchone()
        return None if row is None else self._record(row)

    def where(
        self, clause: str = "1", params: Iterable[object] = (), order: str = "rowid"
    ) -> list[R]:
        """Records matching a fixed ``clause`` with bound ``params`` (storage-internal)."""
        sql = f"SELECT * FROM {self.name} WHERE {clause} ORDER BY {order}"  # noqa: S608
        return [self._record(row) for row in self.db.conn.execute(sql, tuple(params))]


class BillingStores:
    """Every billing table, with the queries the lifecycle and the API need."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.customers = Table(db, "customers", Customer)
        self.subscriptions = Table(db, "subscriptions", Subscription)
        self.invoices = Table(db, "invoices", Invoice)
        self.payments = Table(db, "payments", Payment)
        self.payouts = Table(db, "payouts", Payout)
        self.payment_links = Table(db, "payment_links", PaymentLink)
        self.plan_grants = Table(db, "plan_grants", PlanGrant)
        self.addons = Table(db, "addons", AddOn, key=("subscription_id", "code"))

    # ------------------------------------------------------------------ customers

    def customer_by_any_id(self, ref: str) -> Customer | None:
        """A customer by its id or its ``externalId``."""
        found = self.customers.where("id = ? OR external_id = ?", (ref, ref), order="seq")
        return found[0] if found else None

    def list_customers(self, *, after_seq: int, limit: int) -> list[Customer]:
        return self.customers.where("seq > ?", (after_seq,), order=f"seq LIMIT {int(limit)}")

    # ------------------------------------------------------------------ subscriptions

    def current_subscription(self, customer_id: str) -> Subscription | None:
        """The customer's newest subscription that has not ended."""
        found = self.subscriptions.where(
            "customer_id = ? AND status NOT IN ('canceled', 'expired')",
            (customer_id,),
            order="seq DESC LIMIT 1",
        )
        return found[0] if found else None

    def latest_subscription(self, customer_id: str) -> Subscription | None:
        found = self.subscriptions.where(
            "customer_id = ?", (customer_id,), order="seq DESC LIMIT 1"
        )
        return found[0] if found else None

    def latest_invoice(self, subscription_id: str) -> Invoice | None:
        found = self.invoices.where(
            "subscription_id = ?", (subscription_id,), order="rowid DESC LIMIT 1"
        )
        return found[0] if found else None

    def list_subscriptions(
        self, *, customer_id: str | None, status: str | None, after_seq: int, limit: int
    ) -> list[Subscription]:
        clause, params = ["seq > ?"], [after_seq]
        if customer_id is not None:
            clause.append("customer_id = ?")
            params.append(customer_id)  # type: ignore[arg-type]
        if status is not None:
            clause.append("status = ?")
            params.append(status)  # type: ignore[arg-type]
        return self.subscriptions.where(
            " AND ".join(clause), params, order=f"seq LIMIT {int(limit)}"
        )

    def live_subscriptions(self) -> list[Subscription]:
        """Every subscription the clock may still have work for."""
        return self.subscriptions.where("status NOT IN ('canceled', 'expired')", order="seq")

    # ------------------------------------------------------------------ invoices, money

    def open_invoice(self, subscription_id: str) -> Invoice | None:
        found = self.invoices.where(
            "subscription_id = ? AND status = 'open'",
            (subscription_id,),
            order="created_at DESC, rowid DESC LIMIT 1",
        )
        return found[0] if found else None

    def open_invoices(self) -> list[Invoice]:
        return self.invoices.where("status = 'open'", order="rowid")

    def last_payment(self, subscription_id: str) -> Payment | None:
        found = self.payments.where(
            "subscription_id = ? AND status = 'succeeded'",
            (subscription_id,),
            order="rowid DESC LIMIT 1",
        )
        return found[0] if found else None

    def pending_funds(self) -> list[Payment]:
        return self.payments.where("status = 'succeeded' AND available = 0", order="rowid")

    def unpaid_payouts(self) -> list[Payout]:
        return self.payouts.where("status = 'pending'", order="rowid")

    def active_grants(self) -> list[PlanGrant]:
        return self.plan_grants.where("status = 'active'", order="rowid")

    # ------------------------------------------------------------------ usage

    def usage(self, customer_id: str, feature: str) -> int:
        row = self.db.conn.execute(
            "SELECT value FROM usage WHERE customer_id = ? AND feature = ?", (customer_id, feature)
        ).fetchone()
        return 0 if row is None else int(row["value"])

    def set_usage(self, customer_id: str, feature: str, value: int) -> None:
        self.db.conn.execute(
            "INSERT INTO usage (customer_id, feature, value) VALUES (?, ?, ?) "
            "ON CONFLICT (customer_id, feature) DO UPDATE SET value = excluded.value",
            (customer_id, feature, value),
        )

    def reset_usage(self, customer_id: str) -> None:
        self.db.conn.execute("DELETE FROM usage WHERE customer_id = ?", (customer_id,))

    def usage_event(self, customer_id: str, event_id: str) -> dict[str, Any] | None:
        row = self.db.conn.execute(
            "SELECT * FROM usage_events WHERE customer_id = ? AND event_id = ?",
            (customer_id, event_id),
        ).fetchone()
        return None if row is None else dict(row)

    def add_usage_event(
        self, customer_id: str, event_id: str, feature: str, value: int, record_id: str, at: str
    ) -> None:
        self.db.conn.execute(
            "INSERT INTO usage_events (customer_id, event_id, feature, value, id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (customer_id, event_id, feature, value, record_id, at),
        )
