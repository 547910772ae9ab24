"""Fixtures for the hardening tests: each adapter in-process, and under its real server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hardening_support import ADAPTER_TABLE, IN_PROCESS, Driver, LoopThread, in_process

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


@pytest.fixture(scope="module", params=ADAPTER_TABLE.ADAPTERS, ids=lambda a: a.name)
def real_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each adapter in turn under its real server (the adapters' table)."""
    with ADAPTER_TABLE._run(request.param) as running:
        yield running
