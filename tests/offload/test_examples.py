"""examples/celery and examples/dramatiq run with the two commands their README gives."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from offload_helpers import AMQP_URL, delete_queues, wait_until

from commet_webhooks.testing import sample_event, signed_request
from support.net import free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]


def _commands(name: str) -> list[str]:
    readme = (ROOT / "examples" / name / "README.md").read_text()
    found = [line for line in readme.splitlines() if line.startswith("COMMET_WEBHOOK_SECRET=")]
    assert len(found) == 2, f"examples/{name}/README.md should give a worker and a receiver command"
    return found


@pytest.mark.parametrize(("name", "queues"), [("celery", [""]), ("dramatiq", ["", ".DQ", ".XQ"])])
def test_example_runs_from_its_readme(
    name: str, queues: list[str], tmp_path: Path, rabbitmq: None
) -> None:
    queue = f"commet_example_tests.{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**os.environ, "QUEUE": queue}
    env.pop("COMMET_WEBHOOK_SECRET", None)
    logs = []
    processes = []
    try:
        for i, command in enumerate(_commands(name)):
            logs.append(tmp_path / f"{i}.log")
            with logs[-1].open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        ["bash", "-c", f"exec env {command.replace('8000', str(port))}"],
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        wait_for_port(port, processes[1], timeout=60)
        ids = []
        for event_type in ("subscription.activated", "payment.failed"):
            envelope = sample_event(event_type)
            ids.append(envelope["id"])
            body, headers = signed_request(envelope, "whsec_dev")
            answer = httpx.post(
                f"http://127.0.0.1:{port}/webhooks/commet", content=body, headers=headers
            )
            assert answer.status_code == 200 and answer.json() == {"received": True, "queued": True}

        def worker_log() -> str:
            return logs[0].read_text(errors="replace")

        wait_until(lambda: "payment failed email" in worker_log(), 60, "the worker's emails")
        text = worker_log()
        assert f"subscription.activated {ids[0]} example.emails: welcome email -> " in text
        assert f"payment.failed {ids[1]} example.emails: payment failed email -> " in text
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        delete_queues(AMQP_URL, *(queue + suffix for suffix in queues))
