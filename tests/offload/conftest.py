"""Fixtures for the task-queue tests: RabbitMQ (through a proxy of the test's own),
PostgreSQL for the handlers' effects (a schema per test) and Redis for the store
(a key prefix per test). RabbitMQ's address: ``COMMET_TEST_AMQP_URL``, default
``amqp://guest:guest@127.0.0.1:5672//``."""

from __future__ import annotations

import functools
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from offload_helpers import (
    AMQP_ENV,
    TESTS,
    TcpProxy,
    amqp_port,
    amqp_url,
    delete_queues,
    rabbitmq_problem,
)

from support.net import free_port
from support.services import POSTGRES_URL, REDIS_URL, UNAVAILABLE, services_required


@functools.cache
def _rabbitmq() -> str | None:
    return rabbitmq_problem()


@pytest.fixture
def rabbitmq() -> None:
    problem = _rabbitmq()
    if problem is None:
        return
    message = f"{UNAVAILABLE} RabbitMQ: {problem}; start it or set {AMQP_ENV}"
    if services_required():
        pytest.fail(f"{message} (every service is required here)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def proxy(rabbitmq: None) -> Iterator[TcpProxy]:
    """A started TCP proxy in front of RabbitMQ: ``proxy.stop()`` is the outage."""
    made = TcpProxy(free_port(), amqp_port())
    made.start()
    yield made
    made.stop()


class Run:
    """One test's names: queues, PostgreSQL schema, Redis prefix; and the env for its
    subprocesses."""

    def __init__(self, proxy: TcpProxy) -> None:
        run = uuid.uuid4().hex[:10]
        self.broker = amqp_url(proxy.port)
        self.queue = f"commet_offload_tests.{run}"
        self.dead_queue = f"{self.queue}.dead"
        self.schema = f"offload_{run}"
        self.prefix = f"commet_offload_tests:{run}:"

    def env(self, **extra: Any) -> dict[str, str]:
        paths = [str(Path(__file__).parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "OFFLOAD_BROKER": self.broker,
            "OFFLOAD_QUEUE": self.queue,
            "OFFLOAD_DEAD_QUEUE": self.dead_queue,
            "OFFLOAD_SCHEMA": self.schema,
            "OFFLOAD_POSTGRES_URL": POSTGRES_URL,
            "OFFLOAD_REDIS_URL": REDIS_URL,
            "OFFLOAD_REDIS_PREFIX": self.prefix,
            **{k: str(v) for k, v in extra.items()},
        }

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            cursor = conn.execute(query.replace("{schema}", self.schema), params or None)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def run(proxy: TcpProxy) -> Iterator[Run]:
    import redis

    made = Run(proxy)
    made.sql("CREATE SCHEMA {schema}")
    made.sql(
        "CREATE TABLE {schema}.effects (id serial PRIMARY KEY, event_id text, event_type text,"
        " pid int, receiver_pid int)"
    )
    made.sql("CREATE TABLE {schema}.started (id serial PRIMARY KEY, event_id text, pid int)")
    made.sql("CREATE TABLE {schema}.broken (event_id text PRIMARY KEY)")
    made.sql("CREATE TABLE {schema}.errors (id serial PRIMARY KEY, event_id text, error text)")
    try:
        yield made
    finally:
        made.sql("DROP SCHEMA {schema} CASCADE")
        delete_queues(amqp_url(amqp_port()), made.queue, made.dead_queue)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{made.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
