"""Each example runs with the exact command its README gives, and sends its two emails."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from commet_webhooks.testing import sample_event, signed_request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["fastapi", "starlette", "flask", "wsgi", "aiohttp", "django"]


def _readme_commands(name: str) -> tuple[str, str, str]:
    """(run command, secret, receiver URL) as the README of ``examples/<name>`` gives them."""
    readme = (ROOT / "examples" / name / "README.md").read_text()
    run = next(line for line in readme.splitlines() if line.startswith("COMMET_WEBHOOK_SECRET="))
    secret = run.split()[0].split("=", 1)[1]
    url = re.search(r"--url (\S+)", readme)
    assert url, f"examples/{name}/README.md gives no --url"
    return run, secret, url.group(1)


def _wait_for_port(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"example exited early:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"example did not start within 45 s:\n{log.read_text()}")


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_from_its_readme_and_sends_both_emails(name, tmp_path, unused_port):
    run, secret, url = _readme_commands(name)
    run, url = run.replace("8000", str(unused_port)), url.replace("8000", str(unused_port))
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "COMMET_WEBHOOK_SECRET"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec env {run}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(url, process, log)
        answers = []
        for event_type in ("subscription.activated", "subscription.canceled"):
            body, headers = signed_request(sample_event(event_type), secret)
            answers.append(httpx.post(url, content=body, headers=headers, timeout=30).status_code)
        forged, headers = signed_request(sample_event("subscription.activated"), "whsec_wrong")
        answers.append(httpx.post(url, content=forged, headers=headers, timeout=30).status_code)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    output = log.read_text()
    assert answers == [200, 200, 403], output
    assert output.count("welcome email -> user_123") == 1, output
    assert output.count("cancellation email -> user_123") == 1, output
    assert secret not in output
