"""Fixtures for the emulator tests: the emulator and a recording receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from commet_webhooks.emulator import create_app
from emulator.emulator_helpers import API_KEY, Emulator, Receiver, ThreadedServer


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A running recording receiver and the URL to register."""
    recorder = Receiver()
    server = ThreadedServer(recorder.app()).start()
    try:
        yield recorder, server.url + "/hook"
    finally:
        server.stop()


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[Callable[..., Emulator]]:
    """Start emulators (``create_app`` keywords); all are stopped at the end."""
    running: list[Emulator] = []

    def start(**options: Any) -> Emulator:
        options.setdefault("db_path", str(tmp_path / f"emulator-{len(running)}.db"))
        options.setdefault("api_key", API_KEY)
        server = ThreadedServer(create_app(**options)).start()
        client = httpx.Client(base_url=server.url, headers={"x-api-key": API_KEY}, timeout=30)
        emulator = Emulator(server, client)
        running.append(emulator)
        return emulator

    try:
        yield start
    finally:
        for emulator in running:
            emulator.client.close()
            emulator.server.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator with a fast retry clock (60 s -> 20 ms)."""
    return make_emulator(time_scale=3000)
