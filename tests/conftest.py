"""Shared fixtures. Each area (core, adapters, stores, client, emulator) has its own conftest."""

from __future__ import annotations

import socket

import pytest

SECRET = "whsec_test_secret_7f3a9c"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def secret() -> str:
    return SECRET


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
