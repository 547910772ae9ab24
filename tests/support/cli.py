"""Run the command line as a real subprocess: to completion, or in the background (``listen``)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .net import free_port, wait_for_port

__all__ = ["CLI", "SECRET_ENV", "Running", "cli_env", "run_cli", "running", "running_listener"]

CLI = [sys.executable, "-m", "commet_webhooks"]
SECRET_ENV = "COMMET_WEBHOOK_SECRET"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI run: no inherited secret, no colour, a wide terminal."""
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **extra})
    return env


def run_cli(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m commet_webhooks ARGS`` to completion."""
    completed = subprocess.run(
        [*CLI, *args],
        input=input,
        env=env or cli_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )


@dataclass
class Running:
    """A long-running CLI command (``listen``, ``emulator``) started as a subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr: list[str] = field(default_factory=list)

    def next_line(self, timeout: float = 20) -> str:
        """The next line the command printed on stdout."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing printed within {timeout} s") from None

    def next_delivery(self, timeout: float = 20) -> dict[str, Any]:
        """The next JSON line ``listen --json`` printed."""
        result: dict[str, Any] = json.loads(self.next_line(timeout))
        return result


def _pump(stream: Any, sink: queue.Queue[str] | list[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if isinstance(sink, list):
            sink.append(line)
        else:
            sink.put(line)


@contextlib.contextmanager
def running(args: list[str], port: int, url: str) -> Iterator[Running]:
    """Run ``commet-webhooks ARGS`` until the block exits; wait until ``port`` accepts."""
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    )
    command = Running(proc, url)
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, command.lines), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, command.stderr), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for_port(port, proc)
        yield command
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        for thread in threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def running_listener(secret: str, *extra: str, port: int | None = None) -> Iterator[Running]:
    """``listen`` on ``port`` (default: a free one) with ``secret``; ``url`` is its webhook URL."""
    port = port or free_port()
    args = ["listen", "--port", str(port), "--secret", secret, *extra]
    with running(args, port, f"http://127.0.0.1:{port}/webhooks/commet") as listener:
        yield listener
