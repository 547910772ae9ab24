"""Fixtures for the CLI tests: the command line as a real subprocess (``support.cli``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from support.cli import Running, run_cli, running, running_listener
from support.net import free_port


@pytest.fixture
def listener(secret: str) -> Iterator[Running]:
    """``listen --json`` on a free port with the test secret."""
    with running_listener(secret, "--json") as running:
        yield running


@pytest.fixture
def cli() -> Any:
    """:func:`run_cli`, for tests (helpers are shared as fixtures under importlib mode)."""
    return run_cli


@pytest.fixture
def start_listener() -> Any:
    """:func:`running_listener`, for tests that need a non-default ``listen``."""
    return running_listener


@pytest.fixture
def start_command() -> Any:
    """:func:`running`, plus a free port: ``start_command(args_with_PORT)``."""

    def start(args: list[str]) -> contextlib.AbstractContextManager[Running]:
        port = free_port()
        filled = [str(port) if a == "PORT" else a for a in args]
        return running(filled, port, f"http://127.0.0.1:{port}")

    return start


@pytest.fixture
def port() -> int:
    """A free port on 127.0.0.1."""
    return free_port()
