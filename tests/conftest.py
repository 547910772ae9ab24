"""Shared fixtures, and the markers for tests that need a service or take long.

Markers (see ``[tool.pytest.ini_options]`` in ``pyproject.toml``):

- ``postgres`` / ``redis``: the test talks to the real server (``support.services``
  says where: ``COMMET_TEST_POSTGRES_URL`` / ``COMMET_TEST_REDIS_URL``). Applied here
  to every test parametrized with that store kind, and by hand elsewhere.
- ``browser``: the test drives headless Chromium.
- ``slow``: multi-process, long-running or fuzzing; ``-m "not slow"`` is the quick loop.

A test whose service does not answer is skipped with the reason, except when services
are required (``CI=true`` or ``COMMET_TEST_REQUIRE_SERVICES=1``): then it fails, and a
skip for a missing service anywhere fails the whole run.
"""

from __future__ import annotations

import pytest

from support.services import SERVICES, UNAVAILABLE, services_required

SECRET = "whsec_test_secret_7f3a9c"

#: Parameters whose value names a store kind (tests/stores): ``kind``, ``spec``, ``shared_spec``.
_STORE_PARAMS = ("kind", "spec", "shared_spec")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def secret() -> str:
    return SECRET


def _store_kinds(item: pytest.Item) -> set[str]:
    """The services a store test talks to: by its store parameter, else by its name."""
    kinds: set[str] = set()
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        kinds |= {callspec.params.get(name) for name in _STORE_PARAMS} & {"postgres", "redis"}
    if item.path.parent.name == "stores":  # test_redis_..., test_postgres_...
        words = set(getattr(item, "originalname", item.name).split("_"))
        kinds |= words & {"postgres", "redis"}
    return kinds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for kind in _store_kinds(item):
            if item.get_closest_marker(kind) is None:
                item.add_marker(kind)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, service in SERVICES.items():
        if item.get_closest_marker(marker) is None:
            continue
        problem = service.problem
        if problem is None:
            continue
        if services_required():
            pytest.fail(f"{problem} (every service is required here)", pytrace=False)
        pytest.skip(problem)


_unavailable: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and UNAVAILABLE in str(report.longrepr):
        _unavailable.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unavailable and services_required():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _unavailable:
        return
    if services_required():
        terminalreporter.write_line(
            f"FAILED: {len(_unavailable)} test(s) skipped for a missing service, "
            "and every service is required here",
            red=True,
        )
    else:
        terminalreporter.write_line(
            f"{len(_unavailable)} test(s) skipped for a missing service (see the skip "
            "reasons above; CI runs them all)",
            yellow=True,
        )
