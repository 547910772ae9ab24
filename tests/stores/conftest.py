"""Fixtures for the idempotency store tests: real SQLite files, Redis and PostgreSQL.

Each test run uses its own Redis key prefix and its own PostgreSQL schema (one table
per test inside it), all removed afterwards.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))

from store_helpers import POSTGRES_DSN, REDIS_URL, StoreSpec

from commet_webhooks.stores import IdempotencyStore

RUN = uuid.uuid4().hex[:10]
SHARED_KINDS = ["sqlite", "redis", "postgres"]
ALL_KINDS = ["memory", *SHARED_KINDS]


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"commet_webhooks_test:{RUN}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    schema = f"commet_webhooks_test_{RUN}"
    yield schema
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(schema)
            )
        )


def spec_for(kind: str, tmp_path: Path, redis_prefix: str, pg_schema: str) -> StoreSpec:
    """A store of ``kind`` that no other test shares."""
    unique = uuid.uuid4().hex[:8]
    if kind == "memory":
        return StoreSpec("memory")
    if kind == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / f"keys-{unique}.db"))
    if kind == "redis":
        return StoreSpec("redis", REDIS_URL, {"prefix": f"{redis_prefix}{unique}:"})
    return StoreSpec("postgres", POSTGRES_DSN, {"schema": pg_schema, "table": f"keys_{unique}"})


@pytest.fixture
def make_spec(tmp_path: Path, redis_prefix: str, pg_schema: str) -> Callable[[str], StoreSpec]:
    return lambda kind: spec_for(kind, tmp_path, redis_prefix, pg_schema)


@pytest.fixture
def built() -> Iterator[list[IdempotencyStore]]:
    """Stores a test built; their synchronous connections are closed afterwards."""
    stores: list[IdempotencyStore] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture(params=ALL_KINDS)
def spec(request: Any, make_spec: Callable[[str], StoreSpec]) -> StoreSpec:
    """Every store kind, each unshared."""
    return make_spec(request.param)


@pytest.fixture(params=SHARED_KINDS)
def shared_spec(request: Any, make_spec: Callable[[str], StoreSpec]) -> StoreSpec:
    """The store kinds several processes can share."""
    return make_spec(request.param)


@pytest.fixture
def build(
    built: list[IdempotencyStore],
) -> Callable[..., IdempotencyStore]:
    def _build(spec: StoreSpec, **overrides: Any) -> IdempotencyStore:
        store = spec.build(**overrides)
        built.append(store)
        return store

    return _build
