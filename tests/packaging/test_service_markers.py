"""A test that needs a service skips with the reason when it is missing; CI fails instead.

Each case runs pytest on one real test that needs PostgreSQL, with
``COMMET_TEST_POSTGRES_URL`` pointing at a port where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests/hardening/test_secrets.py::test_stores_never_show_their_passwords"
PASSWORD = "pw_" + "markercheck"


def run_pytest(**env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "COMMET_TEST_REQUIRE_SERVICES", "PYTEST_ADDOPTS")
    }
    dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/test"
    return subprocess.run(
        [sys.executable, "-m", "pytest", TARGET, "-q", "-p", "no:randomly"],
        cwd=ROOT,
        env={**base, "COMMET_TEST_POSTGRES_URL": dsn, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_service_skips_with_the_reason() -> None:
    result = run_pytest()
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout
    assert (
        "service unavailable: PostgreSQL at postgresql://postgres:***@127.0.0.1:" in result.stdout
    )
    assert "COMMET_TEST_POSTGRES_URL" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_missing_service_fails_in_ci() -> None:
    for env in ({"CI": "true"}, {"COMMET_TEST_REQUIRE_SERVICES": "1"}):
        result = run_pytest(**env)
        assert result.returncode == 1, (env, result.stdout[-2000:])
        assert "skipped" not in result.stdout.splitlines()[-1]
        assert "every service is required here" in result.stdout
        assert PASSWORD not in result.stdout + result.stderr
