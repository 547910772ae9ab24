"""Each engine for real: uvicorn (2 workers) offloading to RabbitMQ, several worker
processes (``celery -A celery_app worker``, ``dramatiq dramatiq_app``), a worker killed
mid-handler, the broker cut and restored; every event's effect recorded exactly once in
PostgreSQL, nothing lost, 503s while the broker is away."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from offload_helpers import BIN, Run, TcpProxy, queue_depth, start, stop, wait_until

from commet_webhooks.testing import sample_event, signed_request
from support.net import free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SECRET = "whsec_offload_tests"
EVENTS = 150
COPIES = 3
WORKERS = 3
TYPES = ["payment.received", "invoice.created", "subscription.activated", "payment.failed"]


def worker(engine: str, run: Run, name: str, tmp_path: Path, env: dict[str, str]) -> Any:
    if engine == "celery":  # a prefork pool: killing a child exercises reject_on_worker_lost
        args = [
            str(BIN / "celery"), "-A", "celery_app", "worker", "-Q", run.queue,
            "-n", f"{name}@%h", "--pool", "prefork", "--concurrency", "2",
            "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
    else:
        args = [
            str(BIN / "dramatiq"), "dramatiq_app", "--processes", "1", "--threads", "2",
            "--queues", run.queue,
        ]  # fmt: skip
    return start(args, env, tmp_path / f"{name}.log")


def receiver(engine: str, tmp_path: Path, env: dict[str, str]) -> tuple[Any, str]:
    port = free_port()
    args = [
        sys.executable, "-m", "uvicorn", f"{engine}_app:asgi", "--port", str(port),
        "--workers", "2", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = start(args, env, tmp_path / "uvicorn.log")
    wait_for_port(port, process, timeout=60)
    return process, f"http://127.0.0.1:{port}/"


def post_all(url: str, deliveries: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        return list(
            pool.map(lambda d: client.post(url, content=d[0], headers=d[1]).status_code, deliveries)
        )


@pytest.mark.parametrize("engine", ["celery", "dramatiq"])
def test_every_event_once_through_uvicorn_rabbitmq_and_workers(
    engine: str, run: Run, proxy: TcpProxy, tmp_path: Path
) -> None:
    envelopes = [sample_event(TYPES[i % len(TYPES)]) for i in range(EVENTS)]
    ids = [e["id"] for e in envelopes]
    slow = ids[0]
    deliveries = [signed_request(e, SECRET) for e in envelopes for _ in range(COPIES)]
    random.Random(14).shuffle(deliveries)
    env = run.env(OFFLOAD_SECRET=SECRET, OFFLOAD_SLOW_EVENT=slow, OFFLOAD_LEASE_SECONDS=4)
    processes: list[Any] = []
    try:
        processes += [worker(engine, run, f"w{i}", tmp_path, env) for i in range(WORKERS)]
        server, url = receiver(engine, tmp_path, env)
        processes.append(server)
        wait_until(
            lambda: queue_depth(run.broker, run.queue)[1] == WORKERS, 90, "workers to consume"
        )

        # 1. One worker process is killed while it runs the slow event's handler.
        assert post_all(url, [signed_request(envelopes[0], SECRET)]) == [200]
        started = wait_until(
            lambda: run.sql("SELECT pid FROM {schema}.started WHERE event_id = %s", slow),
            30, "the slow handler to start",
        )  # fmt: skip
        killed = started[0][0]
        os.kill(killed, signal.SIGKILL)

        half = len(deliveries) // 2
        first = post_all(url, deliveries[:half])

        # 2. The broker goes away: every delivery meanwhile is a 503 (Commet retries it).
        proxy.stop()
        during = post_all(url, deliveries[half : half + 40])
        proxy.start()
        rest = post_all(url, deliveries[half + 40 :])

        statuses = first + during + rest
        assert set(statuses) <= {200, 503}, Counter(statuses)
        assert during == [503] * len(during)
        # Commet retries whatever was not acknowledged, until it is.
        pending = [d for d, s in zip(deliveries, statuses, strict=True) if s != 200]
        retried_503s = 0
        for _ in range(20):
            if not pending:
                break
            answers = post_all(url, pending)
            retried_503s += answers.count(503)
            pending = [d for d, s in zip(pending, answers, strict=True) if s != 200]
        assert not pending

        def settled() -> bool:
            done = run.sql("SELECT count(DISTINCT event_id), count(*) FROM {schema}.effects")[0]
            return done[0] == EVENTS and queue_depth(run.broker, run.queue)[0] == 0

        wait_until(settled, 60, "every event's effect")
        # Redelivered and retried copies still in flight must not add a second effect.
        wait_until(lambda: _idle(run), 30, "the workers to go idle")
    finally:
        for process in processes:
            stop(process)

    effects = run.sql(
        "SELECT event_id, count(*), min(receiver_pid) FROM {schema}.effects GROUP BY event_id"
    )
    assert {row[0] for row in effects} == set(ids)
    assert [row for row in effects if row[1] != 1] == []
    # The receiver's tracing context reached the worker for every event.
    assert all(row[2] is not None and row[2] != killed for row in effects)
    # The slow event was killed mid-handler (its transaction rolled back), then done once.
    slow_runs = run.sql("SELECT pid FROM {schema}.effects WHERE event_id = %s", slow)
    assert len(slow_runs) == 1 and slow_runs[0][0] != killed
    assert len(run.sql("SELECT pid FROM {schema}.started WHERE event_id = %s", slow)) >= 2
    assert queue_depth(run.broker, run.dead_queue)[0] == 0
    # on_error saw each refused publish (the 503s), and nothing else: no dead letter.
    errors = [row[0] for row in run.sql("SELECT error FROM {schema}.errors")]
    assert len(errors) == statuses.count(503) + retried_503s
    assert not [e for e in errors if "DeadLettered" in e or "RuntimeError" in e], errors
    # Worker log records carry the event's type and id (install_log_context).
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("w*.log"))
    assert sum(f"{e['event']} {e['id']} recording effect" in logs for e in envelopes) == EVENTS


def _idle(run: Run) -> bool:
    """No handler started for two seconds, and nothing waits in the queue."""
    before = run.sql("SELECT count(*) FROM {schema}.started")[0][0]
    time.sleep(2)
    after = run.sql("SELECT count(*) FROM {schema}.started")[0][0]
    return before == after and queue_depth(run.broker, run.queue)[0] == 0
