"""Fixtures for the task-queue tests: RabbitMQ (through a proxy of the test's own),
PostgreSQL for the handlers' effects (a schema per test) and Redis for the store
(a key prefix per test). RabbitMQ's address: ``COMMET_TEST_AMQP_URL``, default
``amqp://guest:guest@127.0.0.1:5672//``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from offload_helpers import (
    AMQP_ENV,
    Run,
    TcpProxy,
    amqp_port,
    amqp_url,
    delete_queues,
    rabbitmq_problem,
)

from support.net import free_port
from support.services import REDIS_URL, UNAVAILABLE, services_required


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
