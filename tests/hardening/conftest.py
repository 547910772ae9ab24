"""Fixtures for the hardening tests: each adapter in-process, and under its real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import adapters
from support.adapters import Server
from support.hardening import IN_PROCESS, Driver, LoopThread, in_process

# --------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module", params=IN_PROCESS)
def driver(request: pytest.FixtureRequest, loop_thread: LoopThread) -> Iterator[Driver]:
    """Each adapter in turn, in-process."""
    with in_process(request.param, loop_thread) as running:
        yield running


@pytest.fixture(scope="module", params=adapters.ADAPTERS, ids=lambda a: a.name)
def real_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Each adapter in turn under its real server (the adapters' table)."""
    with adapters.run_adapter(request.param) as running:
        yield running
