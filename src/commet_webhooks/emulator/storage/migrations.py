"""The emulator's schema, as numbered migrations (``PRAGMA user_version`` = how many ran).

Never edit a migration that has shipped: add the next one. Migration 1 is the
schema of the first emulator release (``IF NOT EXISTS`` so files it created, which
carry ``user_version`` 0, pass through it unharmed).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1, consecutive_failures INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT, email TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, public_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL, status TEXT NOT NULL, name TEXT, start_date TEXT,
    current_period_start TEXT, current_period_end TEXT, canceled_at TEXT,
    cancel_reason TEXT, end_date TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS subscriptions_customer ON subscriptions (customer_id);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY, number TEXT NOT NULL, subscription_id TEXT NOT NULL,
    customer_id TEXT NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL,
    subtotal INTEGER NOT NULL, total INTEGER NOT NULL, period_start TEXT, period_end TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    customer_id TEXT NOT NULL, feature TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (customer_id, feature));
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    timestamp TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, url TEXT NOT NULL,
    status TEXT NOT NULL, auto_attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL, attempted_at TEXT NOT NULL,
    manual INTEGER NOT NULL, status_code INTEGER, latency_ms REAL NOT NULL, error TEXT,
    response TEXT);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL, due_at REAL NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0, claimed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (claimed, due_at);
CREATE INDEX IF NOT EXISTS outbox_delivery ON outbox (delivery_id);
"""

# The platform's wire: endpoint descriptions, API-version pins and disable reasons;
# per-delivery bodies (an endpoint pinned to another version gets its own envelope);
# customers and subscriptions as the v1 API shows them; the test clock; idempotent
# writes; usage events; payments, payouts, payment links, plan grants and add-ons.
_V2 = """
ALTER TABLE endpoints ADD COLUMN description TEXT;
ALTER TABLE endpoints ADD COLUMN api_version TEXT;
ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;
ALTER TABLE endpoints ADD COLUMN seq INTEGER;
UPDATE endpoints SET seq = rowid;
ALTER TABLE deliveries ADD COLUMN body BLOB;
ALTER TABLE customers ADD COLUMN external_id TEXT;
ALTER TABLE customers ADD COLUMN timezone TEXT;
ALTER TABLE customers ADD COLUMN metadata TEXT;
ALTER TABLE customers ADD COLUMN updated_at TEXT;
ALTER TABLE customers ADD COLUMN seq INTEGER;
UPDATE customers SET seq = rowid, updated_at = created_at, external_id = id;
ALTER TABLE subscriptions ADD COLUMN trial_ends_at TEXT;
ALTER TABLE subscriptions ADD COLUMN trial_notified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN upcoming_notified TEXT;
ALTER TABLE subscriptions ADD COLUMN cancel_at_period_end INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN scheduled_plan_id TEXT;
ALTER TABLE subscriptions ADD COLUMN pause_at TEXT;
ALTER TABLE subscriptions ADD COLUMN paused_at TEXT;
ALTER TABLE subscriptions ADD COLUMN resume_at TEXT;
ALTER TABLE subscriptions ADD COLUMN dunning_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN next_retry_at TEXT;
ALTER TABLE subscriptions ADD COLUMN seats INTEGER NOT NULL DEFAULT 1;
ALTER TABLE subscriptions ADD COLUMN credits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN credits_granted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN balance_refill INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN flags TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN seq INTEGER;
UPDATE subscriptions SET seq = rowid;
ALTER TABLE invoices ADD COLUMN due_date TEXT;
ALTER TABLE invoices ADD COLUMN overdue_notified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invoices ADD COLUMN paid_at TEXT;
CREATE TABLE clock (
    id INTEGER PRIMARY KEY CHECK (id = 1), offset_seconds REAL NOT NULL DEFAULT 0,
    run TEXT);
INSERT INTO clock (id, offset_seconds) VALUES (1, 0);
CREATE TABLE idempotency (
    key TEXT NOT NULL, route TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, body BLOB NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (key, route));
CREATE TABLE usage_events (
    customer_id TEXT NOT NULL, event_id TEXT NOT NULL, feature TEXT NOT NULL,
    value INTEGER NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (customer_id, event_id));
CREATE TABLE payments (
    id TEXT PRIMARY KEY, invoice_id TEXT, subscription_id TEXT, customer_id TEXT NOT NULL,
    amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0, dispute TEXT, available_at TEXT,
    available INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE payouts (
    id TEXT PRIMARY KEY, amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
    arrives_at TEXT NOT NULL, fail INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE payment_links (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, description TEXT, status TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE plan_grants (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, plan_id TEXT NOT NULL, status TEXT NOT NULL,
    starts_at TEXT NOT NULL, ends_at TEXT, created_at TEXT NOT NULL);
CREATE TABLE addons (
    subscription_id TEXT NOT NULL, code TEXT NOT NULL, active INTEGER NOT NULL,
    activated_at TEXT NOT NULL, PRIMARY KEY (subscription_id, code));
"""

# Chaos on demand: an endpoint's chaos settings, a note on attempts it touched, and
# attempts held back once in the outbox.
_V3 = """
ALTER TABLE endpoints ADD COLUMN chaos TEXT;
ALTER TABLE attempts ADD COLUMN note TEXT;
ALTER TABLE outbox ADD COLUMN postponed INTEGER NOT NULL DEFAULT 0;
"""

#: Migration ``n`` (1-based) brings a file from ``user_version`` n-1 to n.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
