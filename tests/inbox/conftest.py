"""Fixtures for the inbox tests: real SQLite files and a PostgreSQL schema of our own.

Every test gets its own table (PostgreSQL: inside one schema per run, dropped at the
end), so tests never see each other's events.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from inbox_helpers import POSTGRES_DSN, InboxSpec

from commet_webhooks.inbox import InboxStore

RUN = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    schema = f"commet_inbox_test_{RUN}"
    yield schema
    try:
        with psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(schema)
                )
            )
    except psycopg.OperationalError:
        pass  # never reached: nothing to drop


@pytest.fixture
def make_spec(tmp_path: Path, pg_schema: str) -> Callable[[str], InboxSpec]:
    def make(kind: str) -> InboxSpec:
        unique = uuid.uuid4().hex[:8]
        if kind == "sqlite":
            return InboxSpec("sqlite", str(tmp_path / f"inbox-{unique}.db"))
        return InboxSpec(
            "postgres", POSTGRES_DSN, {"schema": pg_schema, "table": f"inbox_{unique}"}
        )

    return make


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def spec(kind: str, make_spec: Callable[[str], InboxSpec]) -> InboxSpec:
    return make_spec(kind)


@pytest.fixture
def build() -> Iterator[Callable[..., InboxStore]]:
    built: list[InboxStore] = []

    def _build(spec: InboxSpec, **overrides: Any) -> InboxStore:
        inbox = spec.build(**overrides)
        built.append(inbox)
        return inbox

    yield _build
    for inbox in built:
        inbox.close()


@pytest.fixture
def inbox(spec: InboxSpec, build: Callable[..., InboxStore]) -> InboxStore:
    return build(spec)
