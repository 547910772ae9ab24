"""What each backend promises beyond the shared protocol: schema, TTLs, WAL, options."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from store_helpers import POSTGRES_DSN, REDIS_URL, StoreSpec

from commet_webhooks import StoreUnavailableError
from commet_webhooks.stores import Claim, IdempotencyStore
from commet_webhooks.stores.postgres import PostgresStore, migrate
from commet_webhooks.stores.redis import RedisStore
from commet_webhooks.stores.sqlite import SQLiteStore


def test_sqlite_runs_in_wal_mode(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("sqlite")
    assert build(spec).claim("evt", "a") is Claim.CLAIMED
    with sqlite3.connect(spec.target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        [(owner, _)] = conn.execute("SELECT owner, expires_at FROM commet_webhook_keys")
        assert owner == "a"


def test_sqlite_custom_table_name_is_quoted(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("sqlite")
    store = build(spec, table='odd "name"; drop')
    assert store.claim("evt", "a") is Claim.CLAIMED
    assert store.complete("evt", "a") is True
    with sqlite3.connect(spec.target) as conn:
        assert conn.execute('SELECT count(*) FROM "odd ""name""; drop"').fetchone() == (1,)


def test_redis_keys_carry_the_lease_then_the_retention(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("redis")
    store = build(spec, lease_seconds=30, retention_seconds=3600)
    name = spec.options["prefix"] + "evt"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert store.claim("evt", "a") is Claim.CLAIMED
        assert client.get(name) == b"L:a"
        assert 25_000 < client.pttl(name) <= 30_000
        assert store.complete("evt", "a") is True
        assert client.get(name) == b"D"
        assert 3_500_000 < client.pttl(name) <= 3_600_000
    finally:
        client.close()


def test_redis_client_decoding_responses(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("redis").at(REDIS_URL + "?decode_responses=True")
    store = build(spec)
    assert store.claim("evt", "a") is Claim.CLAIMED
    assert store.claim("evt", "b") is Claim.BUSY
    assert store.complete("evt", "a") is True
    assert store.claim("evt", "b") is Claim.DONE


def test_postgres_creates_its_table_in_its_schema(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("postgres")
    assert build(spec).claim("evt", "a") is Claim.CLAIMED
    with psycopg.connect(POSTGRES_DSN) as conn:
        rows = conn.execute(
            sql.SQL("SELECT key, owner FROM {}").format(
                sql.Identifier(spec.options["schema"], spec.options["table"])
            )
        ).fetchall()
    assert rows == [("evt", "a")]


def test_postgres_migrate_is_idempotent_and_concurrent(pg_schema: str) -> None:
    table = "migrated_keys"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(POSTGRES_DSN, schema=pg_schema + "_m", table=table)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    store = PostgresStore(POSTGRES_DSN, schema=pg_schema + "_m", table=table, create_table=False)
    try:
        assert store.claim("evt", "a") is Claim.CLAIMED
        assert store.complete("evt", "a") is True
    finally:
        store.close()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_schema + "_m")))


def test_postgres_recreates_a_dropped_table(
    make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    spec = make_spec("postgres")
    store = build(spec)
    assert store.claim("evt", "a") is Claim.CLAIMED
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP TABLE {}").format(
                sql.Identifier(spec.options["schema"], spec.options["table"])
            )
        )
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        store.claim("evt", "b")
    assert store.claim("evt", "b") is Claim.CLAIMED


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgres"])
def test_long_and_unusual_keys(
    kind: str, make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    store = build(make_spec(kind))
    for key in ["x" * 5000, "évènement/ü:☃", "'; DROP TABLE x; --"]:
        assert store.claim(key, "a") is Claim.CLAIMED
        assert store.claim(key, "b") is Claim.BUSY
        assert store.complete(key, "a") is True
        assert store.claim(key, "b") is Claim.DONE
    assert store.claim("x" * 4999, "a") is Claim.CLAIMED  # a different long key


@pytest.mark.parametrize(
    ("factory", "options", "message"),
    [
        (lambda **o: SQLiteStore(":memory:", **o), {"lease_seconds": 0}, "lease_seconds"),
        (lambda **o: SQLiteStore(":memory:", **o), {"busy_timeout": -1}, "busy_timeout"),
        (lambda **o: SQLiteStore(":memory:", **o), {"table": ""}, "table"),
        (lambda **o: RedisStore(REDIS_URL, **o), {"retention_seconds": -1}, "retention"),
        (lambda **o: RedisStore(REDIS_URL, **o), {"timeout": 0}, "timeout"),
        (lambda **o: PostgresStore(POSTGRES_DSN, **o), {"max_connections": 0}, "max_conn"),
        (lambda **o: RedisStore(REDIS_URL, **o), {"max_connections": 0}, "max_conn"),
        (lambda **o: PostgresStore(POSTGRES_DSN, **o), {"schema": ""}, "schema"),
        (lambda **o: PostgresStore("not a dsn ===", **o), {}, "dsn"),
    ],
)
def test_bad_options_raise_value_error(
    factory: Callable[..., Any], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        factory(**options)


def test_reprs() -> None:
    assert repr(SQLiteStore("keys.db", lease_seconds=5)) == (
        "SQLiteStore('keys.db', lease_seconds=5, retention_seconds=604800)"
    )
    assert "prefix='p:'" in repr(RedisStore(REDIS_URL, prefix="p:"))
    assert "table='s.t'" in repr(PostgresStore(POSTGRES_DSN, schema="s", table="t"))


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_connections_are_bounded(
    kind: str, make_spec: Callable[[str], StoreSpec], build: Callable[..., IdempotencyStore]
) -> None:
    """More concurrent calls than connections wait for one instead of failing."""
    store: Any = build(make_spec(kind), max_connections=2)
    keys = [f"evt_{i}" for i in range(50)]
    try:
        results = await asyncio.gather(*(store.aclaim(key, "a") for key in keys))
        assert set(results) == {Claim.CLAIMED}
        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(lambda key: store.complete(key, "a"), keys))
        assert all(done)
    finally:
        await store.aclose()


def test_invalid_dsn_error_carries_no_password_in_its_chain() -> None:
    import traceback

    from commet_webhooks.stores.postgres import PostgresStore

    password = "hunter" + "2pass"  # built, so the traceback's source lines do not show it
    dsn = f"postgresql://u:{password}@127.0.0.1:5432/test?sslmode=bogus bad="
    try:
        PostgresStore(dsn)
    except ValueError as exc:
        shown = "".join(traceback.format_exception(exc))
        assert exc.__context__ is None and exc.__cause__ is None
        assert password not in shown
    else:
        raise AssertionError("an invalid DSN was accepted")
