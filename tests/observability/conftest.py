"""Fixtures for the observability tests (helpers in ``observe_helpers``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from observe_helpers import Telemetry, make_telemetry


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """A tracer provider and a meter provider with in-memory exporters, and a registry."""
    made = make_telemetry()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()
