"""Fixtures for the adapter tests: each adapter under its real server (``support.adapters``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from support.adapters import (
    ALL,
    LIMIT,
    SECRET,
    STREAMING,
    Server,
    django_setup,
    run_adapter,
    serve_asgi,
)
from support.net import free_port


@pytest.fixture(scope="module", params=ALL, ids=[a.name for a in ALL])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Each adapter in turn, running under its real server."""
    with run_adapter(request.param) as running:
        yield running


@pytest.fixture(scope="module", params=STREAMING, ids=[a.name for a in STREAMING])
def streaming_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The adapters that read the body themselves, so can stop reading at the limit."""
    with run_adapter(request.param) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as http:
        yield http


@pytest.fixture
def webhook_secret() -> str:
    return SECRET


@pytest.fixture
def body_limit() -> int:
    return LIMIT


@pytest.fixture
def django_configured() -> None:
    """Django configured with the test settings (once per process)."""
    django_setup()


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def asgi_server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``asgi_server(app, path)``: run an ASGI app under uvicorn, yield the URL of ``path``."""
    return serve_asgi
