"""Without an optional dependency, importing its module says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    ("commet_webhooks.fastapi", "fastapi", "fastapi"),
    ("commet_webhooks.starlette", "starlette", "starlette"),
    ("commet_webhooks.flask", "flask", "flask"),
    ("commet_webhooks.django", "django", "django"),
    ("commet_webhooks.client", "httpx", "client"),
    ("commet_webhooks.stores.redis", "redis", "redis"),
    ("commet_webhooks.stores.postgres", "psycopg", "postgres"),
    ("commet_webhooks.cli._app", "typer", "cli"),
    ("commet_webhooks.emulator", "starlette", "cli"),
]


def import_without(module: str, hidden: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in [m for m in sys.modules if m == {hidden!r} or m.startswith({hidden!r} + '.')]:\n"
        "    del sys.modules[name]\n"
        f"sys.modules[{hidden!r}] = None  # as if not installed\n"
        f"import {module}\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("module", "hidden", "extra"), CASES)
def test_missing_dependency_names_the_extra(module: str, hidden: str, extra: str) -> None:
    result = import_without(module, hidden)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f'pip install "commet-webhooks[{extra}]"' in last, result.stderr[-800:]
    assert last.count("pip install") == 1 and repr(hidden) in last, last


def test_cli_entry_point_without_its_extra_exits_with_a_hint() -> None:
    code = "import sys\nsys.modules['typer'] = None\nfrom commet_webhooks.cli import main\nmain()\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "commet-webhooks[cli]" in result.stderr and "Traceback" not in result.stderr
    # One line that says it once.
    assert result.stderr.count("pip install") == 1, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_top_level_client_names_say_the_extra_too() -> None:
    code = (
        "import sys\nsys.modules['httpx'] = None\nimport commet_webhooks\ncommet_webhooks.Commet\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert 'pip install "commet-webhooks[client]"' in result.stderr


def test_core_imports_no_optional_dependency() -> None:
    code = (
        "import sys, commet_webhooks, commet_webhooks.testing, commet_webhooks.asgi, commet_webhooks.wsgi\n"
        "heavy = {'httpx', 'fastapi', 'starlette', 'flask', 'django', 'aiohttp', 'redis', 'psycopg', "
        "'typer', 'rich', 'uvicorn', 'sqlite3'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
